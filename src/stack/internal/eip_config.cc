#include "stack/internal/eip_config.h"

#include "core/config.h"
#include "net/net.h"
#include "stack/internal/gateway_config.h"

namespace cumulo::stack::internal {

std::string render_eip_keeper_config(const StackSpec& stack, const std::vector<KeeperGateway>& gateways,
                                     const std::string& router_ns, const std::string& admin,
                                     const std::string& state_file) {
  std::string y;
  y += "# Written by `cumulo up` for the elastic IP keeper of stack " + core::yaml_quoted(stack.name) +
       " from " + stack.source + ".\n";
  y += "# Rewritten on every start: change the stack file instead. It runs on the host (it enters the\n";
  y += "# gateways' and the router's namespaces to move addresses); its admin API is on the host's "
       "loopback.\n";
  y += "stack: " + core::yaml_quoted(stack.name) + "\n";
  y += "admin: " + core::yaml_quoted(admin) + "\n";
  y += "state_file: " + core::yaml_quoted(state_file) + "\n";
  y += "router_namespace: " + core::yaml_quoted(router_ns) + "\n";
  y += "log_level: " + core::yaml_quoted(stack.gateway.log_level) + "\n";
  y += "lease_ttl: \"3s\"\n";
  y += "drain_timeout: " + core::yaml_quoted(core::format_duration(stack.gateway.drain_timeout)) + "\n";
  y += "check:\n";
  y += "  path: " + core::yaml_quoted(kGatewayMonitorUri) + "\n";
  y += "  interval: \"100ms\"\n  timeout: \"250ms\"\n  healthy_threshold: 2\n  unhealthy_threshold: 2\n";
  y += "gateways:\n";
  for (const KeeperGateway& g : gateways) {
    y += "  - id: " + core::yaml_quoted(g.id) + "\n";
    y += "    namespace: " + core::yaml_quoted(g.ns) + "\n";
    y += "    address: " + core::yaml_quoted(net::ipv4_text(g.address)) + "\n";
    y += "    port: " + std::to_string(g.port) + "\n";
    y += "    router_interface: " + core::yaml_quoted(g.router_interface) + "\n";
    y += "    admin: " + core::yaml_quoted(g.admin) + "\n";
  }
  y += "elastic_ips:\n";
  for (const ElasticIpSpec& e : stack.elastic_ips) {
    y += "  - name: " + core::yaml_quoted(e.name) + "\n";
    y += "    address: " + core::yaml_quoted(e.address) + "\n";
    y += "    gateways: [";
    for (size_t i = 0; i < e.gateways.size(); ++i) y += (i ? ", " : "") + core::yaml_quoted(e.gateways[i]);
    y += "]\n";
  }
  return y;
}

}  // namespace cumulo::stack::internal
