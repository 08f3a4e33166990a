#include "dns/internal/admin.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/log.h"
#include "core/metrics.h"
#include "core/text.h"
#include "dns/wire/zone_file.h"

namespace cumulo::dns {

namespace {
constexpr const char* kComponent = "dns";

http::Response error(int status, const std::string& what) {
  nlohmann::json j = {{"error", what}};
  return http::Response::json(status, j.dump() + "\n");
}

}  // namespace

void bump_serial(std::string& rd) {
  size_t p = rd.size() - 20;
  uint32_t serial = 0;
  for (int i = 0; i < 4; ++i) serial = serial << 8 | static_cast<uint8_t>(rd[p + i]);
  ++serial;
  for (int i = 3; i >= 0; --i) {
    rd[p + i] = static_cast<char>(serial & 0xFF);
    serial >>= 8;
  }
}

void Admin::publish() {
  auto set = std::make_shared<ZoneSet>();
  for (const ZoneSource& z : config_.zones) {
    // Each was built when it was loaded or changed: an error here is a bug, reported as at start-up.
    auto built = Zone::build(z);
    if (!built) throw std::logic_error(built.error().message);
    set->zones.push_back(std::move(built).value());
  }
  set->networks = config_.networks;
  store_.publish(std::move(set));
}

ZoneSource* Admin::zone_named(std::string_view origin_text) {
  std::string text(origin_text);
  if (text.empty() || text.back() != '.') text += '.';
  std::string wire;
  if (!wire::name_from_text(text, "", wire)) return nullptr;
  for (ZoneSource& z : config_.zones)
    if (z.origin == wire) return &z;
  return nullptr;
}

http::Response Admin::zones_json() const {
  nlohmann::json zones = nlohmann::json::array();
  auto snapshot = store_.get();
  for (const auto& zone : snapshot->zones) {
    nlohmann::json records = nlohmann::json::array();
    for (const auto& [name, node] : zone->sorted_nodes()) {
      for (const RRset& set : node->rrsets) {
        nlohmann::json values = nlohmann::json::array();
        for (const Endpoint& ep : set.endpoints) {
          nlohmann::json v = {{"value", ep.text}};
          if (set.policy == Policy::kWeighted) v["weight"] = ep.weight;
          if (set.policy == Policy::kFailover) v["role"] = ep.primary ? "primary" : "secondary";
          if (!ep.region.empty()) v["region"] = ep.region;
          if (!ep.health_check.empty()) {
            v["health_check"] = ep.health_check;
            v["health"] = health::to_string(ep.health->health.load());
          }
          values.push_back(std::move(v));
        }
        nlohmann::json r = {
            {"name", wire::name_to_text(name)},
            {"type", set.type == kTypeAlias ? std::string("ALIAS") : wire::type_name(set.type)},
            {"ttl", set.ttl},
            {"policy", to_string(set.policy)},
            {"values", std::move(values)}};
        if (!set.alias_target.empty()) r["target"] = wire::name_to_text(set.alias_target);
        records.push_back(std::move(r));
      }
    }
    zones.push_back({{"origin", wire::name_to_text(zone->origin())},
                     {"serial", zone->serial()},
                     {"records", std::move(records)}});
  }
  return http::Response::json(200, nlohmann::json{{"zones", zones}}.dump(2) + "\n");
}

http::Response Admin::change(http::Request& req, ZoneSource& zone) {
  ZoneSource updated = zone;
  std::string what;
  if (req.method == "POST" || req.method == "PUT") {
    RecordSetSpec set;
    try {
      // JSON is YAML: the record set is read by the configuration's own schema, unknown keys included.
      auto node = core::ConfigNode::load_string(req.body, "request body");
      set = parse_record_set(node, zone.origin, config_.health_checks);
    } catch (const core::ConfigError& e) {
      return error(400, e.what());
    }
    if (set.type == wire::type::kSOA)
      return error(400, "the SOA record is managed by the server (its serial)");
    what = "upsert";
    updated.sets[{set.name, set.type}] = std::move(set);
  } else {
    std::string name_text, type_text;
    if (!core::percent_decode(req.query_param("name"), name_text, core::PlusIs::kSpace) ||
        !core::percent_decode(req.query_param("type"), type_text, core::PlusIs::kSpace))
      return error(400, "bad percent-encoding in the query (a '%' needs two hex digits)");
    std::string name;
    auto t = type_text == "ALIAS" ? std::optional<uint16_t>(kTypeAlias) : wire::type_from_name(type_text);
    if (!wire::name_from_text(name_text, zone.origin, name) || !t)
      return error(400, "DELETE wants ?name=NAME&type=TYPE (name relative to the zone or absolute)");
    if (*t == wire::type::kSOA) return error(400, "the SOA record cannot be deleted");
    if (updated.sets.erase({name, *t}) == 0)
      return error(404, "no " + type_text + " record set at " + wire::name_to_text(name));
    what = "delete";
  }
  auto soa = updated.sets.find({zone.origin, wire::type::kSOA});
  bump_serial(soa->second.endpoints[0].rdata);
  soa->second.endpoints[0].text = wire::rdata_to_text(wire::type::kSOA, soa->second.endpoints[0].rdata);
  if (auto built = Zone::build(updated); !built) return error(400, built.error().message);
  zone = std::move(updated);
  publish();
  auto snap = store_.get();
  uint32_t serial = snap->find(zone.origin)->serial();
  core::log_info(kComponent, "zone changed",
                 {{"zone", wire::name_to_text(zone.origin)},
                  {"change", what},
                  {"serial", static_cast<int64_t>(serial)}});
  return http::Response::json(
      200, nlohmann::json{{"zone", wire::name_to_text(zone.origin)}, {"serial", serial}}.dump() + "\n");
}

void Admin::handle(http::Request& req, http::Responder respond) {
  const std::string& path = req.path;
  if (path == "/health") return respond(http::Response::text(200, "ok\n"));
  if (path == "/metrics") {
    if (req.method != "GET") return respond(error(405, "GET only"));
    return respond(http::Response::text(200, core::MetricsRegistry::global().render(),
                                        "text/plain; version=0.0.4; charset=utf-8"));
  }
  if (path == "/zones") {
    if (req.method != "GET") return respond(error(405, "GET only"));
    return respond(zones_json());
  }
  constexpr std::string_view kPrefix = "/zones/";
  constexpr std::string_view kSuffix = "/records";
  if (path.size() > kPrefix.size() + kSuffix.size() && path.starts_with(kPrefix) && path.ends_with(kSuffix)) {
    std::string_view origin =
        std::string_view(path).substr(kPrefix.size(), path.size() - kPrefix.size() - kSuffix.size());
    ZoneSource* zone = zone_named(origin);
    if (!zone) return respond(error(404, "no zone " + std::string(origin) + " is served here"));
    if (req.method != "POST" && req.method != "PUT" && req.method != "DELETE")
      return respond(error(405, "POST (upsert a record set) or DELETE (?name=&type=)"));
    return respond(change(req, *zone));
  }
  respond(error(404, "unknown path: /health, /metrics, /zones, /zones/ORIGIN/records"));
}

}  // namespace cumulo::dns
