// The stack file: parsing, validation errors with their locations, placeholders, instance plans and the
// gateway config written from it.
#include "stack/stack.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/config.h"
#include "stack/internal/gateway_config.h"
#include "stack/stack_file.h"

namespace cumulo::stack {
namespace {

using namespace std::chrono_literals;

constexpr char kValid[] = R"(name: webapp
zones: [a, b]
gateway:
  listen: 127.0.0.1:8080
  admin: 127.0.0.1:9901
  workers: 2
  access_log: off
  health_check: {path: /health, interval: 500ms, unhealthy_threshold: 3}
  balance: least_outstanding
control: {listen: 127.0.0.1:9999}
groups:
  - name: web
    min: 2
    max: 8
    path_prefix: /
    launch_template:
      command: ["{bin_dir}/cumulo-webapp", "--listen", "127.0.0.1:{port}", "--zone", "{zone}", "--id", "{instance_id}"]
      env: {GREETING: hello, PORT_COPY: "{port}"}
    drain_timeout: 5s
  - name: api
    path_prefix: /api/
    launch_template:
      command: [/bin/sh, -c, "exec server {port}"]
      health_check: {grace_period: 3s}
)";

StackSpec parse(const std::string& text) {
  return parse_stack(core::ConfigNode::load_string(text, "stack.yaml"));
}

// The message of the ConfigError that parsing `text` throws, or "no error".
std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const core::ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(StackFile, ParsesAValidFile) {
  StackSpec s = parse(kValid);
  EXPECT_EQ(s.name, "webapp");
  EXPECT_EQ(s.zones, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(s.gateway.listen, "127.0.0.1:8080");
  EXPECT_EQ(s.gateway.admin, "127.0.0.1:9901");
  EXPECT_EQ(s.gateway.workers, 2);
  EXPECT_EQ(s.gateway.access_log, "off");
  EXPECT_EQ(s.gateway.balance, "least_outstanding");
  EXPECT_EQ(s.gateway.health_check.path, "/health");
  EXPECT_EQ(s.gateway.health_check.interval, 500ms);
  EXPECT_EQ(s.gateway.health_check.timeout, 1s);
  EXPECT_EQ(s.gateway.health_check.unhealthy_threshold, 3);
  EXPECT_EQ(s.gateway.health_check.healthy_threshold, 2);
  EXPECT_EQ(s.gateway.listen_location, "stack.yaml:4:11");
  EXPECT_EQ(s.control.listen, "127.0.0.1:9999");
  ASSERT_EQ(s.groups.size(), 2u);
  const GroupSpec& web = s.groups[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.min, 2);
  EXPECT_EQ(web.max, 8);
  EXPECT_EQ(web.desired, 2);
  EXPECT_EQ(web.launch_template.command.size(), 7u);
  EXPECT_EQ(web.launch_template.command[0], "{bin_dir}/cumulo-webapp");
  EXPECT_EQ(web.path_prefix, "/");
  EXPECT_EQ(web.launch_template.env, (std::vector<std::pair<std::string, std::string>>{
                                         {"GREETING", "hello"}, {"PORT_COPY", "{port}"}}));
  EXPECT_EQ(web.drain_timeout, 5s);
  EXPECT_EQ(web.launch_template.command_location, "stack.yaml:17:16");
  const GroupSpec& api = s.groups[1];
  EXPECT_EQ(api.min, 1);
  EXPECT_EQ(api.path_prefix, "/api/");
  EXPECT_EQ(api.launch_template.health_check.grace_period, 3s);
}

TEST(StackFile, AppliesDefaults) {
  StackSpec s = parse(R"(name: tiny
zones: [a]
gateway: {listen: "127.0.0.1:8080"}
groups:
  - {name: web, launch_template: {command: [app, "{port}"]}}
)");
  EXPECT_EQ(s.gateway.admin, "127.0.0.1:9901");
  EXPECT_EQ(s.control.listen, "127.0.0.1:9902");
  EXPECT_EQ(s.gateway.zone, "");
  EXPECT_EQ(s.gateway.workers, 0);
  EXPECT_EQ(s.gateway.log_level, "info");
  EXPECT_EQ(s.gateway.access_log, "off");
  EXPECT_EQ(s.gateway.balance, "round_robin");
  EXPECT_EQ(s.gateway.drain_timeout, 30s);
  EXPECT_EQ(s.gateway.health_check.path, "/healthz");
  EXPECT_EQ(s.gateway.health_check.interval, 1s);
  EXPECT_EQ(s.gateway.health_check.expected_codes, "200-399");
  EXPECT_EQ(s.groups[0].min, 1);
  EXPECT_EQ(s.groups[0].desired, 1);
  EXPECT_EQ(s.groups[0].path_prefix, "/");
  EXPECT_TRUE(s.groups[0].launch_template.env.empty());
}

struct ErrorCase {
  const char* name;
  std::string yaml;
  std::string expected;  // must appear in the message: the location and what was wrong
};

// A valid stack whose group entry is replaced by `group` (indented as a list item).
std::string with_group(const std::string& group) {
  return "name: s\nzones: [a, b]\ngateway:\n  listen: 127.0.0.1:8080\ngroups:\n" + group;
}
// A valid stack whose gateway map is replaced.
std::string with_gateway(const std::string& gateway) {
  return "name: s\nzones: [a, b]\ngateway:\n" + gateway +
         "groups:\n  - {name: web, launch_template: {command: [app, \"{port}\"]}}\n";
}

class StackFileErrors : public testing::TestWithParam<ErrorCase> {};

TEST_P(StackFileErrors, NamesLineAndProblem) {
  const ErrorCase& c = GetParam();
  std::string message = error_of(c.yaml);
  EXPECT_NE(message.find(c.expected), std::string::npos)
      << "message: " << message << "\nexpected: " << c.expected;
}

const ErrorCase kErrorCases[] = {
    {"UnknownTopLevelKey", "name: s\nzones: [a]\ngateway: {listen: 127.0.0.1:8080}\ngrups: []\n",
     "stack.yaml:4:1: unknown key 'grups'"},
    {"MissingName", "zones: [a]\ngateway: {listen: 127.0.0.1:8080}\ngroups: []\n", "missing key 'name'"},
    {"BadStackName", "name: my stack\nzones: [a]\ngateway: {listen: 127.0.0.1:8080}\ngroups: []\n",
     "stack.yaml:1:7: name: expected a name"},
    {"MissingZones", "name: s\ngateway: {listen: 127.0.0.1:8080}\ngroups: []\n", "missing key 'zones'"},
    {"EmptyZones", "name: s\nzones: []\ngateway: {listen: 127.0.0.1:8080}\ngroups: []\n",
     "stack.yaml:2:8: zones: expected at least one zone"},
    {"ZonesNotAList", "name: s\nzones: a\ngateway: {listen: 127.0.0.1:8080}\ngroups: []\n",
     "stack.yaml:2:8: zones: expected a list of zone names"},
    {"DuplicateZone", "name: s\nzones: [a, b, a]\ngateway: {listen: 127.0.0.1:8080}\ngroups: []\n",
     "stack.yaml:2:15: zones[2]: zone 'a' is listed twice"},
    {"ZoneWithDash", "name: s\nzones: [eu-1]\ngateway: {listen: 127.0.0.1:8080}\ngroups: []\n",
     "stack.yaml:2:9: zones[0]: expected a zone name of lowercase letters and digits"},
    {"MissingGateway", "name: s\nzones: [a]\ngroups: []\n", "missing key 'gateway'"},
    {"MissingListen", with_gateway("  admin: 127.0.0.1:9901\n"), "missing key 'listen'"},
    {"BadListen", with_gateway("  listen: localhost\n"),
     "stack.yaml:4:11: gateway.listen: expected HOST:PORT"},
    {"ListenPortZero", with_gateway("  listen: 127.0.0.1:0\n"),
     "stack.yaml:4:11: gateway.listen: listen needs a fixed port"},
    {"AdminNotLoopback", with_gateway("  listen: 127.0.0.1:8080\n  admin: 0.0.0.0:9901\n"),
     "stack.yaml:5:10: gateway.admin: the admin API must listen on a loopback address"},
    {"AdminSamePortAsListen", with_gateway("  listen: 127.0.0.1:8080\n  admin: 127.0.0.1:8080\n"),
     "stack.yaml:5:10: gateway.admin: gateway.listen and gateway.admin must use different ports"},
    {"UnknownGatewayKey", with_gateway("  listen: 127.0.0.1:8080\n  workerz: 2\n"),
     "stack.yaml:5:3: gateway: unknown key 'workerz'"},
    {"GatewayZoneNotInZones", with_gateway("  listen: 127.0.0.1:8080\n  zone: c\n"),
     "stack.yaml:5:9: gateway.zone: zone 'c' is not one of the stack's zones"},
    {"BadBalance", with_gateway("  listen: 127.0.0.1:8080\n  balance: random\n"),
     "stack.yaml:5:12: gateway.balance: expected round_robin, weighted or least_outstanding"},
    {"BadLogLevel", with_gateway("  listen: 127.0.0.1:8080\n  log_level: loud\n"),
     "stack.yaml:5:14: gateway.log_level: expected debug, info, warn or error"},
    {"WorkersZero", with_gateway("  listen: 127.0.0.1:8080\n  workers: 0\n"),
     "stack.yaml:5:12: gateway.workers"},
    {"UnknownHealthCheckKey",
     with_gateway("  listen: 127.0.0.1:8080\n  health_check: {path: /h, intervall: 1s}\n"),
     "stack.yaml:5:28: gateway.health_check: unknown key 'intervall'"},
    {"HealthCheckPathWithoutSlash",
     with_gateway("  listen: 127.0.0.1:8080\n  health_check: {path: healthz}\n"),
     "stack.yaml:5:24: gateway.health_check.path: expected a path starting with '/'"},
    {"BadExpectedCodes",
     with_gateway("  listen: 127.0.0.1:8080\n  health_check: {expected_codes: 299-200}\n"),
     "stack.yaml:5:34: gateway.health_check.expected_codes: expected status codes"},
    {"HealthCheckIntervalWithoutUnit",
     with_gateway("  listen: 127.0.0.1:8080\n  health_check: {interval: 5}\n"),
     "stack.yaml:5:28: gateway.health_check.interval"},
    {"MissingGroups", "name: s\nzones: [a]\ngateway: {listen: 127.0.0.1:8080}\n", "missing key 'groups'"},
    {"EmptyGroups", "name: s\nzones: [a]\ngateway: {listen: 127.0.0.1:8080}\ngroups: []\n",
     "stack.yaml:4:9: groups: expected at least one group"},
    {"MissingLaunchTemplate", with_group("  - name: web\n    min: 2\n"),
     "stack.yaml:6:5: groups[0]: missing key 'launch_template'"},
    {"MissingCommand", with_group("  - name: web\n    launch_template:\n      cpu: 0.5\n"),
     "stack.yaml:8:7: groups[0].launch_template: missing key 'command'"},
    {"InstancesPerZoneIsGone", with_group("  - name: web\n    instances_per_zone: 2\n"),
     "stack.yaml:7:5: groups[0]: unknown key 'instances_per_zone'"},
    {"MissingGroupName", with_group("  - launch_template: {command: [app, \"{port}\"]}\n"),
     "groups[0]: missing key 'name'"},
    {"BadGroupName", with_group("  - name: Web\n    launch_template: {command: [app, \"{port}\"]}\n"),
     "stack.yaml:6:11: groups[0].name: expected a name of lowercase letters"},
    {"CommandIsAString", with_group("  - name: web\n    launch_template: {command: \"app {port}\"}\n"),
     "stack.yaml:7:32: groups[0].launch_template.command: expected a list of arguments"},
    {"MinAboveMax",
     with_group("  - name: web\n    min: 5\n    max: 3\n    launch_template: {command: [app, \"{port}\"]}\n"),
     "stack.yaml:7:10: groups[0].min: min 5 is above max 3"},
    {"DesiredOutsideMinMax",
     with_group("  - name: web\n    min: 1\n    max: 3\n    desired: 5\n    launch_template: {command: [app, "
                "\"{port}\"]}\n"),
     "stack.yaml:9:14: groups[0].desired: desired 5 is outside min..max (1..3)"},
    {"UnknownMetric",
     with_group("  - name: web\n    launch_template: {command: [app, \"{port}\"]}\n    policies:\n      - "
                "{name: p, type: "
                "target_tracking, metric: cpu_load, target: 60}\n"),
     "groups[0].policies[0].metric: unknown metric 'cpu_load'"},
    {"BadWindow",
     with_group("  - name: web\n    launch_template: {command: [app, \"{port}\"]}\n    policies:\n      - "
                "{name: p, type: "
                "target_tracking, metric: cpu, target: 60, window: 15 parsecs}\n"),
     "groups[0].policies[0].window"},
    {"BadCron",
     with_group("  - name: web\n    launch_template: {command: [app, \"{port}\"]}\n    scheduled:\n      - "
                "{name: s, cron: "
                "\"0 8 * *\", min: 1}\n"),
     "groups[0].scheduled[0].cron: expected 5 cron fields"},
    {"UnknownPlaceholder",
     with_group("  - name: web\n    launch_template: {command: [app, \"127.0.0.1:{prot}\"]}\n"),
     "groups[0].launch_template.command[1]: unknown placeholder {prot}"},
    {"NoPortPlaceholder",
     with_group("  - name: web\n    launch_template: {command: [app, \"127.0.0.1:8000\"]}\n"),
     "groups[0].launch_template.command: neither the command nor env uses {port}"},
    {"PathPrefixWithoutSlash",
     with_group("  - name: web\n    path_prefix: api\n    launch_template: {command: [app, \"{port}\"]}\n"),
     "stack.yaml:7:18: groups[0].path_prefix: expected a path starting with '/'"},
    {"DuplicateGroupName",
     with_group(
         "  - {name: web, launch_template: {command: [app, \"{port}\"]}}\n  - {name: web, path_prefix: /x, "
         "launch_template: {command: [app, \"{port}\"]}}\n"),
     "stack.yaml:7:12: groups[1].name: group name 'web' is used twice"},
    {"DuplicatePathPrefix",
     with_group(
         "  - {name: web, launch_template: {command: [app, \"{port}\"]}}\n  - {name: api, path_prefix: /, "
         "launch_template: {command: [app, \"{port}\"]}}\n"),
     "groups[1].path_prefix: path_prefix '/' is already routed to group 'web'"},
    {"ControlNotLoopback",
     "name: s\nzones: [a]\ncontrol: {listen: 0.0.0.0:9902}\ngateway: {listen: 127.0.0.1:8080}\ngroups: []\n",
     "stack.yaml:3:19: control.listen: the control API must listen on a loopback address"},
    {"ControlUnknownKey",
     "name: s\nzones: [a]\ncontrol: {address: 127.0.0.1:9902}\ngateway: {listen: 127.0.0.1:8080}\ngroups: "
     "[]\n",
     "control: unknown key 'address'"},
    {"ControlOnTheGatewayPort",
     "name: s\nzones: [a]\ncontrol: {listen: 127.0.0.1:8080}\ngateway: {listen: 127.0.0.1:8080}\ngroups: "
     "[]\n",
     "control.listen: port 8080 is taken by the gateway"},
    {"NotAMap", "- just\n- a list\n", "stack.yaml:1:1: expected a stack"},
};

INSTANTIATE_TEST_SUITE_P(All, StackFileErrors, testing::ValuesIn(kErrorCases),
                         [](const testing::TestParamInfo<ErrorCase>& info) { return info.param.name; });

TEST(Placeholders, ExpandsEveryPlaceholder) {
  PlaceholderValues v{"40123", "a", "web-a-1", "/opt/cumulo/bin"};
  EXPECT_EQ(expand_placeholders("{bin_dir}/app", v), "/opt/cumulo/bin/app");
  EXPECT_EQ(expand_placeholders("127.0.0.1:{port}", v), "127.0.0.1:40123");
  EXPECT_EQ(expand_placeholders("{instance_id}@{zone}:{port}", v), "web-a-1@a:40123");
  EXPECT_EQ(expand_placeholders("no placeholders", v), "no placeholders");
  EXPECT_EQ(expand_placeholders("", v), "");
}

TEST(Placeholders, DoubledBracesAreLiteral) {
  PlaceholderValues v{"1", "a", "x", "/b"};
  EXPECT_EQ(expand_placeholders("{{port}}", v), "{port}");
  EXPECT_EQ(expand_placeholders("{{\"json\": {{}}}}", {}), "{\"json\": {}}");
  EXPECT_THROW(expand_placeholders("{\"json\": 1}", {}), std::invalid_argument);  // a lone '{' is not literal
  EXPECT_EQ(expand_placeholders("{{{port}}}", v), "{1}");
}

TEST(Placeholders, RejectsUnknownAndUnpaired) {
  EXPECT_THROW(expand_placeholders("{nope}", {}), std::invalid_argument);
  EXPECT_THROW(expand_placeholders("{port", {}), std::invalid_argument);
  EXPECT_THROW(expand_placeholders("port}", {}), std::invalid_argument);
  EXPECT_THROW(expand_placeholders("{}", {}), std::invalid_argument);
}

TEST(Placeholders, ExpandCommandCoversArgumentsAndEnv) {
  StackSpec s = parse(kValid);
  ExpandedCommand c =
      expand_command(s.groups[0].launch_template, PlaceholderValues{"40001", "b", "web-b-2", "/bin/dir"});
  EXPECT_EQ(c.argv, (std::vector<std::string>{"/bin/dir/cumulo-webapp", "--listen", "127.0.0.1:40001",
                                              "--zone", "b", "--id", "web-b-2"}));
  EXPECT_EQ(c.env, (std::vector<std::pair<std::string, std::string>>{{"GREETING", "hello"},
                                                                     {"PORT_COPY", "40001"}}));
}

TEST(ResolveExecutable, FindsPathsAndNamesInPath) {
  StackSpec s = parse(kValid);
  EXPECT_EQ(resolve_executable(s.groups[1], "/bin/sh"), "/bin/sh");
  std::string found = resolve_executable(s.groups[1], "sh");
  EXPECT_EQ(found.substr(found.size() - 3), "/sh");
}

TEST(ResolveExecutable, MissingProgramIsAnErrorAtTheCommand) {
  StackSpec s = parse(kValid);
  try {
    resolve_executable(s.groups[0], "/nonexistent/cumulo-webapp");
    FAIL() << "no error";
  } catch (const core::ConfigError& e) {
    EXPECT_NE(
        std::string(e.what()).find("stack.yaml:17:16: group 'web': cannot run '/nonexistent/cumulo-webapp'"),
        std::string::npos)
        << e.what();
  }
  EXPECT_THROW(resolve_executable(s.groups[0], "no-such-program-anywhere"), core::ConfigError);
  EXPECT_THROW(resolve_executable(s.groups[0], "/tmp"), core::ConfigError);  // a directory
}

TEST(GatewayConfig, HasListenerAdminAndAZoneAwareGroupPerStackGroup) {
  StackSpec s = parse(kValid);
  std::vector<internal::GatewayTarget> targets = {{"web", "a", "127.0.0.1:40001"},
                                                  {"web", "a", "127.0.0.1:40002"},
                                                  {"web", "b", "127.0.0.1:40003"},
                                                  {"api", "b", "127.0.0.1:40004"}};
  std::string text = internal::render_gateway_config(s, targets);
  core::ConfigNode root = core::ConfigNode::load_string(text, "gateway.yaml");

  EXPECT_EQ(root["workers"].as_int(), 2);
  EXPECT_EQ(root["access_log"].as_string(), "off");
  EXPECT_EQ(root["admin"]["listen"].as_string(), "127.0.0.1:9901");
  EXPECT_FALSE(root["zone"].defined());
  auto listeners = root["listeners"].items();
  ASSERT_EQ(listeners.size(), 1u);
  EXPECT_EQ(listeners[0]["listen"].as_string(), "127.0.0.1:8080");

  auto routes = root["routes"].items();
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_EQ(routes[0]["path_prefix"].as_string(), "/");
  EXPECT_EQ(routes[0]["target_group"].as_string(), "web");
  EXPECT_EQ(routes[1]["path_prefix"].as_string(), "/api/");
  EXPECT_EQ(routes[1]["target_group"].as_string(), "api");

  auto groups = root["target_groups"].items();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0]["name"].as_string(), "web");
  EXPECT_EQ(groups[0]["balance"].as_string(), "least_outstanding");
  EXPECT_TRUE(groups[0]["zone_aware"].as_bool());
  EXPECT_EQ(groups[0]["health_check"]["path"].as_string(), "/health");
  EXPECT_EQ(groups[0]["health_check"]["interval"].as_duration(), 500ms);
  EXPECT_EQ(groups[0]["health_check"]["timeout"].as_duration(), 1s);
  EXPECT_EQ(groups[0]["health_check"]["unhealthy_threshold"].as_int(), 3);
  EXPECT_EQ(groups[0]["drain_timeout"].as_duration(), 5s) << "the group's deregistration delay";
  EXPECT_EQ(groups[1]["drain_timeout"].as_duration(), 30s);
  auto web_targets = groups[0]["targets"].items();
  ASSERT_EQ(web_targets.size(), 3u);
  EXPECT_EQ(web_targets[0]["address"].as_string(), "127.0.0.1:40001");
  EXPECT_EQ(web_targets[0]["zone"].as_string(), "a");
  EXPECT_EQ(web_targets[2]["zone"].as_string(), "b");
  auto api_targets = groups[1]["targets"].items();
  ASSERT_EQ(api_targets.size(), 1u);
  EXPECT_EQ(api_targets[0]["address"].as_string(), "127.0.0.1:40004");
}

