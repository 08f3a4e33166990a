#include "dns/internal/config.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/log.h"
#include "core/net.h"
#include "dns/wire/zone_file.h"

namespace cumulo::dns {

namespace fs = std::filesystem;

namespace {

std::string zone_origin(const core::ConfigNode& node) {
  std::string text = node.as_string();
  if (text.empty() || text.back() != '.') text += '.';
  std::string wire;
  if (!wire::name_from_text(text, "", wire)) node.fail("expected a domain name such as example.com");
  return wire;
}

std::vector<NetworkRegion> parse_prefixes(const core::ConfigNode& node) {
  std::vector<NetworkRegion> out;
  if (!node.defined()) return out;
  for (const auto& item : node.items()) {
    NetworkRegion n;
    if (!parse_prefix(item.as_string(), n)) item.fail("expected an address or a prefix such as 10.0.0.0/8");
    out.push_back(n);
  }
  return out;
}

const HealthCheckConfig* find_check(const std::vector<HealthCheckConfig>& checks, const std::string& name) {
  for (const auto& c : checks)
    if (c.name == name) return &c;
  return nullptr;
}

Endpoint parse_endpoint(const core::ConfigNode& node, uint16_t rtype, const std::string& origin,
                        const std::vector<HealthCheckConfig>& checks) {
  Endpoint ep;
  core::ConfigNode value = node;
  if (node.is_map()) {
    node.check_keys({"value", "weight", "role", "region", "health_check"});
    value = node.required("value");
    ep.weight = static_cast<uint32_t>(node.int_or("weight", 1, 0, 255));
    std::string role = node.string_or("role", "primary");
    if (role != "primary" && role != "secondary") node["role"].fail("expected primary or secondary");
    ep.primary = role == "primary";
    ep.region = node.string_or("region", "");
    ep.health_check = node.string_or("health_check", "");
    if (!ep.health_check.empty()) {
      const HealthCheckConfig* c = find_check(checks, ep.health_check);
      if (!c) node["health_check"].fail("no health check named '" + ep.health_check + "' in health_checks");
      ep.health = c->state;
    }
  }
  ep.text = value.as_string();
  std::string why;
  if (!wire::rdata_from_text(rtype, wire::tokenize_line(ep.text), origin, ep.rdata, &why))
    value.fail(wire::type_name(rtype) + " value '" + ep.text + "': " + why);
  return ep;
}

health::HttpCheckSpec parse_check_spec(const core::ConfigNode& n) {
  health::HttpCheckSpec s;
  std::string proto = n.string_or("protocol", "http");
  if (proto == "tcp") {
    s.kind = health::CheckKind::kTcp;
  } else if (proto != "http") {
    n["protocol"].fail("expected http or tcp");
  }
  s.path = n.string_or("path", s.path);
  if (auto codes = n["expected_codes"]; codes.defined()) {
    if (!health::parse_expected_codes(codes.as_string(), s.expected_codes))
      codes.fail("expected status codes such as 200, 200-299 or 200,204");
  }
  s.interval = n.duration_or("interval", std::chrono::milliseconds(2000));
  s.timeout = n.duration_or("timeout", std::chrono::milliseconds(1000));
  s.healthy_threshold = static_cast<int>(n.int_or("healthy_threshold", 2, 1, 100));
  s.unhealthy_threshold = static_cast<int>(n.int_or("unhealthy_threshold", 2, 1, 100));
  if (s.interval.count() <= 0) n["interval"].fail("must be more than 0");
  return s;
}

}  // namespace

RecordSetSpec parse_record_set(const core::ConfigNode& node, const std::string& origin,
                               const std::vector<HealthCheckConfig>& checks) {
  node.check_keys(
      {"name", "type", "ttl", "values", "endpoints", "policy", "target", "gateway", "elastic_ip"});
  RecordSetSpec set;
  auto name_node = node.required("name");
  if (!wire::name_from_text(name_node.as_string(), origin, set.name) || !wire::name_in_zone(set.name, origin))
    name_node.fail("expected a name inside the zone " + wire::name_to_text(origin) +
                   " (relative, or @ for the apex)");
  auto type_node = node.required("type");
  std::string tname = type_node.as_string();
  if (tname == "ALIAS" || tname == "alias") {
    set.type = kTypeAlias;
  } else {
    auto t = wire::type_from_name(tname);
    if (!t || *t == wire::type::kOPT || *t == wire::type::kANY || *t == wire::type::kAXFR ||
        *t == wire::type::kIXFR)
      type_node.fail("expected a record type: A, AAAA, CNAME, MX, TXT, SRV, CAA, NS, SOA, PTR, ALIAS");
    set.type = *t;
  }
  if (auto ttl = node["ttl"]; ttl.defined()) {
    auto v = ttl.is_scalar() ? wire::parse_ttl(ttl.as_string()) : std::nullopt;
    if (!v) ttl.fail("expected a TTL in seconds (or with a unit: 5m, 1h)");
    set.ttl = *v;
  }
  std::string policy = node.string_or("policy", "simple");
  if (!policy_from_string(policy, set.policy))
    node["policy"].fail("expected simple, weighted, failover, multivalue or nearest");
  if (set.type == kTypeAlias) {
    if (set.name != origin) name_node.fail("ALIAS records belong at the zone apex (@)");
    if (auto target = node["target"]; target.defined()) {
      if (!wire::name_from_text(target.as_string(), origin, set.alias_target))
        target.fail("expected a domain name");
    }
    if (auto values = node["values"]; values.defined()) {
      for (const auto& v : values.items()) {
        Endpoint ep;
        ep.text = v.as_string();
        std::string why;
        if (!wire::rdata_from_text(wire::type::kA, {ep.text}, origin, ep.rdata, nullptr) &&
            !wire::rdata_from_text(wire::type::kAAAA, {ep.text}, origin, ep.rdata, &why))
          v.fail("expected an IPv4 or IPv6 address");
        set.endpoints.push_back(std::move(ep));
      }
    }
    set.alias_gateway = node.bool_or("gateway", false);
    set.alias_elastic_ip = node.string_or("elastic_ip", "");
    if (node["elastic_ip"].defined() && set.alias_elastic_ip.empty())
      node["elastic_ip"].fail("expected a name");
    if (int{!set.alias_target.empty()} + int{!set.endpoints.empty()} + int{set.alias_gateway} +
            int{!set.alias_elastic_ip.empty()} !=
        1)
      node.fail(
          "an ALIAS record needs one of target (a name), values (addresses), gateway: true or elastic_ip: "
          "NAME");
    if (set.policy != Policy::kSimple) node["policy"].fail("an ALIAS takes the policy of its target");
    return set;
  }
  if (node["target"].defined()) node["target"].fail("target is for ALIAS records");
  if (node["gateway"].defined()) node["gateway"].fail("gateway is for ALIAS records");
  if (node["elastic_ip"].defined()) node["elastic_ip"].fail("elastic_ip is for ALIAS records");
  auto values = node["values"];
  auto endpoints = node["endpoints"];
  if (values.defined() == endpoints.defined()) node.fail("a record set needs either values or endpoints");
  for (const auto& item : (values.defined() ? values : endpoints).items())
    set.endpoints.push_back(parse_endpoint(item, set.type, origin, checks));
  if (set.endpoints.empty()) node.fail("a record set needs at least one value");
  if (set.policy == Policy::kFailover) {
    int primaries = 0;
    for (const auto& ep : set.endpoints) primaries += ep.primary;
    if (primaries != 1 || set.endpoints.size() != 2)
      node.fail("a failover record set has two endpoints: one role: primary, one role: secondary");
  }
  if (set.type == wire::type::kSOA && set.endpoints.size() != 1) node.fail("a zone has one SOA record");
  return set;
}

void load_zone_file(const std::string& path, ZoneSource& zone, uint32_t default_ttl) {
  std::ifstream in(path);
  if (!in) throw core::ConfigError("cannot read zone file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::vector<wire::ZoneRecord> records;
  wire::ZoneParseError err;
  if (!wire::parse_zone_file(ss.str(), zone.origin, default_ttl, records, &err))
    throw core::ConfigError(path + ":" + std::to_string(err.line) + ": " + err.message);
  for (auto& r : records) {
    if (!wire::name_in_zone(r.owner, zone.origin))
      throw core::ConfigError(path + ":" + std::to_string(r.line) + ": " + wire::name_to_text(r.owner) +
                              " is outside the zone " + wire::name_to_text(zone.origin));
    auto& set = zone.sets[{r.owner, r.type}];
    if (set.endpoints.empty()) {
      set.name = r.owner;
      set.type = r.type;
      set.ttl = r.ttl;  // RFC 2181 section 5.2: one TTL per record set; the first one stands
    }
    bool duplicate = false;
    for (const auto& ep : set.endpoints) duplicate |= ep.rdata == r.rdata;
    if (duplicate) continue;  // RFC 2181 section 5: a set holds no duplicates
    Endpoint ep;
    ep.text = wire::rdata_to_text(r.type, r.rdata);
    ep.rdata = std::move(r.rdata);
    set.endpoints.push_back(std::move(ep));
  }
}

void add_default_soa(ZoneSource& zone) {
  const std::string& o = zone.origin;
  if (!zone.sets.count({o, wire::type::kSOA})) {
    RecordSetSpec soa;
    soa.name = o;
    soa.type = wire::type::kSOA;
    soa.ttl = 3600;
    Endpoint ep;
    std::string origin_text = wire::name_to_text(o);
    ep.text = "ns1." + origin_text + " hostmaster." + origin_text + " 1 3600 600 86400 60";
    if (!wire::rdata_from_text(wire::type::kSOA, wire::tokenize_line(ep.text), o, ep.rdata, nullptr))
      throw core::ConfigError(origin_text + ": cannot make a default SOA");
    soa.endpoints.push_back(std::move(ep));
    zone.sets[{o, wire::type::kSOA}] = std::move(soa);
  }
  if (!zone.sets.count({o, wire::type::kNS})) {
    RecordSetSpec ns;
    ns.name = o;
    ns.type = wire::type::kNS;
    ns.ttl = 3600;
    Endpoint ep;
    ep.text = "ns1." + wire::name_to_text(o);
    (void)wire::rdata_from_text(wire::type::kNS, {ep.text}, o, ep.rdata, nullptr);
    ns.endpoints.push_back(std::move(ep));
    zone.sets[{o, wire::type::kNS}] = std::move(ns);
  }
}

DnsConfig parse_dns_config(const core::ConfigNode& root, const std::string& base_dir) {
  root.check_keys({"listen", "admin", "workers", "log_level", "query_log", "max_udp_payload",
                   "tcp_idle_timeout", "tcp_max_connections", "rate_limit", "axfr_allow", "networks",
                   "health_checks", "zones"});
  DnsConfig c;
  if (auto l = root["listen"]; l.defined()) c.listen = l.as_string_list();
  if (c.listen.empty()) root["listen"].fail("expected at least one address");
  for (const auto& a : c.listen)
    if (!core::SocketAddress::parse(a))
      root["listen"].fail("bad address '" + a + "' (expected 127.0.0.1:53 or [::1]:53)");
  c.admin = root.string_or("admin", "");
  if (!c.admin.empty() && !core::SocketAddress::parse(c.admin)) root["admin"].fail("expected host:port");
  c.workers = static_cast<int>(root.int_or("workers", 1, 1, 64));
  c.log_level = root.string_or("log_level", "info");
  if (!core::parse_log_level(c.log_level)) root["log_level"].fail("expected debug, info, warn or error");
  c.query_log = root.string_or("query_log", "off");
  c.max_udp_payload = static_cast<uint16_t>(root.int_or("max_udp_payload", 1232, 512, 4096));
  c.tcp_idle_timeout = root.duration_or("tcp_idle_timeout", c.tcp_idle_timeout);
  c.tcp_max_connections = static_cast<int>(root.int_or("tcp_max_connections", 1024, 1, 100000));
  if (auto rl = root["rate_limit"]; rl.defined()) {
    rl.check_keys({"responses_per_second", "slip", "ipv4_prefix", "ipv6_prefix"});
    c.rate_limit.responses_per_second =
        static_cast<uint32_t>(rl.int_or("responses_per_second", 0, 0, 1'000'000));
    c.rate_limit.slip = static_cast<uint32_t>(rl.int_or("slip", 2, 0, 10));
    c.rate_limit.ipv4_prefix = static_cast<int>(rl.int_or("ipv4_prefix", 24, 8, 32));
    c.rate_limit.ipv6_prefix = static_cast<int>(rl.int_or("ipv6_prefix", 56, 16, 128));
  }
  c.axfr_allow = parse_prefixes(root["axfr_allow"]);
  if (auto nets = root["networks"]; nets.defined()) {
    for (const auto& n : nets.items()) {
      n.check_keys({"prefix", "region"});
      NetworkRegion r;
      if (!parse_prefix(n.required("prefix").as_string(), r))
        n["prefix"].fail("expected a prefix such as 10.1.0.0/16");
      r.region = n.required("region").as_string();
      c.networks.push_back(std::move(r));
    }
  }
  if (auto hcs = root["health_checks"]; hcs.defined()) {
    for (const auto& n : hcs.items()) {
      n.check_keys({"name", "protocol", "address", "path", "expected_codes", "interval", "timeout",
                    "healthy_threshold", "unhealthy_threshold"});
      HealthCheckConfig hc;
      hc.name = n.required("name").as_string();
      if (find_check(c.health_checks, hc.name))
        n["name"].fail("health check '" + hc.name + "' is defined twice");
      hc.address = n.required("address").as_string();
      if (!core::SocketAddress::parse(hc.address)) n["address"].fail("expected host:port (numeric host)");
      hc.spec = parse_check_spec(n);
      c.health_checks.push_back(std::move(hc));
    }
  }
  auto zones = root.required("zones");
  for (const auto& zn : zones.items()) {
    zn.check_keys({"origin", "file", "default_ttl", "records"});
    ZoneSource z;
    z.origin = zone_origin(zn.required("origin"));
    for (const auto& other : c.zones)
      if (other.origin == z.origin)
        zn["origin"].fail("zone " + wire::name_to_text(z.origin) + " is defined twice");
    uint32_t default_ttl = 3600;
    if (auto d = zn["default_ttl"]; d.defined()) {
      auto v = wire::parse_ttl(d.as_string());
      if (!v) d.fail("expected a TTL");
      default_ttl = *v;
    }
    if (auto f = zn["file"]; f.defined()) {
      fs::path p = f.as_string();
      if (p.is_relative()) p = fs::path(base_dir) / p;
      try {
        load_zone_file(p.string(), z, default_ttl);
      } catch (const core::ConfigError& e) {
        f.fail(e.what());
      }
    }
    if (auto recs = zn["records"]; recs.defined()) {
      for (const auto& rn : recs.items()) {
        RecordSetSpec set = parse_record_set(rn, z.origin, c.health_checks);
        z.sets[{set.name, set.type}] = std::move(set);
      }
    }
    add_default_soa(z);
    if (auto built = Zone::build(z); !built) zn.fail(built.error().message);
    c.zones.push_back(std::move(z));
  }
  if (c.zones.empty()) zones.fail("expected at least one zone");
  return c;
}

DnsConfig load_dns_config(const std::string& path) {
  auto root = core::ConfigNode::load_file(path);
  fs::path base = fs::path(path).parent_path();
  DnsConfig c = parse_dns_config(root, base.empty() ? "." : base.string());
  c.source = path;
  return c;
}

}  // namespace cumulo::dns
