// The authoritative DNS server (`cumulo dns`): zones from RFC 1035 zone files and from the configuration,
// routing policies with health checks, UDP and TCP over IPv4 and IPv6, an admin API for metrics and run-time
// record changes. Configuration: docs/configuration.md ("DNS server"); design and operation: docs/dns.md.
#pragma once

#include <string>
#include <vector>

namespace cumulo::dns {

struct RunOptions {
  std::string config_path;  // empty: a configuration made from the fields below
  // Without a configuration file (the benchmark harness's form): one zone from a zone file.
  std::vector<std::string> listen;  // overrides the file's listen addresses when set
  std::string zone_file;
  std::string origin;
  std::string admin;  // overrides the file's admin address when set
  int workers = 0;    // 0: the file's (default 1)
  // The stack gateway's addresses, for ALIAS records with `gateway: true` (cumulo up passes its listen host).
  std::vector<std::string> gateway_addresses;
  // The stack's elastic IPs as NAME=ADDRESS, for ALIAS records with `elastic_ip: NAME`.
  std::vector<std::string> elastic_ips;
};

// Runs until SIGINT or SIGTERM. Returns the exit code: 0 after a clean stop, 2 for an invalid configuration
// or zone, 1 when start-up fails (an address in use).
int run(const RunOptions& options);

// Parses and validates a configuration file and its zone files; throws core::ConfigError naming file, line
// and column.
void check_config(const std::string& config_path);

}  // namespace cumulo::dns
