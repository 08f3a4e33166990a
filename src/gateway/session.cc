#include "gateway/internal/session.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include "cache/policy.h"
#include "core/log.h"
#include "gateway/internal/identity.h"
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

bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (c <= ' ' || c > '~') return false;
  return true;
}

void write_request_line(HeadWriter& hw, const http::RequestHead& req, const RouteConfig& route) {
  const std::string& bucket = route.bucket;
  hw.put(req.method_name);
  hw.put(" ");
  if (!bucket.empty()) {
    // Path-style S3: "/static/css/site.css" under path_prefix "/static/" is key "css/site.css" of the bucket.
    hw.put("/");
    hw.put(bucket);
    hw.put("/");
    hw.put(std::string_view(req.path).substr(route.path_prefix.size()));
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
}

struct Forwarding {
  const core::SocketAddress& peer;
  bool secure;
  std::string_view port;
  std::string_view request_id;
  std::string_view forwarded_for;  // the client's X-Forwarded-For, extended with its address
};

// X-Forwarded-For/-Proto/-Port, X-Request-Id and Via; the last line is left without its CRLF.
void write_forwarding_fields(HeadWriter& hw, const Forwarding& f) {
  char client_ip[INET6_ADDRSTRLEN] = "";
  if (f.peer.storage.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&f.peer.storage)->sin_addr, client_ip,
              sizeof client_ip);
  else if (f.peer.storage.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&f.peer.storage)->sin6_addr, client_ip,
              sizeof client_ip);
  hw.put("X-Forwarded-For: ");
  if (!f.forwarded_for.empty()) {
    hw.put(f.forwarded_for);
    hw.put(", ");
  }
  hw.put(client_ip);
  hw.put("\r\nX-Forwarded-Proto: ");
  hw.put(f.secure ? "https" : "http");
  hw.put("\r\nX-Forwarded-Port: ");
  hw.put(f.port);
  hw.put("\r\nX-Request-Id: ");
  hw.put(f.request_id);
  hw.put("\r\nVia: ");
  hw.put(kVia);
}

}  // namespace

Session::Session(Worker& w, Upstreams& upstreams, SessionClock& clock,
                 std::unique_ptr<http::Transport> client, const ListenerRuntime& listener,
                 core::SocketAddress peer)
    : w_(w),
      upstreams_(upstreams),
      clock_(clock),
      listener_(listener),
      peer_(peer),
      timer_(clock.make_alarm([this] { on_timer(); })),
      self_(this) {
  client_.transport = std::move(client);
  http::ParseLimits limits;
  limits.max_head_bytes = w.snapshot()->config->limits.max_header_bytes;
  client_.parser = http::RequestParser(limits);
  // Room for the headers the gateway adds to a response of the largest size.
  limits.max_head_bytes = core::Buffer::kCapacity - 512 - kMaxIdentityFieldBytes;
  exchange_.parser = http::ResponseParser(limits);
}

Session::~Session() = default;

void Session::start() {
  w_.loop().add(client_.transport->fd(), this);
  enter_idle();
  pump();
}

void Session::on_io(uint32_t events) {
  if (phase_ == Phase::kClosed) return;
  // TLS may need either direction to make progress in the other, so any event retries both.
  if ((events & core::kReadable) || client_.transport->secure()) client_.readable = true;
  if ((events & core::kWritable) || client_.transport->secure()) client_.writable = true;
  pump();
}

void Session::on_upstream_io() {
  if (phase_ == Phase::kClosed) return;
  pump();
}

void Session::drain() {
  client_.keep_alive = false;
  if (phase_ == Phase::kHead && client_.in.empty() && client_.out.empty()) {
    client_.transport->shutdown_write();  // TLS: close_notify first, so the client sees a clean end
    close();
  }
}

void Session::cut_if_using(const Target* t) {
  if (phase_ != Phase::kProxy || exchange_.target.get() != t) return;
  if (!client_.response_started && client_.out.empty()) {
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
      case Phase::kHead:
        progress = step_head();
        break;
      case Phase::kProxy:
        progress = step_proxy();
        break;
      case Phase::kServeCached:
        progress = step_serve_cached();
        break;
      case Phase::kSlices:
        progress = step_slices();
        break;
      case Phase::kWaitCache:
        return;  // woken by the request that fills the cache
      case Phase::kClosing:
      case Phase::kLinger:
        progress = step_closing();
        break;
      case Phase::kClosed:
        return;
    }
    if (!progress) return;
  }
}

