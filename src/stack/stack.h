// `cumulo up`: runs a stack (a gateway in front of auto scaling groups of instances spread over zones) on one
// machine, with a control API for the groups (docs/scaling.md). The stack file's schema is in
// docs/configuration.md, "Stack file".
#pragma once

#include <string>

namespace cumulo::stack {

struct UpOptions {
  std::string cumulo_binary;          // path of the running cumulo, for child gateways; empty: /proc/self/exe
  std::string state_dir = ".cumulo";  // generated configs, per-instance logs, stack.json, api-token
};

// Runs the stack until SIGINT/SIGTERM, then stops everything it started and returns the exit code (0 on a
// clean stop, 2 for a bad stack file, 1 when the stack could not start).
int run_up(const std::string& stack_file, const UpOptions& options);

// `cumulo net check`: the network of the stack running with `state_dir` probed path by path against its
// policy (docs/network.md). Prints the matrix; 0 when every path matches, 1 when one differs, 2 when no stack
// runs in network mode there.
int net_check(const std::string& state_dir, bool json);

// Parses and validates without starting anything (for `cumulo up --check`); throws core::ConfigError.
void check_stack_file(const std::string& stack_file);

}  // namespace cumulo::stack
