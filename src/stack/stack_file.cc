#include "stack/stack_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>

#include "core/log.h"
#include "core/net.h"
#include "dns/dns.h"
#include "net/net.h"
#include "objstore/objstore.h"
#include "stack/internal/network_policy.h"

namespace cumulo::stack {

namespace {

bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

core::SocketAddress parse_address(const core::ConfigNode& node, std::string_view what) {
  std::string text = node.as_string();
  auto addr = core::SocketAddress::parse(text);
  if (!addr) node.fail("expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080, got '" + text + "'");
  if (addr->port() == 0) node.fail(std::string(what) + " needs a fixed port, not 0");
  return *addr;
}

bool is_loopback(const core::SocketAddress& addr) {
  std::string host = addr.host();
  return host.rfind("127.", 0) == 0 || host == "::1";
}

// "200", "200-299", "200,204,300-399", codes 100..599.
bool valid_expected_codes(std::string_view text) {
  if (text.empty()) return false;
  auto code = [](std::string_view s) -> std::optional<int> {
    if (s.size() != 3 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    int v = std::atoi(std::string(s).c_str());
    if (v < 100 || v > 599) return std::nullopt;
    return v;
  };
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item = text.substr(start, comma == std::string_view::npos ? comma : comma - start);
    size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      if (!code(item)) return false;
    } else {
      auto lo = code(item.substr(0, dash)), hi = code(item.substr(dash + 1));
      if (!lo || !hi || *lo > *hi) return false;
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return true;
}

HealthCheckSpec parse_health_check(const core::ConfigNode& node) {
  HealthCheckSpec hc;
  if (!node.defined()) return hc;
  node.check_keys(
      {"path", "expected_codes", "interval", "timeout", "healthy_threshold", "unhealthy_threshold"});
  hc.path = node.string_or("path", hc.path);
  if (hc.path.empty() || hc.path.front() != '/') node["path"].fail("expected a path starting with '/'");
  hc.expected_codes = node.string_or("expected_codes", hc.expected_codes);
  if (!valid_expected_codes(hc.expected_codes)) {
    node["expected_codes"].fail("expected status codes such as \"200\", \"200-299\" or \"200,204,300-399\"");
  }
  hc.interval = node.duration_or("interval", hc.interval);
  if (hc.interval.count() <= 0) node["interval"].fail("expected a duration above 0, such as 1s");
  hc.timeout = node.duration_or("timeout", hc.timeout);
  if (hc.timeout.count() <= 0) node["timeout"].fail("expected a duration above 0, such as 1s");
  hc.healthy_threshold = static_cast<int>(node.int_or("healthy_threshold", hc.healthy_threshold, 1, 100));
  hc.unhealthy_threshold =
      static_cast<int>(node.int_or("unhealthy_threshold", hc.unhealthy_threshold, 1, 100));
  return hc;
}

// An API that can change the stack listens on loopback only: anyone who reaches it could.
void parse_loopback_listen(const core::ConfigNode& node, std::string_view key, std::string_view api,
                           std::string_view power, std::string& address, std::string& location) {
  core::SocketAddress addr = parse_address(node, key);
  if (!is_loopback(addr)) {
    node.fail("the " + std::string(api) + " must listen on a loopback address (127.0.0.1 or [::1]): it can " +
              std::string(power));
  }
  address = node.as_string();
  location = node.location();
}

ControlSpec parse_control(const core::ConfigNode& node) {
  ControlSpec control;
  control.location = node.location();
  if (!node.defined() || node.is_null()) return control;
  if (!node.is_map()) node.fail("expected a map such as {listen: 127.0.0.1:9902}");
  node.check_keys({"listen"});
  if (node["listen"].defined()) {
    parse_loopback_listen(node["listen"], "listen", "control API", "change the stack", control.listen,
                          control.location);
  }
  return control;
}

GatewaySpec parse_gateway(const core::ConfigNode& node, const std::vector<std::string>& zones) {
  if (!node.is_map()) node.fail("expected a map with at least 'listen'");
  node.check_keys({"listen", "admin", "zone", "zones", "workers", "log_level", "access_log", "balance",
                   "drain_timeout", "health_check", "tls"});
  GatewaySpec gw;

  core::ConfigNode listen = node.required("listen");
  core::SocketAddress listen_addr = parse_address(listen, "listen");
  gw.listen = listen.as_string();
  gw.listen_location = listen.location();

  core::ConfigNode admin = node["admin"];
  if (admin.defined()) {
    parse_loopback_listen(admin, "admin", "admin API", "change targets", gw.admin, gw.admin_location);
  } else {
    gw.admin_location = node.location();
  }
  auto admin_addr = core::SocketAddress::parse(gw.admin);
  if (admin_addr->port() == listen_addr.port() &&
      (admin_addr->host() == listen_addr.host() || listen_addr.host() == "0.0.0.0" ||
       listen_addr.host() == "::")) {
    (admin.defined() ? admin : listen).fail("gateway.listen and gateway.admin must use different ports");
  }

  core::ConfigNode zone = node["zone"];
  if (zone.defined()) {
    gw.zone = zone.as_string();
    if (std::find(zones.begin(), zones.end(), gw.zone) == zones.end()) {
      zone.fail("zone '" + gw.zone + "' is not one of the stack's zones");
    }
  }
  if (core::ConfigNode list = node["zones"]; list.defined()) {
    if (zone.defined()) list.fail("give either zone (one gateway) or zones (one gateway per zone), not both");
    if (!list.is_sequence()) list.fail("expected a list of the stack's zones, such as [a, b]");
    for (const core::ConfigNode& z : list.items()) {
      std::string name = z.as_string();
      if (std::find(zones.begin(), zones.end(), name) == zones.end())
        z.fail("zone '" + name + "' is not one of the stack's zones");
      if (std::find(gw.zones.begin(), gw.zones.end(), name) != gw.zones.end())
        z.fail("zone '" + name + "' is listed twice");
      gw.zones.push_back(std::move(name));
    }
    if (gw.zones.empty()) list.fail("expected at least one zone");
  }
  gw.workers = static_cast<int>(node.int_or("workers", 0, 1, 256));
  gw.log_level = node.string_or("log_level", gw.log_level);
  if (!core::parse_log_level(gw.log_level)) node["log_level"].fail("expected debug, info, warn or error");
  gw.access_log = node.string_or("access_log", gw.access_log);
  if (gw.access_log.empty()) node["access_log"].fail("expected off, - (stdout) or a file path");
  gw.balance = node.string_or("balance", gw.balance);
  if (gw.balance != "round_robin" && gw.balance != "weighted" && gw.balance != "least_outstanding") {
    node["balance"].fail("expected round_robin, weighted or least_outstanding");
  }
  gw.drain_timeout = node.duration_or("drain_timeout", gw.drain_timeout);
  gw.health_check = parse_health_check(node["health_check"]);
  if (core::ConfigNode tls = node["tls"]; tls.defined()) {
    if (!tls.is_map())
      tls.fail("expected a map such as {listen: 0.0.0.0:443, cert: site.pem, key: site.key}");
    tls.check_keys({"listen", "cert", "key"});
    gw.tls_location = tls.location();
    core::ConfigNode tls_listen = tls.required("listen");
    const core::SocketAddress tls_addr = parse_address(tls_listen, "tls.listen");
    if (tls_addr.port() == listen_addr.port() || tls_addr.port() == admin_addr->port()) {
      tls_listen.fail(
          "gateway.tls.listen needs a port of its own, not that of gateway.listen or gateway.admin");
    }
    gw.tls_listen = tls_listen.as_string();
    for (auto [key, out] : {std::pair{"cert", &gw.tls_cert}, std::pair{"key", &gw.tls_key}}) {
      core::ConfigNode file = tls.required(key);
      *out = std::filesystem::absolute(file.as_string()).string();
      if (::access(out->c_str(), R_OK) != 0) file.fail("cannot read " + *out + ": " + std::strerror(errno));
    }
  }
  return gw;
}

ObjectStoreSpec parse_object_store(const core::ConfigNode& node, const std::vector<std::string>& zones) {
  ObjectStoreSpec store;
  store.location = node.location();
  if (!node.defined() || node.is_null()) return store;
  if (!node.is_map()) node.fail("expected a map with buckets, and optionally listen, users and replication");
  node.check_keys({"listen", "master_key_file", "users", "replication", "buckets"});
  store.enabled = true;
  for (const std::string& zone : zones) store.nodes.push_back({zone, ""});
  if (core::ConfigNode listen = node["listen"]; listen.defined()) {
    if (!listen.is_map())
      listen.fail("expected one address per zone, such as {a: 127.0.0.1:9000, b: 127.0.0.1:9001}");
    for (const auto& [zone, address] : listen.entries()) {
      auto it = std::find_if(store.nodes.begin(), store.nodes.end(),
                             [&](const StoreNodeSpec& n) { return n.zone == zone; });
      if (it == store.nodes.end()) address.fail("zone '" + zone + "' is not one of the stack's zones");
      parse_address(address, "listen");
      it->listen = address.as_string();
    }
  }
  store.master_key_file = node.string_or("master_key_file", "");
  if (core::ConfigNode users = node["users"]; users.defined()) {
    for (const core::ConfigNode& u : users.items()) {
      u.check_keys({"name", "access_key", "secret_key"});
      S3UserSpec user{u.required("name").as_string(), u.required("access_key").as_string(),
                      u.required("secret_key").as_string()};
      for (const S3UserSpec& other : store.users) {
        if (other.name == user.name) u["name"].fail("user '" + user.name + "' is listed twice");
        if (other.access_key == user.access_key) u["access_key"].fail("this access key is listed twice");
      }
      store.users.push_back(std::move(user));
    }
  }
  if (core::ConfigNode r = node["replication"]; r.defined()) {
    r.check_keys({"ack", "on_peer_down"});
    store.replication_ack = r.string_or("ack", store.replication_ack);
    if (store.replication_ack != "all" && store.replication_ack != "one") {
      r["ack"].fail(
          "expected all (a write is acknowledged once durable in every zone) or one (in its own zone, "
          "the others marked behind)");
    }
    store.on_peer_down = r.string_or("on_peer_down", store.on_peer_down);
    if (store.on_peer_down != "degrade" && store.on_peer_down != "fail") {
      r["on_peer_down"].fail("expected degrade (answer the write, mark the zone behind) or fail (503)");
    }
  }
  for (const core::ConfigNode& b : node.required("buckets").items()) {
    b.check_keys({"name", "public", "route", "cache_control", "cache", "cache_ttl"});
    BucketSpec bucket;
    bucket.name = b.required("name").as_string();
    if (!objstore::valid_bucket_name(bucket.name)) {
      b["name"].fail(
          "expected an S3 bucket name: 3 to 63 of a-z, 0-9, '.' and '-', starting and ending with a "
          "letter or digit");
    }
    for (const BucketSpec& other : store.buckets) {
      if (other.name == bucket.name) b["name"].fail("bucket '" + bucket.name + "' is listed twice");
    }
    bucket.is_public = b.bool_or("public", false);
    bucket.route = b.string_or("route", "");
    if (b["route"].defined()) {
      if (bucket.route.size() < 2 || bucket.route.front() != '/' || bucket.route.back() != '/') {
        b["route"].fail("expected a path prefix that starts and ends with '/', such as /static/");
      }
      if (!bucket.is_public) {
        b["route"].fail("the gateway reads a routed bucket anonymously: set public: true on this bucket");
      }
    }
    bucket.cache_control = b.string_or("cache_control", bucket.route.empty() ? "" : "public, max-age=3600");
    bucket.cache = b.bool_or("cache", true);
    bucket.cache_ttl = b.duration_or("cache_ttl", bucket.cache_ttl);
    if (bucket.cache_ttl.count() < 0) b["cache_ttl"].fail("expected a duration of 0 or more");
    store.buckets.push_back(std::move(bucket));
  }
  return store;
}

DnsSpec parse_dns(const core::ConfigNode& node) {
  DnsSpec dns;
  if (!node.defined() || node.is_null()) return dns;
  node.check_keys({"config", "listen", "admin"});
  dns.enabled = true;
  dns.location = node.location();
  auto config = node.required("config");
  dns.config = std::filesystem::absolute(config.as_string()).string();
  try {
    dns::check_config(dns.config);  // its own file:line errors, before anything starts
  } catch (const core::ConfigError& e) {
    config.fail(std::string("invalid DNS configuration: ") + e.what());
  }
  dns.listen = node.required("listen").as_string();
  if (!core::SocketAddress::parse(dns.listen))
    node["listen"].fail("expected host:port, such as 127.0.0.1:5353");
  dns.admin = node.string_or("admin", "");
  if (!dns.admin.empty() && !core::SocketAddress::parse(dns.admin)) node["admin"].fail("expected host:port");
  return dns;
}

std::vector<EdgeSpec> parse_edges(const core::ConfigNode& node) {
  std::vector<EdgeSpec> edges;
  if (!node.defined() || node.is_null()) return edges;
  for (const core::ConfigNode& e : node.items()) {
    e.check_keys({"name", "listen", "admin", "shield", "workers", "cache"});
    EdgeSpec edge;
    edge.location = e.location();
    edge.name = e.required("name").as_string();
    if (edge.name.empty() || edge.name.size() > 32 ||
        !std::all_of(edge.name.begin(), edge.name.end(),
                     [](char c) { return is_lower_alnum(c) || c == '-'; })) {
      e["name"].fail("expected a name of lowercase letters, digits and '-', at most 32 characters");
    }
    parse_address(e.required("listen"), "listen");
    edge.listen = e["listen"].as_string();
    if (e["admin"].defined()) {
      std::string location;
      parse_loopback_listen(e["admin"], "admin", "admin API", "purge its cache", edge.admin, location);
    }
    edge.shield = e.string_or("shield", "");
    edge.workers = static_cast<int>(e.int_or("workers", edge.workers, 1, 256));
    if (core::ConfigNode c = e["cache"]; c.defined()) {
      c.check_keys({"max_bytes", "default_ttl"});
      edge.cache_max_bytes = c.size_or("max_bytes", edge.cache_max_bytes);
      if (edge.cache_max_bytes < (1u << 20)) c["max_bytes"].fail("expected at least 1MiB");
      edge.default_ttl = c.duration_or("default_ttl", edge.default_ttl);
    }
    for (const EdgeSpec& other : edges) {
      if (other.name == edge.name) e["name"].fail("edge '" + edge.name + "' is listed twice");
    }
    edges.push_back(std::move(edge));
  }
  // Shields name earlier or later edges; a loop would send a request around for ever.
  for (size_t i = 0; i < edges.size(); ++i) {
    std::string at = edges[i].shield;
    for (size_t hops = 0; !at.empty(); ++hops) {
      auto it = std::find_if(edges.begin(), edges.end(), [&](const EdgeSpec& x) { return x.name == at; });
      if (it == edges.end()) {
        node.items()[i]["shield"].fail("no edge named '" + at + "'");
      }
      if (hops >= edges.size()) node.items()[i]["shield"].fail("edges shield each other in a loop");
      at = it->shield;
    }
  }
  return edges;
}

DatabaseSpec parse_database(const core::ConfigNode& node, const std::vector<std::string>& zones) {
  DatabaseSpec db;
  db.location = node.location();
  if (!node.defined() || node.is_null()) return db;
  if (!node.is_map()) node.fail("expected a map with primary_zone, replicas, writer, reader and users");
  node.check_keys(
      {"primary_zone", "replicas", "writer", "reader", "admin", "lag_limit", "failover_after", "users"});
  db.enabled = true;
  auto is_zone = [&](const std::string& z) {
    return std::find(zones.begin(), zones.end(), z) != zones.end();
  };
  if (!node["primary_zone"].defined()) {
    node.fail(node["replicas"].defined()
                  ? "replicas need a primary: add primary_zone: ZONE (the zone of the primary)"
                  : "missing key 'primary_zone' (the zone of the primary)");
  }
  db.primary_zone = node["primary_zone"].as_string();
  if (!is_zone(db.primary_zone))
    node["primary_zone"].fail("zone '" + db.primary_zone + "' is not one of the stack's zones");
  if (core::ConfigNode r = node["replicas"]; r.defined() && !r.is_null()) {
    if (!r.is_map()) r.fail("expected replicas per zone, such as {a: 1, b: 1}");
    for (const auto& [zone, count] : r.entries()) {
      if (!is_zone(zone)) count.fail("zone '" + zone + "' is not one of the stack's zones");
      db.replicas.emplace_back(zone, static_cast<int>(count.as_int(0, 8)));
    }
  }
  db.writer = node.required("writer").as_string();
  parse_address(node["writer"], "writer");
  db.reader = node.required("reader").as_string();
  parse_address(node["reader"], "reader");
  if (node["admin"].defined()) {
    parse_address(node["admin"], "admin");
    db.admin = node["admin"].as_string();
  }
  if (core::SocketAddress::parse(db.writer)->port() == core::SocketAddress::parse(db.reader)->port()) {
    node["reader"].fail("the reader endpoint needs its own port");
  }
  db.lag_limit = node.duration_or("lag_limit", db.lag_limit);
  db.failover_after = node.duration_or("failover_after", db.failover_after);
  if (core::ConfigNode users = node["users"]; users.defined()) {
    for (const core::ConfigNode& u : users.items()) {
      u.check_keys({"name", "password", "databases"});
      DatabaseUserSpec user{u.required("name").as_string(), u.required("password").as_string(),
                            u.required("databases").as_string_list()};
      db.users.push_back(std::move(user));
    }
  }
  // Instance names and ports: the primary first, then the replicas zone by zone.
  db.instances.push_back({"db-" + db.primary_zone + "-1", db.primary_zone, 0, "", ""});
  for (const auto& [zone, count] : db.replicas) {
    int first = zone == db.primary_zone ? 2 : 1;
    for (int i = 0; i < count; ++i)
      db.instances.push_back({"db-" + zone + "-" + std::to_string(first + i), zone, 0, "", ""});
  }
  return db;
}

}  // namespace

StackSpec load_stack_file(const std::string& path) {
  StackSpec spec = parse_stack(core::ConfigNode::load_file(path));
  spec.source = path;
  return spec;
}

namespace {

// "8080" or "8000-8100", ports 1..65535.
void parse_ports(const core::ConfigNode& node, int& lo, int& hi) {
  const std::string text = node.as_string();
  auto number = [&](std::string_view t) -> int {
    unsigned v = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || end != t.data() + t.size() || t.empty() || v == 0 || v > 65535) {
      node.fail("expected a port (1-65535) or a range such as 8000-8100, got '" + text + "'");
    }
    return static_cast<int>(v);
  };
  const size_t dash = text.find('-');
  lo = number(std::string_view(text).substr(0, dash));
  hi = dash == std::string::npos ? lo : number(std::string_view(text).substr(dash + 1));
  if (lo > hi) node.fail("the range " + text + " ends before it starts");
}

std::string parse_cidr(const core::ConfigNode& node) {
  const std::string text = node.as_string();
  if (!net::Ipv4Cidr::parse(text))
    node.fail("expected an IPv4 CIDR such as 10.20.0.0/16, got '" + text + "'");
  return text;
}

NetworkConfigSpec parse_network(const core::ConfigNode& node) {
  NetworkConfigSpec network;
  network.location = node.location();
  if (!node.defined() || node.is_null()) return network;
  if (!node.is_map()) node.fail("expected a map such as {cidr: 10.20.0.0/16}");
  node.check_keys({"cidr", "subnet_prefix", "outside", "ssh_from", "instance_port", "egress", "allow"});
  network.enabled = true;
  if (node["cidr"].defined()) network.cidr = parse_cidr(node["cidr"]);
  network.subnet_prefix = static_cast<int>(node.int_or("subnet_prefix", network.subnet_prefix, 8, 30));
  if (node["outside"].defined()) network.outside = parse_cidr(node["outside"]);
  if (node["ssh_from"].defined()) {
    for (const core::ConfigNode& c : node["ssh_from"].items()) network.ssh_from.push_back(parse_cidr(c));
  }
  network.instance_port =
      static_cast<uint16_t>(node.int_or("instance_port", network.instance_port, 1, 65535));
  if (node["egress"].defined()) {
    if (!node["egress"].is_map()) node["egress"].fail("expected a map of group: [groups it may connect to]");
    for (const auto& [group, to] : node["egress"].entries()) {
      network.egress.push_back({group, to.as_string_list(), to.location()});
    }
  }
  if (node["allow"].defined()) {
    for (const core::ConfigNode& r : node["allow"].items()) {
      if (!r.is_map()) r.fail("expected a rule such as {from: web, to: app, ports: 9000}");
      r.check_keys({"from", "to", "ports"});
      NetworkRuleSpec rule;
      rule.from = r.required("from").as_string();
      rule.to = r.required("to").as_string();
      parse_ports(r.required("ports"), rule.port_lo, rule.port_hi);
      rule.location = r.location();
      network.allow.push_back(std::move(rule));
    }
  }
  return network;
}

// `internal_lb:` alone; parse_stack checks it against the groups.
InternalLbSpec parse_internal_lb(const core::ConfigNode& node, const std::vector<std::string>& zones) {
  InternalLbSpec lb;
  lb.location = node.location();
  if (!node.defined() || node.is_null()) return lb;
  if (!node.is_map()) node.fail("expected a map such as {listen: 0.0.0.0:8000, from: [web]}");
  node.check_keys({"listen", "admin", "zone", "from"});
  lb.enabled = true;
  core::ConfigNode listen = node.required("listen");
  parse_address(listen, "listen");
  lb.listen = listen.as_string();
  lb.listen_location = listen.location();
  if (node["admin"].defined()) {
    std::string location;
    parse_loopback_listen(node["admin"], "admin", "admin API", "change targets", lb.admin, location);
    if (core::SocketAddress::parse(lb.admin)->port() == core::SocketAddress::parse(lb.listen)->port()) {
      node["admin"].fail("internal_lb.listen and internal_lb.admin must use different ports");
    }
  }
  lb.zone = zones.front();
  if (core::ConfigNode zone = node["zone"]; zone.defined()) {
    lb.zone = zone.as_string();
    if (std::find(zones.begin(), zones.end(), lb.zone) == zones.end()) {
      zone.fail("zone '" + lb.zone + "' is not one of the stack's zones");
    }
  }
  core::ConfigNode from = node.required("from");
  lb.from = from.as_string_list();
  if (lb.from.empty()) from.fail("expected the groups that may connect to it, such as [web]");
  return lb;
}

// `elastic_ips:` a list of {name, address, gateways}; checked against the gateways once those are known.
std::vector<ElasticIpSpec> parse_elastic_ips(const core::ConfigNode& node, const StackSpec& spec) {
  std::vector<ElasticIpSpec> out;
  if (!node.defined() || node.is_null()) return out;
  if (!node.is_sequence())
    node.fail("expected a list such as [{name: web, gateways: [gateway-a, gateway-b]}]");
  if (!spec.network.enabled)
    node.fail(
        "an elastic IP lives on the public side of the stack's VPC and moves between gateways' "
        "namespaces: add a `network:` section (docs/network.md)");
  const std::vector<GatewayInstance> gateways = gateway_instances(spec);
  uint32_t next_default = 0xc633640a;  // 198.51.100.10 (TEST-NET-2, RFC 5737)
  for (const core::ConfigNode& e : node.items()) {
    if (!e.is_map()) e.fail("expected a map such as {name: web, gateways: [gateway-a, gateway-b]}");
    e.check_keys({"name", "address", "gateways"});
    ElasticIpSpec eip;
    eip.location = e.location();
    core::ConfigNode name = e.required("name");
    eip.name = name.as_string();
    if (eip.name.empty() || eip.name.size() > 32 ||
        !std::all_of(eip.name.begin(), eip.name.end(), [](char c) {
          return is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
        }))
      name.fail("expected a name of letters, digits, '-' and '_', at most 32 characters");
    for (const ElasticIpSpec& other : out)
      if (other.name == eip.name) name.fail("elastic IP '" + eip.name + "' is defined twice");
    if (core::ConfigNode address = e["address"]; address.defined()) {
      eip.address = address.as_string();
      if (!net::parse_ipv4(eip.address)) address.fail("expected an IPv4 address such as 198.51.100.10");
    } else {
      // Past the addresses given anywhere in the list, and those assigned before.
      auto taken = [&](uint32_t a) {
        for (const core::ConfigNode& other : node.items()) {
          if (other.is_map() && other["address"].defined() &&
              net::parse_ipv4(other["address"].as_string()) == a)
            return true;
        }
        return std::any_of(out.begin(), out.end(),
                           [&](const ElasticIpSpec& o) { return net::parse_ipv4(o.address) == a; });
      };
      while (taken(next_default)) ++next_default;
      eip.address = net::ipv4_text(next_default++);
    }
    if (core::ConfigNode list = e["gateways"]; list.defined()) {
      for (const core::ConfigNode& g : list.items()) {
        std::string id = g.as_string();
        if (std::none_of(gateways.begin(), gateways.end(),
                         [&](const GatewayInstance& i) { return i.id == id; })) {
          std::string known;
          for (const GatewayInstance& i : gateways) known += (known.empty() ? "" : ", ") + i.id;
          g.fail("'" + id + "' is not a gateway of the stack (" + known +
                 "; gateway.zones runs one per zone)");
        }
        if (std::find(eip.gateways.begin(), eip.gateways.end(), id) != eip.gateways.end())
          g.fail("gateway '" + id + "' is listed twice");
        eip.gateways.push_back(std::move(id));
      }
      if (eip.gateways.empty()) list.fail("expected at least one gateway");
    } else {
      for (const GatewayInstance& i : gateways) eip.gateways.push_back(i.id);
    }
    out.push_back(std::move(eip));
  }
  return out;
}

// Internal groups and the internal load balancer go together; `from` names public groups of the stack.
void check_internal_lb(const StackSpec& spec, const core::ConfigNode& root) {
  const InternalLbSpec& lb = spec.internal_lb;
  const std::vector<core::ConfigNode> group_nodes = root["groups"].items();
  bool any_internal = false, any_public = false;
  for (size_t i = 0; i < spec.groups.size(); ++i) {
    const GroupSpec& g = spec.groups[i];
    (g.internal ? any_internal : any_public) = true;
    if (g.internal && !lb.enabled) {
      group_nodes[i]["internal"].fail("group '" + g.name +
                                      "' is internal but the stack has no internal load balancer: add "
                                      "an `internal_lb:` section (such as {listen: 0.0.0.0:8000, from: "
                                      "[web]}) or remove `internal: true`");
    }
    if (!lb.enabled) {
      const core::ConfigNode launch = group_nodes[i]["launch_template"];
      std::vector<core::ConfigNode> values = launch["command"].items();
      if (core::ConfigNode env = launch["env"]; env.is_map()) {
        for (const auto& [key, value] : env.entries()) values.push_back(value);
      }
      for (const core::ConfigNode& value : values) {
        if (value.as_string().find("{internal_lb}") != std::string::npos) {
          value.fail(
              "{internal_lb} names the stack's internal load balancer, and the stack has none: add an "
              "`internal_lb:` section");
        }
      }
    }
  }
  if (!lb.enabled) return;
  const core::ConfigNode node = root["internal_lb"];
  if (!any_internal) {
    node.fail(
        "no group is internal: mark the groups it serves with `internal: true`, or remove `internal_lb:`");
  }
  if (!any_public) {
    group_nodes.front()["internal"].fail(
        "every group is internal: the public gateway would route to none of them; leave at least one group "
        "public");
  }
  const std::vector<core::ConfigNode> from_nodes =
      node["from"].is_sequence() ? node["from"].items() : std::vector<core::ConfigNode>{node["from"]};
  for (size_t i = 0; i < lb.from.size(); ++i) {
    auto it = std::find_if(spec.groups.begin(), spec.groups.end(),
                           [&](const GroupSpec& g) { return g.name == lb.from[i]; });
    if (it == spec.groups.end()) from_nodes[i].fail("'" + lb.from[i] + "' is not a group of the stack");
    if (it->internal) {
      from_nodes[i].fail("'" + lb.from[i] +
                         "' is internal, behind this load balancer itself: only public groups may reach it");
    }
    if (std::find(lb.from.begin(), lb.from.begin() + static_cast<long>(i), lb.from[i]) !=
        lb.from.begin() + static_cast<long>(i)) {
      from_nodes[i].fail("'" + lb.from[i] + "' is listed twice");
    }
  }
  // Each process of the stack in loopback mode, and the admin APIs in either mode, share the host's ports.
  auto port = [](const std::string& address) { return core::SocketAddress::parse(address)->port(); };
  std::vector<std::pair<std::string, std::string>> taken = {{spec.gateway.admin, "gateway.admin"},
                                                            {spec.control.listen, "control.listen"}};
  if (!spec.network.enabled) taken.emplace_back(spec.gateway.listen, "gateway.listen");
  for (const auto& [address, what] : taken) {
    if (port(lb.listen) == port(address) && !spec.network.enabled) {
      node["listen"].fail("port " + std::to_string(port(address)) + " is taken by " + what);
    }
    if (!lb.admin.empty() && port(lb.admin) == port(address)) {
      node["admin"].fail("port " + std::to_string(port(address)) + " is taken by " + what);
    }
  }
}

}  // namespace

std::vector<GatewayInstance> gateway_instances(const StackSpec& stack) {
  const GatewaySpec& gw = stack.gateway;
  if (gw.zones.empty()) return {{"gateway", gw.zone}};
  std::vector<GatewayInstance> out;
  for (const std::string& z : gw.zones) out.push_back({"gateway-" + z, z});
  return out;
}

StackSpec parse_stack(const core::ConfigNode& root) {
  if (!root.is_map()) root.fail("expected a stack: a map with name, zones, gateway and groups");
  root.check_keys({"name", "zones", "control", "gateway", "groups", "object_store", "edges", "dns",
                   "database", "network", "internal_lb", "elastic_ips"});
  StackSpec spec;
  spec.source = root.location();

  core::ConfigNode name = root.required("name");
  spec.name = name.as_string();
  bool name_ok = !spec.name.empty() && spec.name.size() <= 64 &&
                 std::all_of(spec.name.begin(), spec.name.end(), [](char c) {
                   return is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
                 });
  if (!name_ok) name.fail("expected a name of letters, digits, '-' and '_', at most 64 characters");

  core::ConfigNode zones = root.required("zones");
  if (!zones.is_sequence()) zones.fail("expected a list of zone names, such as [a, b]");
  for (const core::ConfigNode& z : zones.items()) {
    std::string zone = z.as_string();
    // No '-' in zone names keeps instance ids ("web-a-1") unambiguous: the zone is always the second-to-last
    // part.
    if (zone.empty() || zone.size() > 16 || !std::all_of(zone.begin(), zone.end(), is_lower_alnum)) {
      z.fail("expected a zone name of lowercase letters and digits, at most 16 characters");
    }
    if (std::find(spec.zones.begin(), spec.zones.end(), zone) != spec.zones.end()) {
      z.fail("zone '" + zone + "' is listed twice");
    }
    spec.zones.push_back(std::move(zone));
  }
  if (spec.zones.empty()) zones.fail("expected at least one zone");

  spec.control = parse_control(root["control"]);
  spec.gateway = parse_gateway(root.required("gateway"), spec.zones);
  for (const auto& [address, location] : {std::pair{spec.gateway.listen, spec.gateway.listen_location},
                                          std::pair{spec.gateway.admin, spec.gateway.admin_location}}) {
    if (core::SocketAddress::parse(address)->port() ==
        core::SocketAddress::parse(spec.control.listen)->port()) {
      throw core::ConfigError(spec.control.location + ": control.listen: port " +
                              std::to_string(core::SocketAddress::parse(address)->port()) +
                              " is taken by the gateway (" + location + ")");
    }
  }

  core::ConfigNode groups = root.required("groups");
  if (!groups.is_sequence()) groups.fail("expected a list of groups");
  for (const core::ConfigNode& g : groups.items()) {
    GroupSpec group = scaling::parse_group(g);
    for (const GroupSpec& other : spec.groups) {
      if (other.name == group.name) g["name"].fail("group name '" + group.name + "' is used twice");
      if (other.path_prefix == group.path_prefix) {
        g["path_prefix"].fail("path_prefix '" + group.path_prefix + "' is already routed to group '" +
                              other.name + "'");
      }
    }
    spec.groups.push_back(std::move(group));
  }
  if (spec.groups.empty()) groups.fail("expected at least one group");
  spec.object_store = parse_object_store(root["object_store"], spec.zones);
  for (const BucketSpec& b : spec.object_store.buckets) {
    for (const GroupSpec& g : spec.groups) {
      if (!b.route.empty() && g.path_prefix == b.route) {
        throw core::ConfigError(spec.object_store.location + ": bucket '" + b.name + "': route " + b.route +
                                " is already routed to group '" + g.name + "'");
      }
    }
  }
  spec.edges = parse_edges(root["edges"]);
  spec.dns = parse_dns(root["dns"]);
  spec.database = parse_database(root["database"], spec.zones);
  spec.network = parse_network(root["network"]);
  spec.internal_lb = parse_internal_lb(root["internal_lb"], spec.zones);
  check_internal_lb(spec, root);
  if (!spec.gateway.zones.empty() && !spec.network.enabled)
    root["gateway"]["zones"].fail(
        "one gateway per zone runs each in its zone's public subnet: add a `network:` section "
        "(docs/network.md), or give `zone:` for one gateway");
  spec.elastic_ips = parse_elastic_ips(root["elastic_ips"], spec);
  if (spec.network.enabled)
    internal::check_network(spec);  // every group, port and address fits: or file:line
  return spec;
}

}  // namespace cumulo::stack
