// The gateway config that `cumulo up` writes for its stack (schema: docs/configuration.md, "Gateway").
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "stack/stack_file.h"

namespace cumulo::stack::internal {

// The path each gateway of a stack answers itself (200, or 503 while draining), never routed: what the
// elastic IP keeper checks.
inline constexpr char kGatewayMonitorUri[] = "/.cumulo/gateway";

struct GatewayTarget {
  std::string group;
  std::string zone;
  std::string address;  // "127.0.0.1:40123"
};

// One listener, the admin API, one zone-aware target group per public stack group with its targets (none when
// the scaling groups register their instances through the admin API, as `cumulo up` does), and one route per
// group by its path prefix. Every string is double-quoted, so that values such as `off` or `yes` stay
// strings.
std::string render_gateway_config(const StackSpec& stack, const std::vector<GatewayTarget>& targets);

// The internal load balancer's gateway config (`internal_lb:`): one listener, and the route and target group
// of each internal group, which the public gateway's config leaves out.
std::string render_internal_lb_config(const StackSpec& stack, const std::vector<GatewayTarget>& targets);

// An edge's gateway config: one cached route to the stack's gateway, or to its shield edge.
std::string render_edge_config(const StackSpec& stack, const EdgeSpec& edge);

}  // namespace cumulo::stack::internal
