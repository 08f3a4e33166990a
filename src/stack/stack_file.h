// The stack file read by `cumulo up`: the zones, the groups of instances that run in each zone, and the
// gateway in front of them (docs/configuration.md, "Stack file"). Parsing validates everything that can be
// checked without starting a process, so that a typo is a file:line:col error and not a crash loop.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/config.h"

namespace cumulo::stack {

// Passed to each target group of the generated gateway config. Defaults are the gateway's, except the
// interval: a stack on one machine can afford to notice a dead instance within a couple of seconds.
struct HealthCheckSpec {
  std::string path = "/healthz";
  std::string expected_codes = "200-399";
  std::chrono::milliseconds interval{1000};
  std::chrono::milliseconds timeout{1000};
  int healthy_threshold = 2;
  int unhealthy_threshold = 2;
};

struct GatewaySpec {
  std::string listen;  // required, "127.0.0.1:8080"
  std::string admin = "127.0.0.1:9901";
  std::string zone;  // empty: the gateway has no zone and spreads over all of them
  int workers = 0;   // 0: the gateway's default (number of cores)
  std::string log_level = "info";
  std::string access_log = "off";  // "off", "-" or a path (made absolute when the config is written)
  std::string balance = "round_robin";
  std::chrono::milliseconds drain_timeout{30'000};
  HealthCheckSpec health_check;
  std::string listen_location;  // where `listen` and `admin` were written, for "port in use" errors
  std::string admin_location;
};

struct GroupSpec {
  std::string name;
  std::vector<std::string> command;  // as written, placeholders not yet expanded
  int instances_per_zone = 1;
  std::string path_prefix = "/";
  std::vector<std::pair<std::string, std::string>> env;  // in file order; values may hold placeholders
  std::chrono::milliseconds start_timeout{10'000};
  std::string command_location;  // for errors found when the command is resolved or started
};

struct StackSpec {
  std::string source;  // the file name, as given
  std::string name;
  std::vector<std::string> zones;
  GatewaySpec gateway;
  std::vector<GroupSpec> groups;
};

// Throw core::ConfigError naming file, line, column and what was expected.
StackSpec load_stack_file(const std::string& path);
StackSpec parse_stack(const core::ConfigNode& root);

// One instance the stack runs: instances_per_zone of each group in each zone.
struct InstancePlan {
  std::string id;  // "web-a-1": group, zone, 1-based index within the group and zone
  std::string group;
  std::string zone;
  int index = 0;
  const GroupSpec* spec = nullptr;  // borrowed from the StackSpec the plan was made from
};

// Groups in file order, then zones in file order, then index.
std::vector<InstancePlan> plan_instances(const StackSpec& stack);

struct PlaceholderValues {
  std::string port;
  std::string zone;
  std::string instance_id;
  std::string bin_dir;
};

// Replaces {port}, {zone}, {instance_id} and {bin_dir}; "{{" and "}}" stand for literal braces.
// Throws std::invalid_argument for an unknown placeholder or an unpaired brace (parse_stack rejects those
// first).
std::string expand_placeholders(std::string_view text, const PlaceholderValues& values);

// The command and environment of one instance with every placeholder replaced.
struct ExpandedCommand {
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
};
ExpandedCommand expand_command(const GroupSpec& group, const PlaceholderValues& values);

// Finds the program a command runs: argv[0] as a path when it has a '/', else looked up in PATH.
// Throws core::ConfigError at the group's command when it is missing or not executable.
std::string resolve_executable(const GroupSpec& group, const std::string& argv0);

}  // namespace cumulo::stack
