// The supervisor behind `cumulo up`: starts the stack's processes (gateways and edges, instances, the object
// store, DNS, the database tier), restarts what crashes, stops everything in order on SIGINT/SIGTERM/SIGHUP.
#pragma once

#include <string>

#include "stack/stack_file.h"

namespace cumulo::stack::internal {

struct SupervisorOptions {
  std::string cumulo_binary;  // absolute path, runs `gateway -c FILE`
  std::string bin_dir;        // {bin_dir}
  std::string state_dir;      // generated config, logs, lock
};

// Runs until a stop signal or a failed start; returns 0 after a clean stop, 1 when the stack could not start.
// Throws std::runtime_error for problems found before anything started (state directory, ports in use).
int run_supervisor(const StackSpec& stack, const SupervisorOptions& options);

}  // namespace cumulo::stack::internal
