// The HTTP/1.1 server: one Connection state machine per socket, driven by edge-triggered readiness. A
// connection handles one request at a time (pipelined requests wait in the receive buffer), so responses go
// out in order without queueing them.
#include "http/server.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "core/buffer.h"
#include "core/log.h"
#include "core/swap_remove.h"
#include "http/transport.h"
#include "http/wire/date.h"
#include "http/wire/h1.h"

namespace cumulo::http {

std::string_view header_value(const HeaderList& headers, std::string_view name) {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return {};
}

std::string_view Request::header(std::string_view name) const {
  return header_value(headers, name);
}

std::string_view Request::query_param(std::string_view name) const {
  std::string_view found;
  core::for_each_query_pair(query, [&](std::string_view n, std::string_view v, std::string_view) {
    if (n != name) return true;
    found = v;
    return false;
  });
  return found;
}

Response Response::text(int status, std::string body, std::string content_type) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", std::move(content_type));
  r.body = std::move(body);
  return r;
}

Response Response::json(int status, std::string body) {
  return text(status, std::move(body), "application/json");
}

namespace {

using core::Buffer;

constexpr const char* kComponent = "http.server";
// How long a closing connection keeps reading (and dropping) what the client still sends, so that the kernel
// does not answer unread bytes with a reset that could destroy the response in flight.
constexpr core::Millis kLingerTime{2000};
// A gathered body bigger than this is freed after its request instead of being kept for the next one.
constexpr size_t kKeepBodyCapacity = 64 * 1024;
// Room before a chunk's payload for its size line ("3ff6\r\n").
constexpr size_t kChunkPrefix = 8;
constexpr std::string_view kLastChunk = "0\r\n\r\n";

class Connection;

// Responders find their connection through this table: (slot, generation) instead of a pointer, so a
// responder that outlives its request, its connection or the server is a harmless no-op, and a Responder fits
// in std::function's inline storage (no allocation per request). Loop-thread only, like the responders.
struct SlotTable {
  struct Slot {
    Connection* conn = nullptr;
    uint32_t generation = 0;
  };
  std::vector<Slot> slots;
  std::vector<uint32_t> free_list;

