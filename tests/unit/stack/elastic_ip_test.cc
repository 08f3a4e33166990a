// `gateway.zones` and `elastic_ips:` in the stack file: one gateway per zone, addresses given or assigned,
// the gateways each may move between, every refusal with its line; and the keeper's config that `cumulo up`
// writes from them.
#include <gtest/gtest.h>

#include <string>

#include "core/config.h"
#include "net/net.h"
#include "stack/internal/eip_config.h"
#include "stack/internal/gateway_config.h"
#include "stack/internal/network_policy.h"
#include "stack/stack_file.h"

namespace cumulo::stack {
namespace {

const std::string kBase = R"(name: s
zones: [a, b]
groups:
  - {name: web, max: 4, launch_template: {command: [app, "{port}"]}}
)";

StackSpec parse(const std::string& rest) {
  return parse_stack(core::ConfigNode::load_string(kBase + rest, "stack.yaml"));
}

std::string error_of(const std::string& rest) {
  try {
    parse(rest);
  } catch (const core::ConfigError& e) {
    return e.what();
  }
  return "no error";
}

const std::string kTwoGateways = "gateway: {listen: 0.0.0.0:80, zones: [a, b]}\nnetwork: {}\n";

TEST(GatewayZones, OneGatewayPerZoneNamedByIt) {
  StackSpec s = parse(kTwoGateways);
  auto gws = gateway_instances(s);
  ASSERT_EQ(gws.size(), 2u);
  EXPECT_EQ(gws[0].id, "gateway-a");
  EXPECT_EQ(gws[0].zone, "a");
  EXPECT_EQ(gws[1].id, "gateway-b");
  // Without zones: the one gateway of old, named gateway.
  StackSpec one = parse("gateway: {listen: 127.0.0.1:8080}\n");
  ASSERT_EQ(gateway_instances(one).size(), 1u);
  EXPECT_EQ(gateway_instances(one)[0].id, "gateway");
}

TEST(GatewayZones, Refusals) {
  EXPECT_EQ(error_of("gateway: {listen: 0.0.0.0:80, zones: [a, c]}\nnetwork: {}\n"),
            "stack.yaml:5:42: gateway.zones[1]: zone 'c' is not one of the stack's zones");
  EXPECT_EQ(error_of("gateway: {listen: 0.0.0.0:80, zones: [a, a]}\nnetwork: {}\n"),
            "stack.yaml:5:42: gateway.zones[1]: zone 'a' is listed twice");
  EXPECT_EQ(error_of("gateway: {listen: 0.0.0.0:80, zone: a, zones: [a, b]}\nnetwork: {}\n"),
            "stack.yaml:5:47: gateway.zones: give either zone (one gateway) or zones (one gateway per zone), "
            "not both");
  EXPECT_EQ(
      error_of("gateway: {listen: 127.0.0.1:80, zones: [a, b]}\n"),
      "stack.yaml:5:40: gateway.zones: one gateway per zone runs each in its zone's public subnet: add a "
      "`network:` section (docs/network.md), or give `zone:` for one gateway");
}

TEST(ElasticIps, AddressesGivenOrAssignedAndGatewaysDefaultToAll) {
  StackSpec s = parse(kTwoGateways +
                      "elastic_ips:\n"
                      "  - {name: web}\n"
                      "  - {name: api, address: 198.51.100.10, gateways: [gateway-b]}\n"
                      "  - {name: www}\n");
  ASSERT_EQ(s.elastic_ips.size(), 3u);
  // Assigned in order, past the one given later in the file.
  EXPECT_EQ(s.elastic_ips[0].address, "198.51.100.11");
  EXPECT_EQ(s.elastic_ips[1].address, "198.51.100.10");
  EXPECT_EQ(s.elastic_ips[0].gateways, (std::vector<std::string>{"gateway-a", "gateway-b"}));
  EXPECT_EQ(s.elastic_ips[1].gateways, (std::vector<std::string>{"gateway-b"}));
  EXPECT_EQ(s.elastic_ips[2].address, "198.51.100.12");
}

TEST(ElasticIps, Refusals) {
  auto eips = [](const std::string& list) { return kTwoGateways + "elastic_ips:\n" + list; };
  EXPECT_EQ(error_of("gateway: {listen: 127.0.0.1:80}\nelastic_ips: [{name: web}]\n"),
            "stack.yaml:6:14: elastic_ips: an elastic IP lives on the public side of the stack's VPC and "
            "moves between "
            "gateways' namespaces: add a `network:` section (docs/network.md)");
  EXPECT_EQ(error_of(eips("  - {name: web, gateways: [gateway-c]}\n")),
            "stack.yaml:8:28: elastic_ips[0].gateways[0]: 'gateway-c' is not a gateway of the stack "
            "(gateway-a, gateway-b; gateway.zones runs "
            "one per zone)");
  EXPECT_EQ(error_of(eips("  - {name: web, gateways: [gateway-a, gateway-a]}\n")),
            "stack.yaml:8:39: elastic_ips[0].gateways[1]: gateway 'gateway-a' is listed twice");
  EXPECT_EQ(error_of(eips("  - {name: web}\n  - {name: web}\n")),
            "stack.yaml:9:12: elastic_ips[1].name: elastic IP 'web' is defined twice");
  EXPECT_EQ(error_of(eips("  - {name: 'a b'}\n")),
            "stack.yaml:8:12: elastic_ips[0].name: expected a name of letters, digits, '-' and '_', at most "
            "32 characters");
  EXPECT_EQ(
      error_of(eips("  - {name: web, address: 10.20.0.9}\n")),
      "stack.yaml:8:5: elastic IP web: 10.20.0.9 is inside the VPC CIDR 10.20.0.0/16; it needs an address of "
      "its own, routed to its holder");
  EXPECT_EQ(error_of(eips("  - {name: web, address: 300.1.1.1}\n")),
            "stack.yaml:8:26: elastic_ips[0].address: expected an IPv4 address such as 198.51.100.10");
  EXPECT_EQ(error_of(eips("  - {name: web, size: 1}\n")),
            "stack.yaml:8:17: elastic_ips[0]: unknown key 'size' (expected one of: name, address, gateways)");
}

TEST(ElasticIps, AreAddressesOfTheGatewayGroup) {
  StackSpec s = parse(kTwoGateways + "elastic_ips: [{name: web}]\n");
  auto plan = net::make_plan(internal::network_policy(s));
  ASSERT_TRUE(plan) << plan.error().message;
  ASSERT_NE(plan->group_of(*net::parse_ipv4("198.51.100.10")), nullptr);
  EXPECT_EQ(plan->group_of(*net::parse_ipv4("198.51.100.10"))->name, "gateway");
  EXPECT_TRUE(net::allowed(*plan, "outside", "gateway", 80));
  // One address per zone for the gateways.
  ASSERT_NE(plan->block("gateway", "b"), nullptr);
  EXPECT_EQ(plan->block("gateway", "b")->count, 1u);
}

TEST(ElasticIps, KeeperConfigNamesEveryGatewayAndAddress) {
  StackSpec s = parse(kTwoGateways + "elastic_ips: [{name: web, gateways: [gateway-b, gateway-a]}]\n");
  std::string y = internal::render_eip_keeper_config(
      s,
      {{"gateway-a", "cu-s.gateway-a", 0x0a140002, 80, "v00000001", "127.0.0.1:9901"},
       {"gateway-b", "cu-s.gateway-b", 0x0a140202, 80, "v00000002", "127.0.0.1:9950"}},
      "cu-s.router", "127.0.0.1:9960", "/state/eips.json");
  core::ConfigNode root = core::ConfigNode::load_string(y, "eip-keeper.yaml");
  EXPECT_EQ(root["admin"].as_string(), "127.0.0.1:9960");
  EXPECT_EQ(root["router_namespace"].as_string(), "cu-s.router");
  EXPECT_EQ(root["state_file"].as_string(), "/state/eips.json");
  EXPECT_EQ(root["check"]["path"].as_string(), internal::kGatewayMonitorUri);
  auto gws = root["gateways"].items();
  ASSERT_EQ(gws.size(), 2u);
  EXPECT_EQ(gws[1]["address"].as_string(), "10.20.2.2");
  EXPECT_EQ(gws[1]["router_interface"].as_string(), "v00000002");
  auto eips = root["elastic_ips"].items();
  ASSERT_EQ(eips.size(), 1u);
  EXPECT_EQ(eips[0]["address"].as_string(), "198.51.100.10");
  EXPECT_EQ(eips[0]["gateways"].as_string_list(), (std::vector<std::string>{"gateway-b", "gateway-a"}));
}

TEST(ElasticIps, GatewayConfigCarriesItsIdAndMonitorPath) {
  StackSpec s = parse(kTwoGateways);
  s.gateway.server_id = "gateway-b";
  s.gateway.monitor_uri = internal::kGatewayMonitorUri;
  core::ConfigNode root =
      core::ConfigNode::load_string(internal::render_gateway_config(s, {}), "gateway.yaml");
  EXPECT_EQ(root["server_id"].as_string(), "gateway-b");
  EXPECT_EQ(root["monitor_uri"].as_string(), "/.cumulo/gateway");
  // A stack of one gateway without elastic IPs: neither.
  StackSpec plain = parse("gateway: {listen: 127.0.0.1:8080}\n");
  core::ConfigNode p =
      core::ConfigNode::load_string(internal::render_gateway_config(plain, {}), "gateway.yaml");
  EXPECT_FALSE(p["server_id"].defined());
  EXPECT_FALSE(p["monitor_uri"].defined());
}

}  // namespace
}  // namespace cumulo::stack
