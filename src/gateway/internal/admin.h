// The admin API (docs/admin-api.md) on a loopback-only port, served by the control loop.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>

#include "core/event_loop.h"
#include "core/net.h"
#include "http/server.h"

namespace cumulo::gateway {

class Control;

class Admin {
 public:
  Admin(Control& control, core::EventLoop& loop,
        const core::SocketAddress& listen);  // throws if it cannot listen
  ~Admin();

 private:
  void handle(http::Request& req, http::Responder respond);
  nlohmann::json stats_json() const;
  nlohmann::json drain_json() const;
  nlohmann::json eips_json() const;
  Control& control_;
  std::unique_ptr<http::Server> server_;
};

}  // namespace cumulo::gateway