  uint32_t acquire(Connection* c) {
    uint32_t i;
    if (!free_list.empty()) {
      i = free_list.back();
      free_list.pop_back();
    } else {
      i = static_cast<uint32_t>(slots.size());
      slots.emplace_back();
    }
    slots[i].conn = c;
    ++slots[i].generation;
    return i;
  }
  void release(uint32_t i) {
    slots[i].conn = nullptr;
    ++slots[i].generation;
    free_list.push_back(i);
  }
  uint32_t next_generation(uint32_t i) { return ++slots[i].generation; }
  uint32_t generation(uint32_t i) const { return slots[i].generation; }
  Connection* find(uint32_t i, uint32_t generation) const {
    if (i >= slots.size() || slots[i].generation != generation) return nullptr;
    return slots[i].conn;
  }
};
thread_local SlotTable t_slots;

// Writes a response head into a fixed buffer; anything that does not fit sets overflow().
class HeadWriter {
 public:
  HeadWriter(char* p, size_t cap) : begin_(p), p_(p), end_(p + cap) {}
  void put(std::string_view s) {
    if (s.size() > static_cast<size_t>(end_ - p_)) {
      overflow_ = true;
      return;
    }
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  void put_uint(uint64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    put(std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
  }
  size_t size() const { return static_cast<size_t>(p_ - begin_); }
  bool overflow() const { return overflow_; }

 private:
  char* begin_;
  char* p_;
  char* end_;
  bool overflow_ = false;
};

bool is_framing_header(std::string_view name) {
  return iequals(name, "content-length") || iequals(name, "transfer-encoding") || iequals(name, "connection");
}

// Everything a server owns; Server::Impl is this under the header's name, which is private to Server.
class ServerCore : public core::IoHandler {
 public:
  ServerCore(core::EventLoop& l, ServerOptions o, Handler h)
      : loop(l), opts(std::move(o)), handler(std::move(h)), accept_retry(l, [this] { accept_all(); }) {}
  ~ServerCore() override;

  // core::IoHandler (the listening socket)
  void on_io(uint32_t) override { accept_all(); }

  void start();
  void accept_all();
  void shutdown();
  void close_all();
  void stop_accepting();  // closes the listening socket and cancels a pending accept retry
  void forget(Connection* c);
  std::string_view date_header();

  core::EventLoop& loop;
  ServerOptions opts;
  Handler handler;
  core::Fd listener;
  core::SocketAddress bound;
  core::Timer accept_retry;  // after EMFILE and the like: the listener will not signal again by itself
  std::vector<std::unique_ptr<Connection>> conns;
  std::atomic<size_t> open_count{0};  // conns.size(), for other threads
  bool shutting_down = false;
  bool dead = false;
  // One parse at a time on this loop, and its result is copied into the Request at once, so connections share
  // the (large) head scratch instead of each carrying one.
  RequestHead head;
  time_t date_second = 0;
  char date_line[64] = {};
  size_t date_len = 0;
};

class Connection final : public core::IoHandler {
 public:
  Connection(ServerCore& srv, std::unique_ptr<Transport> transport, const core::SocketAddress& peer)
      : srv_(srv), tr_(std::move(transport)), timer_(srv.loop, [this] { on_timer(); }) {
    slot_ = t_slots.acquire(this);
    req_.peer = peer;
    // A new connection gets the head timeout from the start: a client that connects and says nothing must not
    // hold the socket for the whole idle timeout.
    timer_.arm(srv_.opts.header_timeout);
  }
  ~Connection() override {
    if (state_ != State::kClosed) t_slots.release(slot_);  // only when setting up the connection failed
  }

  // core::IoHandler
  void on_io(uint32_t events) override {
    if (events & core::kReadable) drained_ = false;
    // The peer's FIN may have come with the last bytes: the read after them must see the end of the stream.
    if (events & core::kHangup) peer_closed_ = true;
    if (state_ != State::kClosed) drive();
  }

  // A producer that answered kBodyNotYet has bytes now.
  void resume_body() {
    if (state_ != State::kWrite || !body_pending_) return;
    body_pending_ = false;
    drive();
  }

  void on_response(Response&& r) {
    if (state_ != State::kHandler) return;
    t_slots.next_generation(slot_);  // any later call of this request's responder is a no-op
    resp_ = std::move(r);
    prepare_response();
    drive();
  }

  void begin_shutdown() {
    closing_ = true;
    if (state_ == State::kHead && in_.empty()) {
      close_now();
    }
  }

  void close_now();

  size_t index = 0;  // in ServerCore::conns

 private:
  enum class State : uint8_t { kHead, kBody, kHandler, kWrite, kLinger, kClosed };
  enum class Framing : uint8_t { kLength, kChunked, kUntilClose };

  void drive();
  bool read_head();
  bool start_request();
  bool read_body();
  bool take_body(const char* p, size_t n);
  bool dispatch();
  void prepare_response();
  bool write_response();
  bool produce();
  bool produce_into(Buffer& block);
  bool pause_body();
  bool finish_response();
  void respond_error(int status, std::string_view text);
  void start_linger();
  bool linger();
  void on_timer();
  ssize_t fill();
  bool flush_out();

  ServerCore& srv_;
  std::unique_ptr<Transport> tr_;
  core::Timer timer_;
  RequestParser parser_;
  Buffer in_;
  Buffer out_;  // response heads (and a pending 100 Continue)
  // The latest bytes from a body producer, framed, in order: up to kStreamBlocks blocks go out in one writev,
  // so a large body costs a quarter of the system calls (and of the producer's calls) it would in single
  // blocks.
  static constexpr size_t kStreamBlocks = 4;
  Buffer stream_[kStreamBlocks];
  bool stream_empty() const {
    for (const Buffer& b : stream_)
      if (!b.empty()) return false;
    return true;
  }
  void release_stream() {
    for (Buffer& b : stream_) b.release();
  }
  Request req_;
  std::unique_ptr<BodySink> sink_;
  ChunkedDecoder chunked_;
  Response resp_;
  uint64_t body_left_ = 0;    // request body (Content-Length)
  uint64_t stream_left_ = 0;  // response body from a producer with a Content-Length
  size_t body_off_ = 0;       // of resp_.body already written
  uint32_t slot_ = 0;
  int version_minor_ = 1;
  State state_ = State::kHead;
  BodyKind body_kind_ = BodyKind::kNone;
  Framing framing_ = Framing::kLength;
  bool awaiting_first_byte_ = false;  // the timer runs the idle timeout, not the head timeout
  bool keep_alive_ = true;
  bool closing_ = false;
  bool head_only_ = false;  // a HEAD request: the response head describes a body that is not sent
  bool streaming_ = false;
  bool stream_done_ = false;
  bool body_pending_ = false;  // the producer answered kBodyNotYet and has not woken the connection since
  bool driving_ = false;
  bool drained_ = false;      // the socket had nothing more at the last read, and no readable edge came since
  bool peer_closed_ = false;  // a hang-up was reported: read until the end of the stream
};

void deliver_response(uint32_t slot, uint32_t generation, Response&& r) {
  if (Connection* c = t_slots.find(slot, generation)) c->on_response(std::move(r));
}

// One loop runs each state's step until a step has to wait for the socket or the handler. Re-entry (a handler
// answering synchronously from inside dispatch()) only changes the state; the outer loop carries on with it.
void Connection::drive() {
  if (driving_) return;
  driving_ = true;
  for (bool progress = true; progress;) {
    switch (state_) {
      case State::kHead:
        progress = read_head();
        break;
      case State::kBody:
        progress = read_body();
        break;
      case State::kWrite:
        progress = write_response();
        break;
      case State::kLinger:
        progress = linger();
        break;
      case State::kHandler:
      case State::kClosed:
        progress = false;
        break;
    }
  }
  driving_ = false;
}

// Reads what the socket has into in_. Returns the byte count, 0 at end of stream, kWouldBlock or kIoError.
ssize_t Connection::fill() {
  char* p = in_.write_ptr();
  size_t space = in_.write_space();
  ssize_t n = space && !drained_ ? tr_->read(p, space) : kWouldBlock;
  // An idle connection keeps no buffer (write_ptr took one from the pool).
  if (n <= 0 && in_.empty()) in_.release();
  if (n > 0) in_.commit(static_cast<size_t>(n));
  // A plain socket that gave less than asked is empty: the next read would only say EAGAIN, and new bytes
  // bring a new readable edge. (TLS hands out a record at a time, so a short read proves nothing there.)
  if (n > 0 && static_cast<size_t>(n) < space && !tr_->secure() && !peer_closed_) drained_ = true;
  return n;
}

bool Connection::read_head() {
  for (;;) {
    if (!in_.empty()) {
      ParseStatus st = parser_.parse(in_.view(), srv_.head);
      if (st == ParseStatus::kComplete) return start_request();
      if (st == ParseStatus::kInvalid || st == ParseStatus::kTooLarge) {
        version_minor_ = 1;
        head_only_ = false;
        respond_error(parser_.error().http_status, parser_.error().reason);
        return true;
      }
      if (in_.full()) {
        version_minor_ = 1;
        head_only_ = false;
        respond_error(431, "request head too large");
        return true;
      }
    }
    ssize_t n = fill();
    if (n > 0) {
      if (awaiting_first_byte_) {
        awaiting_first_byte_ = false;
        timer_.arm(srv_.opts.header_timeout);
      }
      continue;
    }
    if (n == kWouldBlock) return false;
    // End of stream or an error between requests is how keep-alive connections normally end; a half-sent head
    // has nobody left to answer.
    close_now();
    return false;
  }
}

bool Connection::start_request() {
  const RequestHead& h = srv_.head;
  req_.method.assign(h.method_name);
  req_.target.assign(h.target);
  req_.path.assign(h.path);
  req_.query.assign(h.query);
  auto& hs = req_.headers;
  if (hs.size() > h.header_count) hs.resize(h.header_count);
  for (size_t i = 0; i < h.header_count; ++i) {
    const Header& src = h.headers[i];
    if (i < hs.size()) {
      hs[i].first.assign(src.name);
      hs[i].second.assign(src.value);
    } else {
      hs.emplace_back(std::string(src.name), std::string(src.value));
    }
  }
  req_.body.clear();
  req_.body_sink = nullptr;
  version_minor_ = h.version_minor;
  keep_alive_ = h.keep_alive;
  head_only_ = h.method == Method::kHead;
  // A request without Content-Length or Transfer-Encoding has no body (RFC 9112 section 6.3, point 7).
  body_kind_ = h.body == BodyKind::kUntilClose ? BodyKind::kNone : h.body;
  body_left_ = h.content_length;
  bool expect_continue = h.expect_continue;
  in_.consume(h.head_bytes);
  parser_.reset();

  if (srv_.opts.body_sink_for) {
    sink_ = srv_.opts.body_sink_for(req_);
    req_.body_sink = sink_.get();
  }
  bool has_body =
      body_kind_ == BodyKind::kChunked || (body_kind_ == BodyKind::kContentLength && body_left_ > 0);
  if (!has_body) return dispatch();
  if (!sink_ && body_kind_ == BodyKind::kContentLength && body_left_ > srv_.opts.max_body_bytes) {
    // Answered before the body is read, so a client waiting on 100-continue never sends it.
    respond_error(413,
                  "request body too large (limit " + std::to_string(srv_.opts.max_body_bytes) + " bytes)");
    return true;
  }
  // RFC 9110 section 10.1.1: the interim response is needless once body bytes have arrived.
  if (expect_continue && version_minor_ >= 1 && in_.empty()) {
    out_.append("HTTP/1.1 100 Continue\r\n\r\n");
    if (!flush_out()) return false;
  }
  if (body_kind_ == BodyKind::kChunked) chunked_.reset();
  if (!sink_ && body_kind_ == BodyKind::kContentLength) req_.body.reserve(body_left_);
  state_ = State::kBody;
  timer_.arm(srv_.opts.idle_timeout);
  return true;
}

// Sends what out_ holds, as far as the socket takes it. False when the connection broke (and is closed).
bool Connection::flush_out() {
  while (!out_.empty()) {
    ssize_t n = tr_->write(out_.data(), out_.size());
    if (n == kWouldBlock) return true;
    if (n <= 0) {
      close_now();
      return false;
    }
    out_.consume(static_cast<size_t>(n));
  }
  return true;
}

bool Connection::take_body(const char* p, size_t n) {
  if (sink_) {
    sink_->data(std::string_view(p, n));
    return true;
  }
  if (req_.body.size() + n > srv_.opts.max_body_bytes) {
    respond_error(413,
                  "request body too large (limit " + std::to_string(srv_.opts.max_body_bytes) + " bytes)");
    return false;
  }
  req_.body.append(p, n);
  return true;
}

bool Connection::read_body() {
  if (!out_.empty() && !flush_out()) return false;
  bool need_bytes = in_.empty();
  for (;;) {
    if (need_bytes) {
      if (in_.full()) {
        respond_error(400, "bad chunked framing");
        return true;
      }
      ssize_t n = fill();
      if (n == kWouldBlock) return false;
      if (n <= 0) {
        close_now();  // the client left in the middle of its body
        return false;
      }
      timer_.arm(srv_.opts.idle_timeout);
      need_bytes = false;
    }
    if (body_kind_ == BodyKind::kContentLength) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(in_.size(), body_left_));
      if (!take_body(in_.data(), n)) return true;
      in_.consume(n);
      body_left_ -= n;
      if (body_left_ == 0) return dispatch();
      need_bytes = true;
      continue;
    }
    size_t consumed = 0;
    std::string_view payload;
    ParseStatus st = chunked_.decode(in_.view(), consumed, payload);
    if (!payload.empty() && !take_body(payload.data(), payload.size())) return true;
    in_.consume(consumed);
    if (st == ParseStatus::kComplete) return dispatch();
    if (st != ParseStatus::kNeedMore) {
      respond_error(chunked_.error().http_status, chunked_.error().reason);
      return true;
    }
    need_bytes = in_.empty() || consumed == 0;
  }
}

bool Connection::dispatch() {
  state_ = State::kHandler;
  timer_.cancel();
  uint32_t generation = t_slots.next_generation(slot_);
  uint32_t slot = slot_;
  try {
    srv_.handler(req_, [slot, generation](Response r) { deliver_response(slot, generation, std::move(r)); });
  } catch (const std::exception& e) {
    core::log_error(kComponent, "handler threw", {{"target", req_.target}, {"error", e.what()}});
    if (state_ == State::kHandler) on_response(Response::text(500, "internal server error\n"));
  }
  return true;
}

void Connection::prepare_response() {
  const int status = resp_.status;
  // RFC 9110 sections 6.4.1 and 15.3.5: these statuses never carry content.
  const bool bodiless_status = (status >= 100 && status < 200) || status == 204 || status == 304;
  const bool send_body = !head_only_ && !bodiless_status;
  if (closing_ || srv_.shutting_down) keep_alive_ = false;

  streaming_ = static_cast<bool>(resp_.body_producer);
  uint64_t length = resp_.body.size();
  if (streaming_) {
    if (resp_.content_length >= 0) {
      framing_ = Framing::kLength;
      length = static_cast<uint64_t>(resp_.content_length);
    } else if (version_minor_ >= 1) {
      framing_ = Framing::kChunked;
    } else {
      framing_ = Framing::kUntilClose;  // HTTP/1.0 has no chunked coding
      if (send_body) keep_alive_ = false;
    }
  } else {
    framing_ = Framing::kLength;
  }

  char* base = out_.write_ptr();
  size_t space = out_.write_space();
  HeadWriter w(base, space);
  w.put("HTTP/1.1 ");
  w.put_uint(static_cast<uint64_t>(status));
  w.put(" ");
  w.put(reason_phrase(status));
  w.put("\r\n");
  bool has_date = false;
  for (const auto& [name, value] : resp_.headers) {
    if (is_framing_header(name)) continue;
    if (iequals(name, "date")) has_date = true;
    w.put(name);
    w.put(": ");
    w.put(value);
    w.put("\r\n");
  }
  if (!has_date) w.put(srv_.date_header());
  if (!bodiless_status) {
    if (framing_ == Framing::kLength) {
      w.put("Content-Length: ");
      w.put_uint(length);
      w.put("\r\n");
    } else if (framing_ == Framing::kChunked && send_body) {
      w.put("Transfer-Encoding: chunked\r\n");
    }
  }
  if (!keep_alive_) {
    w.put("Connection: close\r\n");
  } else if (version_minor_ == 0) {
    w.put("Connection: keep-alive\r\n");
  }
  w.put("\r\n");

  if (w.overflow()) {
    core::log_error(kComponent, "response head too large, sent 500 instead",
                    {{"target", req_.target}, {"status", status}});
    keep_alive_ = false;
    resp_ = Response{};
    streaming_ = false;
    framing_ = Framing::kLength;
    static constexpr std::string_view kOverflow =
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    HeadWriter fallback(base, space);
    fallback.put(kOverflow);
    out_.commit(fallback.size());
  } else {
    out_.commit(w.size());
  }

  body_off_ = 0;
  if (!send_body) resp_.body.clear();
  stream_left_ = length;
  stream_done_ = !streaming_ || !send_body || (framing_ == Framing::kLength && length == 0);
  body_pending_ = false;
  if (!stream_done_ && resp_.body_waker) {
    // (slot, generation) as the responders: a wake after this response, or after the connection, is a no-op.
    resp_.body_waker([slot = slot_, generation = t_slots.generation(slot_)] {
      if (Connection* c = t_slots.find(slot, generation)) c->resume_body();
    });
  }
  state_ = State::kWrite;
  timer_.arm(srv_.opts.idle_timeout);
}

// Fills stream_ from the producer. Called only once everything produced before has been written, which is the
// backpressure the producer relies on. A block less than half filled means the producer has no more at hand:
// what there is goes out before it is asked again.
bool Connection::produce() {
  for (Buffer& block : stream_) {
    if (!produce_into(block)) return false;
    if (stream_done_ || body_pending_ || block.size() < Buffer::kCapacity / 2) break;
  }
  return true;
}

bool Connection::produce_into(Buffer& block) {
  char* base = block.write_ptr();
  switch (framing_) {
    case Framing::kChunked: {
      const size_t cap = Buffer::kCapacity - kChunkPrefix - 2 - kLastChunk.size();
      size_t n = resp_.body_producer(base + kChunkPrefix, cap);
      if (n == kBodyNotYet) return pause_body();
      n = std::min(n, cap);
      if (n == 0) {
        std::memcpy(base, kLastChunk.data(), kLastChunk.size());
        block.commit(kLastChunk.size());
        stream_done_ = true;
        return true;
      }
      char hex[16];
      auto r = std::to_chars(hex, hex + sizeof hex, n, 16);
      size_t hex_len = static_cast<size_t>(r.ptr - hex);
      size_t start = kChunkPrefix - hex_len - 2;
      std::memcpy(base + start, hex, hex_len);
      std::memcpy(base + kChunkPrefix - 2, "\r\n", 2);
      std::memcpy(base + kChunkPrefix + n, "\r\n", 2);
      block.commit(kChunkPrefix + n + 2);
      block.consume(start);
      return true;
    }
    case Framing::kLength: {
      size_t cap = static_cast<size_t>(std::min<uint64_t>(Buffer::kCapacity, stream_left_));
      size_t n = resp_.body_producer(base, cap);
      if (n == kBodyNotYet) return pause_body();
      n = std::min(n, cap);
      if (n == 0) {
        // The head promised more bytes than the producer has: the only honest signal left is closing.
        core::log_error(
            kComponent, "body producer ended before Content-Length",
            {{"target", req_.target}, {"missing_bytes", static_cast<unsigned long>(stream_left_)}});
        block.release();
        close_now();
        return false;
      }
      block.commit(n);
      stream_left_ -= n;
      stream_done_ = stream_left_ == 0;
      return true;
    }
    case Framing::kUntilClose: {
      size_t n = resp_.body_producer(base, Buffer::kCapacity);
      if (n == kBodyNotYet) return pause_body();
      n = std::min(n, Buffer::kCapacity);
      if (n == 0) {
        block.release();
        stream_done_ = true;
      } else {
        block.commit(n);
      }
      return true;
    }
  }
  return true;
}

// The producer has nothing yet: what is buffered (the head) still goes out, then the connection waits for the
// producer's wake.
bool Connection::pause_body() {
  for (Buffer& block : stream_)
    if (block.empty()) block.release();
  body_pending_ = true;
  return true;
}

bool Connection::write_response() {
  for (;;) {
    if (!stream_done_ && !body_pending_ && stream_empty() && !produce()) return false;
    iovec iov[1 + kStreamBlocks];
    int count = 0;
    if (!out_.empty()) iov[count++] = {out_.data(), out_.size()};
    if (streaming_) {
      for (Buffer& block : stream_)
        if (!block.empty()) iov[count++] = {block.data(), block.size()};
    } else if (body_off_ < resp_.body.size()) {
      iov[count++] = {resp_.body.data() + body_off_, resp_.body.size() - body_off_};
    }
    if (count == 0) {
      if (body_pending_) return false;
      if (!stream_done_) continue;
      return finish_response();
    }
    ssize_t n = tr_->writev(iov, count);
    if (n == kWouldBlock) return false;
    if (n <= 0) {
      close_now();
      return false;
    }
    timer_.arm(srv_.opts.idle_timeout);
    size_t left = static_cast<size_t>(n);
    size_t from_head = std::min(left, out_.size());
    out_.consume(from_head);
    left -= from_head;
    if (left == 0) continue;
    if (streaming_) {
      for (Buffer& block : stream_) {
        size_t from_block = std::min(left, block.size());
        if (from_block > 0) block.consume(from_block);
        left -= from_block;
      }
    } else {
      body_off_ += left;
    }
  }
}

bool Connection::finish_response() {
  resp_.body = std::string();
  resp_.body_producer = nullptr;
  resp_.body_waker = nullptr;
  resp_.headers.clear();
  sink_.reset();
  req_.body_sink = nullptr;
  if (req_.body.capacity() > kKeepBodyCapacity) {
    std::string().swap(req_.body);
  } else {
    req_.body.clear();
  }
  if (!keep_alive_ || closing_ || srv_.shutting_down) {
    start_linger();
    return true;
  }
  state_ = State::kHead;
  awaiting_first_byte_ = in_.empty();
  timer_.arm(in_.empty() ? srv_.opts.idle_timeout : srv_.opts.header_timeout);
  return true;
}

void Connection::respond_error(int status, std::string_view text) {
  keep_alive_ = false;
  sink_.reset();
  req_.body_sink = nullptr;
  std::string body;
  body.reserve(text.size() + 1);
  body.append(text);
  body.push_back('\n');
  resp_ = Response::text(status, std::move(body));
  prepare_response();
}

void Connection::start_linger() {
  tr_->shutdown_write();
  in_.release();
  state_ = State::kLinger;
  timer_.arm(kLingerTime);
}

bool Connection::linger() {
  for (;;) {
    ssize_t n = fill();
    in_.release();
    if (n == kWouldBlock) return false;
    if (n <= 0) {
      close_now();
      return false;
    }
  }
}

void Connection::on_timer() {
  switch (state_) {
    case State::kHead:
      if (in_.empty()) {
        close_now();  // idle keep-alive, or a connection that never sent anything: nobody waits for an answer
        return;
      }
      version_minor_ = 1;
      head_only_ = false;
      respond_error(408, "request timeout: the request head did not arrive in time");
      drive();
      return;
    case State::kBody:
      respond_error(408, "request timeout: the request body stalled");
      drive();
      return;
    case State::kWrite:
    case State::kLinger:
      close_now();  // the client stopped reading, or did not close after our close
      return;
    case State::kHandler:
    case State::kClosed:
      return;
  }
}

void Connection::close_now() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  timer_.cancel();
  srv_.loop.remove(tr_->fd());
  tr_.reset();
  t_slots.release(slot_);
  in_.release();
  out_.release();
  release_stream();
  // The user's closures may hold resources; they go now rather than with the deferred destruction.
  sink_.reset();
  resp_ = Response{};
  srv_.forget(this);
}

