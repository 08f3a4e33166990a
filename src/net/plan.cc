// Pure planning: addresses, subnets and blocks, the router's ruleset and the policy it encodes.
#include <algorithm>
#include <cstdio>
#include <string>

#include "net/internal/names.h"
#include "net/net.h"

namespace cumulo::net {

namespace {

using internal::valid_name;

Result<Plan> refuse(std::string_view location, const std::string& what) {
  std::string msg;
  if (!location.empty()) {
    msg += location;
    msg += ": ";
  }
  msg += what;
  return core::Err(core::Error{"network_spec", std::move(msg), core::ErrorSource::kClient, core::Retry::kNo});
}

std::string port_text(const PortRange& p) {
  return p.lo == p.hi ? std::to_string(p.lo) : std::to_string(p.lo) + "-" + std::to_string(p.hi);
}

std::string set_name(std::string_view group) {
  return "g_" + std::string(group);
}

// An nft comment: printable ASCII without quotes or backslashes, at most 128 bytes (nft's limit).
std::string comment_text(std::string_view s) {
  std::string out;
  for (char c : s)
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') out.push_back(c);
  if (out.size() > 128) out.resize(128);
  return out;
}

// A CIDR rule's source, for a source known only by its group: the rule covers the group when it holds every
// address of the group's blocks (some but not all would make the group's answer depend on the member).
bool cidr_covers_group(const Plan& plan, const Ipv4Cidr& cidr, std::string_view group) {
  bool any = false;
  for (const AddressBlock& b : plan.blocks) {
    if (b.group != group) continue;
    any = true;
    if (!cidr.contains(b.first) || !cidr.contains(b.first + b.count - 1)) return false;
  }
  return any;
}

// The one walk over the policy that allowed() and allowed_from() share; `cidr_matches` decides a CIDR rule
// for the source at hand.
template <typename CidrMatches>
bool policy_allows(const Plan& plan, std::string_view from, std::string_view to, uint16_t port,
                   Protocol protocol, CidrMatches cidr_matches) {
  const bool from_outside = from == kOutside;
  const SecurityGroupSpec* source = from_outside ? nullptr : plan.group(from);
  if (!from_outside && source == nullptr) return false;
  if (to == kOutside) return source != nullptr && source->internet_egress;
  const SecurityGroupSpec* dest = plan.group(to);
  if (dest == nullptr) return false;
  if (source != nullptr && source->egress_restricted &&
      std::find(source->egress.begin(), source->egress.end(), to) == source->egress.end())
    return false;
  for (const IngressRule& rule : dest->ingress) {
    if (rule.protocol != protocol || !rule.ports.contains(port)) continue;
    if (rule.from == kOutside) {
      if (from_outside) return true;
    } else if (plan.group(rule.from) != nullptr) {
      if (rule.from == from) return true;
    } else if (auto cidr = Ipv4Cidr::parse(rule.from); cidr && cidr_matches(*cidr)) {
      return true;
    }
  }
  return false;
}

}  // namespace

// Ipv4Cidr and addresses

std::optional<uint32_t> parse_ipv4(std::string_view text) {
  uint32_t out = 0;
  size_t pos = 0;
  for (int octet = 0; octet < 4; ++octet) {
    if (octet > 0) {
      if (pos >= text.size() || text[pos] != '.') return std::nullopt;
      ++pos;
    }
    size_t start = pos;
    uint32_t v = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9' && pos - start < 3) {
      v = v * 10 + static_cast<uint32_t>(text[pos] - '0');
      ++pos;
    }
    if (pos == start || v > 255 || (pos - start > 1 && text[start] == '0')) return std::nullopt;
    out = (out << 8) | v;
  }
  if (pos != text.size()) return std::nullopt;
  return out;
}

std::string ipv4_text(uint32_t a) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
  return buf;
}

