// http::Server and http::Client against each other on loopback, plus raw sockets where the test needs bytes
// the client would never send (chunked uploads, pipelining, partial heads).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/buffer.h"
#include "core/event_loop.h"
#include "http/client.h"
#include "http/server.h"

namespace cumulo::http {
namespace {

using namespace std::chrono_literals;

core::SocketAddress loopback_any_port() {
  return *core::SocketAddress::parse("127.0.0.1:0");
}

// Runs the loop until someone stops it; a test that hangs fails instead of blocking the suite.
void run_loop(core::EventLoop& loop, std::chrono::milliseconds limit = 30s) {
  bool timed_out = false;
  core::Timer guard(loop, [&] {
    timed_out = true;
    loop.stop();
  });
  guard.arm(limit);
  loop.run();
  EXPECT_FALSE(timed_out) << "the event loop did not finish within " << limit.count() << " ms";
}

// Byte i of a generated body is i % 251, so an offset error anywhere shows.
const std::string& pattern_source() {
  static const std::string p = [] {
    std::string s(251 + 64 * 1024, '\0');
    for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(i % 251);
    return s;
  }();
  return p;
}

size_t fill_pattern(char* buf, size_t cap, uint64_t offset) {
  size_t n = std::min<size_t>(cap, 64 * 1024);
  std::memcpy(buf, pattern_source().data() + offset % 251, n);
  return n;
}

bool matches_pattern(std::string_view body) {
  for (size_t i = 0; i < body.size(); i += 64 * 1024) {
    size_t n = std::min<size_t>(64 * 1024, body.size() - i);
    if (std::memcmp(body.data() + i, pattern_source().data() + i % 251, n) != 0) return false;
  }
  return true;
}

// A server on its own loop thread, for tests that talk to it with blocking sockets.
class ServerThread {
 public:
  ServerThread(ServerOptions options, Handler handler) {
    options.listen = loopback_any_port();
    server_ = std::make_unique<Server>(loop_, std::move(options), std::move(handler));
    server_->start();
    port_ = server_->local_address().port();
    thread_ = std::thread([this] { loop_.run(); });
  }
  ~ServerThread() {
    loop_.post([this] {
      server_.reset();
      loop_.stop();
    });
    thread_.join();
  }
  uint16_t port() const { return port_; }
  core::EventLoop& loop() { return loop_; }
  // Runs fn on the loop thread and waits for it.
  template <typename F>
  auto call(F fn) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto result = task.get_future();
    loop_.post([&task] { task(); });
    return result.get();
  }
  size_t open_connections() {
    return call([this] { return server_->open_connections(); });
  }

 private:
  core::EventLoop loop_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
  std::thread thread_;
};

int connect_blocking(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

void send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    ASSERT_GT(n, 0) << std::strerror(errno);
    s.remove_prefix(static_cast<size_t>(n));
  }
}

