// The upstream exchange of a session: picking a target, connecting (or reusing a pooled connection), sending
// the rewritten head and the request body, receiving the response head and streaming its body to the client,
// and deciding on a failure whether another target may be tried (docs/internals/gateway.md, "Failures").
#include <cerrno>

#include "core/log.h"
#include "gateway/internal/session.h"
#include "health/health.h"

namespace cumulo::gateway {

using http::BodyKind;
using http::ParseStatus;

namespace {

// A route's default_cache_control, for responses that say nothing about caching: a view of the route's own
// string, which outlives the response head (the request holds its snapshot).
void add_default_cache_control(http::ResponseHead& resp, std::string_view value) {
  if (!((resp.status >= 200 && resp.status < 300) || resp.status == 304)) return;
  if (resp.header_count >= http::kMaxHeaders || !resp.header("cache-control").empty()) return;
  resp.headers[resp.header_count++] = http::Header{"Cache-Control", value};
}

bool idempotent(http::Method m) {
  using M = http::Method;
  return m == M::kGet || m == M::kHead || m == M::kOptions || m == M::kTrace || m == M::kPut ||
         m == M::kDelete;
}

}  // namespace

void Session::Exchange::begin(const http::RequestHead& req) {
  request_body = req.body;
  request_left = req.body == BodyKind::kContentLength ? req.content_length : 0;
  request_chunk_ready = 0;
  request_chunks.reset();
  request_sent = 0;
  request = RequestProgress::kBody;
  response = ResponseProgress::kHead;
  attempts = 0;
  tried = {};
  head_sent = 0;
  head.clear();
}

void Session::connect_upstream() {
  const TargetGroup& group = *route_->group;
  int64_t now_ms = health::steady_ms(clock_.now());
  for (;;) {
    std::shared_ptr<Target> t =
        take_target(group, group.balancer[w_.index()], snapshot_->config->zone, now_ms, exchange_.tried);
    if (!t) {
      if (cache_serve_stale_on_error()) return;
      if (exchange_.attempts == 0) {
        respond_error(503, "no healthy target in target group '" + group.config.name + "'");
      } else {
        respond_error(502, exchange_.last_failure + "; no other target to try");
      }
      return;
    }
    exchange_.target = t;
    exchange_.conn = upstreams_.take_idle(*t);
    if (exchange_.conn) {
      exchange_.conn->owner = this;
      arm(TimerFor::kFirstByte, route_->config.timeouts.first_byte);
      return;
    }
    int err = 0;
    exchange_.conn = upstreams_.connect(exchange_.target, err);
    if (!exchange_.conn) {
      exchange_.target->in_flight.fetch_sub(1, std::memory_order_relaxed);
      note_target_failure(*exchange_.target, group.config, TargetFailure::kConnect,
                          /*reused_connection=*/false, now_ms);
      exchange_.last_failure = "connect to target " + t->address_text + ": " + core::errno_text(err);
      if (exchange_.attempts >= group.config.retries.attempts) {
        respond_error(502, exchange_.last_failure);
        return;
      }
      ++exchange_.attempts;
      exchange_.target->metrics.retries->inc();
      continue;
    }
    exchange_.conn->owner = this;
    arm(TimerFor::kConnect, route_->config.timeouts.connect);
    return;
  }
}

bool Session::step_proxy() {
  UpstreamConnection& u = *exchange_.conn;
  bool progress = false;
  if (!u.connected) {
    if (!u.writable && !u.hangup) return false;
    int err = u.connect_error();
    if (err != 0 || (u.hangup && !u.writable)) {
      upstream_failed(TargetFailure::kConnect, err ? err : ECONNREFUSED, "connect");
      return true;
    }
    u.connected = true;
    arm(TimerFor::kFirstByte, route_->config.timeouts.first_byte);
    progress = true;
  }
  if (!exchange_.request_done() || exchange_.head_sent < exchange_.head.size()) {
    UpstreamConnection* before = exchange_.conn.get();
    progress |= send_request();
    if (phase_ != Phase::kProxy || exchange_.conn.get() != before)
      return true;  // answered, or retrying elsewhere
  }
  progress |= receive_response();
  return progress;
}

bool Session::send_request() {
  UpstreamConnection& u = *exchange_.conn;
  bool progress = false;
  for (;;) {
    size_t body_ready = 0;
    if (exchange_.request_body == BodyKind::kContentLength) {
      body_ready = static_cast<size_t>(std::min<uint64_t>(client_.in.size(), exchange_.request_left));
    } else if (exchange_.request_body == BodyKind::kChunked && !exchange_.request_done()) {
      while (exchange_.request_chunk_ready < client_.in.size() &&
             exchange_.request == RequestProgress::kBody) {
        size_t used = 0;
        std::string_view payload;
        ParseStatus st = exchange_.request_chunks.decode(
            client_.in.view().substr(exchange_.request_chunk_ready), used, payload);
        exchange_.request_chunk_ready += used;
        if (st == ParseStatus::kComplete) {
          exchange_.request = RequestProgress::kLastChunkRead;
          break;
        }
        if (st == ParseStatus::kInvalid || st == ParseStatus::kTooLarge) {
          if (!client_.response_started) {
            respond_error(400, exchange_.request_chunks.error().reason);
          } else {
            abort();
          }
          return true;
        }
        uint64_t max_body = snapshot_->config->limits.max_body_bytes;
        if (max_body && exchange_.request_chunks.payload_bytes() > max_body) {
          // Its size was not known up front; the target sees a cut request and the client the limit.
          if (!client_.response_started) {
            respond_error(413, "request body larger than limits.max_body_bytes");
          } else {
            abort();
          }
          return true;
        }
        if (used == 0) break;
      }
      body_ready = exchange_.request_chunk_ready;
    }
    size_t head_left = exchange_.head.size() - exchange_.head_sent;
    if (head_left == 0 && body_ready == 0) {
      bool body_complete =
          exchange_.request_body == BodyKind::kNone ||
          (exchange_.request_body == BodyKind::kContentLength && exchange_.request_left == 0) ||
          (exchange_.request_body == BodyKind::kChunked &&
           exchange_.request == RequestProgress::kLastChunkRead && exchange_.request_chunk_ready == 0);
      if (body_complete) {
        exchange_.request = RequestProgress::kSent;
        return progress;
      }
      if (!read_client()) return progress;
      if (phase_ != Phase::kProxy) return true;
      progress = true;
      continue;
    }
    if (!u.writable) return progress;
    iovec iov[2];
    int n_iov = 0;
    if (head_left) iov[n_iov++] = {const_cast<char*>(exchange_.head.data()) + exchange_.head_sent, head_left};
    if (body_ready) iov[n_iov++] = {client_.in.data(), body_ready};
    ssize_t n = u.writev(iov, n_iov);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        u.writable = false;
        return progress;
      }
      upstream_failed(TargetFailure::kReset, errno, "send to target");
      return true;
    }
    size_t sent = static_cast<size_t>(n);
    if (sent < head_left + body_ready) u.writable = false;
    size_t head_part = std::min(sent, head_left);
    exchange_.head_sent += head_part;
    size_t body_part = sent - head_part;
    if (body_part) {
      client_.in.consume(body_part);
      exchange_.request_sent += body_part;
      if (exchange_.request_body == BodyKind::kContentLength) exchange_.request_left -= body_part;
      if (exchange_.request_body == BodyKind::kChunked) exchange_.request_chunk_ready -= body_part;
    }
    exchange_.target->metrics.bytes_out->inc(sent);
    progress = true;
    if (!u.writable) return progress;
  }
}

