// The `cumulo dns` configuration (docs/configuration.md, "DNS server").
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "dns/internal/zone.h"
#include "health/health.h"

namespace cumulo::dns {

struct HealthCheckConfig {
  std::string name;
  std::string address;  // host:port
  health::HttpCheckSpec spec;
  std::shared_ptr<health::HealthState> state = std::make_shared<health::HealthState>();
};

struct RateLimitConfig {
  uint32_t responses_per_second = 0;  // per client network; 0 disables
  uint32_t slip = 2;                  // every Nth limited response goes out truncated (TC) instead of dropped
  int ipv4_prefix = 24;
  int ipv6_prefix = 56;
};

struct DnsConfig {
  std::string source;
  std::vector<std::string> listen{"127.0.0.1:5353"};  // UDP and TCP on each
  std::string admin;                                  // empty: no admin API
  int workers = 1;
  std::string log_level = "info";
  std::string query_log = "off";
  uint16_t max_udp_payload = 1232;
  std::chrono::milliseconds tcp_idle_timeout{10'000};
  int tcp_max_connections = 1024;  // per worker
  RateLimitConfig rate_limit;
  std::vector<NetworkRegion> axfr_allow;
  std::vector<NetworkRegion> networks;
  std::vector<HealthCheckConfig> health_checks;
  std::vector<ZoneSource> zones;
};

// Throws core::ConfigError naming file, line and column.
DnsConfig parse_dns_config(const core::ConfigNode& root, const std::string& base_dir);
DnsConfig load_dns_config(const std::string& path);

// One record set from its configuration form (a YAML map or the admin API's JSON turned into one):
// {name, type, ttl, values | endpoints, policy, target}. Names are relative to `origin`. Health checks are
// looked up by name in `checks`. Throws core::ConfigError.
RecordSetSpec parse_record_set(const core::ConfigNode& node, const std::string& origin,
                               const std::vector<HealthCheckConfig>& checks);

// Loads a zone file into `zone` (record sets grouped by name and type). Throws core::ConfigError "FILE:LINE:
// ...".
void load_zone_file(const std::string& path, ZoneSource& zone, uint32_t default_ttl);

// Adds the SOA and NS records a zone declared only in the configuration needs.
void add_default_soa(ZoneSource& zone);

}  // namespace cumulo::dns
