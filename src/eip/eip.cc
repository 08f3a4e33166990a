#include "eip/eip.h"

#include <csignal>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "core/signals.h"
#include "core/workers.h"
#include "eip/internal/config.h"
#include "eip/internal/keeper.h"
#include "http/client.h"
#include "http/server.h"

namespace cumulo::eip {

namespace {

using json = nlohmann::json;
using internal::KeeperConfig;

constexpr char kComponent[] = "eip";

http::Response json_response(int status, const json& body) {
  return http::Response::json(status, body.dump(2) + "\n");
}

}  // namespace

void check_config(const std::string& config_path) {
  internal::load_keeper_config(config_path);
}

std::string admin_address(const std::string& config_path) {
  return internal::load_keeper_config(config_path).admin;
}

int run(const std::string& config_path) {
  KeeperConfig cfg;
  try {
    cfg = internal::load_keeper_config(config_path);
  } catch (const core::ConfigError& e) {
    std::fprintf(stderr, "cumulo eip run: %s\n", e.what());
    return 2;
  }
  if (auto level = core::parse_log_level(cfg.log_level)) core::log_set_level(*level);
  if (!cfg.log_file.empty()) core::log_set_file(cfg.log_file);
  const sigset_t signals = core::block_signals({SIGINT, SIGTERM});

  core::EventLoop loop;
  internal::Keeper keeper(loop, cfg);
  std::unique_ptr<http::Server> admin;
  try {
    keeper.start();
    http::ServerOptions options;
    options.listen = *core::SocketAddress::parse(cfg.admin);
    options.max_body_bytes = 4096;
    admin =
        std::make_unique<http::Server>(loop, options, [&keeper](http::Request& req, http::Responder respond) {
          const std::string& path = req.path;
          if (req.method == "GET" && path == "/healthz") return respond(http::Response::text(200, "ok\n"));
          if (req.method == "GET" && (path == "/v1/eips" || path == "/"))
            return respond(json_response(200, keeper.status_json()));
          if (req.method == "GET" && path == "/v1/events")
            return respond(json_response(200, keeper.events_json()));
          const std::string prefix = "/v1/eips/", suffix = "/move";
          if (path.size() > prefix.size() + suffix.size() && path.rfind(prefix, 0) == 0 &&
              path.ends_with(suffix)) {
            if (req.method != "POST") return respond(json_response(405, json{{"error", "POST a move"}}));
            const std::string name = path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
            json body = json::parse(req.body, nullptr, false);
            if (!body.is_object() || !body.contains("to") || !body["to"].is_string())
              return respond(json_response(400, json{{"error", "expected {\"to\": \"GATEWAY\"}"}}));
            keeper.planned_move(name, body["to"].get<std::string>(),
                                [respond](int status, json out) { respond(json_response(status, out)); });
            return;
          }
          respond(json_response(404, json{{"error", "no such endpoint: " + req.method + " " + path}}));
        });
    admin->start();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cumulo eip run: cannot start: %s\n", e.what());
    core::log_error(kComponent, "cannot start", {{"error", e.what()}});
    return 1;
  }
  core::log_info(kComponent, "admin API listening", {{"address", cfg.admin}});
  // A stop changes no address: every holder keeps serving, and the next keeper adopts what it finds.
  core::ServiceLife life;
  life.component = kComponent;
  life.stopping = "stopping: every elastic IP stays where it is";
  life.drain_limit = std::chrono::milliseconds(0);
  life.begin_drain = [&] { admin->shutdown(); };
  core::run_service(loop, signals, life);
  return 0;
}

int command_list(const std::string& admin, bool as_json) {
  http::ClientResponse r = http::fetch_blocking("GET", "http://" + admin + "/v1/eips");
  http::ClientResponse ev = http::fetch_blocking("GET", "http://" + admin + "/v1/events");
  if (!r.ok()) {
    std::fprintf(stderr,
                 "cumulo eip list: cannot reach the elastic IP keeper at %s: %s (is the stack running, with "
                 "elastic_ips?)\n",
                 admin.c_str(), r.error.message.c_str());
    return 1;
  }
  json j = json::parse(r.body, nullptr, false);
  json events = ev.ok() ? json::parse(ev.body, nullptr, false) : json();
  if (as_json) {
    json out = j;
    if (events.is_object()) out["events"] = events["events"];
    std::fputs((out.dump(2) + "\n").c_str(), stdout);
    return r.status == 200 ? 0 : 1;
  }
  if (!j.is_object() || !j["elastic_ips"].is_array()) {
    std::fprintf(stderr, "cumulo eip list: unexpected answer from %s\n", admin.c_str());
    return 1;
  }
  std::map<std::string, std::string> health;
  for (const auto& g : j["gateways"]) health[g.value("id", "")] = g.value("health", "");
  std::printf("%-12s %-16s %-14s %-6s %-8s %-9s %s\n", "NAME", "ADDRESS", "HOLDER", "TERM", "STATE", "LEASE",
              "MAY HOLD");
  for (const auto& e : j["elastic_ips"]) {
    std::string may;
    for (const auto& g : e["gateways"]) {
      const std::string id = g.get<std::string>();
      may += (may.empty() ? "" : " ") + id + "(" + health[id] + ")";
    }
    const std::string holder = e.value("holder", "");
    std::printf("%-12s %-16s %-14s %-6llu %-8s %-9s %s\n", e.value("name", "").c_str(),
                e.value("address", "").c_str(), holder.empty() ? "-" : holder.c_str(),
                static_cast<unsigned long long>(e.value("term", 0ull)), e.value("state", "").c_str(),
                (std::to_string(e.value("lease_left_ms", 0L)) + "ms").c_str(), may.c_str());
    if (!e.value("problem", "").empty()) std::printf("  problem: %s\n", e.value("problem", "").c_str());
  }
  if (events.is_object() && events["events"].is_array() && !events["events"].empty()) {
    std::printf("\nrecent events:\n");
    const auto& list = events["events"];
    for (size_t i = list.size() > 10 ? list.size() - 10 : 0; i < list.size(); ++i) {
      const auto& e = list[i];
      std::printf("  %s %s: %s (%s)\n", e.value("at", "").c_str(), e.value("elastic_ip", "").c_str(),
                  e.value("event", "").c_str(), e.value("reason", "").c_str());
    }
  }
  return r.status == 200 ? 0 : 1;
}

int command_move(const std::string& admin, const std::string& name, const std::string& to) {
  // The keeper answers once the old holder drained (up to its drain timeout) and the address moved.
  http::ClientResponse r =
      http::fetch_blocking("POST", "http://" + admin + "/v1/eips/" + name + "/move", json{{"to", to}}.dump(),
                           {{"Content-Type", "application/json"}}, std::chrono::minutes(10));
  if (!r.ok()) {
    std::fprintf(stderr, "cumulo eip move: cannot reach the elastic IP keeper at %s: %s\n", admin.c_str(),
                 r.error.message.c_str());
    return 1;
  }
  json j = json::parse(r.body, nullptr, false);
  if (r.status != 200) {
    std::fprintf(stderr, "cumulo eip move: %s\n",
                 j.is_object() ? j.value("error", r.body).c_str() : r.body.c_str());
    return 1;
  }
  if (j.value("unchanged", false)) {
    std::printf("%s is held by %s already (term %llu)\n", name.c_str(), to.c_str(),
                static_cast<unsigned long long>(j.value("term", 0ull)));
  } else {
    std::printf("%s moved to %s (term %llu) in %ld ms\n", name.c_str(), j.value("holder", "").c_str(),
                static_cast<unsigned long long>(j.value("term", 0ull)), j.value("took_ms", 0L));
  }
  return 0;
}

}  // namespace cumulo::eip
