#include "stack/internal/gateway_config.h"

#include "core/config.h"

namespace cumulo::stack::internal {

namespace {

constexpr char kStoreGroup[] = "objstore";

std::string group_route(const GroupSpec& g) {
  std::string y;
  y += "  - name: " + core::yaml_quoted(g.name) + "\n";
  y += "    path_prefix: " + core::yaml_quoted(g.path_prefix) + "\n";
  y += "    target_group: " + core::yaml_quoted(g.name) + "\n";
  return y;
}

// A group's zone-aware target group, with the stack's health check of its instances.
std::string group_target_group(const StackSpec& stack, const GroupSpec& g,
                               const std::vector<GatewayTarget>& targets) {
  const HealthCheckSpec& hc = stack.gateway.health_check;
  std::string y;
  y += "  - name: " + core::yaml_quoted(g.name) + "\n";
  y += "    balance: " + core::yaml_quoted(stack.gateway.balance) + "\n";
  y += "    zone_aware: true\n";
  y += "    drain_timeout: " + core::yaml_quoted(core::format_duration(g.drain_timeout)) + "\n";
  y += "    health_check:\n";
  y += "      path: " + core::yaml_quoted(hc.path) + "\n";
  y += "      expected_codes: " + core::yaml_quoted(hc.expected_codes) + "\n";
  y += "      interval: " + core::yaml_quoted(core::format_duration(hc.interval)) + "\n";
  y += "      timeout: " + core::yaml_quoted(core::format_duration(hc.timeout)) + "\n";
  y += "      healthy_threshold: " + std::to_string(hc.healthy_threshold) + "\n";
  y += "      unhealthy_threshold: " + std::to_string(hc.unhealthy_threshold) + "\n";
  y += "    targets:\n";
  bool any = false;
  for (const GatewayTarget& t : targets) {
    if (t.group != g.name) continue;
    y += "      - address: " + core::yaml_quoted(t.address) + "\n";
    y += "        zone: " + core::yaml_quoted(t.zone) + "\n";
    any = true;
  }
  if (!any) y.replace(y.size() - 1, 1, " []\n");
  return y;
}

}  // namespace

std::string render_gateway_config(const StackSpec& stack, const std::vector<GatewayTarget>& targets) {
  const GatewaySpec& gw = stack.gateway;
  std::string y;
  y +=
      "# Written by `cumulo up` for stack " + core::yaml_quoted(stack.name) + " from " + stack.source + ".\n";
  y += "# Rewritten on every start: change the stack file instead.\n";
  if (!gw.zone.empty()) y += "zone: " + core::yaml_quoted(gw.zone) + "\n";
  if (!gw.server_id.empty()) y += "server_id: " + core::yaml_quoted(gw.server_id) + "\n";
  if (!gw.monitor_uri.empty()) y += "monitor_uri: " + core::yaml_quoted(gw.monitor_uri) + "\n";
  if (gw.workers > 0) y += "workers: " + std::to_string(gw.workers) + "\n";
  y += "log_level: " + core::yaml_quoted(gw.log_level) + "\n";
  y += "access_log: " + core::yaml_quoted(gw.access_log) + "\n";
  y += "admin:\n  listen: " + core::yaml_quoted(gw.admin) + "\n";
  y += "limits:\n  drain_timeout: " + core::yaml_quoted(core::format_duration(gw.drain_timeout)) + "\n";
  y += "listeners:\n  - name: \"public\"\n    listen: " + core::yaml_quoted(gw.listen) + "\n";
  if (!gw.tls_listen.empty()) {
    y += "  - name: \"https\"\n    listen: " + core::yaml_quoted(gw.tls_listen) + "\n";
    y += "    tls:\n      certificates:\n        - cert: " + core::yaml_quoted(gw.tls_cert) +
         "\n          key: " + core::yaml_quoted(gw.tls_key) + "\n";
  }
  y += "routes:\n";
  for (const GroupSpec& g : stack.groups) {
    if (!g.internal) y += group_route(g);
  }
  const ObjectStoreSpec& store = stack.object_store;
  for (const BucketSpec& b : store.buckets) {
    if (b.route.empty()) continue;
    y += "  - name: " + core::yaml_quoted("bucket-" + b.name) + "\n";
    y += "    path_prefix: " + core::yaml_quoted(b.route) + "\n";
    y += "    target_group: " + core::yaml_quoted(kStoreGroup) + "\n";
    y += "    bucket: " + core::yaml_quoted(b.name) + "\n";
    if (!b.cache_control.empty())
      y += "    default_cache_control: " + core::yaml_quoted(b.cache_control) + "\n";
    if (b.cache) {
      y += "    cache:\n      enabled: true\n";
      if (b.cache_ttl.count() > 0)
        y += "      default_ttl: " + core::yaml_quoted(core::format_duration(b.cache_ttl)) + "\n";
    }
  }
  y += "target_groups:\n";
  if (store.enabled && !store.buckets.empty()) {
    // Any node serves any object (they replicate); the gateway prefers its own zone's. A 4xx still shows the
    // node answering S3 requests: anonymous "GET /" is AccessDenied by design.
    y += "  - name: " + core::yaml_quoted(kStoreGroup) + "\n";
    y += "    zone_aware: true\n";
    y += "    health_check:\n      path: \"/\"\n      expected_codes: \"200-499\"\n";
    y += "      interval: " + core::yaml_quoted(core::format_duration(gw.health_check.interval)) + "\n";
    y += "    targets:\n";
    for (const StoreNodeSpec& n : store.nodes) {
      y += "      - address: " + core::yaml_quoted(n.listen) + "\n";
      y += "        zone: " + core::yaml_quoted(n.zone) + "\n";
    }
  }
  for (const GroupSpec& g : stack.groups) {
    if (!g.internal) y += group_target_group(stack, g, targets);
  }
  return y;
}

std::string render_internal_lb_config(const StackSpec& stack, const std::vector<GatewayTarget>& targets) {
  const GatewaySpec& gw = stack.gateway;
  const InternalLbSpec& lb = stack.internal_lb;
  std::string y;
  y += "# Written by `cumulo up` for the internal load balancer of stack " + core::yaml_quoted(stack.name) +
       " from " + stack.source + ".\n";
  y += "# Rewritten on every start: change the stack file instead.\n";
  y += "zone: " + core::yaml_quoted(lb.zone) + "\n";
  y += "workers: 1\n";
  y += "log_level: " + core::yaml_quoted(gw.log_level) + "\n";
  y += "access_log: \"off\"\n";
  y += "admin:\n  listen: " + core::yaml_quoted(lb.admin) + "\n";
  y += "limits:\n  drain_timeout: " + core::yaml_quoted(core::format_duration(gw.drain_timeout)) + "\n";
  y += "listeners:\n  - name: \"internal\"\n    listen: " + core::yaml_quoted(lb.listen) + "\n";
  y += "routes:\n";
  for (const GroupSpec& g : stack.groups) {
    if (g.internal) y += group_route(g);
  }
  y += "target_groups:\n";
  for (const GroupSpec& g : stack.groups) {
    if (g.internal) y += group_target_group(stack, g, targets);
  }
  return y;
}

std::string render_edge_config(const StackSpec& stack, const EdgeSpec& edge) {
  std::string origin = stack.gateway.listen;
  for (const EdgeSpec& e : stack.edges) {
    if (e.name == edge.shield) origin = e.listen;
  }
  // A wildcard listener is reached through loopback.
  if (origin.rfind("0.0.0.0:", 0) == 0) origin = "127.0.0.1:" + origin.substr(8);
  if (origin.rfind("[::]:", 0) == 0) origin = "[::1]:" + origin.substr(5);
  std::string y;
  y += "# Written by `cumulo up` for edge " + core::yaml_quoted(edge.name) + " of stack " +
       core::yaml_quoted(stack.name) + " from " + stack.source + ".\n";
  y += "# Rewritten on every start: change the stack file instead.\n";
  y += "workers: " + std::to_string(edge.workers) + "\n";
  y += "log_level: " + core::yaml_quoted(stack.gateway.log_level) + "\n";
  y += "admin:\n  listen: " + core::yaml_quoted(edge.admin) + "\n";
  y += "cache:\n  max_bytes: " + std::to_string(edge.cache_max_bytes) + "\n";
  y += "listeners:\n  - name: \"public\"\n    listen: " + core::yaml_quoted(edge.listen) + "\n";
  y += "routes:\n  - name: \"origin\"\n    path_prefix: \"/\"\n    target_group: \"origin\"\n";
  y += "    cache:\n      enabled: true\n";
  if (edge.default_ttl.count() > 0)
    y += "      default_ttl: " + core::yaml_quoted(core::format_duration(edge.default_ttl)) + "\n";
  y += "target_groups:\n  - name: \"origin\"\n    targets:\n      - address: " + core::yaml_quoted(origin) +
       "\n";
  return y;
}

}  // namespace cumulo::stack::internal
