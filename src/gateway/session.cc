#include "gateway/internal/session.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include "cache/policy.h"
#include "core/log.h"
#include "health/health.h"
#include "http/wire/field_lists.h"

namespace cumulo::gateway {

using http::BodyKind;
using http::ParseStatus;

namespace {

constexpr std::string_view kVia = "1.1 cumulo";

struct HeadWriter {
  core::Buffer& out;
  bool overflow = false;
  void put(std::string_view s) {
    if (out.append(s) != s.size()) overflow = true;
  }
  void header(std::string_view name, std::string_view value) {
    put(name);
    put(": ");
    put(value);
    put("\r\n");
  }
};

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

// Headers named by Connection are hop-by-hop too (RFC 9110 section 7.6.1).
bool dropped_by_connection(const http::MessageHead& h, std::string_view name) {
  for (size_t i = 0; i < h.header_count; ++i)
    if (http::iequals(h.headers[i].name, "connection") && http::list_contains(h.headers[i].value, name))
      return true;
  return false;
}

bool hop_by_hop_kept_framing(std::string_view name) {
  // Bodies pass through unchanged, so their framing header goes with them.
  return !http::iequals(name, "transfer-encoding") && http::is_hop_by_hop(name);
}

bool idempotent(http::Method m) {
  using M = http::Method;
  return m == M::kGet || m == M::kHead || m == M::kOptions || m == M::kTrace || m == M::kPut || m == M::kDelete;
}

bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (c <= ' ' || c > '~') return false;
  return true;
}

int status_class(int status) { return status >= 100 && status < 600 ? status / 100 : 0; }

const char* failure_text(int status) {
  switch (status) {
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return http::reason_phrase(status).data();
  }
}

}  // namespace

Session::Session(Worker& w, std::unique_ptr<http::Transport> client, const ListenerRuntime& listener,
                 core::SocketAddress peer)
    : w_(w),
      client_(std::move(client)),
      listener_(listener),
      peer_(peer),
      timer_(w.loop(), [this] { on_timer(); }),
      self_(this) {
  http::ParseLimits limits;
  limits.max_head_bytes = w.snapshot()->config->limits.max_header_bytes;
  req_parser_ = http::RequestParser(limits);
  // Room for the headers the gateway adds to a response of the largest size.
  limits.max_head_bytes = core::Buffer::kCapacity - 512;
  resp_parser_ = http::ResponseParser(limits);
}

Session::~Session() = default;

void Session::start() {
  w_.loop().add(client_->fd(), this);
  enter_idle();
  pump();
}

void Session::on_io(uint32_t events) {
  if (phase_ == Phase::kClosed) return;
  // TLS may need either direction to make progress in the other, so any event retries both.
  if ((events & core::kReadable) || client_->secure()) client_readable_ = true;
  if ((events & core::kWritable) || client_->secure()) client_writable_ = true;
  pump();
}

void Session::on_upstream_io() {
  if (phase_ == Phase::kClosed) return;
  pump();
}

void Session::drain() {
  keep_alive_ = false;
  if (phase_ == Phase::kHead && in_.empty()) close();
}

void Session::cut_if_using(const Target* t) {
  if (phase_ != Phase::kProxy || target_.get() != t) return;
  if (!resp_started_ && out_.empty()) {
    respond_error(502, "the target was deregistered and its drain timeout passed");
  } else {
    abort();
  }
  pump();
}

void Session::pump() {
  for (int rounds = 0; rounds < 100000; ++rounds) {
    bool progress = false;
    switch (phase_) {
      case Phase::kHead: progress = step_head(); break;
      case Phase::kProxy: progress = step_proxy(); break;
      case Phase::kServeCached: progress = step_serve_cached(); break;
      case Phase::kSlices: progress = step_slices(); break;
      case Phase::kWaitCache: return;  // woken by the request that fills the cache
      case Phase::kClosing:
      case Phase::kLinger: progress = step_closing(); break;
      case Phase::kClosed: return;
    }
    if (!progress) return;
  }
}

void Session::arm(TimerFor what, core::Millis after) {
  timer_for_ = what;
  timer_.arm(after);
}

void Session::enter_idle() {
  phase_ = Phase::kHead;
  if (in_.empty()) {
    arm(TimerFor::kIdle, w_.snapshot()->config->limits.client_idle_timeout);
  } else {
    arm(TimerFor::kHeader, w_.snapshot()->config->limits.header_timeout);
  }
}

