// The keeper's pure parts: who should hold an elastic IP (decide), the lease file, and its configuration with
// every refusal naming its line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/config.h"
#include "eip/internal/config.h"
#include "eip/internal/lease.h"

namespace cumulo::eip::internal {
namespace {

using H = GatewayHealth;

Lease held_by(std::string holder, uint64_t term) {
  Lease l;
  l.holder = std::move(holder);
  l.term = term;
  return l;
}

TEST(Decide, AHealthyHolderKeepsItsAddressEvenWhenAPreferredGatewayRecovers) {
  Decision d = decide(held_by("gw-b", 3), {{"gw-a", H::kHealthy, ""}, {"gw-b", H::kHealthy, ""}});
  EXPECT_EQ(d.kind, Decision::Kind::kRenew);
}

TEST(Decide, AnUnhealthyHolderLosesItToTheFirstHealthyCandidate) {
  Decision d = decide(held_by("gw-a", 3), {{"gw-a", H::kUnhealthy, "connect: Connection refused"},
                                           {"gw-b", H::kUnknown, ""},
                                           {"gw-c", H::kHealthy, ""}});
  ASSERT_EQ(d.kind, Decision::Kind::kMove);
  EXPECT_EQ(d.to, "gw-c");
  EXPECT_EQ(d.reason, "gw-a failed its health check (connect: Connection refused)");
}

TEST(Decide, NobodyHoldingItGivesItToTheFirstHealthyInOrder) {
  Decision d =
      decide(Lease{}, {{"gw-a", H::kUnknown, ""}, {"gw-b", H::kHealthy, ""}, {"gw-c", H::kHealthy, ""}});
  ASSERT_EQ(d.kind, Decision::Kind::kMove);
  EXPECT_EQ(d.to, "gw-b");
  EXPECT_EQ(d.reason, "nobody holds it");
}

TEST(Decide, WithoutAHealthyCandidateNothingMovesAndTheReasonSaysWhy) {
  Decision d = decide(held_by("gw-a", 1), {{"gw-a", H::kUnhealthy, "timeout"}, {"gw-b", H::kUnhealthy, ""}});
  EXPECT_EQ(d.kind, Decision::Kind::kNothing);
  EXPECT_EQ(d.reason, "gw-a failed its health check (timeout), and no other gateway is healthy");
}

TEST(Decide, AHolderNotYetCheckedKeepsIt) {
  // A keeper started again: the first checks have not come back.
  Decision d = decide(held_by("gw-a", 5), {{"gw-a", H::kUnknown, ""}, {"gw-b", H::kHealthy, ""}});
  EXPECT_EQ(d.kind, Decision::Kind::kNothing);
  EXPECT_EQ(d.reason, "");
}

TEST(Decide, AHolderThatMayNoLongerHoldItLosesIt) {
  Decision d = decide(held_by("gw-x", 5), {{"gw-a", H::kHealthy, ""}});
  ASSERT_EQ(d.kind, Decision::Kind::kMove);
  EXPECT_EQ(d.to, "gw-a");
  EXPECT_EQ(d.reason, "gw-x may no longer hold it");
}

class LeaseFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("cumulo-eip-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const char* name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

TEST_F(LeaseFile, MissingMeansNoLeases) {
  auto l = load_leases(path("none.json"));
  ASSERT_TRUE(l) << l.error().message;
  EXPECT_TRUE(l->empty());
}

TEST_F(LeaseFile, RoundTrips) {
  Leases leases;
  leases["web"] = held_by("gateway-b", 7);
  leases["web"].renewed_at_ms = 1000;
  leases["web"].expires_at_ms = 4000;
  Lease moving = held_by("gateway-a", 2);
  moving.state = "moving";
  moving.from = "gateway-b";
  leases["api"] = moving;
  ASSERT_TRUE(save_leases(path("eips.json"), leases));
  auto back = load_leases(path("eips.json"));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, leases);
}

TEST_F(LeaseFile, RefusesWhatIsNotALeaseFile) {
  std::ofstream(path("bad.json"))
      << "{\"elastic_ips\": {\"web\": {\"holder\": \"a\", \"term\": 1, \"state\": \"odd\"}}}";
  auto l = load_leases(path("bad.json"));
  ASSERT_FALSE(l);
  EXPECT_NE(l.error().message.find("unknown state 'odd'"), std::string::npos) << l.error().message;
  std::ofstream(path("junk.json")) << "[1, 2]";
  EXPECT_FALSE(load_leases(path("junk.json")));
}

const std::string kConfig = R"(stack: s
admin: 127.0.0.1:9960
state_file: /tmp/eips.json
router_namespace: cu-s.router
gateways:
  - {id: gateway-a, namespace: cu-s.gateway-a, address: 10.20.0.2, port: 80, router_interface: v1, admin: 127.0.0.1:9901}
  - {id: gateway-b, namespace: cu-s.gateway-b, address: 10.20.2.2, port: 80, router_interface: v2, admin: 127.0.0.1:9950}
elastic_ips:
  - {name: web, address: 198.51.100.10, gateways: [gateway-b, gateway-a]}
)";

KeeperConfig parse(const std::string& text) {
  return parse_keeper_config(core::ConfigNode::load_string(text, "eip.yaml"));
}

std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const core::ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(KeeperConfig, ParsesWithDefaults) {
  KeeperConfig c = parse(kConfig);
  ASSERT_EQ(c.gateways.size(), 2u);
  EXPECT_EQ(c.gateways[1].address, 0x0a140202u);
  EXPECT_EQ(c.gateways[1].interface, "eth0");
  ASSERT_EQ(c.elastic_ips.size(), 1u);
  EXPECT_EQ(c.elastic_ips[0].gateways, (std::vector<std::string>{"gateway-b", "gateway-a"}));
  EXPECT_EQ(c.lease_ttl.count(), 3000);
  EXPECT_EQ(c.check.interval.count(), 100);
  EXPECT_EQ(c.check.path, "/");
  ASSERT_NE(c.gateway("gateway-a"), nullptr);
  EXPECT_EQ(c.gateway("nope"), nullptr);
}

TEST(KeeperConfig, Refusals) {
  auto replace = [](std::string from, std::string to) {
    std::string t = kConfig;
    t.replace(t.find(from), from.size(), to);
    return error_of(t);
  };
  EXPECT_NE(replace("admin: 127.0.0.1:9960", "admin: 10.0.0.1:9960").find("expected a loopback address"),
            std::string::npos);
  EXPECT_NE(replace("/tmp/eips.json", "eips.json").find("expected an absolute path"), std::string::npos);
  EXPECT_NE(replace("gateways: [gateway-b, gateway-a]", "gateways: [gateway-c]")
                .find("'gateway-c' is not in gateways"),
            std::string::npos);
  EXPECT_NE(replace("address: 198.51.100.10", "address: 198.51.100").find("expected an IPv4 address"),
            std::string::npos);
  EXPECT_NE(replace("id: gateway-b", "id: gateway-a").find("gateway 'gateway-a' is listed twice"),
            std::string::npos);
  EXPECT_NE(error_of(kConfig + "lease_ttl: 50ms\n").find("expected at least 200ms"), std::string::npos);
  EXPECT_NE(error_of(kConfig + "check: {path: nope}\n").find("expected a path"), std::string::npos);
  EXPECT_EQ(error_of(kConfig + "color: red\n").find("eip.yaml:"), 0u);
}

}  // namespace
}  // namespace cumulo::eip::internal
