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

void drop_header(http::MessageHead& head, std::string_view name) {
  size_t kept = 0;
  for (size_t i = 0; i < head.header_count; ++i) {
    if (!http::iequals(head.headers[i].name, name)) head.headers[kept++] = head.headers[i];
  }
  head.header_count = kept;
}

bool idempotent(http::Method m) {
  using M = http::Method;
  return m == M::kGet || m == M::kHead || m == M::kOptions || m == M::kTrace || m == M::kPut ||
         m == M::kDelete;
}

}  // namespace

void Session::connect_upstream() {
  const TargetGroup& group = *route_->group;
  int64_t now_ms = health::steady_ms(clock_.now());
  for (;;) {
    Target* t =
        pick_target(group, group.balancer[w_.index()], snapshot_->config->zone, now_ms, tried_, tried_count_);
    if (!t) {
      if (cache_serve_stale_on_error()) return;
      if (attempts_ == 0) {
        respond_error(503, "no healthy target in target group '" + group.config.name + "'");
      } else {
        respond_error(502, last_failure_ + "; no other target to try");
      }
      return;
    }
    // Find the shared_ptr that owns t, so the request keeps it alive even if it is deregistered meanwhile.
    for (auto& sp : group.targets)
      if (sp.get() == t) target_ = sp;
    if (tried_count_ < 4) tried_[tried_count_++] = t;
    target_->in_flight.fetch_add(1, std::memory_order_relaxed);
    up_ = upstreams_.take_idle(*t);
    if (up_) {
      up_->owner = this;
      arm(TimerFor::kFirstByte, route_->config.timeouts.first_byte);
      return;
    }
    int err = 0;
    up_ = upstreams_.connect(target_, err);
    if (!up_) {
      target_->in_flight.fetch_sub(1, std::memory_order_relaxed);
      target_->metrics.connect_failures->inc();
      target_->outlier.record_failure(health::OutlierDetector::Failure::kConnect, group.config.outlier,
                                      now_ms);
      last_failure_ = "connect to target " + t->address_text + ": " + core::errno_text(err);
      if (attempts_ >= group.config.retries.attempts) {
        respond_error(502, last_failure_);
        return;
      }
      ++attempts_;
      target_->metrics.retries->inc();
      continue;
    }
    up_->owner = this;
    arm(TimerFor::kConnect, route_->config.timeouts.connect);
    return;
  }
}

bool Session::step_proxy() {
  UpstreamConnection& u = *up_;
  bool progress = false;
  if (!u.connected) {
    if (!u.writable && !u.hangup) return false;
    int err = u.connect_error();
    if (err != 0 || (u.hangup && !u.writable)) {
      upstream_failed(Failure::kConnect, err ? err : ECONNREFUSED, "connect");
      return true;
    }
    u.connected = true;
    arm(TimerFor::kFirstByte, route_->config.timeouts.first_byte);
    progress = true;
  }
  if (!req_done_ || up_head_sent_ < up_head_.size()) {
    UpstreamConnection* before = up_.get();
    progress |= send_request();
    if (phase_ != Phase::kProxy || up_.get() != before) return true;  // answered, or retrying elsewhere
  }
  progress |= receive_response();
  return progress;
}

bool Session::send_request() {
  UpstreamConnection& u = *up_;
  bool progress = false;
  for (;;) {
    size_t body_ready = 0;
    if (req_body_ == BodyKind::kContentLength) {
      body_ready = static_cast<size_t>(std::min<uint64_t>(in_.size(), req_body_left_));
    } else if (req_body_ == BodyKind::kChunked && !req_done_) {
      while (req_chunk_ready_ < in_.size() && !req_chunks_complete_) {
        size_t used = 0;
        std::string_view payload;
        ParseStatus st = req_chunks_.decode(in_.view().substr(req_chunk_ready_), used, payload);
        req_chunk_ready_ += used;
        if (st == ParseStatus::kComplete) {
          req_chunks_complete_ = true;
          break;
        }
        if (st == ParseStatus::kInvalid || st == ParseStatus::kTooLarge) {
          if (!resp_started_) {
            respond_error(400, req_chunks_.error().reason);
          } else {
            abort();
          }
          return true;
        }
        uint64_t max_body = snapshot_->config->limits.max_body_bytes;
        if (max_body && req_chunks_.payload_bytes() > max_body) {
          // Its size was not known up front; the target sees a cut request and the client the limit.
          if (!resp_started_) {
            respond_error(413, "request body larger than limits.max_body_bytes");
          } else {
            abort();
          }
          return true;
        }
        if (used == 0) break;
      }
      body_ready = req_chunk_ready_;
    }
    size_t head_left = up_head_.size() - up_head_sent_;
    if (head_left == 0 && body_ready == 0) {
      bool body_complete = req_body_ == BodyKind::kNone ||
                           (req_body_ == BodyKind::kContentLength && req_body_left_ == 0) ||
                           (req_body_ == BodyKind::kChunked && req_chunks_complete_ && req_chunk_ready_ == 0);
      if (body_complete) {
        req_done_ = true;
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
    if (head_left) iov[n_iov++] = {const_cast<char*>(up_head_.data()) + up_head_sent_, head_left};
    if (body_ready) iov[n_iov++] = {in_.data(), body_ready};
    ssize_t n = u.writev(iov, n_iov);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        u.writable = false;
        return progress;
      }
      upstream_failed(Failure::kReset, errno, "send to target");
      return true;
    }
    size_t sent = static_cast<size_t>(n);
    if (sent < head_left + body_ready) u.writable = false;
    size_t head_part = std::min(sent, head_left);
    up_head_sent_ += head_part;
    size_t body_part = sent - head_part;
    if (body_part) {
      in_.consume(body_part);
      req_body_sent_ += body_part;
      if (req_body_ == BodyKind::kContentLength) req_body_left_ -= body_part;
      if (req_body_ == BodyKind::kChunked) req_chunk_ready_ -= body_part;
    }
    target_->metrics.bytes_out->inc(sent);
    progress = true;
    if (!u.writable) return progress;
  }
}

