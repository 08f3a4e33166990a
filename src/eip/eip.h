// Elastic IPs (docs/elastic-ips.md): stable public addresses of a stack, each held by exactly one healthy
// gateway at a time. The keeper (`cumulo eip run`, started by `cumulo up`) decides who holds each address
// from the same HTTP health checks the load balancer and DNS use, keeps the decision as a lease with a term
// in its state file, and moves an address by taking it from the old holder's namespace before giving it to
// the new one and routing it there from the stack's router. Its own death changes nothing: the holder keeps
// the address, and a keeper started again adopts what it finds.
#pragma once

#include <string>

namespace cumulo::eip {

// Runs the keeper until SIGINT or SIGTERM (which leave every address where it is). Returns 0 after a stop, 2
// for an invalid configuration, 1 when it cannot start (the admin port in use, a namespace that cannot be
// opened).
int run(const std::string& config_path);

// Parses and validates a keeper configuration file; throws core::ConfigError naming file, line and column.
void check_config(const std::string& config_path);

// The admin address ("127.0.0.1:PORT") a configuration file names; throws core::ConfigError.
std::string admin_address(const std::string& config_path);

// `cumulo eip list` and `cumulo eip move NAME --to GATEWAY` against a running keeper's admin address. Return
// exit codes (0, or 1 with the reason on stderr).
int command_list(const std::string& admin, bool json);
int command_move(const std::string& admin, const std::string& name, const std::string& to);

}  // namespace cumulo::eip