// ---- reading requests ----

bool Session::read_client() {
  if (!client_readable_ || client_eof_) return false;
  if (in_.full()) return false;
  bool was_empty = in_.empty();
  char* dst = in_.write_ptr();
  size_t space = in_.write_space();
  ssize_t n = client_->read(dst, space);
  if (n > 0) {
    in_.commit(static_cast<size_t>(n));
    if (static_cast<size_t>(n) < space) client_readable_ = false;
    if (was_empty && phase_ == Phase::kHead) arm(TimerFor::kHeader, w_.snapshot()->config->limits.header_timeout);
    return true;
  }
  if (n == http::kWouldBlock) {
    client_readable_ = false;
    if (in_.empty()) in_.release();
    return false;
  }
  // End of stream or error: nothing more will come from this client.
  client_eof_ = true;
  client_readable_ = false;
  if (phase_ == Phase::kHead) {
    close();
  } else if (phase_ == Phase::kProxy && !req_done_) {
    abort();  // the request body can never be completed
  }
  return true;
}

bool Session::step_head() {
  if (!in_.empty()) {
    http::RequestHead& req = w_.scratch_request;
    ParseStatus st = req_parser_.parse(in_.view(), req);
    if (st == ParseStatus::kComplete) {
      begin_request(req);
      return true;
    }
    if (st == ParseStatus::kInvalid || st == ParseStatus::kTooLarge) {
      const auto& e = req_parser_.error();
      respond_error(e.http_status, e.reason);
      return true;
    }
    if (in_.full()) {
      respond_error(431, "request head too large");
      return true;
    }
  }
  return read_client();
}

