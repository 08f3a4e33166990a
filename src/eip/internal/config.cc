#include "eip/internal/config.h"

#include <algorithm>

#include "core/log.h"
#include "core/net.h"
#include "net/net.h"

namespace cumulo::eip::internal {

namespace {

bool valid_name(const std::string& s, size_t max) {
  return !s.empty() && s.size() <= max && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

uint32_t ipv4(const core::ConfigNode& node) {
  auto a = net::parse_ipv4(node.as_string());
  if (!a) node.fail("expected an IPv4 address such as 10.20.0.2");
  return *a;
}

std::string loopback_address(const core::ConfigNode& node) {
  const std::string text = node.as_string();
  auto a = core::SocketAddress::parse(text);
  if (!a || a->port() == 0) node.fail("expected HOST:PORT, such as 127.0.0.1:9950");
  if (a->host().rfind("127.", 0) != 0 && a->host() != "::1")
    node.fail("expected a loopback address: an admin API moves public addresses and takes no password");
  return text;
}

}  // namespace

const GatewayEntry* KeeperConfig::gateway(const std::string& id) const {
  for (const GatewayEntry& g : gateways)
    if (g.id == id) return &g;
  return nullptr;
}

KeeperConfig parse_keeper_config(const core::ConfigNode& root) {
  if (!root.is_map()) root.fail("expected a map with stack, admin, state_file, gateways and elastic_ips");
  root.check_keys({"stack", "admin", "state_file", "router_namespace", "log_level", "log_file", "lease_ttl",
                   "drain_timeout", "check", "gateways", "elastic_ips"});
  KeeperConfig cfg;
  cfg.source = root.location();
  cfg.stack = root.required("stack").as_string();
  cfg.admin = loopback_address(root.required("admin"));
  cfg.state_file = root.required("state_file").as_string();
  if (cfg.state_file.empty() || cfg.state_file.front() != '/')
    root["state_file"].fail("expected an absolute path");
  cfg.router_ns = root.required("router_namespace").as_string();
  cfg.log_level = root.string_or("log_level", cfg.log_level);
  if (!core::parse_log_level(cfg.log_level)) root["log_level"].fail("expected debug, info, warn or error");
  cfg.log_file = root.string_or("log_file", "");
  cfg.lease_ttl = root.duration_or("lease_ttl", cfg.lease_ttl);
  if (cfg.lease_ttl < std::chrono::milliseconds(200)) root["lease_ttl"].fail("expected at least 200ms");
  cfg.drain_timeout = root.duration_or("drain_timeout", cfg.drain_timeout);

  cfg.check.path = std::string(1, '/');  // a one-character literal trips GCC 12's -Wrestrict
  cfg.check.expected_codes = {{200, 299}};
  cfg.check.interval = std::chrono::milliseconds(100);
  cfg.check.timeout = std::chrono::milliseconds(250);
  if (core::ConfigNode check = root["check"]; check.defined()) {
    if (!check.is_map()) check.fail("expected a map such as {path: /.cumulo/gateway, interval: 100ms}");
    check.check_keys({"path", "interval", "timeout", "healthy_threshold", "unhealthy_threshold"});
    cfg.check.path = check.string_or("path", cfg.check.path);
    if (cfg.check.path.empty() || cfg.check.path.front() != '/') check["path"].fail("expected a path: /...");
    cfg.check.interval = check.duration_or("interval", cfg.check.interval);
    cfg.check.timeout = check.duration_or("timeout", cfg.check.timeout);
    if (cfg.check.interval < std::chrono::milliseconds(10) ||
        cfg.check.timeout < std::chrono::milliseconds(10))
      check.fail("interval and timeout must be at least 10ms");
    cfg.check.healthy_threshold = static_cast<int>(check.int_or("healthy_threshold", 2, 1, 100));
    cfg.check.unhealthy_threshold = static_cast<int>(check.int_or("unhealthy_threshold", 2, 1, 100));
  }

  core::ConfigNode gateways = root.required("gateways");
  if (!gateways.is_sequence()) gateways.fail("expected a list of gateways");
  for (const core::ConfigNode& g : gateways.items()) {
    if (!g.is_map()) g.fail("expected a map with id, namespace, address, port, router_interface and admin");
    g.check_keys({"id", "namespace", "interface", "address", "port", "router_interface", "admin"});
    GatewayEntry e;
    e.id = g.required("id").as_string();
    if (!valid_name(e.id, 64)) g["id"].fail("expected letters, digits, '-', '_' and '.', at most 64");
    if (cfg.gateway(e.id) != nullptr) g["id"].fail("gateway '" + e.id + "' is listed twice");
    e.ns = g.required("namespace").as_string();
    e.interface = g.string_or("interface", e.interface);
    e.address = ipv4(g.required("address"));
    e.port = static_cast<uint16_t>(g.required("port").as_int(1, 65535));
    e.router_interface = g.required("router_interface").as_string();
    e.admin = loopback_address(g.required("admin"));
    cfg.gateways.push_back(std::move(e));
  }
  if (cfg.gateways.empty()) gateways.fail("expected at least one gateway");

  core::ConfigNode eips = root.required("elastic_ips");
  if (!eips.is_sequence()) eips.fail("expected a list of elastic IPs");
  for (const core::ConfigNode& n : eips.items()) {
    if (!n.is_map()) n.fail("expected a map with name, address and gateways");
    n.check_keys({"name", "address", "gateways"});
    ElasticIpEntry e;
    e.name = n.required("name").as_string();
    if (!valid_name(e.name, 32)) n["name"].fail("expected letters, digits, '-' and '_', at most 32");
    for (const ElasticIpEntry& o : cfg.elastic_ips) {
      if (o.name == e.name) n["name"].fail("elastic IP '" + e.name + "' is listed twice");
    }
    e.address = ipv4(n.required("address"));
    for (const ElasticIpEntry& o : cfg.elastic_ips) {
      if (o.address == e.address) n["address"].fail("the address of elastic IP " + o.name + " too");
    }
    core::ConfigNode list = n.required("gateways");
    e.gateways = list.as_string_list();
    if (e.gateways.empty()) list.fail("expected at least one gateway");
    for (const std::string& id : e.gateways) {
      if (cfg.gateway(id) == nullptr) list.fail("'" + id + "' is not in gateways");
    }
    cfg.elastic_ips.push_back(std::move(e));
  }
  return cfg;
}

KeeperConfig load_keeper_config(const std::string& path) {
  return parse_keeper_config(core::ConfigNode::load_file(path));
}

}  // namespace cumulo::eip::internal