std::optional<Ipv4Cidr> Ipv4Cidr::parse(std::string_view text) {
  size_t slash = text.find('/');
  auto addr = parse_ipv4(text.substr(0, slash));
  if (!addr) return std::nullopt;
  int prefix = 32;
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 2 || (p.size() == 2 && p[0] == '0')) return std::nullopt;
    prefix = 0;
    for (char c : p) {
      if (c < '0' || c > '9') return std::nullopt;
      prefix = prefix * 10 + (c - '0');
    }
    if (prefix > 32) return std::nullopt;
  }
  Ipv4Cidr c{*addr, prefix};
  if ((c.base & ~c.mask()) != 0) return std::nullopt;
  return c;
}

std::string Ipv4Cidr::str() const {
  return ipv4_text(base) + "/" + std::to_string(prefix);
}

bool Ipv4Cidr::contains(uint32_t address) const {
  return (address & mask()) == base;
}

bool Ipv4Cidr::contains(const Ipv4Cidr& other) const {
  return other.prefix >= prefix && contains(other.base);
}

bool Ipv4Cidr::overlaps(const Ipv4Cidr& other) const {
  return contains(other.base) || other.contains(base);
}

std::string_view subnet_kind_name(SubnetKind kind) {
  return kind == SubnetKind::kPublic ? "public" : "private";
}

// Plan

const SecurityGroupSpec* Plan::group(std::string_view name) const {
  for (const SecurityGroupSpec& g : spec.groups)
    if (g.name == name) return &g;
  return nullptr;
}

const Subnet* Plan::subnet(std::string_view zone, SubnetKind kind) const {
  for (const Subnet& s : subnets)
    if (s.zone == zone && s.kind == kind) return &s;
  return nullptr;
}

const AddressBlock* Plan::block(std::string_view group, std::string_view zone) const {
  for (const AddressBlock& b : blocks)
    if (b.group == group && b.zone == zone) return &b;
  return nullptr;
}

const SecurityGroupSpec* Plan::group_of(uint32_t address) const {
  for (const AddressBlock& b : blocks)
    if (address >= b.first && address - b.first < b.count) return group(b.group);
  for (const ElasticAddress& e : spec.elastic_addresses)
    if (e.address == address) return group(e.group);
  return nullptr;
}

const ElasticAddress* Plan::elastic_address(std::string_view name) const {
  for (const ElasticAddress& e : spec.elastic_addresses)
    if (e.name == name) return &e;
  return nullptr;
}

