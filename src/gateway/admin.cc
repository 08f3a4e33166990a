#include "gateway/internal/admin.h"

#include <cstdint>
#include <nlohmann/json.hpp>

#include "cache/store.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/text.h"
#include "gateway/internal/control.h"

namespace cumulo::gateway {

using nlohmann::json;

namespace {

http::Response error(int status, std::string_view message) {
  return http::Response::json(status, json{{"error", message}}.dump() + "\n");
}

// "404 no such thing" from the control plane into an HTTP answer.
http::Response from_result(const std::string& result, int ok_status, const json& ok_body) {
  if (result.empty()) return http::Response::json(ok_status, ok_body.dump() + "\n");
  int status = std::atoi(result.substr(0, 3).c_str());
  return error(status ? status : 500, result.size() > 4 ? std::string_view(result).substr(4) : result);
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    auto slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash);
  }
  return parts;
}

json target_json(const Target& t, const char* state) {
  int64_t now = health::steady_ms(core::Clock::now());
  return json{{"address", t.address_text},         {"zone", t.zone},
              {"weight", t.weight.load()},         {"health", health::to_string(t.health->health.load())},
              {"ejected", t.outlier.ejected(now)}, {"state", state},
              {"in_flight", t.in_flight.load()},   {"source", t.from_config ? "config" : "api"}};
}

}  // namespace

Admin::Admin(Control& control, core::EventLoop& loop, const core::SocketAddress& listen) : control_(control) {
  http::ServerOptions opts;
  opts.listen = listen;
  opts.max_body_bytes = 64 * 1024;
  server_ = std::make_unique<http::Server>(
      loop, opts, [this](http::Request& req, http::Responder respond) { handle(req, respond); });
  server_->start();
}

Admin::~Admin() = default;

nlohmann::json Admin::drain_json() const {
  return json{{"draining", control_.client_drain()}, {"client_connections", control_.client_connections()}};
}

nlohmann::json Admin::eips_json() const {
  json eips = json::object();
  for (const auto& [name, term] : control_.leases()) eips[name] = term;
  return json{{"server_id", control_.config().server_id}, {"eips", eips}};
}

// Per-target counters in one JSON document, for the scaling metrics pipeline (cumulative; readers take
// deltas).
nlohmann::json Admin::stats_json() const {
  json targets = json::array();
  auto add = [&](const Target& t) {
    uint64_t requests = 0;
    for (auto* c : t.metrics.responses) requests += c->value();
    const core::Histogram& h = *t.metrics.latency;
    json counts = h.cumulative_counts();
    counts.push_back(h.count());
    targets.push_back({{"group", t.group},
                       {"address", t.address_text},
                       {"zone", t.zone},
                       {"requests", requests},
                       {"responses_5xx", t.metrics.responses[5]->value()},
                       {"bytes_in", t.metrics.bytes_in->value()},
                       {"bytes_out", t.metrics.bytes_out->value()},
                       {"in_flight", t.in_flight.load()},
                       {"latency_bounds", h.upper_bounds()},
                       {"latency_counts", counts}});
  };
  for (const auto& [group, list] : control_.targets())
    for (const auto& t : list) add(*t);
  for (const auto& d : control_.draining()) add(*d.target);
  return json{{"targets", targets}};
}

