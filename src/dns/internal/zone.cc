#include "dns/internal/zone.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <stdexcept>

namespace cumulo::dns {

using wire::ResponseWriter;
using wire::Section;
namespace type = wire::type;

const char* to_string(Policy p) {
  switch (p) {
    case Policy::kSimple:
      return "simple";
    case Policy::kWeighted:
      return "weighted";
    case Policy::kFailover:
      return "failover";
    case Policy::kMultivalue:
      return "multivalue";
    case Policy::kNearest:
      return "nearest";
  }
  return "?";
}

bool policy_from_string(std::string_view s, Policy& out) {
  for (Policy p :
       {Policy::kSimple, Policy::kWeighted, Policy::kFailover, Policy::kMultivalue, Policy::kNearest}) {
    if (s == to_string(p)) {
      out = p;
      return true;
    }
  }
  return false;
}

namespace {

uint32_t get32(std::string_view s, size_t p) {
  auto b = [&](size_t i) { return uint32_t{static_cast<uint8_t>(s[p + i])}; };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

// Strips the first label of a wire name ("\3www\7example\0" -> "\7example\0").
std::string_view parent(std::string_view name) {
  if (name.empty() || name[0] == 0) return {};
  return name.substr(1 + static_cast<uint8_t>(name[0]));
}

constexpr size_t kMaxMultivalue = 8;  // Route 53 answers up to eight healthy records
constexpr int kMaxChain = 8;

}  // namespace

// ---- Zone

core::Result<std::shared_ptr<const Zone>, core::Error> Zone::build(const ZoneSource& source) {
  // Each refusal names the record and the rule; the zone is the client's (a file, an admin API request).
  auto invalid = [](std::string message) {
    return core::Err(
        core::Error{"invalid_zone", std::move(message), core::ErrorSource::kClient, core::Retry::kNo});
  };
  auto z = std::make_shared<Zone>();
  z->origin_ = source.origin;
  auto text = [](const RecordSetSpec& s) {
    return wire::name_to_text(s.name) + " " + wire::type_name(s.type);
  };
  for (const auto& [key, spec] : source.sets) {
    if (!wire::name_in_zone(spec.name, source.origin))
      return invalid(text(spec) + ": outside the zone " + wire::name_to_text(source.origin));
    if (spec.endpoints.empty() && spec.alias_target.empty()) continue;
    Node& node = z->nodes_[spec.name];
    RRset set;
    set.type = spec.type;
    set.ttl = spec.ttl;
    set.policy = spec.policy;
    set.endpoints = spec.endpoints;
    set.alias_target = spec.alias_target;
    node.rrsets.push_back(std::move(set));
    // Every name between this one and the apex exists (empty non-terminals, RFC 8020).
    for (std::string_view p = parent(spec.name); !p.empty() && p.size() >= source.origin.size();
         p = parent(p))
      z->nodes_.try_emplace(std::string(p));
  }
  for (const auto& [name, node] : z->nodes_) {
    const RRset* cname = node.find(type::kCNAME);
    if (cname && node.rrsets.size() > 1)
      return invalid(wire::name_to_text(name) +
                     ": a CNAME cannot share its name with other records "
                     "(RFC 1034 section 3.6.2)");
    if (cname && cname->endpoints.size() > 1 && cname->policy == Policy::kSimple)
      return invalid(wire::name_to_text(name) + ": a CNAME has exactly one target");
    if (node.find(type::kSOA) && name != source.origin)
      return invalid(wire::name_to_text(name) + ": SOA below the zone apex");
    if (node.find(kTypeAlias) && (node.find(type::kA) || node.find(type::kAAAA)))
      return invalid(wire::name_to_text(name) + ": ALIAS beside A or AAAA records");
  }
  auto apex = z->nodes_.find(source.origin);
  const RRset* soa = apex == z->nodes_.end() ? nullptr : apex->second.find(type::kSOA);
  if (!soa || soa->endpoints.size() != 1 || soa->endpoints[0].rdata.size() < 22)
    return invalid(wire::name_to_text(source.origin) + ": the zone needs exactly one SOA record at its apex");
  if (apex->second.find(type::kCNAME))
    return invalid(wire::name_to_text(source.origin) + ": CNAME at the zone apex (use ALIAS)");
  size_t slots = 16;
  while (slots < z->nodes_.size() * 2) slots *= 2;
  z->index_.assign(slots, IndexSlot{});
  z->index_mask_ = slots - 1;
  for (const auto& [name, node] : z->nodes_) {
    const uint64_t h = hash_name(name);
    size_t i = h & z->index_mask_;
    while (z->index_[i].node) i = (i + 1) & z->index_mask_;
    z->index_[i] = IndexSlot{h, name, &node};
  }
  for (const auto& [name, node] : z->nodes_)
    if (name != source.origin && node.find(type::kNS)) z->has_delegations_ = true;
  z->soa_ = soa;
  const std::string& rd = soa->endpoints[0].rdata;
  z->negative_ttl_ = std::min(soa->ttl, get32(rd, rd.size() - 4));
  return std::shared_ptr<const Zone>(std::move(z));
}

uint32_t Zone::serial() const {
  const std::string& rd = soa_->endpoints[0].rdata;
  return get32(rd, rd.size() - 20);
}

const Node* Zone::wildcard_for(std::string_view name) const {
  // The closest encloser is the longest existing ancestor; only its "*" child may synthesize the answer.
  for (std::string_view p = parent(name); !p.empty() && p.size() >= origin_.size(); p = parent(p)) {
    if (!find(p)) continue;
    char buf[wire::kMaxNameBytes + 2];
    if (p.size() + 2 > sizeof buf) return nullptr;
    buf[0] = 1;
    buf[1] = '*';
    std::memcpy(buf + 2, p.data(), p.size());
    return find(std::string_view(buf, p.size() + 2));
  }
  return nullptr;
}

std::vector<std::pair<std::string_view, const Node*>> Zone::sorted_nodes() const {
  std::vector<std::pair<std::string_view, const Node*>> out;
  out.reserve(nodes_.size());
  for (const auto& [name, node] : nodes_) out.emplace_back(name, &node);
  // Canonical-ish order: by reversed labels, so the apex comes first and names group under their parents.
  auto key = [](std::string_view n) {
    std::vector<std::string_view> labels;
    size_t p = 0;
    while (p < n.size() && n[p] != 0) {
      labels.push_back(n.substr(p + 1, static_cast<uint8_t>(n[p])));
      p += 1 + static_cast<uint8_t>(n[p]);
    }
    std::reverse(labels.begin(), labels.end());
    return labels;
  };
  std::sort(out.begin(), out.end(),
            [&](const auto& a, const auto& b) { return key(a.first) < key(b.first); });
  return out;
}

// ---- networks

bool parse_prefix(std::string_view text, NetworkRegion& out) {
  std::string addr(text.substr(0, text.find('/')));
  int bits = -1;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    auto s = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), bits);
    if (ec != std::errc() || end != s.data() + s.size()) return false;
  }
  std::memset(out.address, 0, sizeof out.address);
  if (inet_pton(AF_INET, addr.c_str(), out.address) == 1) {
    out.family = 1;
    if (bits < 0) bits = 32;
    if (bits > 32) return false;
  } else if (inet_pton(AF_INET6, addr.c_str(), out.address) == 1) {
    out.family = 2;
    if (bits < 0) bits = 128;
    if (bits > 128) return false;
  } else {
    return false;
  }
  out.prefix = static_cast<uint8_t>(bits);
  return true;
}