void Session::begin_request(const http::RequestHead& req) {
  const Snapshot& snap = *w_.snapshot();
  const Limits& limits = snap.config->limits;
  started_ = w_.loop().now();
  request_id_len_ = 0;
  method_ = req.method;
  version_minor_ = static_cast<uint8_t>(req.version_minor);
  keep_alive_ = req.keep_alive && !w_.draining();
  req_body_ = req.body;
  req_body_left_ = req.body == BodyKind::kContentLength ? req.content_length : 0;
  req_chunk_ready_ = 0;
  req_chunks_.reset();
  req_chunks_complete_ = false;
  route_ = nullptr;
  req_body_sent_ = 0;
  req_done_ = false;
  resp_started_ = resp_head_done_ = resp_done_ = false;
  close_after_ = false;
  status_ = 0;
  attempts_ = 0;
  tried_count_ = 0;
  bytes_to_client_ = 0;
  up_head_sent_ = 0;
  up_head_.clear();

  std::string_view rid = req.header("x-request-id");
  if (valid_request_id(rid) && rid.size() <= sizeof request_id_) {
    std::memcpy(request_id_, rid.data(), rid.size());
    request_id_len_ = static_cast<uint8_t>(rid.size());
  } else {
    request_id_len_ = static_cast<uint8_t>(w_.next_request_id(request_id_, sizeof request_id_));
  }
  if (core::AccessLog::enabled()) {
    log_line_.clear();
    core::JsonLine j(log_line_);
    j.field("ts", core::utc_timestamp())
        .field("client", peer_.host())
        .field("method", req.method_name)
        .field("host", req.host)
        .field("path", req.target)
        .field("request_id", request_id());
    // Left open: log_access adds the outcome.
  }

  if (limits.max_body_bytes && req.body == BodyKind::kContentLength && req.content_length > limits.max_body_bytes) {
    in_.consume(req.head_bytes);
    req_parser_.reset();
    respond_error(413, "request body larger than limits.max_body_bytes");
    return;
  }
  if (!listener_.config.redirect_to_https.empty()) {
    std::string location = listener_.config.redirect_to_https;
    if (!location.empty() && location.back() == '/') location.pop_back();
    location.append(req.path.empty() ? std::string_view("/") : req.target);
    in_.consume(req.head_bytes);
    req_parser_.reset();
    out_.append("HTTP/1.1 308 Permanent Redirect\r\nLocation: ");
    out_.append(location);
    out_.append("\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    status_ = 308;
    log_access(308);
    phase_ = Phase::kClosing;
    return;
  }
  route_ = snap.match(req.host, req.path);
  if (!route_) {
    in_.consume(req.head_bytes);
    req_parser_.reset();
    respond_error(404, "no route matches this host and path");
    return;
  }
  const std::string& bucket = route_->config.bucket;
  if (!bucket.empty() && req.method != http::Method::kGet && req.method != http::Method::kHead) {
    in_.consume(req.head_bytes);
    req_parser_.reset();
    respond_error(405, "a bucket route serves GET and HEAD only");
    return;
  }
  snapshot_ = w_.snapshot();
  cache_mode_ = CacheMode::kOff;
  if (route_->config.cache.enabled && snap.cache &&
      (req.method == http::Method::kGet || req.method == http::Method::kHead)) {
    if (cache_lookup(req)) return;  // answered from the cache, or waiting for the request that fills it
  }

  // The request head as the target sees it (RFC 9110 section 7.6: hop-by-hop fields removed, Via added).
  HeadWriter hw{up_head_};
  hw.put(req.method_name);
  hw.put(" ");
  if (!bucket.empty()) {
    // Path-style S3: "/static/css/site.css" under path_prefix "/static/" is key "css/site.css" of the bucket.
    hw.put("/");
    hw.put(bucket);
    hw.put("/");
    hw.put(std::string_view(req.path).substr(route_->config.path_prefix.size()));
    if (!req.query.empty()) {
      hw.put("?");
      hw.put(req.query);
    }
  } else if (!req.target.empty() && req.target[0] != '/' && req.target != "*") {
    hw.put(req.path.empty() ? std::string_view("/") : req.path);  // absolute-form becomes origin-form
    if (!req.query.empty()) {
      hw.put("?");
      hw.put(req.query);
    }
  } else {
    hw.put(req.target);
  }
  hw.put(req.version_minor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
  std::string_view forwarded_for;
  bool host_seen = false;
  for (size_t i = 0; i < req.header_count; ++i) {
    const http::Header& h = req.headers[i];
    if (hop_by_hop_kept_framing(h.name)) continue;
    if (http::iequals(h.name, "x-forwarded-for")) {
      forwarded_for = h.value;  // one is kept; several are rare and merged by their sender
      continue;
    }
    if (http::iequals(h.name, "x-forwarded-proto") || http::iequals(h.name, "x-forwarded-port") ||
        http::iequals(h.name, "x-request-id"))
      continue;
    if (!bucket.empty() && (http::iequals(h.name, "authorization") || http::iequals(h.name, "cookie"))) continue;
    if (http::iequals(h.name, "host")) host_seen = true;
    if (req.header_count > 0 && dropped_by_connection(req, h.name)) continue;
    if (cache_mode_ != CacheMode::kOff && http::iequals(h.name, "accept-encoding")) {
      // The cache keys variants by the encodings it tells apart (br, gzip, none): ask the origin for just that,
      // so no other coding is stored under a key whose clients did not ask for it.
      std::string_view coding = cache::normalized_accept_encoding(h.value);
      if (!coding.empty()) hw.header(h.name, coding);
      continue;
    }
    hw.header(h.name, h.value);
  }
  if (!host_seen && !req.host.empty()) hw.header("Host", req.host);
  char client_ip[INET6_ADDRSTRLEN] = "";
  if (peer_.storage.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&peer_.storage)->sin_addr, client_ip, sizeof client_ip);
  else if (peer_.storage.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&peer_.storage)->sin6_addr, client_ip, sizeof client_ip);
  hw.put("X-Forwarded-For: ");
  if (!forwarded_for.empty()) {
    hw.put(forwarded_for);
    hw.put(", ");
  }
  hw.put(client_ip);
  hw.put("\r\nX-Forwarded-Proto: ");
  hw.put(client_->secure() ? "https" : "http");
  hw.put("\r\nX-Forwarded-Port: ");
  hw.put(listener_.port_text);
  hw.put("\r\nX-Request-Id: ");
  hw.put(request_id());
  hw.put("\r\nVia: ");
  hw.put(kVia);
  if (req.version_minor == 0) hw.put("\r\nConnection: keep-alive");
  if (cache_mode_ == CacheMode::kRevalidate && req.header("if-none-match").empty() &&
      req.header("if-modified-since").empty()) {
    // RFC 9111 section 4.3.1: validate the stored response instead of fetching it again.
    if (!stale_->etag.empty()) {
      hw.put("\r\nIf-None-Match: ");
      hw.put(stale_->etag);
    } else if (!stale_->last_modified.empty()) {
      hw.put("\r\nIf-Modified-Since: ");
      hw.put(stale_->last_modified);
    }
  }
  hw.put("\r\n\r\n");
  in_.consume(req.head_bytes);
  req_parser_.reset();
  if (hw.overflow) {
    up_head_.clear();
    respond_error(431, "request head too large once forwarding headers are added");
    return;
  }
  if (req_body_ == BodyKind::kNone || (req_body_ == BodyKind::kContentLength && req_body_left_ == 0)) req_done_ = true;
  phase_ = Phase::kProxy;
  ++w_.active_requests;
  in_flight_counted_ = true;
  retry_deposit(route_->group->config.retries, route_->group->balancer[w_.index()]);
  connect_upstream();
}