Result<Plan> make_plan(const NetworkSpec& spec) {
  const std::string& where = spec.location;
  if (!valid_name(spec.stack, 64))
    return refuse(where, "stack name '" + spec.stack +
                             "': expected letters, digits, '-' and '_', at most 64 characters");
  if (spec.zones.empty()) return refuse(where, "the network needs at least one zone");
  for (size_t i = 0; i < spec.zones.size(); ++i) {
    if (!valid_name(spec.zones[i], 16))
      return refuse(where, "zone '" + spec.zones[i] + "': expected letters, digits, '-' and '_', at most 16");
    if (std::find(spec.zones.begin(), spec.zones.begin() + static_cast<long>(i), spec.zones[i]) !=
        spec.zones.begin() + static_cast<long>(i))
      return refuse(where, "zone '" + spec.zones[i] + "' is listed twice");
  }
  if ((spec.cidr.base & ~spec.cidr.mask()) != 0 || (spec.outside.base & ~spec.outside.mask()) != 0)
    return refuse(where, "a CIDR with host bits set: " + ipv4_text(spec.cidr.base) + " or " +
                             ipv4_text(spec.outside.base));
  if (spec.cidr.overlaps(spec.outside))
    return refuse(where, "the VPC CIDR " + spec.cidr.str() + " overlaps the outside CIDR " +
                             spec.outside.str() + ": pick disjoint ranges");
  if (spec.outside.prefix > 30)
    return refuse(
        where, "the outside CIDR " + spec.outside.str() + " is too small: at most /30 (it needs .1 and .2)");
  if (spec.subnet_prefix < spec.cidr.prefix || spec.subnet_prefix > 30)
    return refuse(where, "subnet prefix /" + std::to_string(spec.subnet_prefix) +
                             " does not fit the VPC CIDR " + spec.cidr.str() + ": expected /" +
                             std::to_string(spec.cidr.prefix) + " to /30");
  const uint64_t subnet_size = uint64_t{1} << (32 - spec.subnet_prefix);
  const uint64_t needed = 2 * spec.zones.size() * subnet_size;
  if (needed > spec.cidr.size())
    return refuse(where, std::to_string(2 * spec.zones.size()) + " subnets of /" +
                             std::to_string(spec.subnet_prefix) +
                             " (a public and a private one per zone) do not fit "
                             "the VPC CIDR " +
                             spec.cidr.str() + ": widen it or use a longer subnet prefix");

  for (size_t i = 0; i < spec.groups.size(); ++i) {
    const SecurityGroupSpec& g = spec.groups[i];
    if (!valid_name(g.name, 32) || g.name == kOutside)
      return refuse(g.location,
                    "group name '" + g.name +
                        "': expected letters, digits, '-' and '_', at most 32 characters, not 'outside'");
    for (size_t j = 0; j < i; ++j)
      if (spec.groups[j].name == g.name) return refuse(g.location, "group '" + g.name + "' is defined twice");
    if (g.max_members_per_zone < 1)
      return refuse(g.location, "group '" + g.name + "': max members per zone must be at least 1");
  }
  auto known = [&](std::string_view name) {
    return std::any_of(spec.groups.begin(), spec.groups.end(), [&](const auto& g) { return g.name == name; });
  };
  for (const SecurityGroupSpec& g : spec.groups) {
    for (const IngressRule& r : g.ingress) {
      const std::string& loc = r.location.empty() ? g.location : r.location;
      if (r.ports.lo < 1 || r.ports.lo > 65535 || r.ports.hi < 1 || r.ports.hi > 65535)
        return refuse(loc, "group '" + g.name + "': port " + port_text(r.ports) + " is out of range 1-65535");
      if (r.ports.lo > r.ports.hi)
        return refuse(loc,
                      "group '" + g.name + "': port range " + port_text(r.ports) + " ends before it starts");
      const bool from_outside = r.from == kOutside;
      if (!from_outside && !known(r.from) && !Ipv4Cidr::parse(r.from))
        return refuse(loc, "group '" + g.name + "': ingress from '" + r.from +
                               "', which is no group, not 'outside' and no CIDR");
      // The whole internet into a private subnet is a mistake; an allow-list of CIDRs (SSH from an office) is
      // a decision, and stays possible.
      if (from_outside && g.subnet == SubnetKind::kPrivate)
        return refuse(loc, "group '" + g.name +
                               "' is in a private subnet, which the outside cannot reach: "
                               "put it in a public subnet or drop the rule from '" +
                               r.from + "'");
    }
    for (const std::string& e : g.egress) {
      if (e == kOutside)
        return refuse(g.location, "group '" + g.name + "': egress to 'outside' is said with internet_egress");
      if (!known(e)) return refuse(g.location, "group '" + g.name + "': egress to unknown group '" + e + "'");
    }
  }

  for (size_t i = 0; i < spec.elastic_addresses.size(); ++i) {
    const ElasticAddress& e = spec.elastic_addresses[i];
    const std::string& loc = e.location.empty() ? where : e.location;
    if (!valid_name(e.name, 32))
      return refuse(loc,
                    "elastic IP name '" + e.name + "': expected letters, digits, '-' and '_', at most 32");
    const std::string text = ipv4_text(e.address);
    if (spec.cidr.contains(e.address) || spec.outside.contains(e.address))
      return refuse(loc, "elastic IP " + e.name + ": " + text + " is inside the " +
                             (spec.cidr.contains(e.address) ? "VPC CIDR " + spec.cidr.str()
                                                            : "outside CIDR " + spec.outside.str()) +
                             "; it needs an address of its own, routed to its holder");
    if ((e.address >> 24) == 0 || (e.address >> 24) == 127 || (e.address >> 28) >= 14)
      return refuse(loc, "elastic IP " + e.name + ": " + text + " is not a unicast address");
    for (size_t j = 0; j < i; ++j) {
      if (spec.elastic_addresses[j].name == e.name)
        return refuse(loc, "elastic IP '" + e.name + "' is defined twice");
      if (spec.elastic_addresses[j].address == e.address)
        return refuse(loc, "elastic IPs " + spec.elastic_addresses[j].name + " and " + e.name +
                               " have the same address " + text);
    }
    const auto g = std::find_if(spec.groups.begin(), spec.groups.end(),
                                [&](const SecurityGroupSpec& s) { return s.name == e.group; });
    if (g == spec.groups.end())
      return refuse(loc, "elastic IP " + e.name + ": no security group '" + e.group + "'");
    if (g->subnet != SubnetKind::kPublic)
      return refuse(loc, "elastic IP " + e.name + ": group '" + e.group +
                             "' is in a private subnet, which the outside cannot reach");
  }

  Plan plan;
  plan.spec = spec;
  plan.router_ns = internal::namespace_prefix(spec.stack) + "router";
  plan.outside_ns = internal::namespace_prefix(spec.stack) + "outside";
  plan.outside_router_address = spec.outside.host(1);
  plan.outside_address = spec.outside.host(2);
  uint32_t index = 0;
  for (const std::string& zone : spec.zones) {
    for (SubnetKind kind : {SubnetKind::kPublic, SubnetKind::kPrivate}) {
      Ipv4Cidr cidr{spec.cidr.base + index * static_cast<uint32_t>(subnet_size), spec.subnet_prefix};
      plan.subnets.push_back(Subnet{zone, kind, cidr, cidr.host(1)});
      ++index;
    }
  }
  // Blocks from .2 up, leaving out the network address, the router's .1 and the broadcast address (unused on
  // point-to-point links, but a /24 whose .255 answers surprises people).
  for (const Subnet& s : plan.subnets) {
    uint64_t next = 2;
    const uint64_t end = subnet_size - 1;
    for (const SecurityGroupSpec& g : spec.groups) {
      if (g.subnet != s.kind) continue;
      const auto count = static_cast<uint64_t>(g.max_members_per_zone);
      if (next + count > end)
        return refuse(g.location,
                      "group '" + g.name + "' needs " + std::to_string(count) + " addresses in the " +
                          std::string(subnet_kind_name(s.kind)) + " subnet " + s.cidr.str() + " of zone " +
                          s.zone + ", which has " + std::to_string(end - std::min(next, end)) + " left of " +
                          std::to_string(end - 2) + ": lower max members or use a shorter subnet prefix");
      plan.blocks.push_back(AddressBlock{g.name, s.zone, s.cidr.host(static_cast<uint32_t>(next)),
                                         static_cast<uint32_t>(count)});
      next += count;
    }
  }
  // Group by group, zone by zone: the order the ruleset's sets list them in.
  std::stable_sort(plan.blocks.begin(), plan.blocks.end(), [&](const AddressBlock& a, const AddressBlock& b) {
    auto pos = [&](const std::string& name) {
      for (size_t i = 0; i < spec.groups.size(); ++i)
        if (spec.groups[i].name == name) return i;
      return spec.groups.size();
    };
    return pos(a.group) < pos(b.group);
  });
  return plan;
}