// Each step returns what receive_response does next; `progress` records whether anything moved.
bool Session::receive_response() {
  UpstreamConnection& u = *exchange_.conn;
  bool progress = false;
  for (;;) {
    Flow f = exchange_.head_received() ? forward_response_body(u, progress) : take_response_head(u, progress);
    if (f == Flow::kRead) f = read_upstream(u, progress);
    if (f == Flow::kEnded) return true;
    if (f == Flow::kWait) return progress;
  }
}

Session::Flow Session::take_response_head(UpstreamConnection& u, bool& progress) {
  if (!client_.out.empty() && client_.writable) {  // an interim 100 Continue the client is waiting for
    size_t unused = 0;
    if (!write_client(nullptr, 0, unused)) return Flow::kEnded;
  }
  if (u.in.empty()) return Flow::kRead;
  http::ResponseHead& resp = w_.scratch_response;
  ParseStatus st = exchange_.parser.parse(u.in.view(), method_, resp);
  if (st == ParseStatus::kInvalid || st == ParseStatus::kTooLarge) {
    upstream_failed(TargetFailure::kBadResponse, 0, exchange_.parser.error().reason);
    return Flow::kEnded;
  }
  if (st != ParseStatus::kComplete) {
    if (!u.in.full()) return Flow::kRead;
    upstream_failed(TargetFailure::kBadResponse, 0, "response head too large");
    return Flow::kEnded;
  }
  if (resp.status < 200) return pass_interim(u, resp, progress);
  if (!route_->config.default_cache_control.empty())
    add_default_cache_control(resp, route_->config.default_cache_control);
  // A caching hop says whether it hit: the X-Cache of a cache behind it (an edge's origin) is not ours.
  if (cache_.mode != CacheMode::kOff) resp.remove_header("x-cache");
  if (cache_.mode != CacheMode::kOff && cache_on_response(resp))
    return Flow::kEnded;  // answered from the cache
  return commit_response(u, resp, progress);
}

