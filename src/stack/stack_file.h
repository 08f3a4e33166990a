// The stack file read by `cumulo up`: the zones, the auto scaling groups whose instances run in them, the
// gateway in front of them and the control API (docs/configuration.md, "Stack file"). Parsing validates
// everything that can be checked without starting a process, so that a typo is a file:line:col error and not
// a crash loop.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/config.h"
#include "scaling/scaling.h"

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

// A group's schema (min/max/desired, launch template, policies) belongs to the scaling component.
using scaling::expand_command;
using scaling::expand_placeholders;
using scaling::ExpandedCommand;
using scaling::GroupSpec;
using scaling::PlaceholderValues;
using scaling::resolve_executable;

struct ControlSpec {
  std::string listen = "127.0.0.1:9902";  // loopback only
  std::string location;
};

struct StackSpec {
  std::string source;  // the file name, as given
  std::string name;
  std::vector<std::string> zones;
  ControlSpec control;
  GatewaySpec gateway;
  std::vector<GroupSpec> groups;
};

// Throw core::ConfigError naming file, line, column and what was expected.
StackSpec load_stack_file(const std::string& path);
StackSpec parse_stack(const core::ConfigNode& root);

}  // namespace cumulo::stack
