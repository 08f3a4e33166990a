#include "db/db.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/blocking_pool.h"
#include "core/config.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "core/net.h"
#include "core/result.h"
#include "core/signals.h"
#include "core/workers.h"
#include "db/internal/cluster.h"
#include "db/internal/config.h"
#include "db/internal/endpoints.h"
#include "http/client.h"
#include "http/server.h"

namespace cumulo::db {

namespace {

constexpr std::string_view kComponent = "db";
constexpr std::chrono::milliseconds kEndpointsWatch{250};

using nlohmann::json;

const char* role_name(Role r) {
  return r == Role::kPrimary ? "primary" : "replica";
}
const char* semi_name(SemiSync s) {
  return s == SemiSync::kOn ? "on" : s == SemiSync::kAsync ? "async" : "off";
}

json status_json(const ClusterStatus& s, const DbConfig& cfg, const EndpointsProcess& endpoints) {
  json j;
  j["primary"] = s.primary;
  j["epoch"] = s.epoch;
  j["writer"] = cfg.writer;
  j["reader"] = cfg.reader;
  j["readers"] = s.readers;
  j["lag_limit_ms"] = cfg.lag_limit.count();
  j["semi_sync"] = cfg.semi_sync == DbConfig::SemiSyncMode::kStrict ? "strict" : "fallback";
  j["failovers"] = s.failovers;
  j["last_failover_ms"] = s.last_failover_ms;
  j["failover"] = s.failover.empty() ? json(nullptr) : json(s.failover);
  j["manager_pid"] = static_cast<long>(::getpid());
  j["endpoints"] = {{"pid", static_cast<long>(endpoints.pid())}, {"adopted", endpoints.adopted()}};
  j["instances"] = json::array();
  for (const InstanceStatus& i : s.instances) {
    json x;
    x["name"] = i.name;
    x["zone"] = i.zone;
    x["port"] = i.port;
    x["pid"] = i.pid;
    x["adopted"] = i.adopted;
    x["role"] = role_name(i.role);
    x["state"] = i.state;
    x["reachable"] = i.reachable;
    x["gtid_current_pos"] = i.gtid_current_pos;
    x["gtid_binlog_state"] = i.gtid_binlog_state;
    if (i.role == Role::kPrimary) {
      x["semi_sync"] = semi_name(i.semi_sync);
      x["replicas_connected"] = i.semi_sync_clients;
    } else {
      x["source"] = i.source;
      x["io_running"] = i.io_running;
      x["sql_running"] = i.sql_running;
      x["seconds_behind"] = i.seconds_behind ? json(*i.seconds_behind) : json(nullptr);
      x["gtid_io_pos"] = i.gtid_io_pos;
      x["gtid_slave_pos"] = i.gtid_slave_pos;
    }
    x["last_error"] = i.last_error;
    j["instances"].push_back(std::move(x));
  }
  j["events"] = s.events;
  return j;
}

// 200 naming the new primary, or 409 with what stopped it: the switchover did not happen (or, for an
// operator's forced promotion, has not finished), and the answer says whether asking again may help.
http::Response switchover_response(const core::Result<void, core::Error>& r, const Cluster& c) {
  if (r) return http::Response::json(200, json{{"primary", c.status().primary}}.dump() + "\n");
  const core::Error& e = r.error();
  return http::Response::json(
      409, json{{"error", e.message}, {"kind", e.kind}, {"retry", e.retry_safe()}}.dump() + "\n");
}

void check_port_free(const std::string& what, const std::string& address) {
  if (std::string why; !core::address_free(*core::SocketAddress::parse(address), &why)) {
    throw std::runtime_error(what + " " + address + " cannot be used: " + why +
                             " (is another server or an earlier cumulo db still running on it?)");
  }
}

std::string self_binary() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("cumulo") : p.string();
}

}  // namespace

void check_config(const std::string& config_path) {
  (void)load_db_config(config_path);
}

std::string admin_address(const std::string& config_path) {
  return load_db_config(config_path).admin;
}

namespace {

// The configuration, with the process log set up as it says; nullopt once the error is on stderr.
std::optional<DbConfig> load_and_set_up_log(const std::string& config_path, const char* command) {
  DbConfig cfg;
  try {
    cfg = load_db_config(config_path);
  } catch (const core::ConfigError& e) {
    std::fprintf(stderr, "%s: %s\n", command, e.what());
    return std::nullopt;
  }
  if (auto lvl = core::parse_log_level(cfg.log_level)) core::log_set_level(*lvl);
  if (!cfg.log_file.empty()) core::log_set_file(cfg.log_file);
  return cfg;
}

}  // namespace

int run_endpoints(const std::string& config_path) {
  auto cfg = load_and_set_up_log(config_path, "cumulo db endpoints");
  return cfg ? db::run_endpoints(*cfg) : 2;
}

