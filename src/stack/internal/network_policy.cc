#include "stack/internal/network_policy.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/config.h"
#include "core/net.h"

namespace cumulo::stack::internal {

namespace {

uint16_t port_of(const std::string& address) {
  return core::SocketAddress::parse(address)->port();
}

net::SecurityGroupSpec* find_group(std::vector<net::SecurityGroupSpec>& groups, std::string_view name) {
  for (auto& g : groups)
    if (g.name == name) return &g;
  return nullptr;
}

net::SecurityGroupSpec security_group(std::string name, net::SubnetKind subnet, int max_members_per_zone,
                                      std::string location) {
  net::SecurityGroupSpec g;
  g.name = std::move(name);
  g.subnet = subnet;
  g.max_members_per_zone = max_members_per_zone;
  g.location = std::move(location);
  return g;
}

void allow(net::SecurityGroupSpec& to, const std::string& from, uint16_t port, const std::string& location) {
  to.ingress.push_back({from, {port, port}, net::Protocol::kTcp, location});
}

}  // namespace

net::NetworkSpec network_policy(const StackSpec& stack) {
  const NetworkConfigSpec& cfg = stack.network;
  net::NetworkSpec spec;
  spec.stack = stack.name;
  spec.cidr = *net::Ipv4Cidr::parse(cfg.cidr);
  spec.subnet_prefix = cfg.subnet_prefix;
  spec.outside = *net::Ipv4Cidr::parse(cfg.outside);
  spec.zones = stack.zones;
  spec.location = cfg.location;

  std::vector<net::SecurityGroupSpec>& groups = spec.groups;
  std::vector<std::string> data_tier;
  const std::string& gw_location = stack.gateway.listen_location;

  net::SecurityGroupSpec gateway = security_group(kGatewayGroup, net::SubnetKind::kPublic, 1, gw_location);
  allow(gateway, "outside", port_of(stack.gateway.listen), gw_location);
  if (!stack.gateway.tls_listen.empty())
    allow(gateway, "outside", port_of(stack.gateway.tls_listen), gw_location);
  groups.push_back(std::move(gateway));

  if (stack.dns.enabled) {
    net::SecurityGroupSpec dns = security_group(kDnsGroup, net::SubnetKind::kPublic, 1, stack.dns.location);
    const uint16_t port = port_of(stack.dns.listen);
    for (net::Protocol protocol : {net::Protocol::kUdp, net::Protocol::kTcp}) {
      dns.ingress.push_back({std::string(net::kOutside), {port, port}, protocol, dns.location});
    }
    // Its health checks of the site (records that follow the gateway's health).
    allow(groups.front(), kDnsGroup, port_of(stack.gateway.listen), dns.location);
    groups.push_back(std::move(dns));
  }

  if (!stack.edges.empty()) {
    net::SecurityGroupSpec edge =
        security_group(kEdgeGroup, net::SubnetKind::kPublic, static_cast<int>(stack.edges.size()),
                       stack.edges.front().location);
    std::set<uint16_t> ports;
    for (const EdgeSpec& e : stack.edges) ports.insert(port_of(e.listen));
    for (uint16_t p : ports) {
      allow(edge, "outside", p, edge.location);
      allow(edge, kEdgeGroup, p, edge.location);  // an edge fetching through its shield
    }
    allow(groups.front(), kEdgeGroup, port_of(stack.gateway.listen), edge.location);
    groups.push_back(std::move(edge));
  }

  if (stack.object_store.enabled) {
    net::SecurityGroupSpec store =
        security_group(kStoreGroup, net::SubnetKind::kPrivate, 1, stack.object_store.location);
    std::set<uint16_t> ports;
    for (const StoreNodeSpec& n : stack.object_store.nodes) {
      ports.insert(n.listen.empty() ? kDefaultStorePort : port_of(n.listen));
    }
    for (uint16_t p : ports) {
      allow(store, kGatewayGroup, p, store.location);
      allow(store, kStoreGroup, p, store.location);  // replication between the zones' nodes
      for (const GroupSpec& g : stack.groups) allow(store, g.name, p, store.location);
    }
    data_tier.push_back(kStoreGroup);
    groups.push_back(std::move(store));
  }

  if (stack.database.enabled) {
    net::SecurityGroupSpec db =
        security_group(kDatabaseGroup, net::SubnetKind::kPrivate, 1, stack.database.location);
    for (const GroupSpec& g : stack.groups) {
      allow(db, g.name, port_of(stack.database.writer), db.location);
      allow(db, g.name, port_of(stack.database.reader), db.location);
    }
    data_tier.push_back(kDatabaseGroup);
    groups.push_back(std::move(db));

    net::SecurityGroupSpec servers;
    servers.name = kDatabaseServerGroup;
    servers.subnet = net::SubnetKind::kPrivate;
    std::map<std::string, int> per_zone;
    for (const DatabaseInstancePlan& i : stack.database.instances)
      servers.max_members_per_zone = std::max(servers.max_members_per_zone, ++per_zone[i.zone]);
    servers.location = stack.database.location;
    allow(servers, kDatabaseGroup, kDatabaseServerPort, servers.location);
    allow(servers, kDatabaseServerGroup, kDatabaseServerPort, servers.location);  // replication
    groups.push_back(std::move(servers));
  }

  const InternalLbSpec& lb = stack.internal_lb;
  if (lb.enabled) {
    net::SecurityGroupSpec ilb = security_group(kInternalLbGroup, net::SubnetKind::kPrivate, 1, lb.location);
    for (const std::string& from : lb.from) allow(ilb, from, port_of(lb.listen), lb.location);
    groups.push_back(std::move(ilb));
  }
  auto reaches_internal_lb = [&](const GroupSpec& g) {
    return lb.enabled && std::find(lb.from.begin(), lb.from.end(), g.name) != lb.from.end();
  };

  for (const GroupSpec& g : stack.groups) {
    net::SecurityGroupSpec sg = security_group(g.name, net::SubnetKind::kPrivate, g.max, g.location);
    allow(sg, g.internal ? kInternalLbGroup : kGatewayGroup, cfg.instance_port, g.location);
    for (const std::string& cidr : cfg.ssh_from) allow(sg, cidr, 22, cfg.location);
    sg.egress_restricted = true;
    sg.egress = data_tier;
    for (const NetworkEgressSpec& e : cfg.egress) {
      if (e.group != g.name) continue;
      sg.egress.clear();
      for (const std::string& to : e.to) {
        if (to == "outside") {
          sg.internet_egress = true;
        } else {
          sg.egress.push_back(to);
        }
      }
    }
    // `internal_lb.from` says the group reaches it, whatever else its egress is.
    if (reaches_internal_lb(g) &&
        std::find(sg.egress.begin(), sg.egress.end(), kInternalLbGroup) == sg.egress.end()) {
      sg.egress.push_back(kInternalLbGroup);
    }
    groups.push_back(std::move(sg));
  }

  for (const NetworkRuleSpec& r : cfg.allow) {
    net::SecurityGroupSpec* to = find_group(groups, r.to);
    if (to == nullptr) continue;  // check_network names it
    to->ingress.push_back({r.from, {r.port_lo, r.port_hi}, net::Protocol::kTcp, r.location});
  }
  // Each elastic IP is one more address of the gateway group, routed to whichever gateway holds it.
  for (const ElasticIpSpec& e : stack.elastic_ips)
    spec.elastic_addresses.push_back({e.name, *net::parse_ipv4(e.address), kGatewayGroup, e.location});
  return spec;
}

void check_network(const StackSpec& stack) {
  const NetworkConfigSpec& cfg = stack.network;
  const std::set<std::string> reserved = {kGatewayGroup,        kEdgeGroup, kStoreGroup,
                                          kDatabaseGroup,       kDnsGroup,  kInternalLbGroup,
                                          kDatabaseServerGroup, "outside"};
  for (const GroupSpec& g : stack.groups) {
    if (reserved.count(g.name)) {
      throw core::ConfigError(g.location + ": group name '" + g.name +
                              "' is the name of one of the stack's own security groups in network mode; "
                              "rename the group");
    }
  }
  const net::NetworkSpec spec = network_policy(stack);
  auto known = [&](const std::string& name) {
    return std::any_of(spec.groups.begin(), spec.groups.end(), [&](const auto& g) { return g.name == name; });
  };
  for (const NetworkRuleSpec& r : cfg.allow) {
    if (!known(r.to)) {
      throw core::ConfigError(
          r.location + ": network.allow: 'to: " + r.to +
          "' is not a security group of "
          "the stack (its groups, gateway, edge, object_store, database, database_servers)");
    }
  }
  for (const NetworkEgressSpec& e : cfg.egress) {
    if (std::none_of(stack.groups.begin(), stack.groups.end(),
                     [&](const auto& g) { return g.name == e.group; })) {
      throw core::ConfigError(e.location + ": network.egress: '" + e.group + "' is not a group of the stack");
    }
    for (const std::string& to : e.to) {
      if (to != "outside" && !known(to)) {
        throw core::ConfigError(e.location + ": network.egress." + e.group + ": '" + to +
                                "' is not a security group of the stack, nor \"outside\"");
      }
    }
  }
  net::Result<net::Plan> plan = net::make_plan(spec);
  if (!plan) throw core::ConfigError(plan.error().message);
}

namespace {

constexpr std::chrono::milliseconds kProbeTimeout{500};

}  // namespace

std::vector<std::pair<std::string, uint16_t>> listening_ports(const StackSpec& stack,
                                                              const std::vector<net::Member>& members) {
  std::vector<std::pair<std::string, uint16_t>> out;
  for (const net::Member& m : members) {
    if (m.group == kGatewayGroup) {
      out.emplace_back(m.name, port_of(stack.gateway.listen));
      if (!stack.gateway.tls_listen.empty()) out.emplace_back(m.name, port_of(stack.gateway.tls_listen));
    } else if (m.group == kEdgeGroup) {
      for (const EdgeSpec& e : stack.edges)
        if ("edge-" + e.name == m.name) out.emplace_back(m.name, port_of(e.listen));
    } else if (m.group == kStoreGroup) {
      for (const StoreNodeSpec& n : stack.object_store.nodes)
        if ("objstore-" + n.zone == m.name) out.emplace_back(m.name, port_of(n.listen));
    } else if (m.group == kInternalLbGroup) {
      out.emplace_back(m.name, port_of(stack.internal_lb.listen));
    } else if (m.group == kDnsGroup) {
      out.emplace_back(m.name, port_of(stack.dns.listen));  // TCP; the check does not probe UDP
    } else if (m.group == kDatabaseGroup) {
      out.emplace_back(m.name, port_of(stack.database.writer));
      out.emplace_back(m.name, port_of(stack.database.reader));
    } else if (m.group == kDatabaseServerGroup) {
      out.emplace_back(m.name, kDatabaseServerPort);
    } else {
      out.emplace_back(m.name, stack.network.instance_port);
    }
  }
  return out;
}

std::string render_network_state(const StackSpec& stack, const net::Plan& plan,
                                 const std::vector<net::Member>& members) {
  nlohmann::json doc = {
      {"stack", stack.name},
      {"stack_file", std::filesystem::absolute(stack.source).string()},
      {"router", plan.router_ns},
      {"outside", {{"namespace", plan.outside_ns}, {"address", net::ipv4_text(plan.outside_address)}}}};
  nlohmann::json list = nlohmann::json::array();
  for (const net::Member& m : members) {
    list.push_back({{"name", m.name},
                    {"namespace", m.ns},
                    {"group", m.group},
                    {"zone", m.zone},
                    {"address", net::ipv4_text(m.address)}});
  }
  doc["members"] = list;
  nlohmann::json ports = nlohmann::json::array();
  for (const auto& [name, port] : listening_ports(stack, members))
    ports.push_back({{"member", name}, {"port", port}});
  doc["listening"] = ports;
  return doc.dump(2) + "\n";
}

std::vector<net::CheckRow> check_stack_network(const net::Plan& plan, const StackSpec& stack,
                                               const std::vector<net::Member>& members) {
  return net::check(plan, members, listening_ports(stack, members), kProbeTimeout);
}

int run_net_check(const std::string& state_dir, bool json) {
  const std::filesystem::path path = std::filesystem::path(state_dir) / "network.json";
  std::ifstream in(path);
  if (!in) {
    std::fprintf(
        stderr,
        "cumulo net check: no %s: is a stack with a `network:` section running with --state-dir %s?\n",
        path.c_str(), state_dir.c_str());
    return 2;
  }
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cumulo net check: %s: %s\n", path.c_str(), e.what());
    return 2;
  }
  StackSpec stack = load_stack_file(doc.at("stack_file").get<std::string>());
  net::Result<net::Plan> plan = net::make_plan(network_policy(stack));
  if (!plan) throw core::ConfigError(plan.error().message);
  std::vector<net::Member> members;
  for (const auto& m : doc.at("members")) {
    net::Member member;
    member.name = m.at("name").get<std::string>();
    member.ns = m.at("namespace").get<std::string>();
    member.group = m.at("group").get<std::string>();
    member.zone = m.at("zone").get<std::string>();
    member.address = net::parse_ipv4(m.at("address").get<std::string>()).value_or(0);
    members.push_back(std::move(member));
  }
  std::vector<std::pair<std::string, uint16_t>> listening;
  for (const auto& l : doc.at("listening")) {
    listening.emplace_back(l.at("member").get<std::string>(), l.at("port").get<uint16_t>());
  }
  const std::vector<net::CheckRow> rows = net::check(*plan, members, listening, kProbeTimeout);
  const size_t bad =
      static_cast<size_t>(std::count_if(rows.begin(), rows.end(), [](const auto& r) { return !r.ok; }));
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const net::CheckRow& r : rows) {
      out.push_back({{"from", r.from},
                     {"from_group", r.from_group},
                     {"to", r.to},
                     {"to_group", r.to_group},
                     {"port", r.port},
                     {"listening", r.listening},
                     {"expected", r.expected ? "allowed" : "denied"},
                     {"result", net::reach_name(r.observed)},
                     {"observed", r.observed == net::Reach::kConnected || r.observed == net::Reach::kRefused
                                      ? "allowed"
                                      : "denied"},
                     {"ok", r.ok}});
    }
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::fputs(net::render_matrix(rows).c_str(), stdout);
    std::printf("\n%zu paths checked, %zu differ from the policy\n", rows.size(), bad);
  }
  return bad == 0 ? 0 : 1;
}

}  // namespace cumulo::stack::internal