ServerCore::~ServerCore() = default;

void ServerCore::start() {
  if (listener) throw std::logic_error("http::Server::start called twice");
  listener = core::listen_tcp(opts.listen, opts.reuse_port);
  auto local = core::SocketAddress::from_fd_local(listener.get());
  bound = local ? *local : opts.listen;
  loop.add(listener.get(), this, core::kReadable);
}

void ServerCore::accept_all() {
  while (listener && !dead) {
    core::SocketAddress peer;
    peer.length = sizeof peer.storage;
    int fd = ::accept4(listener.get(), reinterpret_cast<sockaddr*>(&peer.storage), &peer.length,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      // Out of descriptors or memory: the pending connections stay queued, and with edge-triggered readiness
      // nothing would wake us for them, so try again shortly.
      core::log_error(kComponent, "accept failed, retrying in 100 ms",
                      {{"listen", bound.to_string()}, {"error", core::errno_text(err)}});
      accept_retry.arm(core::Millis(100));
      return;
    }
    core::set_nodelay(fd);
    try {
      auto transport = opts.tls ? opts.tls->wrap(fd) : make_plain_transport(fd);
      auto conn = std::make_unique<Connection>(*this, std::move(transport), peer);
      conn->index = conns.size();
      loop.add(fd, conn.get());
      conns.push_back(std::move(conn));
      open_count.store(conns.size(), std::memory_order_relaxed);
    } catch (const std::exception& e) {
      // The transport owns (and has closed) the socket by now.
      core::log_error(kComponent, "cannot set up a connection",
                      {{"peer", peer.to_string()}, {"error", e.what()}});
    }
  }
}