Session::Flow Session::pass_interim(UpstreamConnection& u, const http::ResponseHead& resp, bool& progress) {
  if (resp.status == 101) {
    upstream_failed(TargetFailure::kBadResponse, 0, "protocol switch that was not asked for");
    return Flow::kEnded;
  }
  // Interim responses (100 Continue) go to the client as they are.
  client_.out.append("HTTP/1.1 ");
  client_.out.append(std::to_string(resp.status));
  client_.out.append(" ");
  client_.out.append(resp.reason);
  client_.out.append("\r\n\r\n");
  u.in.consume(resp.head_bytes);
  exchange_.parser.reset();
  progress = true;
  return Flow::kAgain;
}

// The final response head goes to the client: from here on there is no retry and no other answer.
Session::Flow Session::commit_response(UpstreamConnection& u, const http::ResponseHead& resp,
                                       bool& progress) {
  start_response(resp);
  bool fits = write_response_head(resp);
  u.in.consume(resp.head_bytes);
  exchange_.parser.reset();
  if (!fits) {
    client_.out.clear();
    client_.response_started = false;
    upstream_failed(TargetFailure::kBadResponse, 0, "response head too large");
    return Flow::kEnded;
  }
  note_target_response(*exchange_.target, route_->group->config, resp.status,
                       health::steady_ms(clock_.now()));
  if (exchange_.response_body == BodyKind::kNone ||
      (exchange_.response_body == BodyKind::kContentLength && exchange_.response_left == 0))
    exchange_.response = ResponseProgress::kComplete;
  arm(TimerFor::kBodyIdle, route_->config.timeouts.idle);
  progress = true;
  return Flow::kAgain;
}

void Session::start_response(const http::ResponseHead& resp) {
  exchange_.response = ResponseProgress::kBody;
  client_.response_started = true;
  if (exchange_.head_sent == exchange_.head.size())
    exchange_.head.clear();  // no retry from here on: free its buffer
  status_ = resp.status;
  exchange_.response_body = resp.body;
  exchange_.response_left = resp.body == BodyKind::kContentLength ? resp.content_length : 0;
  exchange_.response_chunk_ready = 0;
  exchange_.response_chunks.reset();
  if (!resp.keep_alive || resp.body == BodyKind::kUntilClose) client_.close_after = true;
  if (!client_.keep_alive || w_.draining()) client_.close_after = true;
}

// The response head as the client sees it, into client_.out; false when it does not fit.
// Body bytes that may go to the client now: all of them up to the framing's end (chunked: checked chunks,
// which are also captured decoded for the cache). nullopt: the chunked framing is broken.
std::optional<size_t> Session::response_body_ready(UpstreamConnection& u) {
  switch (exchange_.response_body) {
    case BodyKind::kNone:
      return 0;
    case BodyKind::kContentLength:
      return static_cast<size_t>(std::min<uint64_t>(u.in.size(), exchange_.response_left));
    case BodyKind::kUntilClose:
      return u.in.size();
    case BodyKind::kChunked:
      while (!exchange_.response_done() && exchange_.response_chunk_ready < u.in.size()) {
        size_t used = 0;
        std::string_view payload;
        ParseStatus st = exchange_.response_chunks.decode(u.in.view().substr(exchange_.response_chunk_ready),
                                                          used, payload);
        exchange_.response_chunk_ready += used;
        if (cache_.capture) capture_body(payload);
        if (st == ParseStatus::kComplete) {
          exchange_.response = ResponseProgress::kComplete;
          break;
        }
        if (st == ParseStatus::kInvalid || st == ParseStatus::kTooLarge) return std::nullopt;
        if (used == 0) break;
      }
      return exchange_.response_chunk_ready;
  }
  return 0;
}