void Session::arm(TimerFor what, core::Millis after) {
  timer_for_ = what;
  timer_->arm(after);
}

void Session::enter_idle() {
  phase_ = Phase::kHead;
  if (client_.in.empty()) {
    arm(TimerFor::kIdle, w_.snapshot()->config->limits.client_idle_timeout);
  } else {
    arm(TimerFor::kHeader, w_.snapshot()->config->limits.header_timeout);
  }
}

// ---- reading requests ----

bool Session::read_client() {
  if (!client_.readable || client_.eof) return false;
  if (client_.in.full()) return false;
  bool was_empty = client_.in.empty();
  char* dst = client_.in.write_ptr();
  size_t space = client_.in.write_space();
  ssize_t n = client_.transport->read(dst, space);
  if (n > 0) {
    client_.in.commit(static_cast<size_t>(n));
    if (static_cast<size_t>(n) < space) client_.readable = false;
    if (was_empty && phase_ == Phase::kHead)
      arm(TimerFor::kHeader, w_.snapshot()->config->limits.header_timeout);
    return true;
  }
  if (n == http::kWouldBlock) {
    client_.readable = false;
    if (client_.in.empty()) client_.in.release();
    return false;
  }
  // End of stream or error: nothing more will come from this client.
  client_.eof = true;
  client_.readable = false;
  if (phase_ == Phase::kHead) {
    close();
  } else if (phase_ == Phase::kProxy && !exchange_.request_done()) {
    abort();  // the request body can never be completed
  }
  return true;
}

bool Session::step_head() {
  if (!client_.out.empty()) {
    // An answer of the gateway's own that keeps the connection (monitor_uri) goes out before the next request
    // is read: pipelined requests wait, and an end of stream is seen only once it is sent.
    if (!client_.writable) return false;
    size_t before = client_.out.size();
    size_t unused = 0;
    if (!write_client(nullptr, 0, unused)) return true;
    if (!client_.out.empty()) return client_.out.size() != before;
    if (!client_.keep_alive && client_.in.empty()) {  // a drain began while it was on its way
      drain();
      return true;
    }
  }
  if (!client_.in.empty()) {
    http::RequestHead& req = w_.scratch_request;
    ParseStatus st = client_.parser.parse(client_.in.view(), req);
    if (st == ParseStatus::kComplete) {
      begin_request(req);
      return true;
    }
    if (st == ParseStatus::kInvalid || st == ParseStatus::kTooLarge) {
      const auto& e = client_.parser.error();
      respond_error(e.http_status, e.reason);
      return true;
    }
    if (client_.in.full()) {
      respond_error(431, "request head too large");
      return true;
    }
  }
  return read_client();
}

void Session::begin_request(const http::RequestHead& req) {
  if (answered_as_monitor(req)) return;
  reset_for_request(req);
  take_request_id(req);
  if (core::AccessLog::enabled()) open_access_log(req);
  if (answered_before_routing(req)) return;
  snapshot_ = w_.snapshot();
  cache_.mode = CacheMode::kOff;
  if (route_->config.cache.enabled && snapshot_->cache &&
      (req.method == http::Method::kGet || req.method == http::Method::kHead)) {
    if (cache_lookup(req)) return;  // answered from the cache, or waiting for the request that fills it
  }
  bool fits = write_upstream_head(req);
  client_.in.consume(req.head_bytes);
  client_.parser.reset();
  if (!fits) {
    exchange_.head.clear();
    respond_error(431, "request head too large once forwarding headers are added");
    return;
  }
  start_exchange();
}

void Session::reset_for_request(const http::RequestHead& req) {
  started_ = clock_.now();
  request_id_len_ = 0;
  method_ = req.method;
  route_ = nullptr;
  status_ = 0;
  client_.begin_response(static_cast<uint8_t>(req.version_minor), req.keep_alive && !w_.draining());
  exchange_.begin(req);
}

void Session::ClientSide::begin_response(uint8_t request_version_minor, bool keep) {
  version_minor = request_version_minor;
  keep_alive = keep;
  close_after = false;
  response_started = false;
  bytes_sent = 0;
}