void ServerCore::forget(Connection* c) {
  std::unique_ptr<Connection> owned = core::swap_remove(conns, c->index);
  open_count.store(conns.size(), std::memory_order_relaxed);
  // Events of the current batch may still name this connection.
  loop.destroy_later(std::move(owned));
}

void ServerCore::shutdown() {
  shutting_down = true;
  stop_accepting();
  std::vector<Connection*> all;
  all.reserve(conns.size());
  for (auto& c : conns) all.push_back(c.get());
  for (Connection* c : all) c->begin_shutdown();
}

void ServerCore::close_all() {
  dead = true;
  stop_accepting();
  while (!conns.empty()) conns.back()->close_now();
}

void ServerCore::stop_accepting() {
  accept_retry.cancel();
  if (listener) {
    loop.remove(listener.get());
    listener.reset();
  }
}

std::string_view ServerCore::date_header() {
  time_t now = ::time(nullptr);
  if (now != date_second) {
    date_second = now;
    std::memcpy(date_line, "Date: ", 6);
    size_t n = 6 + format_http_date(static_cast<int64_t>(now), date_line + 6);
    std::memcpy(date_line + n, "\r\n", 2);
    date_len = n + 2;
  }
  return std::string_view(date_line, date_len);
}

}  // namespace

struct Server::Impl final : ServerCore {
  using ServerCore::ServerCore;
};

Server::Server(core::EventLoop& loop, ServerOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(loop, std::move(options), std::move(handler))) {}

Server::~Server() {
  impl_->close_all();
  // The listener's handler (the Impl) may still be named by an event of the current batch.
  core::EventLoop& loop = impl_->loop;
  loop.destroy_later(std::move(impl_));
}

void Server::start() {
  impl_->start();
}

core::SocketAddress Server::local_address() const {
  return impl_->bound;
}

void Server::shutdown() {
  impl_->shutdown();
}

size_t Server::open_connections() const {
  return impl_->open_count.load(std::memory_order_relaxed);
}

}  // namespace cumulo::http
