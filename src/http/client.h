// An HTTP/1.1 client on the event loop with keep-alive connection pooling per address: used by health checks,
// the CLI (through fetch_blocking) and tests.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/event_loop.h"
#include "core/net.h"
#include "http/server.h"

namespace cumulo::http {

struct ClientRequest {
  std::string method = "GET";
  std::string target = "/";
  std::string host;  // Host header; the address when empty
  HeaderList headers;
  std::string body;
  std::chrono::milliseconds timeout{5000};  // whole exchange, connect included
};

struct ClientResponse {
  int status = 0;  // 0 when `error` is set
  HeaderList headers;
  std::string body;
  std::string error;  // "connect: Connection refused", "timeout after 5000 ms", "bad response: ..."
  std::string_view header(std::string_view name) const;
  bool ok() const { return error.empty(); }
};

struct ClientOptions {
  size_t max_idle_per_address = 8;
  std::chrono::milliseconds idle_timeout{30'000};
  size_t max_response_bytes = 64 * 1024 * 1024;
};

class Client {
 public:
  explicit Client(core::EventLoop& loop, ClientOptions options = {});
  ~Client();  // outstanding requests complete with an error before it returns
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // `done` runs once on the loop thread.
  void request(const core::SocketAddress& to, ClientRequest req, std::function<void(ClientResponse)> done);

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
