// The keeper's configuration file, written by `cumulo up` (docs/configuration.md, "Elastic IP keeper").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "health/health.h"

namespace cumulo::eip::internal {

// A gateway that may hold elastic IPs: where it runs and how it is checked and told its leases.
struct GatewayEntry {
  std::string id;                  // "gateway-a"
  std::string ns;                  // its network namespace, "cu-shop.gateway-a"
  std::string interface = "eth0";  // in `ns`: where a held address goes
  uint32_t address = 0;            // its own address, the next hop of the router's route to a held address
  uint16_t port = 0;               // its HTTP listener, which the health check reaches from the router
  std::string router_interface;    // the router's end of its link
  std::string admin;               // its admin API on the host, "127.0.0.1:9901"
};

struct ElasticIpEntry {
  std::string name;
  uint32_t address = 0;
  std::vector<std::string> gateways;  // ids, in order of preference
};

struct KeeperConfig {
  std::string source;
  std::string stack;
  std::string admin;       // loopback "127.0.0.1:PORT"
  std::string state_file;  // the leases, written durably
  std::string router_ns;
  std::string log_level = "info";
  std::string log_file;
  // How long a holder keeps a lease that nobody renews; also how long a move waits for an old holder whose
  // namespace cannot be changed (it may still answer there until then).
  std::chrono::milliseconds lease_ttl{3000};
  std::chrono::milliseconds drain_timeout{30'000};  // a planned move's wait for the old holder's connections
  health::HttpCheckSpec check;                      // of every gateway, from the router's namespace
  std::vector<GatewayEntry> gateways;
  std::vector<ElasticIpEntry> elastic_ips;

  const GatewayEntry* gateway(const std::string& id) const;
};

// Throws core::ConfigError naming file, line and column.
KeeperConfig parse_keeper_config(const core::ConfigNode& root);
KeeperConfig load_keeper_config(const std::string& path);

}  // namespace cumulo::eip::internal
