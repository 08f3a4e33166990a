// An HTTP/1.1 server on the event loop for control planes and applications: the admin APIs of the gateway,
// DNS and database tier, the stack's control API, the object store's S3 API (one server per object-store
// worker) and the demo web application. The gateway's proxy path does not use it: it has its own streaming
// loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/event_loop.h"
#include "core/net.h"
#include "http/wire/h1.h"

namespace cumulo::http {

class TlsServerContext;
class BodySink;
// The value of the first header named `name` (case-insensitive) in `headers`; empty when absent. The lookup
// of Request::header and ClientResponse::header.
std::string_view header_value(const HeaderList& headers, std::string_view name);

struct Request {
  std::string method;
  std::string target;  // as sent
  std::string path;    // percent-decoding is the handler's business
  std::string query;
  HeaderList headers;
  std::string body;  // empty when a BodySink took the body
  core::SocketAddress peer;
  // The sink ServerOptions::body_sink_for gave for this request, so the handler can read what it gathered;
  // owned by the server until the response is sent.
  BodySink* body_sink = nullptr;
  // Case-insensitive; empty when absent.
  std::string_view header(std::string_view name) const;
  // Value of a query parameter (not decoded), empty when absent.
  std::string_view query_param(std::string_view name) const;
};

// A body producer's answer when it has no bytes yet but is not at the end (they are being read on another
// thread): the connection stops asking until the wake function Response::body_waker received is called.
inline constexpr size_t kBodyNotYet = SIZE_MAX;

struct Response {
  int status = 200;
  HeaderList headers;  // Content-Length/Transfer-Encoding/Connection are added by the server
  std::string body;
  // Streams the body instead of `body`: called when the socket can take more, fills up to `cap` bytes and
  // returns how many; 0 means the end, kBodyNotYet that more will come. With content_length >= 0 that many
  // bytes are sent, otherwise chunked.
  std::function<size_t(char* buf, size_t cap)> body_producer;
  int64_t content_length = -1;
  // For a producer that may answer kBodyNotYet: called once, on the loop, before the producer's first call,
  // with the function that makes the connection ask the producer again. That function is for the loop's
  // thread and does nothing once this response is over or its connection gone, so it may outlive both.
  std::function<void(std::function<void()> wake)> body_waker;

  static Response text(int status, std::string body, std::string content_type = "text/plain; charset=utf-8");
  static Response json(int status, std::string body);
};

// Called exactly once per request, on the loop thread, now or later (a slow handler keeps a copy).
using Responder = std::function<void(Response)>;
using Handler = std::function<void(Request& request, Responder respond)>;

// Receives a request body as it streams in, instead of it being gathered into Request::body.
class BodySink {
 public:
  virtual ~BodySink() = default;
  virtual void data(std::string_view bytes) = 0;
};

struct ServerOptions {
  core::SocketAddress listen;
  size_t max_body_bytes = 8 * 1024 * 1024;           // gathered bodies; over it: 413
  std::chrono::milliseconds header_timeout{10'000};  // 408 when the head has not arrived by then
  // Keep-alive connections with no request; also the longest pause while a body streams in or a response out.
  std::chrono::milliseconds idle_timeout{60'000};
  TlsServerContext* tls = nullptr;  // not owned; HTTPS when set
  // SO_REUSEPORT: one server per worker loop, each with its own listening socket on the same address.
  bool reuse_port = false;
  // When set and it returns a sink for a request head, the body streams into it (any size) and the handler
  // runs at the end of the body.
  std::function<std::unique_ptr<BodySink>(const Request& head)> body_sink_for;
};

class Server {
 public:
  Server(core::EventLoop& loop, ServerOptions options, Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void start();  // binds and listens; throws std::runtime_error naming the address on failure
  core::SocketAddress local_address() const;  // the bound address (port 0 resolved)
  // Stops accepting; open connections finish their current request and close.
  void shutdown();
  // Any thread.
  size_t open_connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cumulo::http
