// The control API of `cumulo up` (docs/scaling.md): status, instances, desired capacity, events and custom
// metrics, as JSON over HTTP on a loopback address, with a bearer token.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/result.h"
#include "http/server.h"
#include "scaling/scaling.h"

namespace cumulo::stack::internal {

struct ControlContext {
  std::string stack_name;
  std::string token;
  std::vector<scaling::ScalingGroup*> groups;
  scaling::EventLog* events = nullptr;
  std::function<scaling::TimePoint()> now;
  std::function<void()> after_change;  // desired changed: act on it now rather than at the next tick
  // Network mode: applies the stack file's security groups again (POST /v1/network/reload); returns what it
  // did, or why it did nothing. Empty in loopback mode.
  std::function<core::Result<std::string, core::Error>()> reload_network;
};

http::Response handle_control_request(const http::Request& request, const ControlContext& context);

// An instance as JSON, the fields every view of it shares: id, group, zone, address, pid, state and restarts.
// GET /v1/instances adds its start and usage, the supervisor's stack.json its log file.
nlohmann::json instance_json(const scaling::InstanceView& instance);

// "2026-11-23T16:00:00.123Z".
std::string iso_utc(std::chrono::system_clock::time_point t);

// 32 random bytes as hex, from /dev/urandom; throws std::runtime_error when it cannot be read.
std::string random_token();

}  // namespace cumulo::stack::internal
