// Zones as the server answers from them: a hash map from owner name to node, each node with its record sets,
// and routing policies on record sets (simple, weighted, failover, multivalue, nearest) whose choices read
// the endpoints' health. A ZoneSet is an immutable snapshot; changes build a new one (docs/dns.md).
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/result.h"
#include "dns/wire/wire.h"
#include "health/health.h"

namespace cumulo::dns {

// An apex record answered as the A/AAAA records of its target (Route 53's alias records). Private type code
// from the RFC 6895 range for private use; never written to the wire.
inline constexpr uint16_t kTypeAlias = 65401;

enum class Policy : uint8_t { kSimple, kWeighted, kFailover, kMultivalue, kNearest };
const char* to_string(Policy p);
bool policy_from_string(std::string_view s, Policy& out);

struct Endpoint {
  std::string rdata;                            // wire form
  std::string text;                             // presentation form, for GET /zones
  uint32_t weight = 1;                          // weighted
  bool primary = true;                          // failover: primary or secondary
  std::string region;                           // nearest
  std::string health_check;                     // name of a configured check, empty for none
  std::shared_ptr<health::HealthState> health;  // shared with the checker; null: always healthy

  bool healthy() const {
    return !health || health->health.load(std::memory_order_relaxed) != health::Health::kUnhealthy;
  }
};

// The record set of one (name, type) as configured: what the zone file, the configuration or the admin API
// said.
struct RecordSetSpec {
  std::string name;  // lowercase wire
  uint16_t type = 0;
  uint32_t ttl = 300;
  Policy policy = Policy::kSimple;
  std::vector<Endpoint> endpoints;
  std::string
      alias_target;  // ALIAS: a name (lowercase wire) whose A/AAAA answer; empty: the endpoints' addresses
  bool alias_gateway = false;    // ALIAS: the stack gateway's addresses (given to `cumulo dns` at start)
  std::string alias_elastic_ip;  // ALIAS: the address of this elastic IP of the stack, whoever holds it
};

struct RRset {
  uint16_t type = 0;
  uint32_t ttl = 0;
  Policy policy = Policy::kSimple;
  std::vector<Endpoint> endpoints;
  std::string alias_target;
};

struct Node {
  std::vector<RRset> rrsets;  // empty: an empty non-terminal (the name exists: NODATA, not NXDOMAIN)
  const RRset* find(uint16_t type) const {
    for (const auto& r : rrsets)
      if (r.type == type) return &r;
    return nullptr;
  }
};

struct NameHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// A configured zone: its record sets by (name, type), from which Zone snapshots are built.
struct ZoneSource {
  std::string origin;  // lowercase wire
  std::map<std::pair<std::string, uint16_t>, RecordSetSpec> sets;
};

class Zone {
 public:
  Zone() = default;
  Zone(const Zone&) = delete;  // the index points into nodes_
  Zone& operator=(const Zone&) = delete;
  // Validates (one SOA at the apex, CNAME alone at its name, every name inside the zone) and indexes the
  // source. A violation is an error of kind invalid_zone naming the record (the zone's author is at fault).
  static core::Result<std::shared_ptr<const Zone>, core::Error> build(const ZoneSource& source);

  const std::string& origin() const { return origin_; }
  const Node* find(std::string_view name) const {
    if (index_.empty()) return nullptr;
    const uint64_t h = hash_name(name);
    for (size_t i = h & index_mask_;; i = (i + 1) & index_mask_) {
      const IndexSlot& s = index_[i];
      if (!s.node) return nullptr;
      if (s.hash == h && s.key.size() == name.size() &&
          std::memcmp(s.key.data(), name.data(), name.size()) == 0)
        return s.node;
    }
  }
  // The wildcard node that synthesizes `name` (RFC 4592 section 3.3.1: "*." below the closest encloser), or
  // null.
  const Node* wildcard_for(std::string_view name) const;
  const RRset& soa() const { return *soa_; }
  bool has_delegations() const { return has_delegations_; }  // NS records below the apex
  uint32_t negative_ttl() const { return negative_ttl_; }    // RFC 2308 section 5: min(SOA TTL, SOA MINIMUM)
  uint32_t serial() const;
  // Every node in name order, for AXFR and GET /zones.
  std::vector<std::pair<std::string_view, const Node*>> sorted_nodes() const;

 private:
  std::string origin_;
  // FNV-1a, then a multiply-shift mix for the low bits the index uses: names are short, so this beats a
  // general-purpose hash, and the flat index below costs one cache line per probe where the map's buckets and
  // chained nodes cost three.
  static uint64_t hash_name(std::string_view s) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
    return h ^ (h >> 29);
  }
  struct IndexSlot {
    uint64_t hash = 0;
    std::string_view key;  // into nodes_, whose keys never move
    const Node* node = nullptr;
  };
  std::unordered_map<std::string, Node, NameHash, std::equal_to<>> nodes_;  // owns the nodes
  std::vector<IndexSlot> index_;  // open addressing, linear probing, at most half full
  size_t index_mask_ = 0;
  const RRset* soa_ = nullptr;
  uint32_t negative_ttl_ = 0;
  bool has_delegations_ = false;
};

struct NetworkRegion {
  uint16_t family = 1;  // 1 IPv4, 2 IPv6 (as in Client Subnet)
  uint8_t prefix = 0;
  uint8_t address[16]{};
  std::string region;
};

// Parses "10.1.0.0/16", "2001:db8::/32" (a bare address is a full-length prefix).
bool parse_prefix(std::string_view text, NetworkRegion& out);
bool prefix_matches(const NetworkRegion& net, uint16_t family, const uint8_t* address,
                    uint8_t max_bits = 128);

// Everything the workers answer from, swapped as a whole on change.
struct ZoneSet {
  std::vector<std::shared_ptr<const Zone>> zones;
  std::vector<NetworkRegion> networks;  // nearest: longest prefix wins
  const Zone* find(std::string_view qname) const;
};

// The client as the nearest policy sees it: its address, or the Client Subnet it sent.
struct ClientView {
  uint16_t family = 0;  // 1 IPv4, 2 IPv6, 0 unknown
  uint8_t address[16]{};
  const wire::ClientSubnet* subnet = nullptr;
};

// Answers one parsed query from the zone set into w (after w.begin()). Not for AXFR/IXFR.
class Answerer {
 public:
  explicit Answerer(uint64_t seed) : rng_(seed) {}
  void answer(const ZoneSet& zones, const wire::Query& q, const ClientView& client, wire::ResponseWriter& w);

 private:
  bool add_rrset(const ZoneSet& zones, std::string_view owner, const RRset& set, const ClientView& client,
                 wire::ResponseWriter& w);
  // A referral when `name` is at or below a zone cut (NS records below the apex), else false.
  bool refer(const Zone& zone, std::string_view name, uint16_t qtype, wire::ResponseWriter& w);
  bool add_alias(const ZoneSet& zones, std::string_view owner, const RRset& alias, uint16_t qtype,
                 const ClientView& client, wire::ResponseWriter& w);
  uint32_t random(uint32_t n) { return static_cast<uint32_t>(rng_() % n); }
  std::minstd_rand rng_;
};

}  // namespace cumulo::dns
