// An HTTP/1.1 client on the event loop with keep-alive connection pooling per address: used by health checks,
// the CLI (through fetch_blocking) and tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/event_loop.h"
#include "core/net.h"
#include "core/result.h"
#include "http/server.h"
#include "http/wire/h1.h"

namespace cumulo::http {

struct ClientResponse;

struct ClientRequest {
  std::string method = "GET";
  std::string target = "/";
  std::string host;  // Host header; the address when empty
  HeaderList headers;
  std::string body;
  // The whole exchange, connect included; for a streamed response, up to the end of its head only.
  std::chrono::milliseconds timeout{5000};
  // Streams the response body instead of gathering it (an etcd watch: a chunked response that lasts as long
  // as the watch): called on the loop thread with each piece of the body as it arrives, `head` holding the
  // status and headers (its body empty). `piece` is valid during the call. `done` still runs once: at the
  // end of the body (with the head, body empty) or on an error, possibly after pieces. No size limit applies;
  // after the head no timeout does either: the caller ends a stream it no longer wants with Client::cancel.
  std::function<void(const ClientResponse& head, std::string_view piece)> on_body;
};

// Why an exchange failed. error.kind is one of:
//   connect       the connection could not be made (nothing was sent: retry safe)
//   reset         the connection ended, or failed, before any byte of a response (retry safe for an
//   idempotent
//                 method: RFC 9110 section 9.2.2)
//   timeout       the whole exchange took longer than the request's timeout (not retried: the time is spent)
//   bad_response  the server's bytes are no HTTP/1.1 response, or it ended in the middle of one
//   too_large     the response is over ClientOptions::max_response_bytes
//   bad_request   the request could not be sent as asked (a head over the buffer, a URL fetch_blocking
//                 cannot use)
//   closed        the client was destroyed before the response
// error.message says what happened, for logs: "connect: Connection refused", "timeout after 5000 ms".
struct ClientResponse {
  int status = 0;  // 0 when `error` is set
  HeaderList headers;
  std::string body;
  core::Error error;  // error.kind empty on success
  std::string_view header(std::string_view name) const;
  bool ok() const { return error.kind.empty(); }
  // The status and headers as a parsed head (views into `headers`, valid while it is unchanged), for code
  // that judges a response head the way it judges one the parser read (the cache). Headers beyond
  // http::kMaxHeaders are left out; the body is described as its Content-Length.
  ResponseHead head_view() const;
};

struct ClientOptions {
  size_t max_idle_per_address = 8;
  std::chrono::milliseconds idle_timeout{30'000};
  size_t max_response_bytes = 64 * 1024 * 1024;
  // Starts a connection (non-blocking, as core::connect_tcp does); empty: core::connect_tcp. `cumulo up` in
  // network mode opens its health probes' sockets inside a namespace this way.
  std::function<core::Fd(const core::SocketAddress&, int* error)> connect;
};

class Client {
 public:
  explicit Client(core::EventLoop& loop, ClientOptions options = {});
  ~Client();  // outstanding requests complete with an error before it returns
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // `done` runs once on the loop thread, never inside request(). The id names the exchange for cancel().
  using RequestId = uint64_t;
  RequestId request(const core::SocketAddress& to, ClientRequest req,
                    std::function<void(ClientResponse)> done);
  // Ends an exchange that has not completed: its connection is closed and neither `done` nor `on_body` runs
  // for it afterwards. May be called from the exchange's own on_body; an id that is finished or unknown is
  // ignored.
  void cancel(RequestId id);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One request on a private event loop, for command-line tools and tests. "http://127.0.0.1:9901/targets"
// style URLs (http only, numeric host or localhost).
ClientResponse fetch_blocking(std::string_view method, std::string_view url, std::string body = {},
                              HeaderList headers = {},
                              std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace cumulo::http