// ---- the target side ----

void Session::connect_upstream() {
  const TargetGroup& group = *route_->group;
  int64_t now_ms = health::steady_ms(w_.loop().now());
  for (;;) {
    Target* t = pick_target(group, group.balancer[w_.index()], snapshot_->config->zone, now_ms, tried_, tried_count_);
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
    up_ = w_.take_idle(t);
    if (up_) {
      up_->owner = this;
      arm(TimerFor::kFirstByte, route_->config.timeouts.first_byte);
      return;
    }
    int err = 0;
    core::Fd fd = core::connect_tcp(t->address, &err);
    if (!fd) {
      target_->in_flight.fetch_sub(1, std::memory_order_relaxed);
      target_->metrics.connect_failures->inc();
      target_->outlier.record_failure(health::OutlierDetector::Failure::kConnect, group.config.outlier, now_ms);
      last_failure_ = "connect to target " + t->address_text + ": " + core::errno_text(err);
      if (attempts_ >= group.config.retries.attempts) {
        respond_error(502, last_failure_);
        return;
      }
      ++attempts_;
      target_->metrics.retries->inc();
      continue;
    }
    up_ = std::make_unique<UpstreamConn>(w_, std::move(fd), target_);
    up_->owner = this;
    up_->writable = false;
    w_.loop().add(up_->fd.get(), up_.get());
    arm(TimerFor::kConnect, route_->config.timeouts.connect);
    return;
  }
}

bool Session::step_proxy() {
  UpstreamConn& u = *up_;
  bool progress = false;
  if (!u.connected) {
    if (!u.writable && !u.hangup) return false;
    int err = core::socket_error(u.fd.get());
    if (err != 0 || (u.hangup && !u.writable)) {
      upstream_failed(Failure::kConnect, err ? err : ECONNREFUSED, "connect");
      return true;
    }
    u.connected = true;
    arm(TimerFor::kFirstByte, route_->config.timeouts.first_byte);
    progress = true;
  }
  if (!req_done_ || up_head_sent_ < up_head_.size()) {
    UpstreamConn* before = up_.get();
    progress |= send_request();
    if (phase_ != Phase::kProxy || up_.get() != before) return true;  // answered, or retrying elsewhere
  }
  progress |= receive_response();
  return progress;
}