Session::Flow Session::forward_response_body(UpstreamConnection& u, bool& progress) {
  std::optional<size_t> ready = response_body_ready(u);
  if (!ready) {
    abort();  // the head is already on its way: the client can only see a cut connection
    return Flow::kEnded;
  }
  size_t body_ready = *ready;
  if (!client_.out.empty() || body_ready) {
    if (!client_.writable) return Flow::kWait;
    size_t body_written = 0;
    if (!write_client(u.in.data(), body_ready, body_written)) return Flow::kEnded;  // client gone
    if (body_written) {
      if (cache_.capture && exchange_.response_body != BodyKind::kChunked)
        capture_body({u.in.data(), body_written});
      u.in.consume(body_written);
      exchange_.target->metrics.bytes_in->inc(body_written);
      if (exchange_.response_body == BodyKind::kContentLength) {
        exchange_.response_left -= body_written;
        if (exchange_.response_left == 0) exchange_.response = ResponseProgress::kComplete;
      } else if (exchange_.response_body == BodyKind::kChunked) {
        exchange_.response_chunk_ready -= body_written;
      }
      arm(TimerFor::kBodyIdle, route_->config.timeouts.idle);
      progress = true;
    }
    if (!client_.out.empty() || body_written < body_ready) return Flow::kWait;  // for the client to take more
    return Flow::kAgain;
  }
  if (exchange_.response_done() &&
      (exchange_.response_body != BodyKind::kChunked || exchange_.response_chunk_ready == 0)) {
    if (exchange_.request_done() || !client_.keep_alive) {
      finish_request();
      return Flow::kEnded;
    }
    // The target answered before the request body was all sent: finish sending it, then close.
    client_.close_after = true;
    return Flow::kWait;
  }
  return Flow::kRead;
}

Session::Flow Session::read_upstream(UpstreamConnection& u, bool& progress) {
  if (!u.readable || u.in.full()) return Flow::kWait;
  char* dst = u.in.write_ptr();
  size_t space = u.in.write_space();
  ssize_t n = u.read(dst, space);
  if (n > 0) {
    u.in.commit(static_cast<size_t>(n));
    if (static_cast<size_t>(n) < space) u.readable = false;
    progress = true;
    return Flow::kAgain;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    u.readable = false;
    if (u.in.empty()) u.in.release();
    return Flow::kWait;
  }
  int err = n < 0 ? errno : 0;
  u.readable = false;
  u.hangup = true;
  if (!exchange_.head_received()) {
    upstream_failed(TargetFailure::kReset, err, err ? "read from target" : "target closed the connection");
    return Flow::kEnded;
  }
  if (exchange_.response_body == BodyKind::kUntilClose) {
    exchange_.response = ResponseProgress::kComplete;
    client_.close_after = true;
    progress = true;
    return Flow::kAgain;
  }
  abort();  // cut off mid-body
  return Flow::kEnded;
}

void Session::upstream_failed(TargetFailure kind, int err, const char* what) {
  const TargetGroup& group = *route_->group;
  int64_t now_ms = health::steady_ms(clock_.now());
  bool was_reused = exchange_.conn && exchange_.conn->reused;
  note_target_failure(*exchange_.target, group.config, kind, was_reused, now_ms);
  if (log_enabled(core::LogLevel::kDebug))
    core::log(core::LogLevel::kDebug, "gateway", "target failed",
              {{"target", exchange_.target->address_text},
               {"what", what},
               {"error", err ? core::errno_text(err) : ""}});
  exchange_.last_failure = std::string(what) +
                           (err ? std::string(": ") + core::errno_text(err) : std::string()) + " (target " +
                           exchange_.target->address_text + ")";
  release_upstream(false);
  bool nothing_sent = kind == TargetFailure::kConnect || kind == TargetFailure::kConnectTimeout;
  bool safe = nothing_sent ||
              (idempotent(method_) && exchange_.request_sent == 0 && kind != TargetFailure::kBadResponse);
  if (!client_.response_started && client_.out.empty() && safe &&
      exchange_.attempts < group.config.retries.attempts &&
      (was_reused || retry_allowed(group.config.retries, group.balancer[w_.index()], now_ms))) {
    ++exchange_.attempts;
    exchange_.target->metrics.retries->inc();
    exchange_.head_sent = 0;
    connect_upstream();
    return;
  }
  if (client_.response_started) {
    abort();
    return;
  }
  if (cache_serve_stale_on_error()) return;
  respond_error(kind == TargetFailure::kConnectTimeout ? 504 : 502, exchange_.last_failure);
}

void Session::release_upstream(bool reusable) {
  if (exchange_.target && exchange_.conn) exchange_.target->in_flight.fetch_sub(1, std::memory_order_relaxed);
  if (!exchange_.conn) return;
  exchange_.conn->owner = nullptr;
  if (reusable) {
    exchange_.conn->reused = true;
    upstreams_.give_back(std::move(exchange_.conn), route_->group->config.max_idle_connections);
  } else {
    upstreams_.discard(std::move(exchange_.conn));
  }
}

}  // namespace cumulo::gateway