// Reads until the peer closes (or 5 s pass).
std::string read_to_close(int fd) {
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Reads exactly one Content-Length-framed response (or an interim response, which has no body).
std::string read_one_response(int fd, std::string& pending) {
  char buf[16384];
  for (;;) {
    size_t end = pending.find("\r\n\r\n");
    if (end != std::string::npos) {
      size_t head_len = end + 4;
      size_t body_len = 0;
      std::string lower = pending.substr(0, head_len);
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t cl = lower.find("content-length: ");
      if (cl != std::string::npos) body_len = std::stoul(lower.substr(cl + 16));
      if (pending.size() >= head_len + body_len) {
        std::string one = pending.substr(0, head_len + body_len);
        pending.erase(0, head_len + body_len);
        return one;
      }
    }
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return "";
    pending.append(buf, static_cast<size_t>(n));
  }
}

std::string body_of(const std::string& response) {
  size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

// One request through http::Client on `loop`, run to completion.
ClientResponse exchange(core::EventLoop& loop, Client& client, const core::SocketAddress& to,
                        ClientRequest req) {
  ClientResponse out;
  client.request(to, std::move(req), [&](ClientResponse r) {
    out = std::move(r);
    loop.stop();
  });
  run_loop(loop);
  return out;
}

TEST(HttpHeaderList, LookupIsCaseInsensitiveAndTakesTheFirst) {
  const HeaderList headers{{"Content-Type", "text/plain"}, {"X-Tag", "a"}, {"x-tag", "b"}};
  EXPECT_EQ(header_value(headers, "content-type"), "text/plain");
  EXPECT_EQ(header_value(headers, "X-TAG"), "a");
  EXPECT_EQ(header_value(headers, "x-ta"), "");
  EXPECT_EQ(header_value({}, "x-tag"), "");
  Request req;
  req.headers = headers;
  EXPECT_EQ(req.header("x-tag"), "a");
  ClientResponse resp;
  resp.headers = headers;
  EXPECT_EQ(resp.header("CONTENT-TYPE"), "text/plain");
}

TEST(HttpRequest, QueryParamIsTheFirstRawValue) {
  Request req;
  req.query = "a=1&&b&c=x%20y&a=2&d=";
  EXPECT_EQ(req.query_param("a"), "1");
  EXPECT_EQ(req.query_param("b"), "");
  EXPECT_EQ(req.query_param("c"), "x%20y");
  EXPECT_EQ(req.query_param("d"), "");
  EXPECT_EQ(req.query_param("e"), "");
  req.query = "";
  EXPECT_EQ(req.query_param("a"), "");
}

// Two requests one after the other on `client` (the second sent from the first's callback, so it may reuse
// the first's connection), run to completion.
std::vector<ClientResponse> exchange_twice(core::EventLoop& loop, Client& client,
                                           const core::SocketAddress& to, const ClientRequest& first,
                                           const ClientRequest& second) {
  std::vector<ClientResponse> out;
  client.request(to, first, [&](ClientResponse r) {
    out.push_back(std::move(r));
    client.request(to, second, [&](ClientResponse r2) {
      out.push_back(std::move(r2));
      loop.stop();
    });
  });
  run_loop(loop);
  return out;
}

TEST(HttpServer, GetWithClient) {
  core::EventLoop loop;
  ServerOptions opts;
  opts.listen = loopback_any_port();
  Server server(loop, opts, [](Request& req, Responder respond) {
    Response r = Response::text(200, "path=" + req.path + " q=" + std::string(req.query_param("x")) + "\n");
    r.headers.emplace_back("X-Test", std::string(req.header("x-client")));
    respond(std::move(r));
  });
  server.start();
  Client client(loop);
  ClientRequest req;
  req.target = "/hello?x=42&y=1";
  req.headers.emplace_back("X-Client", "gtest");
  ClientResponse resp = exchange(loop, client, server.local_address(), req);
  ASSERT_TRUE(resp.ok()) << resp.error.message;
  EXPECT_EQ(resp.status, 200);
  EXPECT_EQ(resp.body, "path=/hello q=42\n");
  EXPECT_EQ(resp.header("x-test"), "gtest");
  EXPECT_EQ(resp.header("content-type"), "text/plain; charset=utf-8");
  EXPECT_FALSE(resp.header("date").empty());
}

TEST(HttpServer, PostBodyIsGathered) {
  core::EventLoop loop;
  ServerOptions opts;
  opts.listen = loopback_any_port();
  Server server(loop, opts, [](Request& req, Responder respond) {
    respond(Response::text(201, req.method + ":" + std::to_string(req.body.size()) + ":" + req.body));
  });
  server.start();
  Client client(loop);
  ClientRequest req;
  req.method = "POST";
  req.target = "/items";
  req.body = "hello body";
  ClientResponse resp = exchange(loop, client, server.local_address(), req);
  ASSERT_TRUE(resp.ok()) << resp.error.message;
  EXPECT_EQ(resp.status, 201);
  EXPECT_EQ(resp.body, "POST:10:hello body");
}

TEST(HttpServer, HeadHasLengthButNoBody) {
  ServerThread srv({}, [](Request&, Responder respond) { respond(Response::text(200, "twelve bytes")); });
  int fd = connect_blocking(srv.port());
  ASSERT_GE(fd, 0);
  send_all(fd, "HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  std::string all = read_to_close(fd);
  ::close(fd);
  // The HEAD answer says 12 bytes but carries none, so the GET's status line follows its head directly.
  EXPECT_NE(all.find("Content-Length: 12\r\n"), std::string::npos) << all;
  size_t second = all.find("HTTP/1.1 200", 1);
  ASSERT_NE(second, std::string::npos) << all;
  EXPECT_EQ(all.substr(second - 4, 4), "\r\n\r\n");
  EXPECT_EQ(body_of(all.substr(second)), "twelve bytes");
}

TEST(HttpServer, ChunkedRequestBody) {
  ServerThread srv(
      {}, [](Request& req, Responder respond) { respond(Response::text(200, "[" + req.body + "]")); });
  int fd = connect_blocking(srv.port());
  ASSERT_GE(fd, 0);
  send_all(fd, "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n");
  std::this_thread::sleep_for(20ms);  // the decoder must resume across reads
  send_all(fd, "6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n");
  std::string pending;
  std::string resp = read_one_response(fd, pending);
  ::close(fd);
  EXPECT_EQ(resp.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << resp;
  EXPECT_EQ(body_of(resp), "[hello world]");
}

TEST(HttpServer, ExpectContinue) {
  ServerThread srv({},
                   [](Request& req, Responder respond) { respond(Response::text(200, "got " + req.body)); });
  int fd = connect_blocking(srv.port());
  ASSERT_GE(fd, 0);
  send_all(fd, "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  std::string pending;
  std::string interim = read_one_response(fd, pending);
  EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  send_all(fd, "12345");
  std::string final_resp = read_one_response(fd, pending);
  ::close(fd);
  EXPECT_EQ(final_resp.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << final_resp;
  EXPECT_EQ(body_of(final_resp), "got 12345");
}

TEST(HttpServer, ExpectContinueOverLimitGets413WithoutContinue) {
  ServerOptions opts;
  opts.max_body_bytes = 100;
  ServerThread srv(opts, [](Request&, Responder respond) { respond(Response::text(200, "no")); });
  int fd = connect_blocking(srv.port());
  ASSERT_GE(fd, 0);
  send_all(fd, "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n");
  std::string all = read_to_close(fd);
  ::close(fd);
  EXPECT_EQ(all.rfind("HTTP/1.1 413 ", 0), 0u) << all;
  EXPECT_NE(all.find("Connection: close\r\n"), std::string::npos);
}

TEST(HttpServer, PipelinedRequestsAnswerInOrder) {
  // The first response is late (a timer) and the second immediate; they must still leave in request order.
  std::vector<std::unique_ptr<core::Timer>> timers;
  ServerThread* self = nullptr;
  ServerThread srv({}, [&](Request& req, Responder respond) {
    if (req.path == "/slow") {
      auto t =
          std::make_unique<core::Timer>(self->loop(), [respond] { respond(Response::text(200, "first")); });
      t->arm(50ms);
      timers.push_back(std::move(t));
    } else {
      respond(Response::text(200, "second"));
    }
  });
  self = &srv;
  int fd = connect_blocking(srv.port());
  ASSERT_GE(fd, 0);
  send_all(fd, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\nGET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string pending;
  std::string a = read_one_response(fd, pending);
  std::string b = read_one_response(fd, pending);
  ::close(fd);
  EXPECT_EQ(body_of(a), "first");
  EXPECT_EQ(body_of(b), "second");
  srv.call([&] {
    timers.clear();
    return 0;
  });
}

TEST(HttpServer, BodyOverLimitGets413) {
  core::EventLoop loop;
  ServerOptions opts;
  opts.listen = loopback_any_port();
  opts.max_body_bytes = 1024;
  bool handler_ran = false;
  Server server(loop, opts, [&](Request&, Responder respond) {
    handler_ran = true;
    respond(Response::text(200, "no"));
  });
  server.start();
  Client client(loop);
  ClientRequest req;
  req.method = "POST";
  req.body = std::string(4096, 'x');
  ClientResponse resp = exchange(loop, client, server.local_address(), req);
  ASSERT_TRUE(resp.ok()) << resp.error.message;
  EXPECT_EQ(resp.status, 413);
  EXPECT_EQ(resp.header("connection"), "close");
  EXPECT_FALSE(handler_ran);
}

TEST(HttpServer, ChunkedBodyOverLimitGets413) {
  ServerOptions opts;
  opts.max_body_bytes = 8;
  ServerThread srv(opts, [](Request&, Responder respond) { respond(Response::text(200, "no")); });
  int fd = connect_blocking(srv.port());
  ASSERT_GE(fd, 0);
  send_all(
      fd,
      "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n");
  std::string all = read_to_close(fd);
  ::close(fd);
  EXPECT_EQ(all.rfind("HTTP/1.1 413 ", 0), 0u) << all;
}

TEST(HttpServer, SlowHeadGets408) {
  ServerOptions opts;
  opts.header_timeout = 100ms;
  ServerThread srv(opts, [](Request&, Responder respond) { respond(Response::text(200, "no")); });
  int fd = connect_blocking(srv.port());
  ASSERT_GE(fd, 0);
  auto t0 = std::chrono::steady_clock::now();
  send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\n");
  std::string all = read_to_close(fd);
  auto waited = std::chrono::steady_clock::now() - t0;
  ::close(fd);
  EXPECT_EQ(all.rfind("HTTP/1.1 408 ", 0), 0u) << all;
  EXPECT_NE(all.find("Connection: close\r\n"), std::string::npos);
  EXPECT_GE(waited, 90ms);
  EXPECT_LT(waited, 3s);
}

TEST(HttpServer, SilentConnectionClosesQuietlyAfterHeaderTimeout) {
  ServerOptions opts;
  opts.header_timeout = 100ms;
  ServerThread srv(opts, [](Request&, Responder respond) { respond(Response::text(200, "no")); });
  int fd = connect_blocking(srv.port());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(read_to_close(fd), "");
  ::close(fd);
}

// Bytes and the client's FIN already queued when the server first looks at the connection: one readable edge
// reports both, and the read that drains the bytes must not be the last (the end of the stream is behind it).
TEST(HttpServer, FinQueuedBehindTheBytesIsSeen) {
  core::EventLoop loop;
  ServerOptions opts;
  opts.listen = loopback_any_port();
  opts.header_timeout = 20s;
  Server server(loop, opts, [](Request&, Responder respond) { respond(Response::text(200, "unexpected")); });
  server.start();
  int fd = connect_blocking(server.local_address().port());
  ASSERT_GE(fd, 0);
  send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\nX-Half: ");
  ASSERT_EQ(::shutdown(fd, SHUT_WR), 0);
  std::this_thread::sleep_for(50ms);  // both on the server's side before its loop runs
  std::thread t([&] { run_loop(loop, 10s); });
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(read_to_close(fd), "");  // a half-sent head has nobody to answer: closed without a response
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s) << "the server waited for a timeout, not the FIN";
  ::close(fd);
  loop.post([&] { loop.stop(); });
  t.join();
}

TEST(HttpServer, IdleKeepAliveClosesQuietly) {
  ServerOptions opts;
  opts.idle_timeout = 100ms;
  ServerThread srv(opts, [](Request&, Responder respond) { respond(Response::text(200, "ok")); });
  int fd = connect_blocking(srv.port());
  ASSERT_GE(fd, 0);
  send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string all = read_to_close(fd);
  ::close(fd);
  EXPECT_EQ(body_of(all), "ok");  // one response, then a quiet close
  EXPECT_EQ(srv.open_connections(), 0u);
}

TEST(HttpServer, ParseErrorAnswersWithStatusAndCloses) {
  ServerThread srv({}, [](Request&, Responder respond) { respond(Response::text(200, "no")); });
  int fd = connect_blocking(srv.port());
  ASSERT_GE(fd, 0);
  send_all(fd, "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\nHost: t\r\n\r\n");
  std::string all = read_to_close(fd);
  ::close(fd);
  EXPECT_EQ(all.rfind("HTTP/1.1 400 ", 0), 0u) << all;
  EXPECT_NE(all.find("Connection: close\r\n"), std::string::npos);
  EXPECT_FALSE(body_of(all).empty());
}

TEST(HttpServer, OversizedHeadGets431) {
  ServerThread srv({}, [](Request&, Responder respond) { respond(Response::text(200, "no")); });
  int fd = connect_blocking(srv.port());
  ASSERT_GE(fd, 0);
  std::string head = "GET / HTTP/1.1\r\nHost: t\r\n";
  while (head.size() < 20000) head += "X-Filler: " + std::string(100, 'f') + "\r\n";
  send_all(fd, head + "\r\n");
  std::string all = read_to_close(fd);
  ::close(fd);
  EXPECT_EQ(all.rfind("HTTP/1.1 431 ", 0), 0u) << all.substr(0, 200);
}

TEST(HttpServer, Http10GetsCloseDelimitedStream) {
  ServerThread srv({}, [](Request&, Responder respond) {
    Response r;
    r.body_producer = [sent = false](char* buf, size_t) mutable -> size_t {
      if (sent) return 0;
      sent = true;
      std::memcpy(buf, "streamed", 8);
      return 8;
    };
    respond(std::move(r));
  });
  int fd = connect_blocking(srv.port());
  ASSERT_GE(fd, 0);
  send_all(fd, "GET / HTTP/1.0\r\n\r\n");
  std::string all = read_to_close(fd);
  ::close(fd);
  EXPECT_EQ(all.find("Transfer-Encoding"), std::string::npos) << all;
  EXPECT_EQ(body_of(all), "streamed");
}

TEST(HttpServer, KeepAliveReusesOneConnection) {
  core::EventLoop loop;
  ServerOptions opts;
  opts.listen = loopback_any_port();
  std::vector<uint16_t> peer_ports;
  Server server(loop, opts, [&](Request& req, Responder respond) {
    peer_ports.push_back(req.peer.port());
    respond(Response::text(200, "n=" + std::to_string(peer_ports.size())));
  });
  server.start();
  Client client(loop);
  std::vector<ClientResponse> responses;
  std::function<void()> next = [&] {
    ClientRequest req;
    req.target = "/k";
    client.request(server.local_address(), req, [&](ClientResponse r) {
      responses.push_back(std::move(r));
      if (responses.size() < 5) {
        next();
      } else {
        loop.stop();
      }
    });
  };
  next();
  run_loop(loop);
  ASSERT_EQ(responses.size(), 5u);
  for (size_t i = 0; i < responses.size(); ++i) {
    ASSERT_TRUE(responses[i].ok()) << responses[i].error.message;
    EXPECT_EQ(responses[i].body, "n=" + std::to_string(i + 1));
  }
  ASSERT_EQ(peer_ports.size(), 5u);
  for (uint16_t p : peer_ports) EXPECT_EQ(p, peer_ports.front());
  EXPECT_EQ(server.open_connections(), 1u);
}

TEST(HttpServer, DelayedResponseThroughTimer) {
  core::EventLoop loop;
  ServerOptions opts;
  opts.listen = loopback_any_port();
  Responder saved;
  core::Timer later(loop, [&] { saved(Response::text(200, "late")); });
  Server server(loop, opts, [&](Request&, Responder respond) {
    saved = std::move(respond);
    later.arm(100ms);
  });
  server.start();
  Client client(loop);
  auto t0 = std::chrono::steady_clock::now();
  ClientResponse resp = exchange(loop, client, server.local_address(), ClientRequest{});
  ASSERT_TRUE(resp.ok()) << resp.error.message;
  EXPECT_EQ(resp.body, "late");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 95ms);
}

TEST(HttpServer, ResponderAfterConnectionAndServerDiedIsHarmless) {
  core::EventLoop loop;
  ServerOptions opts;
  opts.listen = loopback_any_port();
  Responder saved;
  auto server = std::make_unique<Server>(loop, opts, [&](Request&, Responder respond) { saved = respond; });
  server->start();
  Client client(loop);
  ClientRequest req;
  req.timeout = 100ms;
  ClientResponse resp = exchange(loop, client, server->local_address(), req);
  EXPECT_EQ(resp.error.message, "timeout after 100 ms");
  EXPECT_EQ(resp.error.kind, "timeout");
  EXPECT_FALSE(resp.error.retry_safe());  // the time is spent
  ASSERT_TRUE(saved);
  saved(Response::text(200, "to a closed client"));  // the client is gone; the write fails or lands nowhere
  saved(Response::text(200, "twice"));               // a second call of the same responder is ignored
  server.reset();
  saved(Response::text(200, "after the server"));
}

TEST(HttpServer, ThrowingHandlerGets500) {
  core::EventLoop loop;
  ServerOptions opts;
  opts.listen = loopback_any_port();
  Server server(loop, opts, [](Request&, Responder) { throw std::runtime_error("boom"); });
  server.start();
  Client client(loop);
  ClientResponse resp = exchange(loop, client, server.local_address(), ClientRequest{});
  ASSERT_TRUE(resp.ok()) << resp.error.message;
  EXPECT_EQ(resp.status, 500);
}

TEST(HttpServer, StreamsFiftyMebibytesWithContentLength) {
  constexpr uint64_t kSize = 50ull * 1024 * 1024;
  core::EventLoop loop;
  ServerOptions opts;
  opts.listen = loopback_any_port();
  size_t calls = 0;
  Server server(loop, opts, [&](Request&, Responder respond) {
    Response r;
    r.content_length = kSize;
    r.body_producer = [&calls, offset = uint64_t{0}](char* buf, size_t cap) mutable {
      ++calls;
      size_t n = fill_pattern(buf, cap, offset);
      offset += n;
      return n;
    };
    respond(std::move(r));
  });
  server.start();
  Client client(loop);
  ClientResponse resp = exchange(loop, client, server.local_address(), ClientRequest{});
  ASSERT_TRUE(resp.ok()) << resp.error.message;
  EXPECT_EQ(resp.header("content-length"), std::to_string(kSize));
  ASSERT_EQ(resp.body.size(), kSize);
  EXPECT_TRUE(matches_pattern(resp.body));
  EXPECT_GE(calls, kSize / core::Buffer::kCapacity);  // never more than one buffer per call
}

// A producer whose bytes come from another thread answers kBodyNotYet and wakes the connection when they are
// there: the body arrives whole and in order, with Content-Length or chunked, and the connection asks nothing
// while it waits (a producer called while paused would see `waiting`).
TEST(HttpServer, ProducerThatIsNotReadyWakesTheConnection) {
  constexpr uint64_t kSize = 1024 * 1024 + 5;
  core::EventLoop loop;
  ServerOptions opts;
  opts.listen = loopback_any_port();
  int pauses = 0;
  int called_while_waiting = 0;
  std::vector<std::unique_ptr<core::Timer>> timers;
  Server server(loop, opts, [&](Request& req, Responder respond) {
    struct State {
      uint64_t offset = 0;
      bool waiting = false;
      bool ready = false;  // a "read" finished: up to 100 000 bytes may be produced
      std::function<void()> wake;
    };
    auto st = std::make_shared<State>();
    Response r;
    if (req.path == "/length") r.content_length = kSize;
    r.body_waker = [st](std::function<void()> wake) { st->wake = std::move(wake); };
    r.body_producer = [&, st](char* buf, size_t cap) -> size_t {
      if (st->waiting) ++called_while_waiting;
      if (st->offset == kSize) return 0;
      if (!st->ready) {
        // Every 100 000 bytes the bytes "come from another thread": a timer wakes the connection 2 ms later.
        st->waiting = true;
        ++pauses;
        auto& t = timers.emplace_back(std::make_unique<core::Timer>(loop, [st] {
          st->waiting = false;
          st->ready = true;
          st->wake();
        }));
        t->arm(2ms);
        return kBodyNotYet;
      }
      size_t want = std::min<uint64_t>({cap, kSize - st->offset, 100'000 - st->offset % 100'000});
      size_t n = fill_pattern(buf, want, st->offset);
      st->offset += n;
      if (st->offset % 100'000 == 0) st->ready = false;
      return n;
    };
    respond(std::move(r));
  });
  server.start();
  Client client(loop);
  ClientRequest chunked;
  chunked.target = "/chunked";
  ClientRequest length;
  length.target = "/length";
  std::vector<ClientResponse> responses =
      exchange_twice(loop, client, server.local_address(), length, chunked);
  ASSERT_EQ(responses.size(), 2u);
  for (const auto& resp : responses) {
    ASSERT_TRUE(resp.ok()) << resp.error.message;
    ASSERT_EQ(resp.body.size(), kSize);
    EXPECT_TRUE(matches_pattern(resp.body));
  }
  EXPECT_EQ(responses[0].header("content-length"), std::to_string(kSize));
  EXPECT_EQ(responses[1].header("transfer-encoding"), "chunked");
  EXPECT_GE(pauses, 2 * 11);
  EXPECT_EQ(called_while_waiting, 0);
}

// A wake that comes after the client went (and after the server) does nothing.
TEST(HttpServer, WakeAfterTheConnectionWentIsANoOp) {
  core::EventLoop loop;
  ServerOptions opts;
  opts.listen = loopback_any_port();
  std::function<void()> wake;
  bool asked = false;
  auto server = std::make_unique<Server>(loop, opts, [&](Request&, Responder respond) {
    Response r;
    r.content_length = 10;
    r.body_waker = [&](std::function<void()> w) { wake = std::move(w); };
    r.body_producer = [&](char*, size_t) -> size_t {
      asked = true;
      return kBodyNotYet;
    };
    respond(std::move(r));
  });
  server->start();
  ClientRequest req;
  req.timeout = 200ms;
  Client client(loop);
  ClientResponse resp = exchange(loop, client, server->local_address(), req);
  EXPECT_FALSE(resp.ok());  // timed out waiting for the body
  ASSERT_TRUE(asked);
  ASSERT_TRUE(wake);
  server.reset();
  wake();  // nothing left to wake
}

TEST(HttpServer, StreamsChunkedWithoutLength) {
  constexpr uint64_t kSize = 3 * 1024 * 1024 + 17;
  core::EventLoop loop;
  ServerOptions opts;
  opts.listen = loopback_any_port();
  Server server(loop, opts, [&](Request&, Responder respond) {
    Response r;
    r.body_producer = [offset = uint64_t{0}](char* buf, size_t cap) mutable {
      size_t n = fill_pattern(buf, std::min<uint64_t>(cap, kSize - offset), offset);
      offset += n;
      return n;
    };
    respond(std::move(r));
  });
  server.start();
  Client client(loop);
  // Two in a row: the connection must stay usable after a chunked body.
  std::vector<ClientResponse> responses =
      exchange_twice(loop, client, server.local_address(), ClientRequest{}, ClientRequest{});
  ASSERT_EQ(responses.size(), 2u);
  for (const auto& resp : responses) {
    ASSERT_TRUE(resp.ok()) << resp.error.message;
    EXPECT_EQ(resp.header("transfer-encoding"), "chunked");
    ASSERT_EQ(resp.body.size(), kSize);
    EXPECT_TRUE(matches_pattern(resp.body));
  }
  EXPECT_EQ(server.open_connections(), 1u);
}

struct CountingSink : BodySink {
  void data(std::string_view bytes) override {
    for (char c : bytes) all_u = all_u && c == 'u';
    size += bytes.size();
    ++calls;
  }
  uint64_t size = 0;
  size_t calls = 0;
  bool all_u = true;
};

TEST(HttpServer, BodySinkStreamsUploadPastTheGatherLimit) {
  constexpr size_t kSize = 20 * 1024 * 1024;
  core::EventLoop loop;
  ServerOptions opts;
  opts.listen = loopback_any_port();
  opts.max_body_bytes = 1024;  // a sink takes any size
  opts.body_sink_for = [](const Request& head) -> std::unique_ptr<BodySink> {
    if (head.path != "/upload") return nullptr;
    return std::make_unique<CountingSink>();
  };
  Server server(loop, opts, [](Request& req, Responder respond) {
    auto* sink = static_cast<CountingSink*>(req.body_sink);
    if (!sink) {
      respond(Response::text(500, "no sink"));
      return;
    }
    respond(Response::text(200, std::to_string(sink->size) + " " + std::to_string(req.body.size()) + " " +
                                    (sink->calls > 1 ? "streamed" : "one-piece") +
                                    (sink->all_u ? "" : " corrupt")));
  });
  server.start();
  Client client(loop);
  ClientRequest req;
  req.method = "PUT";
  req.target = "/upload";
  req.body = std::string(kSize, 'u');
  ClientResponse resp = exchange(loop, client, server.local_address(), req);
  ASSERT_TRUE(resp.ok()) << resp.error.message;
  EXPECT_EQ(resp.status, 200);
  EXPECT_EQ(resp.body, std::to_string(kSize) + " 0 streamed");
}

TEST(HttpServer, ShutdownFinishesInFlightAndClosesIdle) {
  core::EventLoop loop;
  ServerOptions opts;
  opts.listen = loopback_any_port();
  Server* server_ptr = nullptr;
  Responder slow;
  core::Timer finish_slow(loop, [&] { slow(Response::text(200, "slow done")); });
  size_t open_after_shutdown = 99;
  Server server(loop, opts, [&](Request& req, Responder respond) {
    if (req.path == "/slow") {
      slow = std::move(respond);
      server_ptr->shutdown();
      open_after_shutdown = server_ptr->open_connections();
      finish_slow.arm(50ms);
    } else {
      respond(Response::text(200, "fast"));
    }
  });
  server_ptr = &server;
  server.start();
  Client idle_client(loop);
  Client busy_client(loop);
  ClientResponse fast, slow_resp;
  ClientRequest fast_req;
  fast_req.target = "/fast";
  idle_client.request(server.local_address(), fast_req, [&](ClientResponse r) {
    fast = std::move(r);
    ClientRequest slow_req;
    slow_req.target = "/slow";
    busy_client.request(server.local_address(), slow_req, [&](ClientResponse r2) {
      slow_resp = std::move(r2);
      loop.stop();
    });
  });
  run_loop(loop);
  ASSERT_TRUE(fast.ok()) << fast.error.message;
  ASSERT_TRUE(slow_resp.ok()) << slow_resp.error.message;
  EXPECT_EQ(open_after_shutdown, 1u);  // the idle keep-alive connection went at once
  EXPECT_EQ(slow_resp.body, "slow done");
  EXPECT_EQ(slow_resp.header("connection"), "close");
}

TEST(HttpClient, ConnectRefused) {
  core::EventLoop loop;
  // A port that was just free: bind, learn it, close.
  uint16_t port;
  {
    core::Fd probe = core::listen_tcp(loopback_any_port(), false);
    port = core::SocketAddress::from_fd_local(probe.get())->port();
  }
  Client client(loop);
  ClientResponse resp = exchange(
      loop, client, *core::SocketAddress::parse("127.0.0.1:" + std::to_string(port)), ClientRequest{});
  EXPECT_FALSE(resp.ok());
  EXPECT_EQ(resp.status, 0);
  EXPECT_EQ(resp.error.message, "connect: Connection refused");
  EXPECT_EQ(resp.error.kind, "connect");
  EXPECT_EQ(resp.error.source, core::ErrorSource::kUpstream);
  EXPECT_TRUE(resp.error.retry_safe());  // nothing was sent
}

// A chunked response that the server writes a piece at a time, on a timer: what an etcd watch looks like.
struct PieceStream {
  std::vector<std::string> queue;
  bool ended = false;
  std::function<void()> wake;
  void push(std::string piece) {
    queue.push_back(std::move(piece));
    if (wake) wake();
  }
  void end() {
    ended = true;
    if (wake) wake();
  }
  Response response(const std::shared_ptr<PieceStream>& self) {
    Response r;
    r.headers.emplace_back("Content-Type", "application/json");
    r.body_waker = [self](std::function<void()> w) { self->wake = std::move(w); };
    r.body_producer = [self](char* buf, size_t cap) -> size_t {
      if (self->queue.empty()) return self->ended ? 0 : kBodyNotYet;
      std::string& front = self->queue.front();
      size_t n = std::min(cap, front.size());
      std::memcpy(buf, front.data(), n);
      front.erase(0, n);
      if (front.empty()) self->queue.erase(self->queue.begin());
      return n;
    };
    return r;
  }
};

TEST(HttpClient, StreamedBodyArrivesAsItIsSentAndOutlivesTheTimeout) {
  core::EventLoop loop;
  auto stream = std::make_shared<PieceStream>();
  int sent = 0;
  core::Timer ticker(loop, [&] {
    if (++sent <= 5) {
      stream->push("piece " + std::to_string(sent) + "\n");
      ticker.arm(30ms);
    } else {
      stream->end();
    }
  });
  ServerOptions opts;
  opts.listen = loopback_any_port();
  Server server(loop, opts, [&](Request& r, Responder respond) {
    if (r.method != "POST") return respond(Response::text(200, "plain"));
    respond(stream->response(stream));
    ticker.arm(30ms);
  });
  server.start();
  Client client(loop);
  ClientRequest req;
  req.method = "POST";
  req.body = "{}";
  req.timeout = 60ms;  // the head comes at once; the body takes about 180 ms
  std::vector<std::string> pieces;
  std::vector<int> sent_when_received;
  req.on_body = [&](const ClientResponse& head, std::string_view piece) {
    EXPECT_EQ(head.status, 200);
    EXPECT_EQ(head.header("content-type"), "application/json");
    pieces.emplace_back(piece);
    sent_when_received.push_back(sent);
  };
  // Then a gathered request, from the stream's `done`: it reuses the stream's connection, back in the pool.
  std::vector<ClientResponse> out =
      exchange_twice(loop, client, server.local_address(), req, ClientRequest{});
  ASSERT_EQ(out.size(), 2u);
  const ClientResponse& resp = out[0];
  ASSERT_TRUE(resp.ok()) << resp.error.message;
  EXPECT_EQ(resp.status, 200);
  EXPECT_EQ(resp.body, "");
  EXPECT_EQ(resp.header("transfer-encoding"), "chunked");
  std::string all;
  for (const auto& p : pieces) all += p;
  EXPECT_EQ(all, "piece 1\npiece 2\npiece 3\npiece 4\npiece 5\n");
  ASSERT_GE(pieces.size(), 5u) << "each piece is handed out when it arrives, not at the end";
  EXPECT_EQ(sent_when_received.front(), 1);
  ASSERT_TRUE(out[1].ok()) << out[1].error.message;
  EXPECT_EQ(out[1].body, "plain");
  EXPECT_EQ(server.open_connections(), 1u);
}

TEST(HttpClient, CancelFromOnBodyEndsTheStreamAndNoCallbackRunsAfter) {
  core::EventLoop loop;
  auto stream = std::make_shared<PieceStream>();
  core::Timer ticker(loop, [&] {
    stream->push("more\n");
    ticker.arm(5ms);
  });
  ServerOptions opts;
  opts.listen = loopback_any_port();
  Server server(loop, opts, [&](Request&, Responder respond) {
    respond(stream->response(stream));
    ticker.arm(5ms);
  });
  server.start();
  Client client(loop);
  ClientRequest req;
  int pieces = 0;
  bool done_ran = false;
  Client::RequestId id = 0;
  req.on_body = [&](const ClientResponse&, std::string_view) {
    ++pieces;
    client.cancel(id);
    client.cancel(id);  // a second cancel of a finished exchange is ignored
  };
  id = client.request(server.local_address(), req, [&](ClientResponse) { done_ran = true; });
  EXPECT_NE(id, 0u);
  core::Timer check(loop, [&] { loop.stop(); });
  check.arm(150ms);
  run_loop(loop);
  EXPECT_EQ(pieces, 1);
  EXPECT_FALSE(done_ran);
  EXPECT_EQ(server.open_connections(), 0u) << "the cancelled stream's connection is closed";
}

TEST(HttpClient, CancelBeforeTheResponseOrOfAFailedConnect) {
  core::EventLoop loop;
  std::vector<Responder> held;
  ServerOptions opts;
  opts.listen = loopback_any_port();
  Server server(loop, opts, [&](Request&, Responder respond) { held.push_back(std::move(respond)); });
  server.start();
  uint16_t closed_port;
  {
    core::Fd probe = core::listen_tcp(loopback_any_port(), false);
    closed_port = core::SocketAddress::from_fd_local(probe.get())->port();
  }
  Client client(loop);
  int done_runs = 0;
  auto waiting =
      client.request(server.local_address(), ClientRequest{}, [&](ClientResponse) { ++done_runs; });
  auto refused = client.request(*core::SocketAddress::parse("127.0.0.1:" + std::to_string(closed_port)),
                                ClientRequest{}, [&](ClientResponse) { ++done_runs; });
  client.cancel(refused);
  core::Timer later(loop, [&] {
    client.cancel(waiting);
    for (auto& respond : held) respond(Response::text(200, "late"));
  });
  later.arm(50ms);
  core::Timer check(loop, [&] { loop.stop(); });
  check.arm(150ms);
  run_loop(loop);
  EXPECT_EQ(done_runs, 0);
  EXPECT_EQ(held.size(), 1u);
}

// A server that reads each request and closes without a byte of response: a GET may be sent again (nothing
// answered it), a POST may not (it may have taken effect); a half response is a bad response.
TEST(HttpClient, FailureKindsSayWhetherARetryIsSafe) {
  core::Fd listener = core::listen_tcp(loopback_any_port(), false);
  auto addr = *core::SocketAddress::from_fd_local(listener.get());
  ::fcntl(listener.get(), F_SETFL,
          ::fcntl(listener.get(), F_GETFL) & ~O_NONBLOCK);  // the thread waits in accept
  std::atomic<int> served{0};
  std::thread server([&] {
    for (int i = 0; i < 3; ++i) {
      int fd = ::accept(listener.get(), nullptr, nullptr);
      if (fd < 0) return;
      char buf[4096];
      (void)::recv(fd, buf, sizeof buf, 0);
      if (i == 2) {
        const char half[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        (void)::send(fd, half, sizeof half - 1, MSG_NOSIGNAL);
      }
      ::close(fd);
      ++served;
    }
  });
  auto once = [&addr](ClientRequest req) {  // a loop runs once: a fresh one per request
    core::EventLoop loop;
    Client client(loop);
    return exchange(loop, client, addr, std::move(req));
  };
  ClientRequest get;
  ClientResponse r1 = once(get);
  EXPECT_EQ(r1.error.kind, "reset") << r1.error.message;
  EXPECT_TRUE(r1.error.retry_safe());
  ClientRequest post;
  post.method = "POST";
  post.body = "x";
  ClientResponse r2 = once(post);
  EXPECT_EQ(r2.error.kind, "reset") << r2.error.message;
  EXPECT_FALSE(r2.error.retry_safe());
  ClientResponse r3 = once(get);
  EXPECT_EQ(r3.error.kind, "bad_response") << r3.error.message;
  EXPECT_FALSE(r3.error.retry_safe());
  EXPECT_FALSE(r3.ok());
  server.join();
  EXPECT_EQ(served.load(), 3);
}

TEST(HttpClient, ServerClosingIdleConnectionIsNoticed) {
  core::EventLoop loop;
  ServerOptions opts;
  opts.listen = loopback_any_port();
  opts.idle_timeout = 50ms;
  std::vector<uint16_t> peer_ports;
  Server server(loop, opts, [&](Request& req, Responder respond) {
    peer_ports.push_back(req.peer.port());
    respond(Response::text(200, "ok"));
  });
  server.start();
  Client client(loop);
  ClientResponse first, second;
  core::Timer again(loop, [&] {
    client.request(server.local_address(), ClientRequest{}, [&](ClientResponse r) {
      second = std::move(r);
      loop.stop();
    });
  });
  client.request(server.local_address(), ClientRequest{}, [&](ClientResponse r) {
    first = std::move(r);
    again.arm(200ms);  // the server closes the idle connection after 50 ms
  });
  run_loop(loop);
  ASSERT_TRUE(first.ok()) << first.error.message;
  ASSERT_TRUE(second.ok()) << second.error.message;
  ASSERT_EQ(peer_ports.size(), 2u);
  EXPECT_NE(peer_ports[0], peer_ports[1]);
}

TEST(HttpClient, DestroyingClientCompletesOutstandingRequests) {
  core::EventLoop loop;
  ServerOptions opts;
  opts.listen = loopback_any_port();
  Responder never;
  Server server(loop, opts, [&](Request&, Responder respond) { never = std::move(respond); });
  server.start();
  auto client = std::make_unique<Client>(loop);
  ClientResponse resp;
  bool called = false;
  client->request(server.local_address(), ClientRequest{}, [&](ClientResponse r) {
    resp = std::move(r);
    called = true;
  });
  core::Timer kill(loop, [&] {
    client.reset();
    loop.stop();
  });
  kill.arm(50ms);
  run_loop(loop);
  EXPECT_TRUE(called);
  EXPECT_FALSE(resp.ok());
}

TEST(HttpClient, FetchBlocking) {
  ServerThread srv({}, [](Request& req, Responder respond) {
    respond(Response::json(200, "{\"method\":\"" + req.method + "\",\"body\":\"" + req.body +
                                    "\",\"host\":\"" + std::string(req.header("host")) + "\"}"));
  });
  std::string url = "http://127.0.0.1:" + std::to_string(srv.port()) + "/x";
  ClientResponse resp = fetch_blocking("POST", url, "abc");
  ASSERT_TRUE(resp.ok()) << resp.error.message;
  EXPECT_EQ(resp.status, 200);
  EXPECT_EQ(resp.header("content-type"), "application/json");
  EXPECT_EQ(resp.body, "{\"method\":\"POST\",\"body\":\"abc\",\"host\":\"127.0.0.1:" +
                           std::to_string(srv.port()) + "\"}");

  ClientResponse bad = fetch_blocking("GET", "ftp://x/");
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.error.message.find("bad URL"), std::string::npos);
}

}  // namespace
}  // namespace cumulo::http
