// IPv4 addresses and prefixes: parsing, containment, overlap.
#include <gtest/gtest.h>

#include "net/net.h"

namespace cumulo::net {
namespace {

TEST(Ipv4, ParsesDottedQuads) {
  EXPECT_EQ(parse_ipv4("10.20.0.1"), 0x0a140001u);
  EXPECT_EQ(parse_ipv4("0.0.0.0"), 0u);
  EXPECT_EQ(parse_ipv4("255.255.255.255"), 0xffffffffu);
  for (const char* bad : {"", "10.20.0", "10.20.0.1.", "10.20.0.256", "10..0.1", "010.0.0.1", "1.2.3.4 ",
                          " 1.2.3.4", "1.2.3.-4", "1.2.3.1000", "a.b.c.d", "1.2.3.4/"})
    EXPECT_FALSE(parse_ipv4(bad)) << bad;
  EXPECT_EQ(ipv4_text(0xcb007102), "203.0.113.2");
}

TEST(Ipv4Cidr, ParsesPrefixesAndRefusesHostBits) {
  auto c = Ipv4Cidr::parse("10.20.0.0/16");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->base, 0x0a140000u);
  EXPECT_EQ(c->prefix, 16);
  EXPECT_EQ(c->str(), "10.20.0.0/16");
  EXPECT_EQ(c->size(), 65536u);
  EXPECT_EQ(c->last(), 0x0a14ffffu);
  EXPECT_EQ(c->host(1), 0x0a140001u);
  auto single = Ipv4Cidr::parse("192.0.2.7");
  ASSERT_TRUE(single);
  EXPECT_EQ(single->prefix, 32);
  EXPECT_EQ(single->size(), 1u);
  auto all = Ipv4Cidr::parse("0.0.0.0/0");
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), uint64_t{1} << 32);
  EXPECT_TRUE(all->contains(0xffffffffu));
  for (const char* bad : {"10.20.0.1/16", "10.20.0.0/33", "10.20.0.0/", "10.20.0.0/016", "10.20.0.0/1a",
                          "/16", "10.20.0.0/-1", "10.20.0.0/16/1"})
    EXPECT_FALSE(Ipv4Cidr::parse(bad)) << bad;
}

TEST(Ipv4Cidr, ContainsAndOverlaps) {
  auto vpc = *Ipv4Cidr::parse("10.20.0.0/16");
  auto sub = *Ipv4Cidr::parse("10.20.3.0/24");
  auto next = *Ipv4Cidr::parse("10.21.0.0/16");
  auto wide = *Ipv4Cidr::parse("10.0.0.0/8");
  EXPECT_TRUE(vpc.contains(sub));
  EXPECT_FALSE(sub.contains(vpc));
  EXPECT_TRUE(vpc.overlaps(sub));
  EXPECT_TRUE(sub.overlaps(vpc));
  EXPECT_FALSE(vpc.overlaps(next));
  EXPECT_TRUE(wide.overlaps(next));
  EXPECT_TRUE(vpc.contains(0x0a14ffffu));
  EXPECT_FALSE(vpc.contains(0x0a150000u));
  EXPECT_FALSE(vpc.contains(0x0a13ffffu));
  auto edge = *Ipv4Cidr::parse("255.255.255.0/24");
  EXPECT_EQ(edge.last(), 0xffffffffu);
  EXPECT_TRUE(edge.contains(0xffffffffu));
}

}  // namespace
}  // namespace cumulo::net