TEST(GatewayConfig, GatewayZoneAndOddStringsSurviveQuoting) {
  StackSpec s = parse(R"(name: s
zones: [a, b]
gateway: {listen: "127.0.0.1:8080", zone: b, access_log: "/var/log/x: \"quoted\".log"}
groups:
  - {name: web, launch_template: {command: [app, "{port}"]}}
)");
  core::ConfigNode root =
      core::ConfigNode::load_string(internal::render_gateway_config(s, {}), "gateway.yaml");
  EXPECT_EQ(root["zone"].as_string(), "b");
  EXPECT_EQ(root["access_log"].as_string(), "/var/log/x: \"quoted\".log");
  EXPECT_FALSE(root["workers"].defined());
  EXPECT_TRUE(root["target_groups"].items()[0]["targets"].items().empty());
}

// A stack file on disk, removed at the end of the test.
class TempStackFile {
 public:
  explicit TempStackFile(const std::string& text) {
    char tmpl[] = "/tmp/cumulo-stack-test-XXXXXX";
    int fd = mkstemp(tmpl);
    path_ = tmpl;
    std::ofstream(path_) << text;
    ::close(fd);
  }
  ~TempStackFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(CheckStackFile, AcceptsAValidFileWhoseProgramsExist) {
  TempStackFile f(
      with_group("  - {name: web, launch_template: {command: [/bin/sh, -c, \"exec server {port}\"]}}\n"));
  EXPECT_NO_THROW(check_stack_file(f.path()));
}

TEST(CheckStackFile, RejectsAMissingProgramAndNamesTheFile) {
  TempStackFile f(with_group(
      "  - {name: web, launch_template: {command: [\"{bin_dir}/no-such-binary\", \"{port}\"]}}\n"));
  try {
    check_stack_file(f.path());
    FAIL() << "no error";
  } catch (const core::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(f.path() + ":6:44: group 'web': cannot run"), std::string::npos)
        << e.what();
  }
}

TEST(CheckStackFile, MissingFileIsAConfigError) {
  EXPECT_THROW(check_stack_file("/nonexistent/stack.yaml"), core::ConfigError);
}

TEST(RunUp, BadStackFileExitsWithTwo) {
  TempStackFile f("name: s\nzones: []\n");
  EXPECT_EQ(run_up(f.path(), UpOptions{}), 2);
}

}  // namespace
}  // namespace cumulo::stack
