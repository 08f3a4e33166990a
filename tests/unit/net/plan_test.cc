// Planning without namespaces: subnets and address blocks, every refusal with its location, the router's
// ruleset (checked by `nft -c`) and the policy that allowed() answers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "net/net.h"

namespace cumulo::net {
namespace {

IngressRule rule(std::string from, int lo, int hi, std::string location) {
  return IngressRule{std::move(from), PortRange{lo, hi}, Protocol::kTcp, std::move(location)};
}

SecurityGroupSpec group(std::string name, SubnetKind kind, int max, std::string location) {
  SecurityGroupSpec g;
  g.name = std::move(name);
  g.subnet = kind;
  g.max_members_per_zone = max;
  g.location = std::move(location);
  return g;
}

// The three tiers, plus an admin group reached by SSH from an allow-list and a worker with internet
// egress only.
NetworkSpec three_tiers() {
  NetworkSpec s;
  s.stack = "shop";
  s.zones = {"a", "b"};
  s.location = "stack.yaml:3:1";
  SecurityGroupSpec gateway = group("gateway", SubnetKind::kPublic, 2, "stack.yaml:8:5");
  gateway.ingress.push_back(rule("outside", 80, 80, "stack.yaml:10:9"));
  gateway.ingress.push_back(rule("outside", 443, 443, "stack.yaml:11:9"));
  SecurityGroupSpec web = group("web", SubnetKind::kPrivate, 4, "stack.yaml:12:5");
  web.ingress.push_back(rule("gateway", 8080, 8080, "stack.yaml:14:9"));
  web.egress_restricted = true;
  web.egress = {"database"};
  web.ingress.push_back(rule("203.0.113.0/28", 22, 22, "stack.yaml:15:9"));
  SecurityGroupSpec database = group("database", SubnetKind::kPrivate, 2, "stack.yaml:17:5");
  database.ingress.push_back(rule("web", 3306, 3306, "stack.yaml:19:9"));
  database.ingress.push_back(rule("10.20.0.0/16", 9100, 9110, "stack.yaml:20:9"));
  SecurityGroupSpec worker = group("worker", SubnetKind::kPrivate, 1, "stack.yaml:22:5");
  worker.internet_egress = true;
  s.groups = {gateway, web, database, worker};
  return s;
}

std::string error_of(const NetworkSpec& s) {
  auto p = make_plan(s);
  return p ? std::string("(accepted)") : p.error().message;
}

TEST(MakePlan, CarvesSubnetsPerZonePublicThenPrivate) {
  auto plan = make_plan(three_tiers());
  ASSERT_TRUE(plan) << plan.error().message;
  ASSERT_EQ(plan->subnets.size(), 4u);
  EXPECT_EQ(plan->subnets[0].zone, "a");
  EXPECT_EQ(plan->subnets[0].kind, SubnetKind::kPublic);
  EXPECT_EQ(plan->subnets[0].cidr.str(), "10.20.0.0/24");
  EXPECT_EQ(ipv4_text(plan->subnets[0].router_address), "10.20.0.1");
  EXPECT_EQ(plan->subnets[1].cidr.str(), "10.20.1.0/24");
  EXPECT_EQ(plan->subnets[1].kind, SubnetKind::kPrivate);
  EXPECT_EQ(plan->subnets[2].zone, "b");
  EXPECT_EQ(plan->subnets[2].cidr.str(), "10.20.2.0/24");
  EXPECT_EQ(plan->subnets[3].cidr.str(), "10.20.3.0/24");
  EXPECT_EQ(plan->router_ns, "cu-shop.router");
  EXPECT_EQ(plan->outside_ns, "cu-shop.outside");
  EXPECT_EQ(ipv4_text(plan->outside_address), "203.0.113.2");
  EXPECT_EQ(ipv4_text(plan->outside_router_address), "203.0.113.1");
}

TEST(MakePlan, GivesEachGroupAContiguousBlockPerZone) {
  auto plan = make_plan(three_tiers());
  ASSERT_TRUE(plan);
  auto text = [&](const char* g, const char* z) {
    const AddressBlock* b = plan->block(g, z);
    return b ? ipv4_text(b->first) + "+" + std::to_string(b->count) : std::string("none");
  };
  EXPECT_EQ(text("gateway", "a"), "10.20.0.2+2");
  EXPECT_EQ(text("gateway", "b"), "10.20.2.2+2");
  EXPECT_EQ(text("web", "a"), "10.20.1.2+4");
  EXPECT_EQ(text("database", "a"), "10.20.1.6+2");
  EXPECT_EQ(text("worker", "a"), "10.20.1.8+1");
  EXPECT_EQ(text("worker", "b"), "10.20.3.8+1");
  ASSERT_EQ(plan->blocks.size(), 8u);
  EXPECT_EQ(plan->blocks[0].group, "gateway");  // group by group, zone by zone
  EXPECT_EQ(plan->blocks[1].group, "gateway");
  EXPECT_EQ(plan->blocks[2].group, "web");
  EXPECT_EQ(plan->group_of(0x0a140107)->name, "database");
  EXPECT_EQ(plan->group_of(0x0a140101), nullptr);  // the router's address
}

TEST(MakePlan, FillsASubnetExactlyAndRefusesOneMore) {
  NetworkSpec s = three_tiers();
  s.subnet_prefix = 28;  // 16 addresses: .2 to .14 usable, 13
  s.groups[0].max_members_per_zone = 13;
  s.groups[1].max_members_per_zone = 6;
  s.groups[2].max_members_per_zone = 6;
  s.groups[3].max_members_per_zone = 1;
  auto plan = make_plan(s);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(ipv4_text(plan->block("gateway", "a")->first + 12), "10.20.0.14");
  EXPECT_EQ(ipv4_text(plan->block("worker", "b")->first), "10.20.0.62");
  s.groups[3].max_members_per_zone = 2;
  std::string e = error_of(s);
  EXPECT_NE(e.find("stack.yaml:22:5: group 'worker' needs 2 addresses in the private subnet 10.20.0.16/28"),
            std::string::npos)
      << e;
  s.groups[3].max_members_per_zone = 1;
  s.groups[0].max_members_per_zone = 14;
  e = error_of(s);
  EXPECT_NE(e.find("stack.yaml:8:5: group 'gateway' needs 14"), std::string::npos) << e;
}

TEST(MakePlan, RefusesWithTheLocationAtFault) {
  struct Case {
    const char* what;
    void (*change)(NetworkSpec&);
    const char* expected;  // a part of the message, location first
  };
  const Case cases[] = {
      {"overlap", [](NetworkSpec& s) { s.outside = *Ipv4Cidr::parse("10.20.128.0/24"); },
       "stack.yaml:3:1: the VPC CIDR 10.20.0.0/16 overlaps the outside CIDR 10.20.128.0/24"},
      {"outside inside vpc", [](NetworkSpec& s) { s.cidr = *Ipv4Cidr::parse("203.0.0.0/16"); },
       "stack.yaml:3:1: the VPC CIDR 203.0.0.0/16 overlaps"},
      {"subnets do not fit",
       [](NetworkSpec& s) {
         s.cidr = *Ipv4Cidr::parse("10.20.0.0/23");
         s.zones = {"a", "b"};
       },
       "stack.yaml:3:1: 4 subnets of /24 (a public and a private one per zone) do not fit the VPC CIDR "
       "10.20.0.0/23"},
      {"subnet prefix shorter than vpc", [](NetworkSpec& s) { s.subnet_prefix = 12; },
       "stack.yaml:3:1: subnet prefix /12 does not fit"},
      {"no zone", [](NetworkSpec& s) { s.zones.clear(); },
       "stack.yaml:3:1: the network needs at least one zone"},
      {"zone twice",
       [](NetworkSpec& s) {
         s.zones = {"a", "a"};
       },
       "stack.yaml:3:1: zone 'a' is listed twice"},
      {"bad stack name", [](NetworkSpec& s) { s.stack = "a.b"; }, "stack.yaml:3:1: stack name 'a.b'"},
      {"unknown group", [](NetworkSpec& s) { s.groups[2].ingress[0].from = "wbe"; },
       "stack.yaml:19:9: group 'database': ingress from 'wbe', which is no group"},
      {"bad cidr", [](NetworkSpec& s) { s.groups[2].ingress[0].from = "10.20.0.1/16"; },
       "stack.yaml:19:9: group 'database': ingress from '10.20.0.1/16'"},
      {"port zero",
       [](NetworkSpec& s) {
         s.groups[2].ingress[0].ports = {0, 0};
       },
       "stack.yaml:19:9: group 'database': port 0 is out of range 1-65535"},
      {"port too high",
       [](NetworkSpec& s) {
         s.groups[2].ingress[0].ports = {3306, 70000};
       },
       "stack.yaml:19:9: group 'database': port 3306-70000 is out of range"},
      {"lo above hi",
       [](NetworkSpec& s) {
         s.groups[2].ingress[0].ports = {3307, 3306};
       },
       "stack.yaml:19:9: group 'database': port range 3307-3306 ends before it starts"},
      {"private from outside", [](NetworkSpec& s) { s.groups[2].ingress[0].from = "outside"; },
       "stack.yaml:19:9: group 'database' is in a private subnet, which the outside cannot reach"},
      {"unknown egress", [](NetworkSpec& s) { s.groups[1].egress = {"databse"}; },
       "stack.yaml:12:5: group 'web': egress to unknown group 'databse'"},
      {"egress to outside", [](NetworkSpec& s) { s.groups[1].egress = {"outside"}; },
       "stack.yaml:12:5: group 'web': egress to 'outside' is said with internet_egress"},
      {"group twice", [](NetworkSpec& s) { s.groups[3].name = "web"; },
       "stack.yaml:22:5: group 'web' is defined twice"},
      {"group named outside", [](NetworkSpec& s) { s.groups[3].name = "outside"; },
       "stack.yaml:22:5: group name 'outside'"},
      {"no members", [](NetworkSpec& s) { s.groups[3].max_members_per_zone = 0; },
       "stack.yaml:22:5: group 'worker': max members per zone must be at least 1"},
  };
  for (const Case& c : cases) {
    NetworkSpec s = three_tiers();
    c.change(s);
    std::string e = error_of(s);
    EXPECT_EQ(e.rfind(c.expected, 0), 0u) << c.what << ": " << e;
  }
}

TEST(Allowed, AnswersTheMatrixOfThePolicy) {
  auto plan = make_plan(three_tiers());
  ASSERT_TRUE(plan);
  struct Case {
    const char* from;
    const char* to;
    uint16_t port;
    bool expected;
  };
  const Case cases[] = {
      {"outside", "gateway", 80, true},     {"outside", "gateway", 443, true},
      {"outside", "gateway", 8080, false},  {"outside", "web", 8080, false},
      {"outside", "database", 3306, false}, {"outside", "web", 22, true},  // 203.0.113.2 is in the allow-list
      {"gateway", "web", 8080, true},       {"gateway", "web", 8081, false},
      {"gateway", "database", 3306, false}, {"web", "database", 3306, true},
      {"web", "gateway", 80, false},  // egress restricted to the database
      {"web", "web", 8080, false},          {"database", "web", 8080, false},
      {"gateway", "database", 9100, true},  // from the VPC CIDR, range 9100-9110
      {"gateway", "database", 9110, true},  {"gateway", "database", 9111, false},
      {"worker", "database", 9105, true},   {"web", "database", 9105, true},
      {"worker", "outside", 443, true},  // internet egress
      {"gateway", "outside", 443, false},   {"web", "outside", 443, false},
      {"outside", "outside", 80, false},    {"nobody", "web", 8080, false},
      {"gateway", "nobody", 80, false},
  };
  for (const Case& c : cases)
    EXPECT_EQ(allowed(*plan, c.from, c.to, c.port), c.expected) << c.from << " -> " << c.to << ":" << c.port;
  // A CIDR rule decides by the source's address: the allow-list holds .2 but not .200.
  EXPECT_TRUE(allowed_from(*plan, "outside", 0xcb007102, "web", 22));
  EXPECT_FALSE(allowed_from(*plan, "outside", 0xcb0071c8, "web", 22));
  EXPECT_FALSE(allowed(*plan, "gateway", "web", 8080, Protocol::kUdp));
}

TEST(Allowed, EgressRestrictedWithInternetEgressReachesBoth) {
  NetworkSpec s = three_tiers();
  s.groups[1].internet_egress = true;
  auto plan = make_plan(s);
  ASSERT_TRUE(plan);
  EXPECT_TRUE(allowed(*plan, "web", "outside", 443));
  EXPECT_TRUE(allowed(*plan, "web", "database", 3306));
  EXPECT_FALSE(allowed(*plan, "web", "gateway", 80));
  // A CIDR rule that holds only part of a group does not count for the group as a whole.
  s = three_tiers();
  s.groups[2].ingress[1].from = "10.20.0.2/32";
  plan = make_plan(s);
  ASSERT_TRUE(plan);
  EXPECT_FALSE(allowed(*plan, "gateway", "database", 9100));
  EXPECT_TRUE(allowed_from(*plan, "gateway", 0x0a140002, "database", 9100));
  EXPECT_FALSE(allowed_from(*plan, "gateway", 0x0a140003, "database", 9100));
}

bool contains_line(const std::string& text, const std::string& line) {
  size_t pos = 0;
  while ((pos = text.find(line, pos)) != std::string::npos) {
    bool starts = pos == 0 || text[pos - 1] == '\n' || text[pos - 1] == ' ';
    bool ends = pos + line.size() == text.size() || text[pos + line.size()] == '\n';
    if (starts && ends) return true;
    ++pos;
  }
  return false;
}

TEST(RouterRuleset, EncodesSetsChainsAndRules) {
  auto plan = make_plan(three_tiers());
  ASSERT_TRUE(plan);
  std::string r = router_ruleset(*plan);
  // Replaced in one transaction.
  EXPECT_EQ(r.find("table inet cumulo\ndelete table inet cumulo\ntable inet cumulo {\n"),
            r.find("table inet"));
  for (const char* line : {
           "elements = { 203.0.113.0/24 }",
           "elements = { 10.20.0.2-10.20.0.3, 10.20.2.2-10.20.2.3 }",
           "elements = { 10.20.1.8, 10.20.3.8 }",
           "type filter hook forward priority filter; policy drop;",
           "type filter hook input priority filter; policy drop;",
           "ct state established,related accept",
           "ct state invalid counter drop",
           "fib saddr . iif oif missing counter drop",
           "ip saddr @g_web jump egress_web",
           "ip daddr @g_database return",
           "counter reject with icmpx admin-prohibited comment \"stack.yaml:12:5 egress of web\"",
           "ip saddr @g_worker ip daddr @outside counter accept comment \"stack.yaml:22:5 worker to the "
           "internet\"",
           "ip saddr @outside ip daddr @g_gateway tcp dport 80 counter accept comment \"stack.yaml:10:9 "
           "gateway from "
           "outside\"",
           "ip saddr @g_gateway ip daddr @g_web tcp dport 8080 counter accept comment \"stack.yaml:14:9 web "
           "from "
           "gateway\"",
           "ip saddr 203.0.113.0/28 ip daddr @g_web tcp dport 22 counter accept comment \"stack.yaml:15:9 "
           "web from "
           "203.0.113.0/28\"",
           "ip saddr 10.20.0.0/16 ip daddr @g_database tcp dport 9100-9110 counter accept comment "
           "\"stack.yaml:20:9 "
           "database from 10.20.0.0/16\"",
           "counter reject with icmpx admin-prohibited comment \"denied\"",
       })
    EXPECT_TRUE(contains_line(r, line)) << line << "\n--- in ---\n" << r;
  // No chain for groups without egress restriction; the final reject comes last in the forward chain.
  EXPECT_EQ(r.find("egress_gateway"), std::string::npos);
  EXPECT_LT(r.find("tcp dport 9100-9110"), r.find("comment \"denied\""));
  EXPECT_LT(r.find("jump egress_web"), r.find("tcp dport 8080"));
}

// An elastic address is one more destination of its group: the outside reaches it on the group's ports, and
// group_of() names the group for it.
TEST(ElasticAddresses, JoinTheirGroupsSet) {
  NetworkSpec s = three_tiers();
  s.elastic_addresses.push_back({"web", 0xc633640a, "gateway", "stack.yaml:30:5"});  // 198.51.100.10
  auto plan = make_plan(s);
  ASSERT_TRUE(plan) << plan.error().message;
  const std::string r = router_ruleset(*plan);
  EXPECT_TRUE(contains_line(r, "elements = { 10.20.0.2-10.20.0.3, 10.20.2.2-10.20.2.3, 198.51.100.10 }"))
      << r;
  ASSERT_NE(plan->group_of(0xc633640a), nullptr);
  EXPECT_EQ(plan->group_of(0xc633640a)->name, "gateway");
  ASSERT_NE(plan->elastic_address("web"), nullptr);
  EXPECT_EQ(plan->elastic_address("nope"), nullptr);
  EXPECT_TRUE(allowed_from(*plan, "outside", plan->outside_address, "gateway", 80));
}

TEST(ElasticAddresses, RefusedWithTheirLocation) {
  auto with = [](ElasticAddress e) {
    NetworkSpec s = three_tiers();
    s.elastic_addresses.push_back({"first", 0xc6336401, "gateway", "stack.yaml:29:5"});
    s.elastic_addresses.push_back(std::move(e));
    return error_of(s);
  };
  EXPECT_EQ(with({"web", 0x0a140005, "gateway", "stack.yaml:30:5"}),
            "stack.yaml:30:5: elastic IP web: 10.20.0.5 is inside the VPC CIDR 10.20.0.0/16; it needs an "
            "address of its own, routed to its holder");
  EXPECT_EQ(
      with({"web", 0xcb007105, "gateway", "stack.yaml:30:5"}),
      "stack.yaml:30:5: elastic IP web: 203.0.113.5 is inside the outside CIDR 203.0.113.0/24; it needs "
      "an address of its own, routed to its holder");
  EXPECT_EQ(with({"web", 0xe0000001, "gateway", "stack.yaml:30:5"}),
            "stack.yaml:30:5: elastic IP web: 224.0.0.1 is not a unicast address");
  EXPECT_EQ(with({"first", 0xc6336402, "gateway", "stack.yaml:30:5"}),
            "stack.yaml:30:5: elastic IP 'first' is defined twice");
  EXPECT_EQ(with({"web", 0xc6336401, "gateway", "stack.yaml:30:5"}),
            "stack.yaml:30:5: elastic IPs first and web have the same address 198.51.100.1");
  EXPECT_EQ(with({"web", 0xc6336402, "nope", "stack.yaml:30:5"}),
            "stack.yaml:30:5: elastic IP web: no security group 'nope'");
  EXPECT_EQ(with({"web", 0xc6336402, "web", "stack.yaml:30:5"}),
            "stack.yaml:30:5: elastic IP web: group 'web' is in a private subnet, which the outside cannot "
            "reach");
  EXPECT_EQ(with({"bad name", 0xc6336402, "gateway", "stack.yaml:30:5"}),
            "stack.yaml:30:5: elastic IP name 'bad name': expected letters, digits, '-' and '_', at most 32");
}

// nft -c parses and checks the ruleset against the kernel without applying it.
TEST(RouterRuleset, NftAcceptsIt) {
  if (std::system("command -v nft >/dev/null 2>&1") != 0)
    FAIL() << "nft is missing: apt-get install -y nftables (scripts/install-deps.sh installs it)";
  NetworkSpec spec = three_tiers();
  spec.elastic_addresses.push_back({"web", 0xc633640a, "gateway", "stack.yaml:30:5"});
  auto plan = make_plan(spec);
  ASSERT_TRUE(plan);
  char path[] = "/tmp/cumulo-net-ruleset-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << router_ruleset(*plan);
  std::string cmd = std::string("nft -c -f ") + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string said;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) said += buf;
  int rc = pclose(p);
  std::remove(path);
  EXPECT_EQ(rc, 0) << said;
}

}  // namespace
}  // namespace cumulo::net
