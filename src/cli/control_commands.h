// The subcommands that talk to a running `cumulo up` through its control API (docs/scaling.md): status,
// instances, scale, events and metrics put.
#pragma once

#include <optional>
#include <string>

namespace cumulo::cli {

struct ControlTarget {
  std::string state_dir = ".cumulo";
  std::string api;    // "http://127.0.0.1:9902"; empty: from STATE_DIR/stack.json
  std::string token;  // empty: from STATE_DIR/api-token
  bool json = false;  // print the API's JSON instead of a table
};

int command_status(const ControlTarget& target);
int command_instances(const ControlTarget& target);
int command_scale(const ControlTarget& target, const std::string& group, int desired);
int command_events(const ControlTarget& target, unsigned long long since);
// `cumulo net reload`: the running stack applies its stack file's security groups again.
int command_net_reload(const ControlTarget& target);
int command_metrics_put(const ControlTarget& target, const std::string& group, const std::string& name,
                        double value, const std::string& instance);

}  // namespace cumulo::cli
