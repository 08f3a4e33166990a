// Tiers: internal groups behind the stack's internal load balancer (`internal_lb:`), from the stack file to
// the two gateway configs written for it and the security groups it implies; every refusal names its line.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "core/config.h"
#include "net/net.h"
#include "stack/internal/gateway_config.h"
#include "stack/internal/network_policy.h"
#include "stack/stack_file.h"

namespace cumulo::stack {
namespace {

using namespace std::chrono_literals;

// Line 1 is `name:`; the groups are on lines 5 and 6, `internal_lb:` (when given) starts at line 7.
const std::string kTiers = R"(name: s
zones: [a, b]
gateway: {listen: 127.0.0.1:8080, admin: 127.0.0.1:9901, health_check: {path: /healthz, interval: 500ms}}
groups:
  - {name: web, max: 3, launch_template: {command: [app, "{port}", "{internal_lb}"]}}
  - {name: app, path_prefix: /app/, internal: true, max: 2, launch_template: {command: [app, "{port}"]}}
)";

StackSpec parse(const std::string& text) {
  return parse_stack(core::ConfigNode::load_string(text, "stack.yaml"));
}

std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const core::ConfigError& e) {
    return e.what();
  }
  return "no error";
}

const net::SecurityGroupSpec& group(const net::NetworkSpec& spec, const std::string& name) {
  auto it =
      std::find_if(spec.groups.begin(), spec.groups.end(), [&](const auto& g) { return g.name == name; });
  if (it == spec.groups.end()) throw std::runtime_error("no group " + name);
  return *it;
}

TEST(InternalLb, ParsesWithDefaults) {
  StackSpec s = parse(kTiers + "internal_lb: {listen: 127.0.0.1:8000, from: [web]}\n");
  ASSERT_TRUE(s.internal_lb.enabled);
  EXPECT_EQ(s.internal_lb.listen, "127.0.0.1:8000");
  EXPECT_EQ(s.internal_lb.admin, "") << "a free loopback port, taken at start";
  EXPECT_EQ(s.internal_lb.zone, "a") << "the stack's first zone";
  EXPECT_EQ(s.internal_lb.from, std::vector<std::string>{"web"});
  EXPECT_FALSE(s.groups[0].internal);
  EXPECT_TRUE(s.groups[1].internal);
  EXPECT_FALSE(parse(R"(name: s
zones: [a]
gateway: {listen: 127.0.0.1:8080}
groups:
  - {name: web, launch_template: {command: [app, "{port}"]}}
)")
                   .internal_lb.enabled);
}

TEST(InternalLb, ThePublicGatewayLeavesTheInternalGroupsOut) {
  StackSpec s = parse(kTiers + "internal_lb: {listen: 127.0.0.1:8000, admin: 127.0.0.1:9905, from: [web]}\n");
  core::ConfigNode root =
      core::ConfigNode::load_string(internal::render_gateway_config(s, {}), "gateway.yaml");
  auto routes = root["routes"].items();
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(routes[0]["target_group"].as_string(), "web");
  auto groups = root["target_groups"].items();
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0]["name"].as_string(), "web");
}

TEST(InternalLb, ItsConfigRoutesEveryInternalGroupWithItsHealthCheck) {
  StackSpec s =
      parse(kTiers + "internal_lb: {listen: 127.0.0.1:8000, admin: 127.0.0.1:9905, zone: b, from: [web]}\n");
  std::vector<internal::GatewayTarget> targets = {{"app", "a", "127.0.0.1:40001"},
                                                  {"web", "a", "127.0.0.1:40002"}};
  core::ConfigNode root =
      core::ConfigNode::load_string(internal::render_internal_lb_config(s, targets), "internal-lb.yaml");
  EXPECT_EQ(root["zone"].as_string(), "b");
  EXPECT_EQ(root["admin"]["listen"].as_string(), "127.0.0.1:9905");
  auto listeners = root["listeners"].items();
  ASSERT_EQ(listeners.size(), 1u);
  EXPECT_EQ(listeners[0]["listen"].as_string(), "127.0.0.1:8000");
  auto routes = root["routes"].items();
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(routes[0]["path_prefix"].as_string(), "/app/");
  EXPECT_EQ(routes[0]["target_group"].as_string(), "app");
  auto groups = root["target_groups"].items();
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0]["name"].as_string(), "app");
  EXPECT_TRUE(groups[0]["zone_aware"].as_bool());
  EXPECT_EQ(groups[0]["health_check"]["path"].as_string(), "/healthz");
  EXPECT_EQ(groups[0]["health_check"]["interval"].as_duration(), 500ms);
  auto app_targets = groups[0]["targets"].items();
  ASSERT_EQ(app_targets.size(), 1u) << "only the internal group's targets";
  EXPECT_EQ(app_targets[0]["address"].as_string(), "127.0.0.1:40001");
}

TEST(InternalLb, ThePlaceholderNamesIt) {
  scaling::PlaceholderValues values;
  values.internal_lb = "10.20.1.9:8000";
  EXPECT_EQ(scaling::expand_placeholders("--backend={internal_lb}", values), "--backend=10.20.1.9:8000");
}