// Each step returns what receive_response does next; `progress` records whether anything moved.
bool Session::receive_response() {
  UpstreamConnection& u = *up_;
  bool progress = false;
  for (;;) {
    Flow f = resp_head_done_ ? forward_response_body(u, progress) : take_response_head(u, progress);
    if (f == Flow::kRead) f = read_upstream(u, progress);
    if (f == Flow::kEnded) return true;
    if (f == Flow::kWait) return progress;
  }
}

Session::Flow Session::take_response_head(UpstreamConnection& u, bool& progress) {
  if (!out_.empty() && client_writable_) {  // an interim 100 Continue the client is waiting for
    size_t unused = 0;
    if (!write_client(nullptr, 0, unused)) return Flow::kEnded;
  }
  if (u.in.empty()) return Flow::kRead;
  http::ResponseHead& resp = w_.scratch_response;
  ParseStatus st = resp_parser_.parse(u.in.view(), method_, resp);
  if (st == ParseStatus::kInvalid || st == ParseStatus::kTooLarge) {
    upstream_failed(Failure::kBadResponse, 0, resp_parser_.error().reason);
    return Flow::kEnded;
  }
  if (st != ParseStatus::kComplete) {
    if (!u.in.full()) return Flow::kRead;
    upstream_failed(Failure::kBadResponse, 0, "response head too large");
    return Flow::kEnded;
  }
  if (resp.status < 200) {
    if (resp.status == 101) {
      upstream_failed(Failure::kBadResponse, 0, "protocol switch that was not asked for");
      return Flow::kEnded;
    }
    // Interim responses (100 Continue) go to the client as they are.
    out_.append("HTTP/1.1 ");
    out_.append(std::to_string(resp.status));
    out_.append(" ");
    out_.append(resp.reason);
    out_.append("\r\n\r\n");
    u.in.consume(resp.head_bytes);
    resp_parser_.reset();
    progress = true;
    return Flow::kAgain;
  }
  if (!route_->config.default_cache_control.empty())
    add_default_cache_control(resp, route_->config.default_cache_control);
  // A caching hop says whether it hit: the X-Cache of a cache behind it (an edge's origin) is not ours.
  if (cache_mode_ != CacheMode::kOff) drop_header(resp, "x-cache");
  if (cache_mode_ != CacheMode::kOff && cache_on_response(resp))
    return Flow::kEnded;  // answered from the cache
  start_response(resp);
  bool fits = write_response_head(resp);
  u.in.consume(resp.head_bytes);
  resp_parser_.reset();
  if (!fits) {
    out_.clear();
    resp_started_ = false;
    upstream_failed(Failure::kBadResponse, 0, "response head too large");
    return Flow::kEnded;
  }
  if (resp.status >= 500) {
    target_->outlier.record_failure(health::OutlierDetector::Failure::k5xx, route_->group->config.outlier,
                                    health::steady_ms(clock_.now()));
  } else {
    target_->outlier.record_success();
  }
  if (resp_body_ == BodyKind::kNone || (resp_body_ == BodyKind::kContentLength && resp_body_left_ == 0))
    resp_done_ = true;
  arm(TimerFor::kBodyIdle, route_->config.timeouts.idle);
  progress = true;
  return Flow::kAgain;
}

// The response is committed to from here on: no retry, no other answer.
void Session::start_response(const http::ResponseHead& resp) {
  resp_head_done_ = resp_started_ = true;
  if (up_head_sent_ == up_head_.size()) up_head_.clear();  // no retry from here on: free its buffer
  status_ = resp.status;
  resp_body_ = resp.body;
  resp_body_left_ = resp.body == BodyKind::kContentLength ? resp.content_length : 0;
  resp_chunk_ready_ = 0;
  resp_chunks_.reset();
  if (!resp.keep_alive || resp.body == BodyKind::kUntilClose) close_after_ = true;
  if (!keep_alive_ || w_.draining()) close_after_ = true;
}

