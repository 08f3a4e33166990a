// The stack file's `network:` section: the security groups a stack implies, what the section adds, and every
// refusal naming its line.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "core/config.h"
#include "core/files.h"
#include "net/net.h"
#include "stack/internal/gateway_config.h"
#include "stack/internal/network_policy.h"
#include "stack/stack_file.h"

namespace cumulo::stack {
namespace {

const std::string kBase = R"(name: s
zones: [a, b]
gateway: {listen: 0.0.0.0:8080, admin: 127.0.0.1:9901}
groups:
  - {name: web, max: 4, launch_template: {command: [app, "{port}"]}}
  - {name: app, path_prefix: /api/, max: 2, launch_template: {command: [app, "{port}"]}}
object_store:
  buckets: [{name: assets}]
database:
  primary_zone: a
  writer: 127.0.0.1:3306
  reader: 127.0.0.1:3307
)";

StackSpec parse(const std::string& network) {
  return parse_stack(core::ConfigNode::load_string(kBase + network, "stack.yaml"));
}

std::string error_of(const std::string& network) {
  try {
    parse(network);
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

TEST(StackNetwork, AbsentMeansLoopbackMode) {
  EXPECT_FALSE(parse("").network.enabled);
}

TEST(StackNetwork, TheStackImpliesItsSecurityGroups) {
  StackSpec s = parse("network: {ssh_from: [203.0.113.0/29]}\n");
  ASSERT_TRUE(s.network.enabled);
  EXPECT_EQ(s.network.cidr, "10.20.0.0/16");
  const net::NetworkSpec spec = internal::network_policy(s);
  net::Result<net::Plan> plan = net::make_plan(spec);
  ASSERT_TRUE(plan) << plan.error().message;

  EXPECT_EQ(group(spec, "gateway").subnet, net::SubnetKind::kPublic);
  EXPECT_EQ(group(spec, "web").subnet, net::SubnetKind::kPrivate);
  EXPECT_EQ(group(spec, "web").max_members_per_zone, 4);
  EXPECT_TRUE(group(spec, "web").egress_restricted);
  EXPECT_FALSE(group(spec, "web").internet_egress);

  EXPECT_TRUE(net::allowed(*plan, "outside", "gateway", 8080));
  EXPECT_FALSE(net::allowed(*plan, "outside", "gateway", 9901)) << "the admin API is on the host";
  EXPECT_FALSE(net::allowed(*plan, "outside", "web", 8080));
  EXPECT_TRUE(net::allowed(*plan, "gateway", "web", 8080));
  EXPECT_TRUE(net::allowed(*plan, "gateway", "app", 8080));
  EXPECT_TRUE(net::allowed(*plan, "web", "object_store", 9000));
  EXPECT_TRUE(net::allowed(*plan, "gateway", "object_store", 9000));
  EXPECT_TRUE(net::allowed(*plan, "object_store", "object_store", 9000)) << "replication between zones";
  EXPECT_TRUE(net::allowed(*plan, "web", "database", 3306));
  EXPECT_TRUE(net::allowed(*plan, "web", "database", 3307));
  EXPECT_FALSE(net::allowed(*plan, "gateway", "database", 3306));
  EXPECT_FALSE(net::allowed(*plan, "outside", "database", 3306));
  EXPECT_FALSE(net::allowed(*plan, "web", "gateway", 8080)) << "the web tier's egress is its data tier";
  EXPECT_FALSE(net::allowed(*plan, "web", "app", 8080));
  EXPECT_FALSE(net::allowed(*plan, "web", "outside", 443));
  EXPECT_TRUE(net::allowed_from(*plan, "outside", *net::parse_ipv4("203.0.113.2"), "web", 22))
      << "ssh from the allow list";
  EXPECT_FALSE(net::allowed_from(*plan, "outside", *net::parse_ipv4("203.0.113.100"), "web", 22));
  EXPECT_FALSE(net::allowed_from(*plan, "outside", *net::parse_ipv4("203.0.113.2"), "web", 23));
}

TEST(StackNetwork, TheDatabaseServersAreReachedOnlyByTheEndpointsAndEachOther) {
  StackSpec s = parse("network: {}\n");
  const net::NetworkSpec spec = internal::network_policy(s);
  net::Result<net::Plan> plan = net::make_plan(spec);
  ASSERT_TRUE(plan) << plan.error().message;
  const uint16_t port = internal::kDatabaseServerPort;
  EXPECT_EQ(group(spec, "database_servers").subnet, net::SubnetKind::kPrivate);
  EXPECT_TRUE(net::allowed(*plan, "database", "database_servers", port)) << "the endpoints";
  EXPECT_TRUE(net::allowed(*plan, "database_servers", "database_servers", port)) << "replication";
  for (const char* from : {"web", "app", "gateway", "object_store", "outside"}) {
    EXPECT_FALSE(net::allowed(*plan, from, "database_servers", port)) << from;
  }
  EXPECT_FALSE(net::allowed(*plan, "database_servers", "database", 3306));
  EXPECT_FALSE(net::allowed(*plan, "web", "database_servers", 3306));
}

TEST(StackNetwork, EgressAndAllowAddToThePolicy) {
  StackSpec s = parse(R"(network:
  egress:
    web: [app, outside]
  allow:
    - {from: web, to: app, ports: 9000-9001}
)");
  net::Result<net::Plan> plan = net::make_plan(internal::network_policy(s));
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_TRUE(net::allowed(*plan, "web", "app", 9000));
  EXPECT_TRUE(net::allowed(*plan, "web", "app", 9001));
  EXPECT_FALSE(net::allowed(*plan, "web", "app", 9002));
  EXPECT_FALSE(net::allowed(*plan, "web", "object_store", 9000)) << "egress named: only what it names";
  EXPECT_TRUE(net::allowed(*plan, "web", "outside", 443));
  EXPECT_FALSE(net::allowed(*plan, "app", "outside", 443));
}

TEST(StackNetwork, RefusalsNameTheLine) {
  struct Case {
    std::string network;
    std::string expected;
  };
  const Case cases[] = {
      {"network: {cidr: 10.20.0.0/33}\n", "stack.yaml:13:17: network.cidr: expected an IPv4 CIDR"},
      {"network: {outside: nonsense}\n", "stack.yaml:13:20: network.outside: expected an IPv4 CIDR"},
      {"network: {cidr: 10.20.0.0/16, outside: 10.20.5.0/24}\n", "overlap"},
      {"network: {cidr: 10.20.0.0/24}\n", "stack.yaml"},  // four /24 subnets do not fit a /24
      {"network: {subnet_prefix: 29}\n", "web"},          // 4 instances and more in a /29 of 8 addresses
      {"network: {allow: [{from: web, to: nowhere, ports: 80}]}\n",
       "stack.yaml:13:19: network.allow: 'to: nowhere'"},
      {"network: {allow: [{from: web, to: app, ports: 70000}]}\n",
       "stack.yaml:13:47: network.allow[0].ports: expected a port"},
      {"network: {allow: [{from: web, to: app, ports: 90-80}]}\n", "ends before it starts"},
      {"network: {egress: {nobody: [app]}}\n", "network.egress: 'nobody' is not a group"},
      {"network: {egress: {web: [elsewhere]}}\n", "network.egress.web: 'elsewhere'"},
      {"network: {colour: blue}\n", "colour"},
  };
  for (const Case& c : cases) {
    const std::string error = error_of(c.network);
    EXPECT_NE(error.find(c.expected), std::string::npos) << c.network << " -> " << error;
  }
}

// gateway.tls: a second listener with its certificate in the generated config, and port 443 open from outside
// in network mode; refused on a port already used, or with a certificate that cannot be read.
TEST(StackNetwork, GatewayTlsListener) {
  char dir[] = "/tmp/cumulo-tls-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string cert = std::string(dir) + "/site.pem", key = std::string(dir) + "/site.key";
  core::write_file_atomically(cert, "cert");
  core::write_file_atomically(key, "key");
  auto stack_text = [&](const std::string& tls) {
    return "name: s\nzones: [a]\ngateway:\n  listen: 0.0.0.0:80\n  tls: " + tls +
           "\ngroups:\n  - {name: web, launch_template: {command: [app, \"{port}\"]}}\nnetwork: {}\n";
  };
  StackSpec s = parse_stack(core::ConfigNode::load_string(
      stack_text("{listen: 0.0.0.0:443, cert: " + cert + ", key: " + key + "}"), "stack.yaml"));
  EXPECT_EQ(s.gateway.tls_listen, "0.0.0.0:443");
  const std::string config = internal::render_gateway_config(s, {});
  EXPECT_NE(config.find("name: \"https\"\n    listen: \"0.0.0.0:443\"\n    tls:"), std::string::npos)
      << config;
  EXPECT_NE(config.find("cert: \"" + cert + "\""), std::string::npos) << config;
  net::Result<net::Plan> plan = net::make_plan(internal::network_policy(s));
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_TRUE(net::allowed(*plan, "outside", "gateway", 443));
  EXPECT_TRUE(net::allowed(*plan, "outside", "gateway", 80));

  auto error_of_tls = [&](const std::string& tls) {
    try {
      parse_stack(core::ConfigNode::load_string(stack_text(tls), "stack.yaml"));
    } catch (const core::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(
      error_of_tls("{listen: 0.0.0.0:80, cert: " + cert + ", key: " + key + "}").find("a port of its own"),
      std::string::npos);
  EXPECT_NE(
      error_of_tls("{listen: 0.0.0.0:443, cert: " + cert + ", key: /nonexistent.key}").find("cannot read"),
      std::string::npos);
  EXPECT_NE(error_of_tls("{listen: 0.0.0.0:443, cert: " + cert + "}").find("key"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(StackNetwork, AGroupMayNotTakeTheNameOfAStackSecurityGroup) {
  const std::string text = R"(name: s
zones: [a]
gateway: {listen: 0.0.0.0:8080}
groups:
  - {name: database, launch_template: {command: [app, "{port}"]}}
network: {}
)";
  try {
    parse_stack(core::ConfigNode::load_string(text, "stack.yaml"));
    FAIL() << "accepted";
  } catch (const core::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("stack.yaml:5:5: group name 'database'"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace cumulo::stack