// The policy

bool allowed(const Plan& plan, std::string_view from, std::string_view to, uint16_t port, Protocol protocol) {
  if (from == kOutside) return allowed_from(plan, from, plan.outside_address, to, port, protocol);
  return policy_allows(plan, from, to, port, protocol,
                       [&](const Ipv4Cidr& cidr) { return cidr_covers_group(plan, cidr, from); });
}

bool allowed_from(const Plan& plan, std::string_view from, uint32_t from_address, std::string_view to,
                  uint16_t port, Protocol protocol) {
  return policy_allows(plan, from, to, port, protocol,
                       [&](const Ipv4Cidr& cidr) { return cidr.contains(from_address); });
}

// The ruleset. Every accept below corresponds to one `return true` of policy_allows, in the same order of
// tests: egress restriction first (a jump that rejects unless the destination is listed), then internet
// egress, then the destination's ingress rules; whatever is left is rejected.
std::string router_ruleset(const Plan& plan) {
  const NetworkSpec& spec = plan.spec;
  std::string out;
  out += "# The router of stack " + spec.stack + ", written by cumulo (src/net). Applied with `nft -f` in " +
         plan.router_ns + ":\n# the table is deleted and made again in one transaction.\n";
  out += "table inet cumulo\ndelete table inet cumulo\n";
  out += "table inet cumulo {\n";
  out += "  set outside {\n    type ipv4_addr; flags interval\n    elements = { " + spec.outside.str() +
         " }\n  }\n";
  for (const SecurityGroupSpec& g : spec.groups) {
    out += "  set " + set_name(g.name) + " {\n    type ipv4_addr; flags interval\n    elements = { ";
    bool first = true;
    for (const AddressBlock& b : plan.blocks) {
      if (b.group != g.name) continue;
      if (!first) out += ", ";
      first = false;
      out += b.count == 1 ? ipv4_text(b.first) : ipv4_text(b.first) + "-" + ipv4_text(b.first + b.count - 1);
    }
    for (const ElasticAddress& e : spec.elastic_addresses) {
      if (e.group != g.name) continue;
      if (!first) out += ", ";
      first = false;
      out += ipv4_text(e.address);
    }
    out += " }\n  }\n";
  }
  // Members do not talk to the router itself; ARP is not seen by the inet family.
  out += "  chain input {\n    type filter hook input priority filter; policy drop;\n";
  out += "    ct state established,related accept\n    iif \"lo\" accept\n  }\n";
  for (const SecurityGroupSpec& g : spec.groups) {
    if (!g.egress_restricted) continue;
    out += "  chain egress_" + g.name + " {\n";
    for (const std::string& e : g.egress) out += "    ip daddr @" + set_name(e) + " return\n";
    if (g.internet_egress) out += "    ip daddr @outside return\n";
    out += "    counter reject with icmpx admin-prohibited comment \"" +
           comment_text(g.location + " egress of " + g.name) + "\"\n  }\n";
  }
  out += "  chain forward {\n    type filter hook forward priority filter; policy drop;\n";
  out += "    ct state established,related accept\n";
  out += "    ct state invalid counter drop\n";
  // Anti-spoofing besides rp_filter: a source address must be routed back through the interface it came in
  // by.
  out += "    fib saddr . iif oif missing counter drop\n";
  for (const SecurityGroupSpec& g : spec.groups)
    if (g.egress_restricted) out += "    ip saddr @" + set_name(g.name) + " jump egress_" + g.name + "\n";
  for (const SecurityGroupSpec& g : spec.groups)
    if (g.internet_egress)
      out += "    ip saddr @" + set_name(g.name) + " ip daddr @outside counter accept comment \"" +
             comment_text(g.location + " " + g.name + " to the internet") + "\"\n";
  for (const SecurityGroupSpec& g : spec.groups) {
    for (const IngressRule& r : g.ingress) {
      std::string source;
      if (r.from == kOutside)
        source = "@outside";
      else if (plan.group(r.from) != nullptr)
        source = "@" + set_name(r.from);
      else
        source = Ipv4Cidr::parse(r.from)->str();  // make_plan checked it
      const char* proto = r.protocol == Protocol::kTcp ? "tcp" : "udp";
      out += "    ip saddr " + source + " ip daddr @" + set_name(g.name) + " " + proto + " dport " +
             port_text(r.ports) + " counter accept comment \"" +
             comment_text(r.location + " " + g.name + " from " + r.from) + "\"\n";
    }
  }
  out += "    counter reject with icmpx admin-prohibited comment \"denied\"\n  }\n}\n";
  return out;
}

}  // namespace cumulo::net