void Session::ClientSide::append_status_line(int status, std::string_view reason) {
  out.append(version_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
  out.append(std::to_string(status));
  out.append(" ");
  out.append(reason);
  out.append("\r\n");
}

void Session::ClientSide::append_connection_field() {
  if (close_after) {
    out.append("Connection: close\r\n");
  } else if (version_minor == 0) {
    out.append("Connection: keep-alive\r\n");
  }
}

void Session::take_request_id(const http::RequestHead& req) {
  std::string_view rid = req.header("x-request-id");
  if (valid_request_id(rid) && rid.size() <= sizeof request_id_) {
    std::memcpy(request_id_, rid.data(), rid.size());
    request_id_len_ = static_cast<uint8_t>(rid.size());
  } else {
    request_id_len_ = static_cast<uint8_t>(w_.next_request_id(request_id_, sizeof request_id_));
  }
}

void Session::open_access_log(const http::RequestHead& req) {
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

// HAProxy's monitor-uri: whether this gateway takes traffic, for whatever is in front of it (a load balancer,
// an elastic-IP keeper). Answered before anything else, on every listener (a redirecting one too); never
// routed, cached, logged or counted as a route's request, so probes do not blur what the targets served.
bool Session::answered_as_monitor(const http::RequestHead& req) {
  const std::string& uri = w_.snapshot()->config->monitor_uri;
  if (uri.empty() || req.path != uri ||
      (req.method != http::Method::kGet && req.method != http::Method::kHead))
    return false;
  const bool draining = w_.draining();
  started_ = clock_.now();
  request_id_len_ = 0;
  method_ = req.method;
  route_ = nullptr;
  status_ = draining ? 503 : 200;
  client_.begin_response(static_cast<uint8_t>(req.version_minor), req.keep_alive && !draining);
  // A body would have to be read past before the next request; a probe sends none, so it is not worth it.
  const bool has_body =
      req.body != BodyKind::kNone && !(req.body == BodyKind::kContentLength && req.content_length == 0);
  client_.close_after = !client_.keep_alive || has_body;
  client_.in.consume(req.head_bytes);
  client_.parser.reset();
  const std::string_view body = draining ? "draining\n" : "ok\n";
  client_.append_status_line(status_, http::reason_phrase(status_));
  client_.out.append(
      "Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: ");
  client_.out.append(std::to_string(body.size()));
  client_.out.append("\r\n");
  client_.out.append(w_.identity_field());
  client_.append_connection_field();
  client_.out.append("\r\n");
  if (req.method != http::Method::kHead) client_.out.append(body);
  w_.count_monitor_answer(draining);
  if (client_.close_after) {
    phase_ = Phase::kClosing;
  } else {
    enter_idle();
  }
  return true;
}

// The answers that need no target: a body over the limit, a redirect to HTTPS, no route, a method a bucket
// route does not take. Otherwise route_ is set.
bool Session::answered_before_routing(const http::RequestHead& req) {
  const Snapshot& snap = *w_.snapshot();
  const Limits& limits = snap.config->limits;
  auto consume_head = [&] {
    client_.in.consume(req.head_bytes);
    client_.parser.reset();
  };
  if (limits.max_body_bytes && req.body == BodyKind::kContentLength &&
      req.content_length > limits.max_body_bytes) {
    consume_head();
    respond_error(413, "request body larger than limits.max_body_bytes");
    return true;
  }
  if (!listener_.config.redirect_to_https.empty()) {
    std::string location = listener_.config.redirect_to_https;
    if (!location.empty() && location.back() == '/') location.pop_back();
    location.append(req.path.empty() ? std::string_view("/") : req.target);
    consume_head();
    client_.out.append("HTTP/1.1 308 Permanent Redirect\r\nLocation: ");
    client_.out.append(location);
    client_.out.append("\r\nContent-Length: 0\r\nConnection: close\r\n");
    client_.out.append(w_.identity_field());
    client_.out.append("\r\n");
    status_ = 308;
    log_access(308);
    phase_ = Phase::kClosing;
    return true;
  }
  route_ = snap.match(req.host, req.path);
  if (!route_) {
    consume_head();
    respond_error(404, "no route matches this host and path");
    return true;
  }
  if (!route_->config.bucket.empty() && req.method != http::Method::kGet &&
      req.method != http::Method::kHead) {
    consume_head();
    respond_error(405, "a bucket route serves GET and HEAD only");
    return true;
  }
  return false;
}

// The request head as the target sees it (RFC 9110 section 7.6: hop-by-hop fields removed, Via added), into
// exchange_.head; false when it does not fit.
bool Session::write_upstream_head(const http::RequestHead& req) {
  HeadWriter hw{exchange_.head};
  write_request_line(hw, req, route_->config);
  std::string_view forwarded_for;
  bool host_seen = false;
  const bool bucket = !route_->config.bucket.empty();
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
    if (bucket && (http::iequals(h.name, "authorization") || http::iequals(h.name, "cookie"))) continue;
    if (http::iequals(h.name, "host")) host_seen = true;
    if (req.header_count > 0 && dropped_by_connection(req, h.name)) continue;
    if (cache_.mode != CacheMode::kOff && http::iequals(h.name, "accept-encoding")) {
      // The cache keys variants by the encodings it tells apart (br, gzip, none): ask the origin for just
      // that, so no other coding is stored under a key whose clients did not ask for it.
      std::string_view coding = cache::normalized_accept_encoding(h.value);
      if (!coding.empty()) hw.header(h.name, coding);
      continue;
    }
    hw.header(h.name, h.value);
  }
  if (!host_seen && !req.host.empty()) hw.header("Host", req.host);
  write_forwarding_fields(
      hw, {peer_, client_.transport->secure(), listener_.port_text, request_id(), forwarded_for});
  if (req.version_minor == 0) hw.put("\r\nConnection: keep-alive");
  if (cache_.mode == CacheMode::kRevalidate && req.header("if-none-match").empty() &&
      req.header("if-modified-since").empty()) {
    // RFC 9111 section 4.3.1: validate the stored response instead of fetching it again.
    if (!cache_.stale->etag.empty()) {
      hw.put("\r\nIf-None-Match: ");
      hw.put(cache_.stale->etag);
    } else if (!cache_.stale->last_modified.empty()) {
      hw.put("\r\nIf-Modified-Since: ");
      hw.put(cache_.stale->last_modified);
    }
  }
  hw.put("\r\n\r\n");
  return !hw.overflow;
}

void Session::start_exchange() {
  if (exchange_.request_body == BodyKind::kNone ||
      (exchange_.request_body == BodyKind::kContentLength && exchange_.request_left == 0))
    exchange_.request = RequestProgress::kSent;
  phase_ = Phase::kProxy;
  ++w_.active_requests;
  in_flight_counted_ = true;
  retry_deposit(route_->group->config.retries, route_->group->balancer[w_.index()]);
  connect_upstream();
}

bool Session::write_response_head(const http::ResponseHead& resp) {
  HeadWriter hw{client_.out};
  hw.put(client_.version_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
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
    if (http::iequals(h.name, kIdentityFieldName)) continue;  // a gateway behind this one: not who answered
    hw.header(h.name, h.value);
  }
  hw.header("Via", kVia);
  hw.put(w_.identity_field());
  if (cache_.mode != CacheMode::kOff) hw.put("X-Cache: MISS\r\n");
  if (client_.close_after) {
    hw.put("Connection: close\r\n");
  } else if (client_.version_minor == 0) {
    hw.put("Connection: keep-alive\r\n");
  }
  hw.put("\r\n");
  return !hw.overflow;
}

bool Session::write_client(const char* extra, size_t extra_len, size_t& extra_written) {
  extra_written = 0;
  iovec iov[2];
  int n_iov = 0;
  size_t head_len = client_.out.size();
  if (head_len) iov[n_iov++] = {client_.out.data(), head_len};
  if (extra_len) iov[n_iov++] = {const_cast<char*>(extra), extra_len};
  if (n_iov == 0) return true;
  ssize_t n = client_.transport->writev(iov, n_iov);
  if (n == http::kWouldBlock) {
    client_.writable = false;
    return true;
  }
  if (n < 0) {
    abort();
    return false;
  }
  size_t sent = static_cast<size_t>(n);
  if (sent < head_len + extra_len) client_.writable = false;
  size_t from_head = std::min(sent, head_len);
  if (from_head) client_.out.consume(from_head);
  extra_written = sent - from_head;
  client_.bytes_sent += sent;
  return true;
}

void Session::finish_request() {
  auto elapsed = std::chrono::duration<double>(clock_.update_now() - started_).count();
  int cls = status_class(status_);
  route_->metrics.responses[cls]->inc();
  route_->metrics.latency->observe(elapsed);
  route_->metrics.bytes_out->inc(client_.bytes_sent);
  exchange_.target->metrics.responses[cls]->inc();
  exchange_.target->metrics.latency->observe(elapsed);
  bool reusable = !client_.close_after && exchange_.response_body != BodyKind::kUntilClose &&
                  exchange_.request_done() && exchange_.conn->in.empty() && !exchange_.conn->hangup;
  release_upstream(reusable);
  if (cache_.capture) cache_store();
  log_access(status_);
  end_request();
  if (client_.close_after || !exchange_.request_done() || !client_.keep_alive || client_.eof) {
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
      .field("bytes_out", static_cast<int64_t>(client_.bytes_sent))
      .field("duration_ms", std::chrono::duration<double, std::milli>(clock_.update_now() - started_).count())
      .field("route", route_ ? std::string_view(route_->config.name) : std::string_view())
      .field("target",
             exchange_.target ? std::string_view(exchange_.target->address_text) : std::string_view())
      .field("attempts", int64_t{exchange_.attempts + 1});
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
  std::string body = std::to_string(status) + " " + std::string(http::reason_phrase(status)) + ": " +
                     std::string(detail) + "\n";
  std::string head =
      "HTTP/1.1 " + std::to_string(status) + " " + std::string(http::reason_phrase(status)) +
      "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\nX-Request-Id: " +
      (request_id_len_ ? std::string(request_id()) : std::string("-")) + "\r\nVia: 1.1 cumulo\r\n" +
      std::string(w_.identity_field()) + "\r\n";
  client_.out.clear();
  client_.out.append(head);
  client_.out.append(body);
  log_access(status);
  end_request();
  phase_ = Phase::kClosing;
}

void Session::end_request() {
  if (exchange_.conn) release_upstream(false);
  cache_end();
  if (in_flight_counted_) {
    --w_.active_requests;
    in_flight_counted_ = false;
  }
  exchange_.target.reset();
  route_ = nullptr;
  snapshot_.reset();
  exchange_.head.clear();
}

bool Session::step_closing() {
  if (phase_ == Phase::kClosing) {
    if (!client_.out.empty()) {
      if (!client_.writable) return false;
      size_t unused = 0;
      if (!write_client(nullptr, 0, unused)) return true;
      if (!client_.out.empty()) return false;
    }
    // Half-close and read what the client still sends, so that unread request bytes do not turn our close
    // into a reset that destroys the response before the client reads it (lingering close).
    client_.transport->shutdown_write();
    phase_ = Phase::kLinger;
    client_.in.clear();
    arm(TimerFor::kLinger, std::chrono::milliseconds(1000));
    return true;
  }
  char sink[4096];
  for (int i = 0; i < 16; ++i) {
    if (!client_.readable) return false;
    ssize_t n = client_.transport->read(sink, sizeof sink);
    if (n == http::kWouldBlock) {
      client_.readable = false;
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
      if (phase_ == Phase::kHead && client_.in.empty()) close();
      break;
    case TimerFor::kHeader:
      if (phase_ == Phase::kHead) respond_error(408, "the request head did not arrive in time");
      break;
    case TimerFor::kConnect:
      if (phase_ == Phase::kProxy && exchange_.conn && !exchange_.conn->connected)
        upstream_failed(TargetFailure::kConnectTimeout, ETIMEDOUT, "connect timed out");
      break;
    case TimerFor::kFirstByte:
      if (phase_ == Phase::kProxy && !exchange_.head_received()) {
        // The request may have had effects: answer, do not retry (the timeout is the route's promise to
        // clients).
        if (exchange_.conn) release_upstream(false);
        note_target_failure(*exchange_.target, route_->group->config, TargetFailure::kNoAnswerInTime,
                            /*reused_connection=*/false, health::steady_ms(clock_.now()));
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
        cache_.coalesced = true;  // waited long enough: fetch alone
        phase_ = Phase::kHead;
      } else if (phase_ == Phase::kSlices && slices_.waiting) {
        slice_woken(slices_.token);  // the same: the slice is fetched by this request too
      }
      break;
    case TimerFor::kNone:
      break;
  }
  pump();
}

void Session::close() {
  if (phase_ == Phase::kClosed) return;
  phase_ = Phase::kClosed;
  self_.reset();
  timer_->cancel();
  end_request();
  client_.in.clear();
  client_.out.clear();
  w_.loop().remove(client_.transport->fd());
  w_.session_closed(this);
}

}  // namespace cumulo::gateway
