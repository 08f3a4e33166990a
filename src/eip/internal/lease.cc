#include "eip/internal/lease.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/files.h"

namespace cumulo::eip::internal {

namespace {

using json = nlohmann::json;

core::Error state_error(std::string message) {
  return core::Error{"state_file", std::move(message), core::ErrorSource::kInternal, core::Retry::kNo};
}

}  // namespace

core::Result<Leases, core::Error> load_leases(const std::string& path) {
  Leases out;
  if (!std::filesystem::exists(path)) return out;
  const std::string text = core::read_file(path);
  json doc = json::parse(text, nullptr, false);
  if (!doc.is_object() || !doc.contains("elastic_ips") || !doc["elastic_ips"].is_object())
    return core::Err(state_error(path + ": not a lease file (expected {\"elastic_ips\": {...}})"));
  try {
    for (const auto& [name, l] : doc["elastic_ips"].items()) {
      Lease lease;
      lease.holder = l.at("holder").get<std::string>();
      lease.term = l.at("term").get<uint64_t>();
      lease.state = l.value("state", std::string("held"));
      lease.from = l.value("from", std::string());
      lease.renewed_at_ms = l.value("renewed_at_ms", int64_t{0});
      lease.expires_at_ms = l.value("expires_at_ms", int64_t{0});
      if (lease.state != "held" && lease.state != "moving")
        return core::Err(
            state_error(path + ": elastic IP " + name + ": unknown state '" + lease.state + "'"));
      out[name] = std::move(lease);
    }
  } catch (const json::exception& e) {
    return core::Err(state_error(path + ": " + e.what()));
  }
  return out;
}

core::Result<void, core::Error> save_leases(const std::string& path, const Leases& leases) {
  json eips = json::object();
  for (const auto& [name, l] : leases) {
    eips[name] = {{"holder", l.holder},
                  {"term", l.term},
                  {"state", l.state},
                  {"from", l.from},
                  {"renewed_at_ms", l.renewed_at_ms},
                  {"expires_at_ms", l.expires_at_ms}};
  }
  try {
    core::write_file_atomically(path, json{{"elastic_ips", eips}}.dump(2) + "\n", /*durable=*/true);
  } catch (const std::exception& e) {
    return core::Err(state_error(e.what()));
  }
  return {};
}

Decision decide(const Lease& lease, const std::vector<Candidate>& candidates) {
  const auto holder = std::find_if(candidates.begin(), candidates.end(),
                                   [&](const Candidate& c) { return c.id == lease.holder; });
  const bool has_holder = !lease.holder.empty() && holder != candidates.end();
  if (has_holder && holder->health == GatewayHealth::kHealthy) return {Decision::Kind::kRenew, "", ""};
  if (has_holder && holder->health == GatewayHealth::kUnknown) return {};
  std::string why;
  if (lease.holder.empty()) {
    why = "nobody holds it";
  } else if (!has_holder) {
    why = lease.holder + " may no longer hold it";
  } else {
    why = lease.holder + " failed its health check" + (holder->why.empty() ? "" : " (" + holder->why + ")");
  }
  for (const Candidate& c : candidates) {
    if (c.id != lease.holder && c.health == GatewayHealth::kHealthy)
      return {Decision::Kind::kMove, c.id, why};
  }
  return {Decision::Kind::kNothing, "", why + ", and no other gateway is healthy"};
}

}  // namespace cumulo::eip::internal
