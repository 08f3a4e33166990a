// The HTTP/1.1 client: one exchange at a time per connection, idle connections pooled per address (LIFO, so
// the warmest socket is reused and the coldest ones time out).
#include "http/client.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "core/buffer.h"
#include "core/swap_remove.h"
#include "http/transport.h"
#include "http/wire/h1.h"
#include "http/wire/response_reader.h"

namespace cumulo::http {

std::string_view ClientResponse::header(std::string_view name) const {
  return header_value(headers, name);
}

ResponseHead ClientResponse::head_view() const {
  ResponseHead h;
  h.status = status;
  h.reason = reason_phrase(status);
  for (const auto& [name, value] : headers) {
    if (h.header_count == kMaxHeaders) break;
    h.headers[h.header_count++] = Header{name, value};
  }
  h.body = BodyKind::kContentLength;
  h.content_length = body.size();
  return h;
}

namespace {

core::Error failure(std::string_view kind, std::string message, core::Retry retry = core::Retry::kNo,
                    core::ErrorSource source = core::ErrorSource::kUpstream) {
  core::Error e;
  e.kind = kind;
  e.message = std::move(message);
  e.source = source;
  e.retry = retry;
  return e;
}

using core::Buffer;

struct PoolKey {
  sa_family_t family = 0;
  uint16_t port = 0;
  std::array<uint8_t, 16> ip{};
  bool operator==(const PoolKey&) const = default;
};

struct PoolKeyHash {
  size_t operator()(const PoolKey& k) const {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    auto mix = [&h](uint8_t b) { h = (h ^ b) * 1099511628211ull; };
    mix(static_cast<uint8_t>(k.family));
    mix(static_cast<uint8_t>(k.port));
    mix(static_cast<uint8_t>(k.port >> 8));
    for (uint8_t b : k.ip) mix(b);
    return static_cast<size_t>(h);
  }
};

PoolKey key_of(const core::SocketAddress& a) {
  PoolKey k;
  k.family = a.storage.ss_family;
  k.port = a.port();
  if (k.family == AF_INET) {
    std::memcpy(k.ip.data(), &reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr, 4);
  } else if (k.family == AF_INET6) {
    std::memcpy(k.ip.data(), &reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr, 16);
  }
  return k;
}

// RFC 9110 section 9.2.2: these may be sent again when a reused connection turns out to be dead.
bool idempotent(Method m) {
  return m == Method::kGet || m == Method::kHead || m == Method::kPut || m == Method::kDelete ||
         m == Method::kOptions || m == Method::kTrace;
}

struct Exchange {
  uint64_t id = 0;
  ClientRequest req;
  std::function<void(ClientResponse)> done;
  core::TimePoint deadline{};
  Method method = Method::kGet;
  bool retried = false;
};

class ClientConn;

// Everything a client owns; Client::Impl is this under the header's name, which is private to Client.
class ClientCore {
 public:
  ClientCore(core::EventLoop& l, ClientOptions o)
      : loop(l), opts(o), failure_timer(l, [this] { report_failures(); }) {}
  ~ClientCore();

  void request(const core::SocketAddress& to, Exchange&& ex);
  void connect_new(const core::SocketAddress& to, const PoolKey& key, Exchange&& ex);
  void fail_soon(uint64_t id, std::function<void(ClientResponse)> done, core::Error error);
  void cancel(uint64_t id);
  void report_failures();
  void to_pool(ClientConn* c);
  void from_pool(ClientConn* c);
  void forget(ClientConn* c);

  core::EventLoop& loop;
  ClientOptions opts;
  std::vector<std::unique_ptr<ClientConn>> conns;
  std::unordered_map<PoolKey, std::vector<ClientConn*>, PoolKeyHash> idle;
  // Failures found inside request() are reported from the loop, so `done` never runs inside request().
  core::Timer failure_timer;
  struct Failure {
    uint64_t id;
    std::function<void(ClientResponse)> done;
    core::Error error;
  };
  std::vector<Failure> failures;
  uint64_t next_id = 1;
  bool destroying = false;
};

class ClientConn final : public core::IoHandler {
 public:
  ClientConn(ClientCore& cl, const core::SocketAddress& to, const PoolKey& key, std::unique_ptr<Transport> t)
      : key(key),
        cl_(cl),
        addr_(to),
        tr_(std::move(t)),
        timer_(cl.loop, [this] { on_timer(); }),
        reader_(cl.opts.max_response_bytes) {}