bool prefix_matches(const NetworkRegion& net, uint16_t family, const uint8_t* address, uint8_t max_bits) {
  if (net.family != family || net.prefix > max_bits) return false;
  int full = net.prefix / 8, rest = net.prefix % 8;
  if (std::memcmp(net.address, address, static_cast<size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xFF << (8 - rest));
  return (net.address[full] & mask) == (address[full] & mask);
}

const Zone* ZoneSet::find(std::string_view qname) const {
  const Zone* best = nullptr;
  for (const auto& z : zones)
    if (wire::name_in_zone(qname, z->origin()) && (!best || z->origin().size() > best->origin().size()))
      best = z.get();
  return best;
}

// ---- answers

void Answerer::answer(const ZoneSet& zones, const wire::Query& q, const ClientView& client,
                      ResponseWriter& w) {
  const Zone* zone = zones.find(q.name());
  if (!zone || (q.qclass != wire::kClassIN && q.qclass != type::kANY)) {
    w.set_rcode(wire::Rcode::kRefused);
    w.set_authoritative(false);
    return;
  }
  std::string_view name = q.name();
  for (int chain = 0;; ++chain) {
    if (zone->has_delegations() && refer(*zone, name, q.qtype, w)) return;
    const Node* node = zone->find(name);
    if (!node) {
      node = zone->wildcard_for(name);
      if (!node) {
        w.set_rcode(wire::Rcode::kNxDomain);
        w.add(Section::kAuthority, zone->origin(), type::kSOA, wire::kClassIN, zone->negative_ttl(),
              zone->soa().endpoints[0].rdata);
        return;
      }
    }
    const RRset* cname = node->find(type::kCNAME);
    if (cname && q.qtype != type::kCNAME) {
      if (!add_rrset(zones, name, *cname, client, w)) return;
      // The chain is followed while it stays in this zone (RFC 1034 section 4.3.2 step 3.a); a loop or an
      // overly long chain ends with what was gathered.
      std::string_view target = cname->endpoints.empty() ? std::string_view{} : cname->endpoints[0].rdata;
      if (cname->policy != Policy::kSimple) return;
      if (target.empty() || chain + 1 >= kMaxChain || !wire::name_in_zone(target, zone->origin())) return;
      name = target;
      continue;
    }
    bool added = false;
    if (q.qtype == type::kANY) {
      // RFC 8482 allows a subset; every record set of the name is cheap enough here.
      for (const RRset& set : node->rrsets) {
        if (set.type == kTypeAlias) continue;
        added |= add_rrset(zones, name, set, client, w);
      }
    } else if (const RRset* set = node->find(q.qtype)) {
      added = add_rrset(zones, name, *set, client, w);
    } else if (q.qtype == type::kA || q.qtype == type::kAAAA) {
      if (const RRset* alias = node->find(kTypeAlias))
        added = add_alias(zones, name, *alias, q.qtype, client, w);
    }
    if (!added && !w.truncated()) {
      // NODATA (RFC 2308 section 2.2): NOERROR, no answer of the asked type (after a CNAME chain too), the
      // SOA in the authority section.
      w.add(Section::kAuthority, zone->origin(), type::kSOA, wire::kClassIN, zone->negative_ttl(),
            zone->soa().endpoints[0].rdata);
    }
    return;
  }
}

bool Answerer::refer(const Zone& zone, std::string_view name, uint16_t qtype, ResponseWriter& w) {
  // RFC 1034 section 4.3.2 step 3.b: the highest zone cut between the apex and the name wins.
  size_t starts[wire::kMaxNameBytes / 2 + 1];
  size_t n = 0;
  for (size_t p = 0; p < name.size() && name.size() - p > zone.origin().size();
       p += 1u + static_cast<uint8_t>(name[p]))
    starts[n++] = p;
  constexpr uint16_t kTypeDs = 43;  // answered by the parent side of the cut (RFC 4035 section 3.1.4.1)
  while (n > 0) {
    size_t p = starts[--n];
    std::string_view cut = name.substr(p);
    const Node* node = zone.find(cut);
    const RRset* ns = node ? node->find(type::kNS) : nullptr;
    if (!ns || (p == 0 && qtype == kTypeDs)) continue;
    // A referral is not authoritative: NS records in the authority section, glue for the name servers inside
    // the delegated zone in the additional section (RFC 1034 section 4.3.2 step 3.b).
    w.set_authoritative(false);
    for (const Endpoint& ep : ns->endpoints)
      w.add(Section::kAuthority, cut, type::kNS, wire::kClassIN, ns->ttl, ep.rdata);
    for (const Endpoint& ep : ns->endpoints) {
      if (!wire::name_in_zone(ep.rdata, cut)) continue;
      const Node* host = zone.find(ep.rdata);
      if (!host) continue;
      for (uint16_t t : {type::kA, type::kAAAA})
        if (const RRset* glue = host->find(t))
          for (const Endpoint& g : glue->endpoints)
            w.add(Section::kAdditional, ep.rdata, t, wire::kClassIN, glue->ttl, g.rdata);
    }
    return true;
  }
  return false;
}

bool Answerer::add_alias(const ZoneSet& zones, std::string_view owner, const RRset& alias, uint16_t qtype,
                         const ClientView& client, ResponseWriter& w) {
  bool added = false;
  if (alias.alias_target.empty()) {
    for (const Endpoint& ep : alias.endpoints) {
      if ((qtype == type::kA && ep.rdata.size() == 4) || (qtype == type::kAAAA && ep.rdata.size() == 16))
        added |= w.add(Section::kAnswer, owner, qtype, wire::kClassIN, alias.ttl, ep.rdata);
    }
    return added;
  }
  const Zone* tz = zones.find(alias.alias_target);
  const Node* target = tz ? tz->find(alias.alias_target) : nullptr;
  if (!target) return false;
  const RRset* set = target->find(qtype);
  if (!set) return false;
  // The target's routing policy decides, and its TTL is the alias's, as Route 53 does.
  return add_rrset(zones, owner, *set, client, w);
}

bool Answerer::add_rrset(const ZoneSet& zones, std::string_view owner, const RRset& set,
                         const ClientView& client, ResponseWriter& w) {
  const auto& eps = set.endpoints;
  auto put = [&](const Endpoint& ep) {
    return w.add(Section::kAnswer, owner, set.type, wire::kClassIN, set.ttl, ep.rdata);
  };
  switch (set.policy) {
    case Policy::kSimple: {
      bool any = false;
      for (const Endpoint& ep : eps) any |= put(ep);
      return any;
    }
    case Policy::kWeighted: {
      // One record, drawn by weight among the healthy ones; all of them when none is healthy (Route 53 then
      // treats every record as healthy rather than answering nothing).
      uint64_t total = 0;
      bool healthy_only = false;
      for (const Endpoint& ep : eps)
        if (ep.healthy() && ep.weight > 0) healthy_only = true;
      for (const Endpoint& ep : eps)
        if (!healthy_only || ep.healthy()) total += ep.weight;
      if (total == 0) return false;
      uint64_t pick = random(static_cast<uint32_t>(std::min<uint64_t>(total, UINT32_MAX)));
      for (const Endpoint& ep : eps) {
        if (healthy_only && !ep.healthy()) continue;
        if (pick < ep.weight) return put(ep);
        pick -= ep.weight;
      }
      return false;
    }
    case Policy::kFailover: {
      const Endpoint* primary = nullptr;
      const Endpoint* secondary = nullptr;
      for (const Endpoint& ep : eps) {
        if (ep.primary && !primary) primary = &ep;
        if (!ep.primary && !secondary) secondary = &ep;
      }
      if (primary && primary->healthy()) return put(*primary);
      if (secondary && secondary->healthy()) return put(*secondary);
      if (primary) return put(*primary);
      return secondary && put(*secondary);
    }
    case Policy::kMultivalue: {
      size_t healthy = 0;
      for (const Endpoint& ep : eps) healthy += ep.healthy();
      size_t n = eps.size();
      if (n == 0) return false;
      // Rotate the start so that clients taking the first record spread over the endpoints.
      size_t start = random(static_cast<uint32_t>(n));
      size_t added = 0;
      for (size_t i = 0; i < n && added < kMaxMultivalue; ++i) {
        const Endpoint& ep = eps[(start + i) % n];
        if (healthy > 0 && !ep.healthy()) continue;
        added += put(ep);
      }
      return added > 0;
    }
    case Policy::kNearest: {
      uint16_t family = client.family;
      const uint8_t* addr = client.address;
      uint8_t bits = 128;
      if (client.subnet) {
        family = client.subnet->family;
        addr = client.subnet->address;
        bits = client.subnet->source_prefix;
      }
      const NetworkRegion* best = nullptr;
      for (const NetworkRegion& net : zones.networks)
        if (prefix_matches(net, family, addr, bits) && (!best || net.prefix > best->prefix)) best = &net;
      if (client.subnet) w.set_client_subnet(*client.subnet, best ? best->prefix : 0);
      bool any = false;
      auto serve = [&](std::string_view region) {
        for (const Endpoint& ep : eps)
          if (ep.region == region && ep.healthy()) any |= put(ep);
        return any;
      };
      if (best && serve(best->region)) return true;
      if (serve("default")) return true;
      // No endpoint for the client's region is healthy: the healthy ones elsewhere, else all.
      size_t healthy = 0;
      for (const Endpoint& ep : eps) healthy += ep.healthy();
      for (const Endpoint& ep : eps)
        if (healthy == 0 || ep.healthy()) any |= put(ep);
      return any;
    }
  }
  return false;
}

}  // namespace cumulo::dns
