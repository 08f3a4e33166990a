// The group schema: a full group, defaults, every kind of error at its line and column; cron expressions.
#include <gtest/gtest.h>

#include "core/config.h"
#include "scaling/scaling.h"

namespace cumulo::scaling {
namespace {

using namespace std::chrono_literals;

constexpr char kFull[] = R"(name: web
path_prefix: /
min: 2
max: 8
desired: 3
launch_template:
  command: ["{bin_dir}/cumulo-webapp", "--listen", "127.0.0.1:{port}", "--zone", "{zone}", "--id", "{instance_id}"]
  env: {KEY: value, PORT_COPY: "{port}"}
  working_dir: /tmp
  health_check: {path: /health, grace_period: 5s}
  stop_signal: SIGQUIT
  stop_timeout: 3s
  cpu: 0.25
  memory: 256MiB
warmup: 4s
cooldown: 20s
drain_timeout: 15s
policies:
  - name: cpu60
    type: target_tracking
    metric: cpu
    statistic: average
    target: 60
    window: 15s
    scale_in_stabilization: 60s
  - name: latency_steps
    type: step
    metric: latency_p99
    statistic: p99
    window: 10s
    steps:
      - {lower: 0.5, upper: 1.0, change: +1}
      - {lower: 1.0, change: +3}
      - {upper: 0.05, change: -1}
      - {lower: 2, change: "+50%"}
  - {name: queue, type: target_tracking, metric: "custom:queue_depth", target: 10}
scheduled:
  - {name: office-hours, cron: "0 8 * * 1-5", min: 4, max: 8, desired: 4}
)";

GroupSpec parse(const std::string& text) {
  return parse_group(core::ConfigNode::load_string(text, "stack.yaml"));
}

std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const core::ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(GroupSchema, ParsesEveryKey) {
  GroupSpec g = parse(kFull);
  EXPECT_EQ(g.name, "web");
  EXPECT_EQ(g.min, 2);
  EXPECT_EQ(g.max, 8);
  EXPECT_EQ(g.desired, 3);
  const LaunchTemplate& t = g.launch_template;
  EXPECT_EQ(t.command.size(), 7u);
  EXPECT_EQ(t.command_location, "stack.yaml:7:12");
  EXPECT_EQ(t.env.size(), 2u);
  EXPECT_EQ(t.working_dir, "/tmp");
  EXPECT_EQ(t.health_check.path, "/health");
  EXPECT_EQ(t.health_check.grace_period, 5s);
  EXPECT_EQ(t.health_check.unhealthy_threshold, 3);
  EXPECT_EQ(t.stop_signal, SIGQUIT);
  EXPECT_EQ(t.stop_timeout, 3s);
  EXPECT_DOUBLE_EQ(t.cpu, 0.25);
  EXPECT_EQ(t.memory_bytes, 256u * 1024 * 1024);
  EXPECT_EQ(g.warmup, 4s);
  EXPECT_EQ(g.cooldown, 20s);
  EXPECT_EQ(g.drain_timeout, 15s);
  ASSERT_EQ(g.policies.size(), 3u);
  EXPECT_EQ(g.policies[0].type, PolicyType::kTargetTracking);
  EXPECT_EQ(g.policies[0].target, 60);
  EXPECT_EQ(g.policies[0].window, 15s);
  EXPECT_EQ(g.policies[0].scale_in_stabilization, 60s);
  EXPECT_EQ(g.policies[1].type, PolicyType::kStep);
  EXPECT_EQ(g.policies[1].metric.kind, MetricKind::kLatencyP99);
  EXPECT_EQ(g.policies[1].statistic, Statistic::kP99);
  ASSERT_EQ(g.policies[1].steps.size(), 4u);
  EXPECT_EQ(*g.policies[1].steps[0].lower, 0.5);
  EXPECT_EQ(*g.policies[1].steps[0].upper, 1.0);
  EXPECT_EQ(g.policies[1].steps[0].change, 1);
  EXPECT_FALSE(g.policies[1].steps[1].upper.has_value());
  EXPECT_EQ(g.policies[1].steps[2].change, -1);
  EXPECT_TRUE(g.policies[1].steps[3].percent);
  EXPECT_EQ(g.policies[1].steps[3].change, 50);
  EXPECT_EQ(g.policies[2].metric.text(), "custom:queue_depth");
  ASSERT_EQ(g.scheduled.size(), 1u);
  EXPECT_EQ(*g.scheduled[0].min, 4);
  EXPECT_EQ(g.scheduled[0].cron.text, "0 8 * * 1-5");
}

TEST(GroupSchema, Defaults) {
  GroupSpec g = parse("name: web\nlaunch_template: {command: [app, \"{port}\"]}\n");
  EXPECT_EQ(g.min, 1);
  EXPECT_EQ(g.max, 1);
  EXPECT_EQ(g.desired, 1);
  EXPECT_EQ(g.path_prefix, "/");
  EXPECT_EQ(g.launch_template.health_check.path, "/healthz");
  EXPECT_EQ(g.launch_template.health_check.grace_period, 10s);
  EXPECT_EQ(g.launch_template.stop_signal, SIGTERM);
  EXPECT_EQ(g.launch_template.stop_timeout, 10s);
  EXPECT_DOUBLE_EQ(g.launch_template.cpu, 1.0);
  EXPECT_EQ(g.launch_template.memory_bytes, 0u);
  EXPECT_EQ(g.drain_timeout, 30s);
  EXPECT_TRUE(g.policies.empty());
  EXPECT_EQ(parse("name: web\nmin: 2\nmax: 5\nlaunch_template: {command: [app, \"{port}\"]}\n").desired, 2);
}

struct ErrorCase {
  const char* name;
  std::string yaml;
  std::string expected;
};

const std::string kHead = "name: web\nmin: 2\nmax: 8\nlaunch_template: {command: [app, \"{port}\"]}\n";

class GroupSchemaErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(GroupSchemaErrors, NamesLineAndProblem) {
  const ErrorCase& c = GetParam();
  std::string message = error_of(c.yaml);
  EXPECT_NE(message.find(c.expected), std::string::npos)
      << "message: " << message << "\nexpected: " << c.expected;
}

const ErrorCase kErrorCases[] = {
    {"MinAboveMax", "name: web\nmin: 5\nmax: 3\nlaunch_template: {command: [app, \"{port}\"]}\n",
     "stack.yaml:2:6: min: min 5 is above max 3"},
    {"DesiredOutside",
     "name: web\nmin: 2\nmax: 3\ndesired: 4\nlaunch_template: {command: [app, \"{port}\"]}\n",
     "stack.yaml:4:10: desired: desired 4 is outside min..max (2..3)"},
    {"MissingLaunchTemplate", "name: web\n", "missing key 'launch_template'"},
    {"MissingCommand", "name: web\nlaunch_template:\n  cpu: 1\n", "launch_template: missing key 'command'"},
    {"NoPort", "name: web\nlaunch_template: {command: [app]}\n", "neither the command nor env uses {port}"},
    {"UnknownPlaceholder", "name: web\nlaunch_template: {command: [app, \"{prot}\"]}\n",
     "unknown placeholder {prot}"},
    {"BadStopSignal", "name: web\nlaunch_template: {command: [app, \"{port}\"], stop_signal: SIGKILL}\n",
     "expected SIGTERM, SIGINT, SIGQUIT or SIGHUP"},
    {"BadCpu", "name: web\nlaunch_template: {command: [app, \"{port}\"], cpu: 0}\n",
     "launch_template.cpu: expected a number of vCPUs"},
    {"BadMemory", "name: web\nlaunch_template: {command: [app, \"{port}\"], memory: lots}\n",
     "launch_template.memory"},
    {"BadGrace",
     "name: web\nlaunch_template: {command: [app, \"{port}\"], health_check: {grace_period: soon}}\n",
     "launch_template.health_check.grace_period"},
    {"UnknownGroupKey", kHead + "replicas: 2\n", "stack.yaml:5:1: unknown key 'replicas'"},
    {"UnknownMetric",
     kHead + "policies:\n  - {name: p, type: target_tracking, metric: cpu_load, target: 60}\n",
     "stack.yaml:6:46: policies[0].metric: unknown metric 'cpu_load'"},
    {"UnknownPolicyType", kHead + "policies:\n  - {name: p, type: simple, metric: cpu, target: 60}\n",
     "policies[0].type: expected target_tracking or step"},
    {"BadStatistic",
     kHead + "policies:\n  - {name: p, type: target_tracking, metric: cpu, target: 60, statistic: mean}\n",
     "expected average, maximum, minimum, p50, p95 or p99"},
    {"MissingTarget", kHead + "policies:\n  - {name: p, type: target_tracking, metric: cpu}\n",
     "missing key 'target'"},
    {"WindowTooLong",
     kHead + "policies:\n  - {name: p, type: target_tracking, metric: cpu, target: 60, window: 1h}\n",
     "policies[0].window: expected a duration from 1s to 10m"},
    {"BadDuration",
     kHead + "policies:\n  - {name: p, type: target_tracking, metric: cpu, target: 60, window: 15 parsecs}\n",
     "stack.yaml:6:71: policies[0].window: expected a duration"},
    {"StepsOnTargetTracking",
     kHead + "policies:\n  - {name: p, type: target_tracking, metric: cpu, target: 60, steps: []}\n",
     "steps belong to a policy of type step"},
    {"StepWithoutSteps", kHead + "policies:\n  - {name: p, type: step, metric: cpu}\n",
     "missing key 'steps'"},
    {"BadChange",
     kHead + "policies:\n  - {name: p, type: step, metric: cpu, steps: [{lower: 1, change: lots}]}\n",
     "expected a change of instances such as +1, -2 or \"+50%\""},
    {"LowerAboveUpper",
     kHead + "policies:\n  - {name: p, type: step, metric: cpu, steps: [{lower: 2, upper: 1, change: +1}]}\n",
     "expected upper above lower"},
    {"DuplicatePolicy",
     kHead + "policies:\n  - {name: p, type: target_tracking, metric: cpu, target: 60}\n  - {name: p, type: "
             "target_tracking, metric: cpu, target: 60}\n",
     "policy name 'p' is used twice"},
    {"BadCron", kHead + "scheduled:\n  - {name: s, cron: \"0 25 * * *\", min: 1}\n",
     "stack.yaml:6:21: scheduled[0].cron: bad hour field '25'"},
    {"CronFieldCount", kHead + "scheduled:\n  - {name: s, cron: \"0 8 * *\", min: 1}\n",
     "expected 5 cron fields"},
    {"ScheduledWithoutCapacity", kHead + "scheduled:\n  - {name: s, cron: \"0 8 * * *\"}\n",
     "expected at least one of min, max and desired"},
};

INSTANTIATE_TEST_SUITE_P(All, GroupSchemaErrors, ::testing::ValuesIn(kErrorCases),
                         [](const ::testing::TestParamInfo<ErrorCase>& info) { return info.param.name; });

std::tm at(int year, int month, int day, int hour, int minute) {
  std::tm t{};
  t.tm_year = year - 1900;
  t.tm_mon = month - 1;
  t.tm_mday = day;
  t.tm_hour = hour;
  t.tm_min = minute;
  std::mktime(&t);  // fills in the weekday
  return t;
}

TEST(Cron, MatchesFieldsRangesStepsListsAndNames) {
  CronSchedule weekdays8 = parse_cron("0 8 * * 1-5");
  EXPECT_TRUE(weekdays8.matches(at(2026, 11, 23, 8, 0)));   // a Monday
  EXPECT_FALSE(weekdays8.matches(at(2026, 11, 22, 8, 0)));  // a Sunday
  EXPECT_FALSE(weekdays8.matches(at(2026, 11, 23, 8, 1)));
  CronSchedule every15 = parse_cron("*/15 * * * *");
  EXPECT_TRUE(every15.matches(at(2026, 1, 1, 3, 45)));
  EXPECT_FALSE(every15.matches(at(2026, 1, 1, 3, 46)));
  CronSchedule list = parse_cron("5,10-12 0 1 jan,Jul sun");
  // Both day fields restricted: either may match (cron's rule).
  EXPECT_TRUE(list.matches(at(2026, 7, 1, 0, 11)));  // the 1st, a Wednesday
  EXPECT_TRUE(list.matches(at(2026, 7, 5, 0, 5)));   // a Sunday
  EXPECT_FALSE(list.matches(at(2026, 7, 6, 0, 5)));  // neither
  EXPECT_FALSE(list.matches(at(2026, 8, 1, 0, 5)));  // August
  EXPECT_TRUE(parse_cron("0 0 * * 7").matches(at(2026, 11, 22, 0, 0))) << "7 is Sunday too";
  EXPECT_THROW(parse_cron("60 * * * *"), std::invalid_argument);
  EXPECT_THROW(parse_cron("* * * *"), std::invalid_argument);
  EXPECT_THROW(parse_cron("5-1 * * * *"), std::invalid_argument);
  EXPECT_THROW(parse_cron("* * 0 * *"), std::invalid_argument);
}

TEST(Placeholders, ExpandsAndRejects) {
  PlaceholderValues v{"40123", "a", "web-a-1", "/opt/bin"};
  EXPECT_EQ(expand_placeholders("{bin_dir}/app --listen 127.0.0.1:{port} {{literal}}", v),
            "/opt/bin/app --listen 127.0.0.1:40123 {literal}");
  EXPECT_THROW(expand_placeholders("{nope}", v), std::invalid_argument);
}

TEST(MetricNames, RoundTrip) {
  for (const char* name : {"cpu", "memory", "request_rate", "latency_p50", "latency_p95", "latency_p99",
                           "network_in", "network_out", "custom:queue_depth"}) {
    auto m = parse_metric_name(name);
    ASSERT_TRUE(m.has_value()) << name;
    EXPECT_EQ(m->text(), name);
  }
  EXPECT_FALSE(parse_metric_name("custom:").has_value());
  EXPECT_FALSE(parse_metric_name("cpu_load").has_value());
}

}  // namespace
}  // namespace cumulo::scaling