  // core::IoHandler
  void on_io(uint32_t events) override {
    if (state_ == State::kConnecting) {
      int err = core::socket_error(tr_->fd());
      if (err != 0) {
        fail(failure("connect", "connect: " + core::errno_text(err), core::Retry::kSafe));
        return;
      }
      if (!(events & core::kWritable)) return;
      state_ = State::kWriting;
    }
    drive();
  }

  void start(Exchange&& ex, bool reused);
  void close_now();
  bool has_exchange() const { return has_exchange_; }
  uint64_t exchange_id() const { return has_exchange_ ? ex_.id : 0; }
  std::function<void(ClientResponse)> take_done() {
    has_exchange_ = false;
    return std::move(ex_.done);
  }
  int fd() const { return tr_->fd(); }

  const PoolKey key;
  size_t index = 0;       // in ClientCore::conns
  size_t pool_index = 0;  // in ClientCore::idle[key] while idle

 private:
  enum class State : uint8_t { kConnecting, kWriting, kReading, kIdle, kClosed };

  void drive();
  bool write_request();
  bool read_response();
  void finish();
  void fail(core::Error error);
  void on_timer();
  ssize_t fill();

  ClientCore& cl_;
  core::SocketAddress addr_;
  std::unique_ptr<Transport> tr_;
  core::Timer timer_;
  ResponseReader reader_;
  Buffer in_;
  Buffer out_;
  Exchange ex_;
  size_t body_off_ = 0;
  State state_ = State::kConnecting;
  bool has_exchange_ = false;
  bool reused_ = false;
  bool got_bytes_ = false;
  bool reusable_ = false;
  bool request_close_ = false;  // the request said Connection: close
  bool write_failed_ = false;
  std::string write_error_;
  bool driving_ = false;
  // A streamed response (ClientRequest::on_body): its status and headers once the head is read, passed with
  // every piece and to `done`.
  bool streaming_ = false;
  ClientResponse stream_head_;
};

void ClientConn::start(Exchange&& ex, bool reused) {
  ex_ = std::move(ex);
  has_exchange_ = true;
  reused_ = reused;
  got_bytes_ = write_failed_ = request_close_ = false;
  body_off_ = 0;
  streaming_ = static_cast<bool>(ex_.req.on_body);
  stream_head_ = ClientResponse{};
  reader_.start(ex_.method,
                streaming_ ? ResponseReader::BodyMode::kStream : ResponseReader::BodyMode::kGather);
  timer_.arm_at(ex_.deadline);

  const ClientRequest& r = ex_.req;
  bool fits = true;
  auto put = [this, &fits](std::string_view piece) { fits = fits && out_.append(piece) == piece.size(); };
  put(r.method);
  put(" ");
  put(r.target.empty() ? std::string_view("/") : std::string_view(r.target));
  put(" HTTP/1.1\r\nHost: ");
  if (r.host.empty()) {
    put(addr_.to_string());
  } else {
    put(r.host);
  }
  put("\r\n");
  for (const auto& [name, value] : r.headers) {
    if (iequals(name, "host") || iequals(name, "content-length") || iequals(name, "transfer-encoding"))
      continue;
    if (iequals(name, "connection") && iequals(value, "close")) request_close_ = true;
    put(name);
    put(": ");
    put(value);
    put("\r\n");
  }
  if (!r.body.empty() || ex_.method == Method::kPost || ex_.method == Method::kPut ||
      ex_.method == Method::kPatch) {
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof digits, r.body.size()).ptr;
    put("Content-Length: ");
    put(std::string_view(digits, static_cast<size_t>(end - digits)));
    put("\r\n");
  }
  put("\r\n");
  if (!fits) {
    auto done = take_done();
    close_now();
    cl_.fail_soon(ex_.id, std::move(done),
                  failure("bad_request", "request head over " + std::to_string(Buffer::kCapacity) + " bytes",
                          core::Retry::kNo, core::ErrorSource::kClient));
    return;
  }
  if (state_ == State::kConnecting) return;  // writable readiness will start it
  state_ = State::kWriting;
  // A pooled socket has long since reported writable and will not again; start from the loop, so that `done`
  // never runs inside request().
  cl_.loop.defer([this] { drive(); });
}

void ClientConn::drive() {
  if (driving_) return;
  driving_ = true;
  for (bool progress = true; progress;) {
    switch (state_) {
      case State::kWriting:
        progress = write_request();
        break;
      case State::kReading:
        progress = read_response();
        break;
      case State::kIdle: {
        // A pooled connection must stay silent: data or end of stream means the server is done with it.
        char probe[1];
        ssize_t n = tr_->read(probe, sizeof probe);
        if (n != kWouldBlock) close_now();
        progress = false;
        break;
      }
      case State::kConnecting:
      case State::kClosed:
        progress = false;
        break;
    }
  }
  driving_ = false;
}

bool ClientConn::write_request() {
  for (;;) {
    iovec iov[2];
    int count = 0;
    if (!out_.empty()) iov[count++] = {out_.data(), out_.size()};
    const std::string& body = ex_.req.body;
    if (body_off_ < body.size())
      iov[count++] = {const_cast<char*>(body.data()) + body_off_, body.size() - body_off_};
    if (count == 0) {
      state_ = State::kReading;
      return true;
    }
    ssize_t n = tr_->writev(iov, count);
    if (n == kWouldBlock) return false;
    if (n <= 0) {
      // The server may have answered early (a 413, say) and closed: read what it sent before judging.
      write_failed_ = true;
      write_error_ = tr_->error_text();
      out_.release();
      state_ = State::kReading;
      return true;
    }
    size_t left = static_cast<size_t>(n);
    size_t from_head = std::min(left, out_.size());
    out_.consume(from_head);
    body_off_ += left - from_head;
  }
}

ssize_t ClientConn::fill() {
  char* p = in_.write_ptr();
  ssize_t n = tr_->read(p, in_.write_space());
  if (n <= 0 && in_.empty()) in_.release();
  if (n > 0) in_.commit(static_cast<size_t>(n));
  return n;
}

bool ClientConn::read_response() {
  bool need_bytes = in_.empty();
  for (;;) {
    if (need_bytes) {
      if (in_.full()) {
        fail(failure("bad_response",
                     reader_.head_read()
                         ? "bad response: chunk framing over " + std::to_string(Buffer::kCapacity) + " bytes"
                         : "bad response: head over " + std::to_string(Buffer::kCapacity) + " bytes"));
        return false;
      }
      ssize_t n = fill();
      if (n == kWouldBlock) return false;
      if (n > 0) {
        got_bytes_ = true;
      } else if (n == 0 && reader_.finish_at_close() == ResponseReader::Step::kDone) {
        reusable_ = false;
        finish();
        return true;
      } else {
        // Nothing of a response came: the server may not have seen the request, which an idempotent one
        // may then be sent again for.
        core::Retry before_response = idempotent(ex_.method) ? core::Retry::kSafe : core::Retry::kNo;
        if (write_failed_ && !got_bytes_) {
          fail(failure("reset", "write: " + write_error_, before_response));
        } else if (got_bytes_) {
          fail(failure("bad_response", n == 0
                                           ? "bad response: connection closed before the end of the response"
                                           : "bad response: " + tr_->error_text()));
        } else {
          fail(failure("reset",
                       n == 0 ? "connection closed by the server before a response" : tr_->error_text(),
                       before_response));
        }
        return false;
      }
    }
    // The reader takes what it can; what stays in the buffer is an incomplete head or chunk framing.
    size_t used = 0;
    ResponseReader::Step st = reader_.feed(in_.view(), used);
    if (streaming_ && st != ResponseReader::Step::kFailed) {
      if (stream_head_.status == 0 && reader_.head_read()) {
        timer_.cancel();  // the timeout covers the head; the body lasts as long as the server sends it
        stream_head_.status = reader_.status();
        stream_head_.headers = std::move(reader_.headers());
      }
      if (!reader_.body_piece().empty()) {
        ex_.req.on_body(stream_head_, reader_.body_piece());
        // on_body may have cancelled this exchange or destroyed the client: then touch nothing.
        if (state_ == State::kClosed) return false;
        in_.consume(used);
        if (st == ResponseReader::Step::kNeedMore) {
          need_bytes = in_.empty();
          continue;
        }
        used = 0;
      }
    }
    in_.consume(used);
    if (st == ResponseReader::Step::kFailed) {
      fail(reader_.error());
      return false;
    }
    if (st == ResponseReader::Step::kDone) {
      reusable_ = reader_.keep_alive() && !request_close_ && !write_failed_;
      finish();
      return true;  // the state says what comes next: `done` may have started another exchange here
    }
    need_bytes = true;
  }
}

void ClientConn::finish() {
  timer_.cancel();
  // Bytes beyond the response mean the server and we disagree about framing: never reuse such a connection.
  bool reuse = reusable_ && in_.empty() && !cl_.destroying;
  auto done = take_done();
  ClientResponse resp;
  if (streaming_) {
    resp = std::move(stream_head_);
  } else {
    resp.status = reader_.status();
    resp.headers = std::move(reader_.headers());
    resp.body = std::move(reader_.body());
  }
  ex_ = Exchange{};
  if (reuse) {
    state_ = State::kIdle;
    timer_.arm(cl_.opts.idle_timeout);
    cl_.to_pool(this);
  } else {
    close_now();
  }
  done(std::move(resp));  // last: it may issue the next request on this connection, or destroy the client
}

void ClientConn::fail(core::Error error) {
  if (!has_exchange_) {
    close_now();
    return;
  }
  // A pooled connection the server had already given up on fails before any response byte; that is no verdict
  // on the request, so an idempotent one gets one fresh connection.
  bool retry =
      reused_ && !got_bytes_ && !ex_.retried && idempotent(ex_.method) && cl_.loop.now() < ex_.deadline;
  Exchange ex = std::move(ex_);
  has_exchange_ = false;
  close_now();
  if (retry) {
    ex.retried = true;
    cl_.connect_new(addr_, key, std::move(ex));
    return;
  }
  ClientResponse r;
  r.error = std::move(error);
  ex.done(std::move(r));
}

void ClientConn::on_timer() {
  if (state_ == State::kIdle) {
    close_now();
    return;
  }
  ex_.retried = true;  // out of time: no second attempt
  fail(failure("timeout", "timeout after " + std::to_string(ex_.req.timeout.count()) + " ms"));
}

void ClientConn::close_now() {
  if (state_ == State::kClosed) return;
  if (state_ == State::kIdle) cl_.from_pool(this);
  state_ = State::kClosed;
  timer_.cancel();
  cl_.loop.remove(tr_->fd());
  tr_.reset();
  in_.release();
  out_.release();
  cl_.forget(this);
}

ClientCore::~ClientCore() {
  destroying = true;
  failure_timer.cancel();
  std::vector<std::function<void(ClientResponse)>> waiting;
  while (!conns.empty()) {
    ClientConn* c = conns.back().get();
    if (c->has_exchange()) waiting.push_back(c->take_done());
    c->close_now();
  }
  auto pending = std::move(failures);
  for (auto& done : waiting) {
    ClientResponse r;
    r.error = failure("closed", "client destroyed before the response", core::Retry::kNo,
                      core::ErrorSource::kInternal);
    done(std::move(r));
  }
  for (auto& f : pending) {
    ClientResponse r;
    r.error = std::move(f.error);
    f.done(std::move(r));
  }
}

void ClientCore::request(const core::SocketAddress& to, Exchange&& ex) {
  PoolKey key = key_of(to);
  auto it = idle.find(key);
  if (it != idle.end() && !it->second.empty()) {
    ClientConn* c = it->second.back();
    from_pool(c);
    c->start(std::move(ex), /*reused=*/true);
    return;
  }
  connect_new(to, key, std::move(ex));
}

void ClientCore::connect_new(const core::SocketAddress& to, const PoolKey& key, Exchange&& ex) {
  int err = 0;
  core::Fd fd = opts.connect ? opts.connect(to, &err) : core::connect_tcp(to, &err);
  if (!fd) {
    fail_soon(ex.id, std::move(ex.done),
              failure("connect", "connect: " + core::errno_text(err), core::Retry::kSafe));
    return;
  }
  int raw = fd.release();
  auto conn = std::make_unique<ClientConn>(*this, to, key, make_plain_transport(raw));
  conn->index = conns.size();
  ClientConn* c = conn.get();
  conns.push_back(std::move(conn));
  loop.add(raw, c);
  c->start(std::move(ex), /*reused=*/false);
}

void ClientCore::fail_soon(uint64_t id, std::function<void(ClientResponse)> done, core::Error error) {
  failures.push_back(Failure{id, std::move(done), std::move(error)});
  failure_timer.arm(core::Millis(0));
}

void ClientCore::report_failures() {
  auto batch = std::move(failures);
  failures.clear();
  for (auto& f : batch) {
    ClientResponse r;
    r.error = std::move(f.error);
    f.done(std::move(r));  // may destroy the client: touch nothing of it afterwards
  }
}

void ClientCore::cancel(uint64_t id) {
  if (id == 0) return;
  for (auto& c : conns) {
    if (c->exchange_id() != id) continue;
    c->take_done();  // dropped: neither callback runs after cancel()
    c->close_now();
    return;
  }
  std::erase_if(failures, [id](const Failure& f) { return f.id == id; });
}

void ClientCore::to_pool(ClientConn* c) {
  auto& list = idle[c->key];
  if (list.size() >= opts.max_idle_per_address) {
    c->close_now();
    return;
  }
  c->pool_index = list.size();
  list.push_back(c);
}

void ClientCore::from_pool(ClientConn* c) {
  auto it = idle.find(c->key);
  if (it == idle.end()) return;
  auto& list = it->second;
  size_t i = c->pool_index;
  if (i >= list.size() || list[i] != c) return;
  list.erase(list.begin() + static_cast<ptrdiff_t>(i));
  for (size_t j = i; j < list.size(); ++j) list[j]->pool_index = j;
  // An emptied list stays: the next response to this address refills it without an allocation.
}

void ClientCore::forget(ClientConn* c) {
  std::unique_ptr<ClientConn> owned = core::swap_remove(conns, c->index);
  loop.destroy_later(std::move(owned));  // events of the current batch may still name it
}

}  // namespace