bool Session::send_request() {
  UpstreamConn& u = *up_;
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
    ssize_t n = ::writev(u.fd.get(), iov, n_iov);
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

bool Session::receive_response() {
  UpstreamConn& u = *up_;
  bool progress = false;
  for (;;) {
    if (!resp_head_done_) {
      if (!out_.empty() && client_writable_) {  // an interim 100 Continue the client is waiting for
        size_t unused = 0;
        if (!write_client(nullptr, 0, unused)) return true;
      }
      if (!u.in.empty()) {
        http::ResponseHead& resp = w_.scratch_response;
        ParseStatus st = resp_parser_.parse(u.in.view(), method_, resp);
        if (st == ParseStatus::kInvalid || st == ParseStatus::kTooLarge) {
          upstream_failed(Failure::kBadResponse, 0, resp_parser_.error().reason);
          return true;
        }
        if (st == ParseStatus::kComplete) {
          size_t head_bytes = resp.head_bytes;
          if (resp.status < 200) {
            if (resp.status == 101) {
              upstream_failed(Failure::kBadResponse, 0, "protocol switch that was not asked for");
              return true;
            }
            // Interim responses (100 Continue) go to the client as they are.
            out_.append("HTTP/1.1 ");
            out_.append(std::to_string(resp.status));
            out_.append(" ");
            out_.append(resp.reason);
            out_.append("\r\n\r\n");
            u.in.consume(head_bytes);
            resp_parser_.reset();
            progress = true;
            continue;
          }
          if (!route_->config.default_cache_control.empty())
            add_default_cache_control(resp, route_->config.default_cache_control);
          // A caching hop says whether it hit: the X-Cache of a cache behind it (an edge's origin) is not ours.
          if (cache_mode_ != CacheMode::kOff) drop_header(resp, "x-cache");
          if (cache_mode_ != CacheMode::kOff && cache_on_response(resp)) return true;  // answered from the cache
          resp_head_done_ = resp_started_ = true;
          if (up_head_sent_ == up_head_.size()) up_head_.clear();  // no retry from here on: free its buffer
          status_ = resp.status;
          resp_body_ = resp.body;
          resp_body_left_ = resp.body == BodyKind::kContentLength ? resp.content_length : 0;
          resp_chunk_ready_ = 0;
          resp_chunks_.reset();
          if (!resp.keep_alive || resp.body == BodyKind::kUntilClose) close_after_ = true;
          if (!keep_alive_ || w_.draining()) close_after_ = true;
          // The response head as the client sees it.
          HeadWriter hw{out_};
          hw.put(version_minor_ == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
          char code[4] = {char('0' + resp.status / 100 % 10), char('0' + resp.status / 10 % 10),
                          char('0' + resp.status % 10), 0};
          hw.put(std::string_view(code, 3));
          hw.put(" ");
          hw.put(resp.reason);
          hw.put("\r\n");
          for (size_t i = 0; i < resp.header_count; ++i) {
            const http::Header& h = resp.headers[i];
            if (hop_by_hop_kept_framing(h.name)) continue;
            if (dropped_by_connection(resp, h.name)) continue;
            hw.header(h.name, h.value);
          }
          hw.header("Via", kVia);
          if (cache_mode_ != CacheMode::kOff) hw.put("X-Cache: MISS\r\n");
          if (close_after_) {
            hw.put("Connection: close\r\n");
          } else if (version_minor_ == 0) {
            hw.put("Connection: keep-alive\r\n");
          }
          hw.put("\r\n");
          u.in.consume(head_bytes);
          resp_parser_.reset();
          if (hw.overflow) {
            out_.clear();
            resp_started_ = false;
            upstream_failed(Failure::kBadResponse, 0, "response head too large");
            return true;
          }
          if (resp.status >= 500) {
            target_->outlier.record_failure(health::OutlierDetector::Failure::k5xx,
                                            route_->group->config.outlier, health::steady_ms(w_.loop().now()));
          } else {
            target_->outlier.record_success();
          }
          if (resp_body_ == BodyKind::kNone || (resp_body_ == BodyKind::kContentLength && resp_body_left_ == 0))
            resp_done_ = true;
          arm(TimerFor::kBodyIdle, route_->config.timeouts.idle);
          progress = true;
          continue;
        }
        if (u.in.full()) {
          upstream_failed(Failure::kBadResponse, 0, "response head too large");
          return true;
        }
      }
    } else {
      size_t body_ready = 0;
      switch (resp_body_) {
        case BodyKind::kNone: break;
        case BodyKind::kContentLength:
          body_ready = static_cast<size_t>(std::min<uint64_t>(u.in.size(), resp_body_left_));
          break;
        case BodyKind::kUntilClose: body_ready = u.in.size(); break;
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
            if (st == ParseStatus::kInvalid || st == ParseStatus::kTooLarge) {
              abort();  // the head is already on its way: the client can only see a cut connection
              return true;
            }
            if (used == 0) break;
          }
          body_ready = resp_chunk_ready_;
          break;
      }
      if (!out_.empty() || body_ready) {
        if (!client_writable_) return progress;
        size_t body_written = 0;
        if (!write_client(u.in.data(), body_ready, body_written)) return true;  // client gone
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
        if (!out_.empty() || body_written < body_ready) return progress;  // wait for the client to take more
        continue;
      }
      if (resp_done_ && (resp_body_ != BodyKind::kChunked || resp_chunk_ready_ == 0)) {
        if (req_done_ || !keep_alive_) {
          finish_request();
          return true;
        }
        // The target answered before the request body was all sent: finish sending it, then close.
        close_after_ = true;
        return progress;
      }
    }
    // More bytes from the target are needed.
    if (!u.readable || u.in.full()) return progress;
    char* dst = u.in.write_ptr();
    size_t space = u.in.write_space();
    ssize_t n = ::recv(u.fd.get(), dst, space, 0);
    if (n > 0) {
      u.in.commit(static_cast<size_t>(n));
      if (static_cast<size_t>(n) < space) u.readable = false;
      progress = true;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      u.readable = false;
      if (u.in.empty()) u.in.release();
      return progress;
    }
    int err = n < 0 ? errno : 0;
    u.readable = false;
    u.hangup = true;
    if (!resp_head_done_) {
      upstream_failed(Failure::kReset, err, err ? "read from target" : "target closed the connection");
      return true;
    }
    if (resp_body_ == BodyKind::kUntilClose) {
      resp_done_ = true;
      close_after_ = true;
      progress = true;
      continue;
    }
    abort();  // cut off mid-body
    return true;
  }
}

bool Session::write_client(const char* extra, size_t extra_len, size_t& extra_written) {
  extra_written = 0;
  iovec iov[2];
  int n_iov = 0;
  size_t head_len = out_.size();
  if (head_len) iov[n_iov++] = {out_.data(), head_len};
  if (extra_len) iov[n_iov++] = {const_cast<char*>(extra), extra_len};
  if (n_iov == 0) return true;
  ssize_t n = client_->writev(iov, n_iov);
  if (n == http::kWouldBlock) {
    client_writable_ = false;
    return true;
  }
  if (n < 0) {
    abort();
    return false;
  }
  size_t sent = static_cast<size_t>(n);
  if (sent < head_len + extra_len) client_writable_ = false;
  size_t from_head = std::min(sent, head_len);
  if (from_head) out_.consume(from_head);
  extra_written = sent - from_head;
  bytes_to_client_ += sent;
  return true;
}

void Session::upstream_failed(Failure kind, int err, const char* what) {
  const TargetGroup& group = *route_->group;
  int64_t now_ms = health::steady_ms(w_.loop().now());
  bool was_reused = up_ && up_->reused;
  if (kind == Failure::kConnect || kind == Failure::kTimeout) {
    target_->metrics.connect_failures->inc();
    if (kind == Failure::kConnect)
      target_->outlier.record_failure(health::OutlierDetector::Failure::kConnect, group.config.outlier, now_ms);
  } else if (!was_reused) {
    target_->outlier.record_failure(health::OutlierDetector::Failure::k5xx, group.config.outlier, now_ms);
  }
  target_->metrics.responses[0]->inc();
  if (log_enabled(core::LogLevel::kDebug))
    core::log(core::LogLevel::kDebug, "gateway", "target failed",
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
    w_.give_back(std::move(up_), route_->group->config.max_idle_connections);
  } else {
    w_.discard(std::move(up_));
  }
}

void Session::finish_request() {
  auto elapsed = std::chrono::duration<double>(w_.loop().update_now() - started_).count();
  int cls = status_class(status_);
  route_->metrics.responses[cls]->inc();
  route_->metrics.latency->observe(elapsed);
  route_->metrics.bytes_out->inc(bytes_to_client_);
  target_->metrics.responses[cls]->inc();
  target_->metrics.latency->observe(elapsed);
  bool reusable = !close_after_ && resp_body_ != BodyKind::kUntilClose && req_done_ && up_->in.empty() && !up_->hangup;
  release_upstream(reusable);
  if (capture_) cache_store();
  log_access(status_);
  end_request();
  if (close_after_ || !req_done_ || !keep_alive_ || client_eof_) {
    phase_ = Phase::kClosing;
    return;
  }
  enter_idle();
}

void Session::log_access(int status) {
  if (!core::AccessLog::enabled() || log_line_.empty()) return;
  std::string tail;
  core::JsonLine j(tail);
  j.field("status", int64_t{status})
      .field("bytes_out", static_cast<int64_t>(bytes_to_client_))
      .field("duration_ms", std::chrono::duration<double, std::milli>(w_.loop().update_now() - started_).count())
      .field("route", route_ ? std::string_view(route_->config.name) : std::string_view())
      .field("target", target_ ? std::string_view(target_->address_text) : std::string_view())
      .field("attempts", int64_t{attempts_ + 1});
  j.finish();
  log_line_.push_back(',');
  log_line_.append(tail, 1);  // without its opening brace: the object begun in begin_request goes on
  core::AccessLog::append(log_line_);
  log_line_.clear();
}

// ---- answers of the gateway's own ----

void Session::respond_error(int status, std::string_view detail) {
  status_ = status;
  if (route_) {
    route_->metrics.responses[status_class(status)]->inc();
  }
  std::string body = std::to_string(status) + " " + failure_text(status) + ": " + std::string(detail) + "\n";
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + failure_text(status) +
                     "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\nConnection: close\r\nX-Request-Id: " +
                     (request_id_len_ ? std::string(request_id()) : std::string("-")) +
                     "\r\nVia: 1.1 cumulo\r\n\r\n";
  out_.clear();
  out_.append(head);
  out_.append(body);
  log_access(status);
  end_request();
  phase_ = Phase::kClosing;
}

void Session::end_request() {
  if (up_) release_upstream(false);
  cache_end();
  if (in_flight_counted_) {
    --w_.active_requests;
    in_flight_counted_ = false;
  }
  target_.reset();
  route_ = nullptr;
  snapshot_.reset();
  up_head_.clear();
}

bool Session::step_closing() {
  if (phase_ == Phase::kClosing) {
    if (!out_.empty()) {
      if (!client_writable_) return false;
      size_t unused = 0;
      if (!write_client(nullptr, 0, unused)) return true;
      if (!out_.empty()) return false;
    }
    // Half-close and read what the client still sends, so that unread request bytes do not turn our close into
    // a reset that destroys the response before the client reads it (lingering close).
    client_->shutdown_write();
    phase_ = Phase::kLinger;
    in_.clear();
    arm(TimerFor::kLinger, std::chrono::milliseconds(1000));
    return true;
  }
  char sink[4096];
  for (int i = 0; i < 16; ++i) {
    if (!client_readable_) return false;
    ssize_t n = client_->read(sink, sizeof sink);
    if (n == http::kWouldBlock) {
      client_readable_ = false;
      return false;
    }
    if (n <= 0) {
      close();
      return true;
    }
  }
  close();
  return true;
}

void Session::abort() {
  if (route_ && status_ == 0) route_->metrics.responses[0]->inc();
  end_request();
  close();
}

void Session::on_timer() {
  switch (timer_for_) {
    case TimerFor::kIdle:
      if (phase_ == Phase::kHead && in_.empty()) close();
      break;
    case TimerFor::kHeader:
      if (phase_ == Phase::kHead) respond_error(408, "the request head did not arrive in time");
      break;
    case TimerFor::kConnect:
      if (phase_ == Phase::kProxy && up_ && !up_->connected)
        upstream_failed(Failure::kTimeout, ETIMEDOUT, "connect timed out");
      break;
    case TimerFor::kFirstByte:
      if (phase_ == Phase::kProxy && !resp_head_done_) {
        // The request may have had effects: answer, do not retry (the timeout is the route's promise to clients).
        if (up_) release_upstream(false);
        target_->metrics.responses[0]->inc();
        respond_error(504, "the target did not answer within timeouts.first_byte");
      }
      break;
    case TimerFor::kBodyIdle:
      if (phase_ == Phase::kProxy || phase_ == Phase::kServeCached || phase_ == Phase::kSlices) abort();
      break;
    case TimerFor::kLinger:
      close();
      break;
    case TimerFor::kCacheWait:
      if (phase_ == Phase::kWaitCache) {
        coalesced_ = true;  // waited long enough: fetch alone
        phase_ = Phase::kHead;
      } else if (phase_ == Phase::kSlices && slice_waiting_) {
        slice_woken(slice_token_);  // the same: the slice is fetched by this request too
      }
      break;
    case TimerFor::kNone: break;
  }
  pump();
}

void Session::close() {
  if (phase_ == Phase::kClosed) return;
  phase_ = Phase::kClosed;
  self_.reset();
  timer_.cancel();
  end_request();
  in_.clear();
  out_.clear();
  w_.loop().remove(client_->fd());
  w_.session_closed(this);
}

}  // namespace cumulo::gateway
