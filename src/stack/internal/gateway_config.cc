#include "stack/internal/gateway_config.h"

#include "core/log.h"

namespace cumulo::stack::internal {

namespace {

// A YAML double-quoted scalar: JSON's escapes are a subset of YAML's (YAML 1.2, section 7.3.1).
std::string quoted(std::string_view s) {
  std::string out = "\"";
  core::json_escape_to(out, s);
  out += '"';
  return out;
}

}  // namespace

std::string format_duration(std::chrono::milliseconds d) {
  const long long ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string render_gateway_config(const StackSpec& stack, const std::vector<GatewayTarget>& targets) {
  const GatewaySpec& gw = stack.gateway;
  std::string y;
  y += "# Written by `cumulo up` for stack " + quoted(stack.name) + " from " + stack.source + ".\n";
  y += "# Rewritten on every start: change the stack file instead.\n";
  if (!gw.zone.empty()) y += "zone: " + quoted(gw.zone) + "\n";
  if (gw.workers > 0) y += "workers: " + std::to_string(gw.workers) + "\n";
  y += "log_level: " + quoted(gw.log_level) + "\n";
  y += "access_log: " + quoted(gw.access_log) + "\n";
  y += "admin:\n  listen: " + quoted(gw.admin) + "\n";
  y += "limits:\n  drain_timeout: " + quoted(format_duration(gw.drain_timeout)) + "\n";
  y += "listeners:\n  - name: \"public\"\n    listen: " + quoted(gw.listen) + "\n";
  y += "routes:\n";
  for (const GroupSpec& g : stack.groups) {
    y += "  - name: " + quoted(g.name) + "\n";
    y += "    path_prefix: " + quoted(g.path_prefix) + "\n";
    y += "    target_group: " + quoted(g.name) + "\n";
  }
  y += "target_groups:\n";
  const HealthCheckSpec& hc = gw.health_check;
  for (const GroupSpec& g : stack.groups) {
    y += "  - name: " + quoted(g.name) + "\n";
    y += "    balance: " + quoted(gw.balance) + "\n";
    y += "    zone_aware: true\n";
    y += "    drain_timeout: " + quoted(format_duration(g.drain_timeout)) + "\n";
    y += "    health_check:\n";
    y += "      path: " + quoted(hc.path) + "\n";
    y += "      expected_codes: " + quoted(hc.expected_codes) + "\n";
    y += "      interval: " + quoted(format_duration(hc.interval)) + "\n";
    y += "      timeout: " + quoted(format_duration(hc.timeout)) + "\n";
    y += "      healthy_threshold: " + std::to_string(hc.healthy_threshold) + "\n";
    y += "      unhealthy_threshold: " + std::to_string(hc.unhealthy_threshold) + "\n";
    y += "    targets:\n";
    bool any = false;
    for (const GatewayTarget& t : targets) {
      if (t.group != g.name) continue;
      y += "      - address: " + quoted(t.address) + "\n";
      y += "        zone: " + quoted(t.zone) + "\n";
      any = true;
    }
    if (!any) y.replace(y.size() - 1, 1, " []\n");
  }
  return y;
}

}  // namespace cumulo::stack::internal