struct Client::Impl final : ClientCore {
  using ClientCore::ClientCore;
};

Client::Client(core::EventLoop& loop, ClientOptions options) : impl_(std::make_unique<Impl>(loop, options)) {}

Client::~Client() = default;

Client::RequestId Client::request(const core::SocketAddress& to, ClientRequest req,
                                  std::function<void(ClientResponse)> done) {
  if (impl_->destroying) {
    ClientResponse r;
    r.error = failure("closed", "client is being destroyed", core::Retry::kNo, core::ErrorSource::kInternal);
    done(std::move(r));
    return 0;
  }
  Exchange ex;
  ex.id = impl_->next_id++;
  RequestId id = ex.id;
  ex.method = method_from_string(req.method);
  // The real clock, not the loop's iteration time, which is stale when called before run() or after slow
  // work.
  ex.deadline = core::Clock::now() + req.timeout;
  ex.req = std::move(req);
  ex.done = std::move(done);
  impl_->request(to, std::move(ex));
  return id;
}

void Client::cancel(RequestId id) {
  impl_->cancel(id);
}

ClientResponse fetch_blocking(std::string_view method, std::string_view url, std::string body,
                              HeaderList headers, std::chrono::milliseconds timeout) {
  ClientResponse result;
  constexpr std::string_view kScheme = "http://";
  if (url.size() < kScheme.size() || !iequals(url.substr(0, kScheme.size()), kScheme)) {
    result.error =
        failure("bad_request", "bad URL '" + std::string(url) + "': only http://HOST:PORT/PATH is supported",
                core::Retry::kNo, core::ErrorSource::kClient);
    return result;
  }
  std::string_view rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  std::string host_port(authority);
  bool has_port =
      !authority.empty() && authority.back() != ']' && authority.find(':') != std::string_view::npos;
  if (!has_port) host_port += ":80";
  auto addr = core::SocketAddress::parse(host_port);
  if (!addr) {
    result.error = failure(
        "bad_request", "bad URL '" + std::string(url) + "': the host must be a numeric address or localhost",
        core::Retry::kNo, core::ErrorSource::kClient);
    return result;
  }

  core::EventLoop loop;
  Client client(loop);
  ClientRequest req;
  req.method = std::string(method);
  req.target = std::move(target);
  req.host = std::string(authority);
  req.headers = std::move(headers);
  req.body = std::move(body);
  req.timeout = timeout;
  client.request(*addr, std::move(req), [&](ClientResponse r) {
    result = std::move(r);
    loop.stop();
  });
  loop.run();
  return result;
}

}  // namespace cumulo::http