void Admin::handle(http::Request& req, http::Responder respond) {
  auto parts = split_path(req.path);
  const std::string& m = req.method;
  try {
    if (req.path == "/healthz" && m == "GET") return respond(http::Response::text(200, "ok\n"));
    if (req.path == "/metrics" && m == "GET") {
      return respond(http::Response::text(200, core::MetricsRegistry::global().render(),
                                          "text/plain; version=0.0.4; charset=utf-8"));
    }
    if (req.path == "/cache" && m == "GET") {
      auto st = control_.cache().stats();
      return respond(http::Response::json(200, json{{"objects", st.objects},
                                                    {"bytes", st.bytes},
                                                    {"evictions", st.evictions},
                                                    {"max_bytes", control_.cache().max_bytes()}}
                                                       .dump() +
                                                   "\n"));
    }
    if (req.path == "/cache/purge" && m == "POST") {
      json body = json::parse(req.body);
      if (body.is_object() && body.contains("tag") && body["tag"].is_string()) {
        size_t n = control_.cache().purge_tag(body["tag"].get<std::string>());
        return respond(http::Response::json(200, json{{"purged", n}}.dump() + "\n"));
      }
      if (!body.is_object() || !body.contains("host") || !body["host"].is_string() ||
          !body.contains("path") || !body["path"].is_string())
        return respond(error(400,
                             "expected {\"host\": \"example.com\", \"path\": \"/a/b\", \"prefix\": false} "
                             "or {\"tag\": \"product-42\"}"));
      std::string key = core::to_lower(body["host"].get<std::string>()) + body["path"].get<std::string>();
      bool prefix = body.value("prefix", false);
      size_t n = control_.cache().purge(key, prefix);
      return respond(http::Response::json(200, json{{"purged", n}}.dump() + "\n"));
    }
    if (req.path == "/stats" && m == "GET")
      return respond(http::Response::json(200, stats_json().dump() + "\n"));
    if (req.path == "/reload" && m == "POST") {
      std::string err;
      if (!control_.reload(&err)) return respond(error(400, err));
      return respond(http::Response::json(200, json{{"reloaded", control_.config().source}}.dump() + "\n"));
    }
    if (req.path == "/drain" && m == "GET")
      return respond(http::Response::json(200, drain_json().dump() + "\n"));
    if (req.path == "/drain" && m == "POST") {
      json body = json::parse(req.body);
      if (!body.is_object() || !body.contains("on") || !body["on"].is_boolean())
        return respond(error(400, "expected {\"on\": true} or {\"on\": false}"));
      control_.set_client_drain(body["on"].get<bool>(), [this, respond] {
        respond(http::Response::json(200, drain_json().dump() + "\n"));
      });
      return;
    }
    if (!parts.empty() && parts[0] == "eips") {
      if (req.path == "/eips" && m == "GET")
        return respond(http::Response::json(200, eips_json().dump() + "\n"));
      if (parts.size() == 2 && (m == "PUT" || m == "DELETE")) {
        std::string name(parts[1]);
        std::string result;
        auto answer = [this, respond] { respond(http::Response::json(200, eips_json().dump() + "\n")); };
        if (m == "PUT") {
          json body = json::parse(req.body);
          // A JSON integer, not 7.0 or "7": a term compares as a number and is never rounded.
          if (!body.is_object() || !body.contains("term") || !body["term"].is_number_integer() ||
              (body["term"].is_number_unsigned() &&
               body["term"].get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) ||
              body["term"].get<int64_t>() < 1)
            return respond(error(400, "expected {\"term\": N} with an integer N from 1 to 2^63-1"));
          result = control_.set_lease(name, body["term"].get<int64_t>(), answer);
        } else {
          result = control_.remove_lease(name, answer);
        }
        if (!result.empty()) return respond(from_result(result, 200, {}));
        return;  // `answer` responds once every worker has the new field
      }
    }
    if (!parts.empty() && parts[0] == "targets") {
      if (parts.size() == 1 && m == "GET") {
        json groups = json::array();
        for (const auto& g : control_.config().target_groups) {
          json targets = json::array();
          auto it = control_.targets().find(g.name);
          if (it != control_.targets().end())
            for (const auto& t : it->second) targets.push_back(target_json(*t, "active"));
          for (const auto& d : control_.draining())
            if (d.target->group == g.name) targets.push_back(target_json(*d.target, "draining"));
          groups.push_back({{"name", g.name}, {"balance", to_string(g.balance)}, {"targets", targets}});
        }
        return respond(http::Response::json(200, json{{"groups", groups}}.dump(2) + "\n"));
      }
      if (parts.size() == 2 && m == "POST") {
        json body = json::parse(req.body);
        if (!body.is_object() || !body.contains("address") || !body["address"].is_string())
          return respond(
              error(400, "expected a JSON object with \"address\" (and optional \"zone\", \"weight\")"));
        TargetConfig tc;
        tc.address = body["address"].get<std::string>();
        tc.zone = body.value("zone", std::string());
        tc.weight = body.value("weight", 1);
        if (tc.weight < 0 || tc.weight > 1000) return respond(error(400, "weight must be from 0 to 1000"));
        std::string group(parts[1]);
        std::string r = control_.register_target(group, tc);
        return respond(from_result(r, 201, {{"registered", tc.address}, {"group", group}}));
      }
      std::string address;  // /targets/GROUP/ADDRESS, the address percent-encoded (its ':' may be)
      if (parts.size() == 3 && (m == "DELETE" || m == "PUT" || m == "PATCH") &&
          !core::percent_decode(parts[2], address))
        return respond(error(400, "bad percent-encoding in the target address (a '%' needs two hex digits)"));
      if (parts.size() == 3 && m == "DELETE") {
        std::optional<std::chrono::milliseconds> timeout;
        if (auto q = req.query_param("drain_timeout"); !q.empty()) {
          timeout = core::parse_duration(q);
          if (!timeout) return respond(error(400, "drain_timeout must be a duration like 30s or 500ms"));
        }
        std::string group(parts[1]);
        std::string r = control_.deregister_target(group, address, timeout);
        return respond(from_result(r, 202, {{"draining", address}, {"group", group}}));
      }
      if (parts.size() == 3 && (m == "PUT" || m == "PATCH")) {
        json body = json::parse(req.body);
        if (!body.is_object() || !body.contains("weight") || !body["weight"].is_number_integer())
          return respond(error(400, "expected a JSON object with an integer \"weight\""));
        int weight = body["weight"].get<int>();
        if (weight < 0 || weight > 1000) return respond(error(400, "weight must be from 0 to 1000"));
        std::string group(parts[1]);
        std::string r = control_.set_weight(group, address, weight);
        return respond(from_result(r, 200, {{"target", address}, {"weight", weight}}));
      }
    }
    respond(error(404, "no such admin endpoint: " + m + " " + req.path + " (see docs/admin-api.md)"));
  } catch (const json::exception& e) {
    respond(error(400, std::string("request body is not valid JSON: ") + e.what()));
  }
}

}  // namespace cumulo::gateway
