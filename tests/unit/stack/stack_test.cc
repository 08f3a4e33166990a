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
groups:
  - name: web
    command: ["{bin_dir}/cumulo-webapp", "--listen", "127.0.0.1:{port}", "--zone", "{zone}", "--id", "{instance_id}"]
    instances_per_zone: 2
    path_prefix: /
    env: {GREETING: hello, PORT_COPY: "{port}"}
  - name: api
    command: [/bin/sh, -c, "exec server {port}"]
    path_prefix: /api/
    start_timeout: 3s
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
  ASSERT_EQ(s.groups.size(), 2u);
  const GroupSpec& web = s.groups[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.command.size(), 7u);
  EXPECT_EQ(web.command[0], "{bin_dir}/cumulo-webapp");
  EXPECT_EQ(web.instances_per_zone, 2);
  EXPECT_EQ(web.path_prefix, "/");
  EXPECT_EQ(web.env, (std::vector<std::pair<std::string, std::string>>{{"GREETING", "hello"},
                                                                       {"PORT_COPY", "{port}"}}));
  EXPECT_EQ(web.start_timeout, 10s);
  EXPECT_EQ(web.command_location, "stack.yaml:12:14");
  const GroupSpec& api = s.groups[1];
  EXPECT_EQ(api.instances_per_zone, 1);
  EXPECT_EQ(api.path_prefix, "/api/");
  EXPECT_EQ(api.start_timeout, 3s);
}

TEST(StackFile, AppliesDefaults) {
  StackSpec s = parse(R"(name: tiny
zones: [a]
gateway: {listen: "127.0.0.1:8080"}
groups:
  - {name: web, command: [app, "{port}"]}
)");
  EXPECT_EQ(s.gateway.admin, "127.0.0.1:9901");
  EXPECT_EQ(s.gateway.zone, "");
  EXPECT_EQ(s.gateway.workers, 0);
  EXPECT_EQ(s.gateway.log_level, "info");
  EXPECT_EQ(s.gateway.access_log, "off");
  EXPECT_EQ(s.gateway.balance, "round_robin");
  EXPECT_EQ(s.gateway.drain_timeout, 30s);
  EXPECT_EQ(s.gateway.health_check.path, "/healthz");
  EXPECT_EQ(s.gateway.health_check.interval, 1s);
  EXPECT_EQ(s.gateway.health_check.expected_codes, "200-399");
  EXPECT_EQ(s.groups[0].instances_per_zone, 1);
  EXPECT_EQ(s.groups[0].path_prefix, "/");
  EXPECT_TRUE(s.groups[0].env.empty());
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
         "groups:\n  - {name: web, command: [app, \"{port}\"]}\n";
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
    {"MissingCommand", with_group("  - name: web\n    instances_per_zone: 2\n"),
     "stack.yaml:6:5: groups[0]: missing key 'command'"},
    {"MissingGroupName", with_group("  - command: [app, \"{port}\"]\n"), "groups[0]: missing key 'name'"},
    {"BadGroupName", with_group("  - name: Web\n    command: [app, \"{port}\"]\n"),
     "stack.yaml:6:11: groups[0].name: expected a name of lowercase letters"},
    {"CommandIsAString", with_group("  - name: web\n    command: \"app {port}\"\n"),
     "stack.yaml:7:14: groups[0].command: expected a list of arguments"},
    {"EmptyCommand", with_group("  - name: web\n    command: []\n"),
     "stack.yaml:7:14: groups[0].command: expected the program to run as first item"},
    {"InstancesPerZoneZero",
     with_group("  - name: web\n    command: [app, \"{port}\"]\n    instances_per_zone: 0\n"),
     "stack.yaml:8:25: groups[0].instances_per_zone"},
    {"InstancesPerZoneNotANumber",
     with_group("  - name: web\n    command: [app, \"{port}\"]\n    instances_per_zone: two\n"),
     "stack.yaml:8:25: groups[0].instances_per_zone"},
    {"UnknownGroupKey", with_group("  - name: web\n    command: [app, \"{port}\"]\n    replicas: 2\n"),
     "stack.yaml:8:5: groups[0]: unknown key 'replicas'"},
    {"UnknownPlaceholder",
     with_group("  - name: web\n    command: [app, \"--listen\", \"127.0.0.1:{prot}\"]\n"),
     "stack.yaml:7:32: groups[0].command[2]: unknown placeholder {prot}"},
    {"UnpairedBrace", with_group("  - name: web\n    command: [app, \"{port\"]\n"),
     "stack.yaml:7:20: groups[0].command[1]: unpaired '{'"},
    {"NoPortPlaceholder", with_group("  - name: web\n    command: [app, --listen, \"127.0.0.1:8000\"]\n"),
     "stack.yaml:7:14: groups[0].command: neither the command nor env uses {port}"},
    {"PathPrefixWithoutSlash",
     with_group("  - name: web\n    command: [app, \"{port}\"]\n    path_prefix: api\n"),
     "stack.yaml:8:18: groups[0].path_prefix: expected a path starting with '/'"},
    {"BadEnvName", with_group("  - name: web\n    command: [app, \"{port}\"]\n    env: {MY-VAR: 1}\n"),
     "groups[0].env.MY-VAR: 'MY-VAR' is not a valid variable name"},
    {"EnvNotAMap", with_group("  - name: web\n    command: [app, \"{port}\"]\n    env: [A=1]\n"),
     "stack.yaml:8:10: groups[0].env: expected a map"},
    {"BadPlaceholderInEnv",
     with_group("  - name: web\n    command: [app, \"{port}\"]\n    env: {A: \"{host}\"}\n"),
     "stack.yaml:8:14: groups[0].env.A: unknown placeholder {host}"},
    {"DuplicateGroupName",
     with_group("  - {name: web, command: [app, \"{port}\"]}\n  - {name: web, command: [app, \"{port}\"], "
                "path_prefix: /x}\n"),
     "stack.yaml:7:12: groups[1].name: group name 'web' is used twice"},
    {"DuplicatePathPrefix",
     with_group("  - {name: web, command: [app, \"{port}\"]}\n  - {name: api, command: [app, \"{port}\"], "
                "path_prefix: /}\n"),
     "stack.yaml:7:56: groups[1].path_prefix: path_prefix '/' is already routed to group 'web'"},
    {"StartTimeoutZero", with_group("  - name: web\n    command: [app, \"{port}\"]\n    start_timeout: 0s\n"),
     "stack.yaml:8:20: groups[0].start_timeout: expected a duration above 0"},
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
  ExpandedCommand c = expand_command(s.groups[0], PlaceholderValues{"40001", "b", "web-b-2", "/bin/dir"});
  EXPECT_EQ(c.argv, (std::vector<std::string>{"/bin/dir/cumulo-webapp", "--listen", "127.0.0.1:40001",
                                              "--zone", "b", "--id", "web-b-2"}));
  EXPECT_EQ(c.env, (std::vector<std::pair<std::string, std::string>>{{"GREETING", "hello"},
                                                                     {"PORT_COPY", "40001"}}));
}