TEST(InternalLb, RefusalsNameTheLine) {
  struct Case {
    std::string text;
    std::string expected;
  };
  const std::string lb = "internal_lb: {listen: 127.0.0.1:8000, from: [web]}\n";
  const std::string two_public = R"(name: s
zones: [a]
gateway: {listen: 127.0.0.1:8080, admin: 127.0.0.1:9901}
groups:
  - {name: web, launch_template: {command: [app, "{port}"]}}
  - {name: api, path_prefix: /api/, launch_template: {command: [app, "{port}", "{internal_lb}"]}}
)";
  std::string no_placeholder = kTiers;
  const std::string placeholder = R"(, "{internal_lb}")";
  no_placeholder.erase(no_placeholder.find(placeholder), placeholder.size());
  const Case cases[] = {
      {no_placeholder, "stack.yaml:6:47: groups[1].internal: group 'app' is internal but the stack has no"},
      {kTiers, "stack.yaml:5:68: groups[0].launch_template.command[2]: {internal_lb} names"},
      {two_public, "stack.yaml:6:80: groups[1].launch_template.command[2]: {internal_lb} names"},
      {two_public + lb, "stack.yaml:7:14: internal_lb: no group is internal"},
      {kTiers + "internal_lb: {listen: 127.0.0.1:8000, from: [nobody]}\n",
       "stack.yaml:7:46: internal_lb.from[0]: 'nobody' is not a group of the stack"},
      {kTiers + "internal_lb: {listen: 127.0.0.1:8000, from: [app]}\n",
       "stack.yaml:7:46: internal_lb.from[0]: 'app' is internal"},
      {kTiers + "internal_lb: {listen: 127.0.0.1:8000, from: [web, web]}\n", "'web' is listed twice"},
      {kTiers + "internal_lb: {listen: 127.0.0.1:8000}\n",
       "stack.yaml:7:14: internal_lb: missing key 'from'"},
      {kTiers + "internal_lb: {listen: 127.0.0.1:8000, from: []}\n", "internal_lb.from: expected the groups"},
      {kTiers + "internal_lb: {listen: 127.0.0.1:8080, from: [web]}\n",
       "stack.yaml:7:23: internal_lb.listen: port 8080 is taken by gateway.listen"},
      {kTiers + "internal_lb: {listen: 127.0.0.1:8000, admin: 127.0.0.1:9901, from: [web]}\n",
       "internal_lb.admin: port 9901 is taken by gateway.admin"},
      {kTiers + "internal_lb: {listen: 127.0.0.1:8000, admin: 10.0.0.1:9905, from: [web]}\n",
       "internal_lb.admin: the admin API must listen on a loopback address"},
      {kTiers + "internal_lb: {listen: 127.0.0.1:8000, zone: c, from: [web]}\n",
       "internal_lb.zone: zone 'c' is not one of the stack's zones"},
      {kTiers + "internal_lb: {listen: 127.0.0.1:8000, from: [web], colour: blue}\n", "colour"},
      {R"(name: s
zones: [a]
gateway: {listen: 127.0.0.1:8080}
groups:
  - {name: app, internal: true, launch_template: {command: [app, "{port}"]}}
)" + lb,
       "stack.yaml:5:27: groups[0].internal: every group is internal"},
      {kTiers + R"(internal_lb: {listen: 0.0.0.0:8000, from: [web]}
network:
  egress: {web: []}
  allow: [{from: web, to: internal_lb, ports: 8000}]
)",
       "no error"},
  };
  for (const Case& c : cases) {
    const std::string error = error_of(c.text);
    EXPECT_NE(error.find(c.expected), std::string::npos) << c.text << " -> " << error;
  }
}

TEST(InternalLb, ThePolicyPutsItBetweenTheTiers) {
  StackSpec s = parse(kTiers + "internal_lb: {listen: 0.0.0.0:8000, from: [web]}\nnetwork: {}\n");
  const net::NetworkSpec spec = internal::network_policy(s);
  net::Result<net::Plan> plan = net::make_plan(spec);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(group(spec, "internal_lb").subnet, net::SubnetKind::kPrivate);
  EXPECT_EQ(group(spec, "internal_lb").max_members_per_zone, 1);
  EXPECT_TRUE(net::allowed(*plan, "gateway", "web", 8080));
  EXPECT_FALSE(net::allowed(*plan, "gateway", "app", 8080)) << "internal: not routed from the gateway";
  EXPECT_TRUE(net::allowed(*plan, "internal_lb", "app", 8080));
  EXPECT_TRUE(net::allowed(*plan, "web", "internal_lb", 8000)) << "from: [web], and web's egress has it";
  EXPECT_FALSE(net::allowed(*plan, "web", "app", 8080)) << "only through the internal load balancer";
  EXPECT_FALSE(net::allowed(*plan, "outside", "internal_lb", 8000));
  EXPECT_FALSE(net::allowed(*plan, "gateway", "internal_lb", 8000));
  EXPECT_FALSE(net::allowed(*plan, "app", "internal_lb", 8000));
  EXPECT_FALSE(net::allowed(*plan, "outside", "app", 8080));
  // An egress override keeps the internal load balancer: `from` says web reaches it.
  StackSpec narrow =
      parse(kTiers + "internal_lb: {listen: 0.0.0.0:8000, from: [web]}\nnetwork: {egress: {web: []}}\n");
  net::Result<net::Plan> narrow_plan = net::make_plan(internal::network_policy(narrow));
  ASSERT_TRUE(narrow_plan) << narrow_plan.error().message;
  EXPECT_TRUE(net::allowed(*narrow_plan, "web", "internal_lb", 8000));
}

}  // namespace
}  // namespace cumulo::stack
