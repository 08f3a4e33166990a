// The cumulo-gateway field and the names it is made of (src/gateway/internal/identity.h).
#include "gateway/internal/identity.h"

#include <gtest/gtest.h>

#include <string>

namespace cumulo::gateway {
namespace {

TEST(IdentityField, NamesTheServerThenItsLeasesSortedByName) {
  EXPECT_EQ(render_identity_field("gateway-a", {{"web", 7}, {"api", 3}}),
            "cumulo-gateway: gateway-a api=3 web=7\r\n");
  EXPECT_EQ(render_identity_field("gw.zone-b_1", {}), "cumulo-gateway: gw.zone-b_1\r\n");
  EXPECT_EQ(render_identity_field("g", {{"x", 9223372036854775807}}),
            "cumulo-gateway: g x=9223372036854775807\r\n");
}

TEST(IdentityField, NoServerIdMeansNoFieldEvenWithLeases) {
  EXPECT_EQ(render_identity_field("", {}), "");
  EXPECT_EQ(render_identity_field("", {{"web", 7}}), "");
}

TEST(IdentityField, TheLargestFieldFitsTheRoomResponsesKeepForIt) {
  Leases leases;
  for (size_t i = 0; i < kMaxLeases; ++i) {
    std::string name(kMaxLeaseNameBytes, 'a');
    name.replace(0, 2, std::to_string(10 + i));
    leases[name] = 9223372036854775807;
  }
  std::string field = render_identity_field(std::string(kMaxServerIdBytes, 's'), leases);
  EXPECT_EQ(field.size(), kMaxIdentityFieldBytes);
}

TEST(IdentityNames, ServerIds) {
  EXPECT_TRUE(valid_server_id("gateway-a"));
  EXPECT_TRUE(valid_server_id("eu-west.1_b"));
  EXPECT_TRUE(valid_server_id(std::string(64, 'x')));
  EXPECT_FALSE(valid_server_id(std::string(65, 'x')));
  EXPECT_FALSE(valid_server_id(""));
  for (const char* bad : {"gw a", "gw=a", "gw\r\nx: y", "gw/a", "gwä", "gw:a", "gw,a"})
    EXPECT_FALSE(valid_server_id(bad)) << bad;
}

TEST(IdentityNames, LeaseNames) {
  EXPECT_TRUE(valid_lease_name("web"));
  EXPECT_TRUE(valid_lease_name("eip-1_a"));
  EXPECT_TRUE(valid_lease_name(std::string(64, 'w')));
  EXPECT_FALSE(valid_lease_name(std::string(65, 'w')));
  EXPECT_FALSE(valid_lease_name(""));
  for (const char* bad : {"a.b", "a=b", "a b", "a%20", "a/b", "a\n"})
    EXPECT_FALSE(valid_lease_name(bad)) << bad;
}

TEST(IdentityNames, MonitorUris) {
  EXPECT_TRUE(valid_monitor_uri("/"));
  EXPECT_TRUE(valid_monitor_uri("/_gateway/alive"));
  for (const char* bad : {"", "alive", "/alive?x=1", "/a#b", "/a b", "/a\t", "/a\x7f"})
    EXPECT_FALSE(valid_monitor_uri(bad)) << bad;
}

}  // namespace
}  // namespace cumulo::gateway