int run(const std::string& config_path) {
  auto loaded = load_and_set_up_log(config_path, "cumulo db");
  if (!loaded) return 2;
  const DbConfig& cfg = *loaded;

  // SIGHUP too: it is answered (reload is not supported) rather than ending the manager.
  const sigset_t mask = core::block_signals({SIGINT, SIGTERM, SIGHUP});

  EndpointsProcess endpoints(cfg, self_binary(), std::filesystem::absolute(config_path).string());
  const bool endpoints_adopted = endpoints.adopt();
  std::unique_ptr<Cluster> cluster;
  try {
    cluster = std::make_unique<Cluster>(cfg, [&endpoints](const Publication& p) {
      try {
        endpoints.publish(p);
      } catch (const std::exception& e) {
        core::log_error(kComponent, "cannot hand the routes to the endpoints", {{"error", e.what()}});
      }
    });
    check_port_free("admin", cfg.admin);
    if (!endpoints_adopted) {
      check_port_free("writer", cfg.writer);
      check_port_free("reader", cfg.reader);
    }
    for (const InstanceSpec& i : cfg.instances) {
      // adopted by start(); or in a namespace of its own, where nothing else listens
      if (cluster->server_left_running(i.name) || !i.netns.empty()) continue;
      check_port_free("instance " + i.name + " port", "127.0.0.1:" + std::to_string(i.port));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cumulo db: %s: %s\n", config_path.c_str(), e.what());
    return 1;
  }

  try {
    cluster->start();
    if (!endpoints_adopted) endpoints.start();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cumulo db: cannot start the database tier: %s\n", e.what());
    core::log_error(kComponent, "cannot start", {{"error", e.what()}});
    // Servers and endpoints of an earlier run keep serving as they were; only what this run started stops.
    if (cluster && !cluster->adopted()) {
      if (!endpoints_adopted) endpoints.stop();
      cluster->stop();
    }
    return 1;
  }

  core::EventLoop main_loop;
  std::unique_ptr<http::Server> admin;
  // Switchovers run here, one at a time (each blocks while the target catches up); `switching` is the main
  // loop's: set when one is handed over, cleared when its answer is posted back, so a second request
  // meanwhile gets 409.
  core::BlockingPool switchovers(1, "db-switchover");
  bool switching = false;
  // The endpoints process is started again should it die (its clients are gone then, new ones find the
  // routes).
  core::Timer watch_timer(main_loop, [&] {
    endpoints.watch();
    watch_timer.arm(kEndpointsWatch);
  });
  try {
    http::ServerOptions opts;
    opts.listen = *core::SocketAddress::parse(cfg.admin);
    opts.max_body_bytes = 4096;
    Cluster* c = cluster.get();
    admin =
        std::make_unique<http::Server>(main_loop, opts, [&, c](http::Request& req, http::Responder respond) {
          if (req.method == "GET" && (req.path == "/status" || req.path == "/")) {
            respond(http::Response::json(200, status_json(c->status(), cfg, endpoints).dump(2) + "\n"));
            return;
          }
          if (req.method == "POST" && req.path == "/switchover") {
            if (switching) {
              respond(http::Response::json(
                  409,
                  json{{"error", "a switchover is running already"}, {"kind", "running"}, {"retry", true}}
                          .dump() +
                      "\n"));
              return;
            }
            switching = true;
            std::string to(req.query_param("to"));
            // The pool stops only after the main loop has: it takes every request this loop hands it.
            switchovers.submit(
                main_loop, [c, to] { return c->switchover(to); },
                [respond, c, &switching](core::Result<void, core::Error> r) {
                  switching = false;
                  respond(switchover_response(r, *c));
                });
            return;
          }
          respond(http::Response::json(
              404, json{{"error", "GET /status or POST /switchover?to=NAME"}}.dump() + "\n"));
        });
    admin->start();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cumulo db: cannot start the admin API: %s\n", e.what());
    endpoints.stop();
    cluster->stop();
    return 1;
  }
  watch_timer.arm(kEndpointsWatch);
  // A thread of its own for the life of the manager: it polls every server at each monitor_interval and
  // sleeps between rounds, so it would hold any shared worker all the time.
  std::thread monitor([&] { cluster->run_monitor(); });

  core::log_info(kComponent, "started",
                 {{"writer", cfg.writer},
                  {"reader", cfg.reader},
                  {"admin", cfg.admin},
                  {"endpoints_pid", static_cast<long>(endpoints.pid())},
                  {"primary", cluster->status().primary}});
  core::ServiceLife life;
  life.component = std::string(kComponent);
  life.stopping = "stopping: closing the admin API and the endpoints, then stopping every server";
  // No drain: the servers' clients are the endpoints', which stop with them; a switchover under way finishes
  // first (Cluster::stop waits for it), its answer is dropped.
  life.drain_limit = std::chrono::milliseconds(0);  // no `idle`: the loop ends at once
  life.begin_drain = [&] { admin->shutdown(); };
  life.reload = [] {
    core::log_warn(kComponent,
                   "SIGHUP: cumulo db does not reload its configuration; restart it to apply a changed file "
                   "(the servers and the endpoints keep serving meanwhile and are adopted)");
  };
  core::run_service(main_loop, mask, life);

  admin->shutdown();
  watch_timer.cancel();
  endpoints.stop();
  cluster->stop();
  monitor.join();
  switchovers.stop();
  core::log_info(kComponent, "stopped");
  return 0;
}

int command_status(const std::string& admin, bool as_json) {
  http::ClientResponse r = http::fetch_blocking("GET", "http://" + admin + "/status");
  if (!r.ok()) {
    std::fprintf(stderr,
                 "cumulo db status: cannot reach the database tier's admin API at %s: %s (is cumulo db "
                 "running?)\n",
                 admin.c_str(), r.error.message.c_str());
    return 1;
  }
  if (as_json) {
    std::fputs(r.body.c_str(), stdout);
    return r.status == 200 ? 0 : 1;
  }
  json j = json::parse(r.body, nullptr, false);
  if (!j.is_object()) {
    std::fprintf(stderr, "cumulo db status: unexpected answer from %s\n", admin.c_str());
    return 1;
  }
  std::printf("primary %s (epoch %llu), writer %s, reader %s, readers [", j.value("primary", "").c_str(),
              static_cast<unsigned long long>(j.value("epoch", 0ull)), j.value("writer", "").c_str(),
              j.value("reader", "").c_str());
  bool first = true;
  for (const auto& r2 : j["readers"]) {
    std::printf("%s%s", first ? "" : " ", r2.get<std::string>().c_str());
    first = false;
  }
  std::printf("], failovers %d, semi-sync %s, endpoints pid %ld\n", j.value("failovers", 0),
              j.value("semi_sync", "").c_str(),
              j["endpoints"].is_object() ? j["endpoints"].value("pid", 0L) : 0L);
  if (j["failover"].is_string())
    std::printf("failover in progress: %s\n", j["failover"].get<std::string>().c_str());
  std::printf("%-12s %-5s %-8s %-10s %-6s %-8s %-8s %-4s %-4s %-5s %-9s %-16s %s\n", "NAME", "ZONE", "ROLE",
              "STATE", "PORT", "PID", "SOURCE", "IO", "SQL", "LAG", "SEMI-SYNC", "GTID", "ERROR");
  for (const auto& i : j["instances"]) {
    bool primary = i.value("role", "") == "primary";
    auto yn = [&](const char* k) { return primary ? "-" : (i.value(k, false) ? "yes" : "no"); };
    std::string lag = primary                         ? "-"
                      : i["seconds_behind"].is_null() ? "?"
                                                      : std::to_string(i["seconds_behind"].get<long>()) + "s";
    std::string source = primary ? "-" : i.value("source", "");
    std::printf("%-12s %-5s %-8s %-10s %-6d %-8d %-8s %-4s %-4s %-5s %-9s %-16s %s\n",
                i.value("name", "").c_str(), i.value("zone", "").c_str(), i.value("role", "").c_str(),
                i.value("state", "").c_str(), i.value("port", 0), i.value("pid", 0),
                source.empty() ? "none" : source.c_str(), yn("io_running"), yn("sql_running"), lag.c_str(),
                primary ? i.value("semi_sync", "").c_str() : "-", i.value("gtid_current_pos", "").c_str(),
                i.value("last_error", "").c_str());
  }
  const auto& ev = j["events"];
  size_t from = ev.size() > 8 ? ev.size() - 8 : 0;
  if (ev.size()) std::printf("recent events:\n");
  for (size_t k = from; k < ev.size(); ++k) std::printf("  %s\n", ev[k].get<std::string>().c_str());
  return 0;
}

int command_switchover(const std::string& admin, const std::string& target) {
  std::string path = "/switchover";
  if (!target.empty()) path += "?to=" + target;
  http::ClientResponse r =
      http::fetch_blocking("POST", "http://" + admin + path, {}, {}, std::chrono::seconds(60));
  if (!r.ok()) {
    std::fprintf(stderr, "cumulo db switchover: cannot reach the database tier's admin API at %s: %s\n",
                 admin.c_str(), r.error.message.c_str());
    return 1;
  }
  json j = json::parse(r.body, nullptr, false);
  if (r.status != 200) {
    std::fprintf(stderr, "cumulo db switchover: %s\n",
                 j.is_object() ? j.value("error", r.body).c_str() : r.body.c_str());
    return 1;
  }
  std::printf("switchover done: %s is the primary\n", j.value("primary", "").c_str());
  return 0;
}

}  // namespace cumulo::db