TEST(InstancePlan, GroupsThenZonesThenIndex) {
  StackSpec s = parse(kValid);
  std::vector<InstancePlan> plans = plan_instances(s);
  std::vector<std::string> ids;
  for (const InstancePlan& p : plans) ids.push_back(p.id);
  EXPECT_EQ(ids,
            (std::vector<std::string>{"web-a-1", "web-a-2", "web-b-1", "web-b-2", "api-a-1", "api-b-1"}));
  EXPECT_EQ(plans[2].group, "web");
  EXPECT_EQ(plans[2].zone, "b");
  EXPECT_EQ(plans[2].index, 1);
  EXPECT_EQ(plans[5].spec, &s.groups[1]);
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
        std::string(e.what()).find("stack.yaml:12:14: group 'web': cannot run '/nonexistent/cumulo-webapp'"),
        std::string::npos)
        << e.what();
  }
  EXPECT_THROW(resolve_executable(s.groups[0], "no-such-program-anywhere"), core::ConfigError);
  EXPECT_THROW(resolve_executable(s.groups[0], "/tmp"), core::ConfigError);  // a directory
}

TEST(GatewayConfig, FormatsDurationsExactly) {
  EXPECT_EQ(internal::format_duration(1000ms), "1s");
  EXPECT_EQ(internal::format_duration(250ms), "250ms");
  EXPECT_EQ(internal::format_duration(1500ms), "1500ms");
  EXPECT_EQ(internal::format_duration(120s), "2m");
  EXPECT_EQ(internal::format_duration(7200s), "2h");
  EXPECT_EQ(internal::format_duration(0ms), "0s");
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
  - {name: web, command: [app, "{port}"]}
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
  TempStackFile f(with_group("  - {name: web, command: [/bin/sh, -c, \"exec server {port}\"]}\n"));
  EXPECT_NO_THROW(check_stack_file(f.path()));
}

TEST(CheckStackFile, RejectsAMissingProgramAndNamesTheFile) {
  TempStackFile f(with_group("  - {name: web, command: [\"{bin_dir}/no-such-binary\", \"{port}\"]}\n"));
  try {
    check_stack_file(f.path());
    FAIL() << "no error";
  } catch (const core::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(f.path() + ":6:26: group 'web': cannot run"), std::string::npos)
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
