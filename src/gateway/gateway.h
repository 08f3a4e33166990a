// The gateway: an L7 load balancer and reverse proxy (`cumulo gateway -c FILE`). Configuration schema:
// docs/configuration.md; admin API: docs/admin-api.md.
#pragma once

#include <string>

namespace cumulo::gateway {

// Runs until SIGINT or SIGTERM (then drains: in-flight requests finish within limits.drain_timeout). SIGHUP
// or POST /reload on the admin API re-reads the file without dropping connections. Returns the process exit
// code: 0 after a clean stop, 2 when the configuration is invalid, 1 when start-up fails (a port in use...).
int run(const std::string& config_path);

// Parses and validates a configuration file; throws core::ConfigError naming file, line and column.
void check_config(const std::string& config_path);

}  // namespace cumulo::gateway
