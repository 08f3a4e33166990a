// The elastic IP keeper's config that `cumulo up` writes for its stack (schema: docs/configuration.md,
// "Elastic IP keeper").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "stack/stack_file.h"

namespace cumulo::stack::internal {

// A gateway as the keeper sees it: its namespace and address in the VPC, the router's end of its link, the
// port its health is checked on, and its admin API on the host.
struct KeeperGateway {
  std::string id;
  std::string ns;
  uint32_t address = 0;
  uint16_t port = 0;
  std::string router_interface;
  std::string admin;
};

// Checks every gateway on the monitor path every 100 ms (two failures: unhealthy), leases of 3 s, and the
// planned moves' drain up to gateway.drain_timeout.
std::string render_eip_keeper_config(const StackSpec& stack, const std::vector<KeeperGateway>& gateways,
                                     const std::string& router_ns, const std::string& admin,
                                     const std::string& state_file);

}  // namespace cumulo::stack::internal