// The response head as the client sees it, into out_; false when it does not fit.
// Body bytes that may go to the client now: all of them up to the framing's end (chunked: checked chunks,
// which are also captured decoded for the cache). nullopt: the chunked framing is broken.
std::optional<size_t> Session::response_body_ready(UpstreamConnection& u) {
  switch (resp_body_) {
    case BodyKind::kNone:
      return 0;
    case BodyKind::kContentLength:
      return static_cast<size_t>(std::min<uint64_t>(u.in.size(), resp_body_left_));
    case BodyKind::kUntilClose:
      return u.in.size();
    case BodyKind::kChunked:
      while (!resp_done_ && resp_chunk_ready_ < u.in.size()) {
        size_t used = 0;
        std::string_view payload;
        ParseStatus st = resp_chunks_.decode(u.in.view().substr(resp_chunk_ready_), used, payload);
        resp_chunk_ready_ += used;
        if (capture_) capture_body(payload);
        if (st == ParseStatus::kComplete) {
          resp_done_ = true;
          break;
        }
        if (st == ParseStatus::kInvalid || st == ParseStatus::kTooLarge) return std::nullopt;
        if (used == 0) break;
      }
      return resp_chunk_ready_;
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
  if (!out_.empty() || body_ready) {
    if (!client_writable_) return Flow::kWait;
    size_t body_written = 0;
    if (!write_client(u.in.data(), body_ready, body_written)) return Flow::kEnded;  // client gone
    if (body_written) {
      if (capture_ && resp_body_ != BodyKind::kChunked) capture_body({u.in.data(), body_written});
      u.in.consume(body_written);
      target_->metrics.bytes_in->inc(body_written);
      if (resp_body_ == BodyKind::kContentLength) {
        resp_body_left_ -= body_written;
        if (resp_body_left_ == 0) resp_done_ = true;
      } else if (resp_body_ == BodyKind::kChunked) {
        resp_chunk_ready_ -= body_written;
      }
      arm(TimerFor::kBodyIdle, route_->config.timeouts.idle);
      progress = true;
    }
    if (!out_.empty() || body_written < body_ready) return Flow::kWait;  // for the client to take more
    return Flow::kAgain;
  }
  if (resp_done_ && (resp_body_ != BodyKind::kChunked || resp_chunk_ready_ == 0)) {
    if (req_done_ || !keep_alive_) {
      finish_request();
      return Flow::kEnded;
    }
    // The target answered before the request body was all sent: finish sending it, then close.
    close_after_ = true;
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
  if (!resp_head_done_) {
    upstream_failed(Failure::kReset, err, err ? "read from target" : "target closed the connection");
    return Flow::kEnded;
  }
  if (resp_body_ == BodyKind::kUntilClose) {
    resp_done_ = true;
    close_after_ = true;
    progress = true;
    return Flow::kAgain;
  }
  abort();  // cut off mid-body
  return Flow::kEnded;
}

void Session::upstream_failed(Failure kind, int err, const char* what) {
  const TargetGroup& group = *route_->group;
  int64_t now_ms = health::steady_ms(clock_.now());
  bool was_reused = up_ && up_->reused;
  if (kind == Failure::kConnect || kind == Failure::kTimeout) {
    target_->metrics.connect_failures->inc();
    if (kind == Failure::kConnect)
      target_->outlier.record_failure(health::OutlierDetector::Failure::kConnect, group.config.outlier,
                                      now_ms);
  } else if (!was_reused) {
    target_->outlier.record_failure(health::OutlierDetector::Failure::k5xx, group.config.outlier, now_ms);
  }
  target_->metrics.responses[0]->inc();
  if (log_enabled(core::LogLevel::kDebug))
    core::log(
        core::LogLevel::kDebug, "gateway", "target failed",
        {{"target", target_->address_text}, {"what", what}, {"error", err ? core::errno_text(err) : ""}});
  last_failure_ = std::string(what) + (err ? std::string(": ") + core::errno_text(err) : std::string()) +
                  " (target " + target_->address_text + ")";
  release_upstream(false);
  bool nothing_sent = kind == Failure::kConnect || kind == Failure::kTimeout;
  bool safe = nothing_sent || (idempotent(method_) && req_body_sent_ == 0 && kind != Failure::kBadResponse);
  if (!resp_started_ && out_.empty() && safe && attempts_ < group.config.retries.attempts &&
      (was_reused || retry_allowed(group.config.retries, group.balancer[w_.index()], now_ms))) {
    ++attempts_;
    target_->metrics.retries->inc();
    up_head_sent_ = 0;
    connect_upstream();
    return;
  }
  if (resp_started_) {
    abort();
    return;
  }
  if (cache_serve_stale_on_error()) return;
  respond_error(kind == Failure::kTimeout ? 504 : 502, last_failure_);
}

void Session::release_upstream(bool reusable) {
  if (target_ && up_) target_->in_flight.fetch_sub(1, std::memory_order_relaxed);
  if (!up_) return;
  up_->owner = nullptr;
  if (reusable) {
    up_->reused = true;
    upstreams_.give_back(std::move(up_), route_->group->config.max_idle_connections);
  } else {
    upstreams_.discard(std::move(up_));
  }
}

}  // namespace cumulo::gateway
