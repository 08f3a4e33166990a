#include "dns/internal/zone.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "core/config.h"
#include "dns/internal/config.h"
#include "dns/wire/zone_file.h"
#include "dns_test_util.h"

namespace cumulo::dns {
namespace {

namespace type = wire::type;
using test::decode;
using test::make_query;

constexpr const char* kZone = R"($ORIGIN example.com.
$TTL 1h
@   IN SOA ns1 hostmaster (
        2026120201 ; serial
        3600 600 86400
        60 )
    IN NS  ns1
    IN NS  ns2.example.net.
    IN MX  10 mail
    IN TXT "v=spf1 -all" "second string"
    IN CAA 0 issue "letsencrypt.org"
ns1 300 IN A 192.0.2.53
www IN A 192.0.2.1
www IN A 192.0.2.2
www IN AAAA 2001:db8::1
alias IN CNAME www
chain IN CNAME alias
out IN CNAME www.example.org.
_sip._tcp IN SRV 10 60 5060 sip
*.wild IN A 192.0.2.99
deep.sub IN A 192.0.2.7
mail IN A 192.0.2.25
)";

ZoneSource source_from(const char* text) {
  ZoneSource z;
  z.origin = test::wire_name("example.com.");
  std::vector<wire::ZoneRecord> recs;
  wire::ZoneParseError err;
  EXPECT_TRUE(wire::parse_zone_file(text, z.origin, 3600, recs, &err)) << err.line << ": " << err.message;
  for (auto& r : recs) {
    auto& s = z.sets[{r.owner, r.type}];
    s.name = r.owner;
    s.type = r.type;
    s.ttl = r.ttl;
    Endpoint ep;
    ep.rdata = r.rdata;
    s.endpoints.push_back(ep);
  }
  return z;
}

struct Fixture : ::testing::Test {
  void SetUp() override {
    auto z = Zone::build(source_from(kZone));
    ASSERT_TRUE(z) << z.error().message;
    zones.zones.push_back(z.value());
  }
  test::Decoded ask(const std::string& name, uint16_t qtype, test::QueryOptions o = {},
                    ClientView client = {}) {
    auto p = make_query(name, qtype, o);
    wire::Query q;
    EXPECT_EQ(wire::parse_query(p, q), wire::ParseResult::kOk);
    wire::ResponseWriter w(buf, sizeof buf);
    w.begin(q, p, o.edns ? o.payload : 512);
    client.subnet = q.client_subnet ? &*q.client_subnet : nullptr;
    answerer.answer(zones, q, client, w);
    size_t n = w.finish();
    auto d = decode(buf, n);
    EXPECT_TRUE(d.ok);
    return d;
  }
  ZoneSet zones;
  Answerer answerer{42};
  uint8_t buf[65535];
};

TEST(DnsZoneFile, ParsesEveryTypeAndTheDirectives) {
  ZoneSource z = source_from(kZone);
  auto text = [&](const char* name, uint16_t t) {
    auto it = z.sets.find({test::wire_name(name), t});
    return it == z.sets.end() ? std::string("-") : wire::rdata_to_text(t, it->second.endpoints[0].rdata);
  };
  EXPECT_EQ(text("example.com.", type::kSOA),
            "ns1.example.com. hostmaster.example.com. 2026120201 3600 600 86400 60");
  EXPECT_EQ(text("example.com.", type::kMX), "10 mail.example.com.");
  EXPECT_EQ(text("example.com.", type::kTXT), "\"v=spf1 -all\" \"second string\"");
  EXPECT_EQ(text("example.com.", type::kCAA), "0 issue \"letsencrypt.org\"");
  EXPECT_EQ(text("_sip._tcp.example.com.", type::kSRV), "10 60 5060 sip.example.com.");
  EXPECT_EQ(text("www.example.com.", type::kAAAA), "2001:db8::1");
  EXPECT_EQ(text("out.example.com.", type::kCNAME), "www.example.org.");
  EXPECT_EQ(z.sets.at({test::wire_name("ns1.example.com."), type::kA}).ttl, 300u);
  EXPECT_EQ(z.sets.at({test::wire_name("www.example.com."), type::kA}).ttl, 3600u);
  EXPECT_EQ(z.sets.at({test::wire_name("example.com."), type::kNS}).endpoints.size(), 2u);
}

TEST(DnsZoneFile, MalformedGenericDataOfAKnownTypePrintsGenerically) {
  // Found by dns_zone_file_fuzz: an empty PTR read from "\\# 0" printed as "." (the root name), which reads
  // back as one byte.
  for (uint16_t t : {type::kPTR, type::kNS, type::kCNAME}) {
    EXPECT_EQ(wire::rdata_to_text(t, ""), "\\# 0") << t;
    std::string again;
    ASSERT_TRUE(wire::rdata_from_text(t, wire::tokenize_line("\\# 0"), test::wire_name("example.com."), again,
                                      nullptr));
    EXPECT_EQ(again, "");
  }
}

TEST(DnsZoneFile, ErrorsNameTheLine) {
  std::vector<wire::ZoneRecord> recs;
  wire::ZoneParseError err;
  std::string origin = test::wire_name("example.com.");
  EXPECT_FALSE(wire::parse_zone_file("@ IN SOA a b 1 2 3 4 5\nwww IN A 300.1.1.1\n", origin, 60, recs, &err));
  EXPECT_EQ(err.line, 2);
  EXPECT_NE(err.message.find("IPv4"), std::string::npos);
  EXPECT_FALSE(wire::parse_zone_file("www IN BOGUS 1\n", origin, 60, recs, &err));
  EXPECT_NE(err.message.find("BOGUS"), std::string::npos);
  EXPECT_FALSE(wire::parse_zone_file("@ IN SOA ( a b 1 2 3 4 5\n", origin, 60, recs, &err));
  EXPECT_FALSE(wire::parse_zone_file("$INCLUDE other\n", origin, 60, recs, &err));
  EXPECT_FALSE(wire::parse_zone_file("  IN A 192.0.2.1\n", origin, 60, recs, &err));  // no owner yet
  EXPECT_EQ(wire::parse_ttl("1h30m"), 5400u);
  EXPECT_FALSE(wire::parse_ttl("1h30"));
}

TEST(DnsZone, RejectsCnameBesideOtherData) {
  ZoneSource z = source_from("@ IN SOA a b 1 2 3 4 5\nx IN CNAME www\nx IN A 192.0.2.1\n");
  auto cname = Zone::build(z);
  ASSERT_FALSE(cname);
  EXPECT_EQ(cname.error().kind, "invalid_zone");
  EXPECT_EQ(cname.error().source, core::ErrorSource::kClient);
  EXPECT_NE(cname.error().message.find("a CNAME cannot share its name"), std::string::npos)
      << cname.error().message;
  ZoneSource nosoa = source_from("www IN A 192.0.2.1\n");
  auto no_soa = Zone::build(nosoa);
  ASSERT_FALSE(no_soa);
  EXPECT_NE(no_soa.error().message.find("exactly one SOA record"), std::string::npos)
      << no_soa.error().message;
}

TEST_F(Fixture, AnswersCaseInsensitivelyWithTheQuestionsCase) {
  test::QueryOptions o;
  o.raw_name = std::string("\3WwW\7ExAmPlE\3cOm\0", 17);
  auto d = ask("", type::kA, o);
  EXPECT_EQ(d.rcode, 0);
  ASSERT_EQ(d.answer.size(), 2u);
  EXPECT_EQ(d.answer[0].name, "WwW.ExAmPlE.cOm.");  // compressed to the question
  EXPECT_TRUE(d.aa);
}

TEST_F(Fixture, NxdomainAndNodataCarryTheSoa) {
  auto nx = ask("nothere.example.com.", type::kA);
  EXPECT_EQ(nx.rcode, 3);
  ASSERT_EQ(nx.authority.size(), 1u);
  EXPECT_EQ(nx.authority[0].type, type::kSOA);
  EXPECT_EQ(nx.authority[0].ttl, 60u);  // min(SOA TTL, MINIMUM)
  auto nodata = ask("mail.example.com.", type::kAAAA);
  EXPECT_EQ(nodata.rcode, 0);
  EXPECT_TRUE(nodata.answer.empty());
  ASSERT_EQ(nodata.authority.size(), 1u);
  // An empty non-terminal exists: NODATA, not NXDOMAIN (RFC 8020).
  auto ent = ask("sub.example.com.", type::kA);
  EXPECT_EQ(ent.rcode, 0);
  EXPECT_EQ(ent.authority.size(), 1u);
}

TEST_F(Fixture, RefusesNamesOutsideItsZones) {
  auto d = ask("www.example.org.", type::kA);
  EXPECT_EQ(d.rcode, 5);
  EXPECT_FALSE(d.aa);
}

TEST_F(Fixture, FollowsCnameChainsInsideTheZone) {
  auto d = ask("chain.example.com.", type::kA);
  ASSERT_EQ(d.answer.size(), 4u);
  EXPECT_EQ(d.answer[0].text, "alias.example.com.");
  EXPECT_EQ(d.answer[1].text, "www.example.com.");
  EXPECT_EQ(d.answer[2].type, type::kA);
  auto out = ask("out.example.com.", type::kA);
  ASSERT_EQ(out.answer.size(), 1u);  // the target is not ours: the resolver follows it
  auto cname = ask("alias.example.com.", type::kCNAME);
  ASSERT_EQ(cname.answer.size(), 1u);
  // NODATA at the end of a chain still carries the SOA (RFC 2308 section 2.2).
  auto nodata = ask("alias.example.com.", type::kMX);
  ASSERT_EQ(nodata.answer.size(), 1u);
  ASSERT_EQ(nodata.authority.size(), 1u);
  EXPECT_EQ(nodata.authority[0].type, type::kSOA);
}

TEST_F(Fixture, WildcardsSynthesizeButNotBelowExistingNames) {
  auto d = ask("anything.wild.example.com.", type::kA);
  ASSERT_EQ(d.answer.size(), 1u);
  EXPECT_EQ(d.answer[0].name, "anything.wild.example.com.");
  EXPECT_EQ(d.answer[0].text, "192.0.2.99");
  auto deeper = ask("a.b.wild.example.com.", type::kA);
  EXPECT_EQ(deeper.answer.size(), 1u);
  auto nodata = ask("x.wild.example.com.", type::kMX);
  EXPECT_EQ(nodata.rcode, 0);
  EXPECT_TRUE(nodata.answer.empty());
}

TEST(DnsZoneCut, DelegationsAreReferralsWithGlue) {
  ZoneSet zones;
  zones.zones.push_back(
      Zone::build(source_from("@ IN SOA ns hm 1 2 3 4 60\n@ IN NS ns\nns IN A 192.0.2.1\n"
                              "sub IN NS ns1.sub\nsub IN NS ns.other.net.\nns1.sub IN A 192.0.2.53\n"
                              "www IN A 192.0.2.80\n"))
          .value());
  Answerer answerer(1);
  uint8_t buf[4096];
  auto ask = [&](const std::string& name, uint16_t qtype) {
    auto p = make_query(name, qtype);
    wire::Query q;
    EXPECT_EQ(wire::parse_query(p, q), wire::ParseResult::kOk);
    wire::ResponseWriter w(buf, sizeof buf);
    w.begin(q, p, 512);
    answerer.answer(zones, q, ClientView{}, w);
    return decode(buf, w.finish());
  };
  for (const char* name : {"sub.example.com.", "a.b.sub.example.com.", "ns1.sub.example.com."}) {
    auto d = ask(name, type::kA);
    EXPECT_EQ(d.rcode, 0) << name;
    EXPECT_FALSE(d.aa) << name;
    EXPECT_TRUE(d.answer.empty()) << name;
    ASSERT_EQ(d.authority.size(), 2u) << name;
    EXPECT_EQ(d.authority[0].name, "sub.example.com.");
    ASSERT_EQ(d.additional.size(), 1u) << name;  // glue only for the server inside the cut
    EXPECT_EQ(d.additional[0].text, "192.0.2.53");
  }
  auto www = ask("www.example.com.", type::kA);
  EXPECT_TRUE(www.aa);
  EXPECT_EQ(www.answer.size(), 1u);
  auto apex_ns = ask("example.com.", type::kNS);
  EXPECT_TRUE(apex_ns.aa);
  EXPECT_EQ(apex_ns.answer.size(), 1u);
}

TEST_F(Fixture, EveryTypeAnswers) {
  std::map<uint16_t, std::string> want = {
      {type::kSOA, "example.com."},          {type::kNS, "example.com."},  {type::kMX, "example.com."},
      {type::kTXT, "example.com."},          {type::kCAA, "example.com."}, {type::kAAAA, "www.example.com."},
      {type::kSRV, "_sip._tcp.example.com."}};
  for (auto& [t, name] : want) {
    auto d = ask(name, t);
    EXPECT_EQ(d.rcode, 0) << t;
    ASSERT_FALSE(d.answer.empty()) << t;
    EXPECT_EQ(d.answer[0].type, t);
  }
}

// ---- policies

struct PolicyFixture : Fixture {
  void SetUp() override {
    src = source_from("@ IN SOA ns hm 1 2 3 4 60\n");
    a = std::make_shared<health::HealthState>();
    b = std::make_shared<health::HealthState>();
  }
  void add(const std::string& name, Policy p, std::vector<Endpoint> eps) {
    RecordSetSpec s;
    s.name = test::wire_name(name);
    s.type = type::kA;
    s.ttl = 5;
    s.policy = p;
    s.endpoints = std::move(eps);
    src.sets[{s.name, s.type}] = s;
  }
  static Endpoint ep(const std::string& ip, std::shared_ptr<health::HealthState> h = nullptr,
                     uint32_t weight = 1, bool primary = true, std::string region = "") {
    Endpoint e;
    EXPECT_TRUE(wire::rdata_from_text(type::kA, {ip}, "", e.rdata, nullptr));
    e.health = std::move(h);
    e.weight = weight;
    e.primary = primary;
    e.region = std::move(region);
    return e;
  }
  void build() { zones.zones = {Zone::build(src).value()}; }
  ZoneSource src;
  std::shared_ptr<health::HealthState> a, b;
};

TEST_F(PolicyFixture, WeightedSplitsByWeightAmongHealthy) {
  add("w.example.com.", Policy::kWeighted, {ep("192.0.2.1", a, 3), ep("192.0.2.2", b, 1)});
  build();
  std::map<std::string, int> seen;
  for (int i = 0; i < 4000; ++i) {
    auto d = ask("w.example.com.", type::kA);
    ASSERT_EQ(d.answer.size(), 1u);
    ++seen[d.answer[0].text];
  }
  EXPECT_NEAR(seen["192.0.2.1"], 3000, 150);
  EXPECT_NEAR(seen["192.0.2.2"], 1000, 150);
  a->health = health::Health::kUnhealthy;
  for (int i = 0; i < 50; ++i) EXPECT_EQ(ask("w.example.com.", type::kA).answer[0].text, "192.0.2.2");
}

TEST_F(PolicyFixture, FailoverGoesToSecondaryAndBack) {
  add("f.example.com.", Policy::kFailover, {ep("192.0.2.1", a, 1, true), ep("192.0.2.2", b, 1, false)});
  build();
  EXPECT_EQ(ask("f.example.com.", type::kA).answer.at(0).text, "192.0.2.1");
  a->health = health::Health::kUnhealthy;
  EXPECT_EQ(ask("f.example.com.", type::kA).answer.at(0).text, "192.0.2.2");
  b->health = health::Health::kUnhealthy;  // both down: the primary, rather than nothing
  EXPECT_EQ(ask("f.example.com.", type::kA).answer.at(0).text, "192.0.2.1");
  a->health = health::Health::kHealthy;
  EXPECT_EQ(ask("f.example.com.", type::kA).answer.at(0).text, "192.0.2.1");
}

TEST_F(PolicyFixture, MultivalueReturnsOnlyHealthy) {
  add("m.example.com.", Policy::kMultivalue, {ep("192.0.2.1", a), ep("192.0.2.2", b), ep("192.0.2.3")});
  build();
  EXPECT_EQ(ask("m.example.com.", type::kA).answer.size(), 3u);
  b->health = health::Health::kUnhealthy;
  auto d = ask("m.example.com.", type::kA);
  ASSERT_EQ(d.answer.size(), 2u);
  for (auto& rr : d.answer) EXPECT_NE(rr.text, "192.0.2.2");
}

TEST_F(PolicyFixture, NearestUsesClientSubnetThenAddress) {
  add("cdn.example.com.", Policy::kNearest,
      {ep("192.0.2.1", a, 1, true, "eu"), ep("192.0.2.2", b, 1, true, "us"),
       ep("192.0.2.3", nullptr, 1, true, "default")});
  build();
  NetworkRegion eu, us;
  ASSERT_TRUE(parse_prefix("10.1.0.0/16", eu));
  eu.region = "eu";
  ASSERT_TRUE(parse_prefix("10.2.0.0/16", us));
  us.region = "us";
  zones.networks = {eu, us};
  test::QueryOptions o;
  o.edns = true;
  o.ecs_family = 1;
  o.ecs_prefix = 24;
  o.ecs_address = {10, 2, 7};
  EXPECT_EQ(ask("cdn.example.com.", type::kA, o).answer.at(0).text, "192.0.2.2");
  ClientView client;
  client.family = 1;
  uint8_t addr[4] = {10, 1, 9, 9};
  std::memcpy(client.address, addr, 4);
  EXPECT_EQ(ask("cdn.example.com.", type::kA, {}, client).answer.at(0).text, "192.0.2.1");
  a->health = health::Health::kUnhealthy;
  EXPECT_EQ(ask("cdn.example.com.", type::kA, {}, client).answer.at(0).text, "192.0.2.3");
  ClientView other;
  other.family = 1;
  EXPECT_EQ(ask("cdn.example.com.", type::kA, {}, other).answer.at(0).text, "192.0.2.3");
}

TEST_F(PolicyFixture, AliasAtTheApexAnswersItsTarget) {
  add("www.example.com.", Policy::kSimple, {ep("192.0.2.80")});
  RecordSetSpec alias;
  alias.name = src.origin;
  alias.type = kTypeAlias;
  alias.alias_target = test::wire_name("www.example.com.");
  src.sets[{alias.name, alias.type}] = alias;
  build();
  auto d = ask("example.com.", type::kA);
  ASSERT_EQ(d.answer.size(), 1u);
  EXPECT_EQ(d.answer[0].name, "example.com.");
  EXPECT_EQ(d.answer[0].text, "192.0.2.80");
  auto none = ask("example.com.", type::kAAAA);
  EXPECT_TRUE(none.answer.empty());
  EXPECT_EQ(none.authority.size(), 1u);
}

TEST(DnsConfig, RecordSetsFromYamlAndUnknownKeys) {
  std::vector<HealthCheckConfig> checks(1);
  checks[0].name = "web";
  std::string origin = test::wire_name("example.com.");
  auto node = core::ConfigNode::load_string(
      "{name: app, type: A, ttl: 5, policy: weighted, endpoints: [{value: 192.0.2.1, weight: 3, "
      "health_check: web}, "
      "{value: 192.0.2.2}]}");
  RecordSetSpec s = parse_record_set(node, origin, checks);
  EXPECT_EQ(s.policy, Policy::kWeighted);
  ASSERT_EQ(s.endpoints.size(), 2u);
  EXPECT_EQ(s.endpoints[0].weight, 3u);
  EXPECT_EQ(s.endpoints[0].health, checks[0].state);
  EXPECT_THROW(parse_record_set(core::ConfigNode::load_string("{name: a, type: A, valuez: [1.2.3.4]}"),
                                origin, checks),
               core::ConfigError);
  EXPECT_THROW(
      parse_record_set(core::ConfigNode::load_string("{name: a, type: A, values: [1.2.3]}"), origin, checks),
      core::ConfigError);
  EXPECT_THROW(parse_record_set(core::ConfigNode::load_string(
                                    "{name: a, type: A, endpoints: [{value: 1.2.3.4, health_check: nope}]}"),
                                origin, checks),
               core::ConfigError);
}

}  // namespace
}  // namespace cumulo::dns
