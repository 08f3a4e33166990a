#include "dns/dns.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>

#include "core/config.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "core/signals.h"
#include "core/workers.h"
#include "dns/internal/admin.h"
#include "dns/internal/config.h"
#include "dns/internal/server.h"
#include "dns/wire/zone_file.h"
#include "health/health.h"
#include "http/client.h"
#include "http/server.h"

namespace cumulo::dns {

namespace {
constexpr const char* kComponent = "dns";

DnsConfig load(const RunOptions& o) {
  DnsConfig cfg;
  if (!o.config_path.empty()) {
    cfg = load_dns_config(o.config_path);
  } else {
    if (o.zone_file.empty() || o.origin.empty())
      throw core::ConfigError("cumulo dns: give -c FILE, or --zone FILE with --origin NAME");
    // The same schema as a file, so a zone given on the command line is checked exactly as one in a file.
    std::string yaml = "zones:\n  - origin: " + core::yaml_quoted(o.origin) +
                       "\n    file: " + core::yaml_quoted(std::filesystem::absolute(o.zone_file).string()) +
                       "\n";
    cfg = parse_dns_config(core::ConfigNode::load_string(yaml, "command line"), ".");
    cfg.source = "command line";
  }
  if (!o.listen.empty()) cfg.listen = o.listen;
  if (!o.admin.empty()) cfg.admin = o.admin;
  if (o.workers > 0) cfg.workers = o.workers;
  for (const auto& a : cfg.listen)
    if (!core::SocketAddress::parse(a)) throw core::ConfigError("--listen: bad address '" + a + "'");
  for (ZoneSource& z : cfg.zones) {
    for (auto& [key, set] : z.sets) {
      if (!set.alias_elastic_ip.empty()) {
        std::string address;
        for (const std::string& e : o.elastic_ips) {
          const auto eq = e.find('=');
          if (eq != std::string::npos && e.substr(0, eq) == set.alias_elastic_ip) address = e.substr(eq + 1);
        }
        if (address.empty())
          throw core::ConfigError(
              cfg.source + ": ALIAS " + wire::name_to_text(set.name) + " names elastic IP " +
              set.alias_elastic_ip +
              ", which the stack does not have: run it from cumulo up with that elastic IP "
              "in elastic_ips, or pass --elastic-ip " +
              set.alias_elastic_ip + "=ADDRESS");
        Endpoint ep;
        ep.text = address;
        if (!wire::rdata_from_text(wire::type::kA, {address}, z.origin, ep.rdata, nullptr))
          throw core::ConfigError("--elastic-ip: expected NAME=IPv4 address, got '" + set.alias_elastic_ip +
                                  "=" + address + "'");
        set.endpoints.push_back(std::move(ep));
        continue;
      }
      if (!set.alias_gateway) continue;
      if (o.gateway_addresses.empty())
        throw core::ConfigError(
            cfg.source + ": ALIAS " + wire::name_to_text(set.name) +
            " with gateway: true needs the gateway's addresses: run it from cumulo up, or pass "
            "--gateway-address");
      for (const std::string& a : o.gateway_addresses) {
        Endpoint ep;
        ep.text = a;
        if (!wire::rdata_from_text(wire::type::kA, {a}, z.origin, ep.rdata, nullptr) &&
            !wire::rdata_from_text(wire::type::kAAAA, {a}, z.origin, ep.rdata, nullptr))
          throw core::ConfigError("--gateway-address: expected an IPv4 or IPv6 address, got '" + a + "'");
        set.endpoints.push_back(std::move(ep));
      }
    }
  }
  return cfg;
}
}  // namespace

void check_config(const std::string& config_path) {
  (void)load_dns_config(config_path);
}

int run(const RunOptions& options) {
  DnsConfig cfg;
  try {
    cfg = load(options);
  } catch (const core::ConfigError& e) {
    std::fprintf(stderr, "cumulo dns: %s\n", e.what());
    return 2;
  }
  if (auto lvl = core::parse_log_level(cfg.log_level)) core::log_set_level(*lvl);
  bool query_log = cfg.query_log != "off" && !cfg.query_log.empty();
  if (query_log && !core::AccessLog::open(cfg.query_log)) {
    std::fprintf(stderr, "cumulo dns: query_log: cannot open %s\n", cfg.query_log.c_str());
    return 2;
  }

  const sigset_t mask = core::block_signals({SIGINT, SIGTERM});

  core::EventLoop loop;
  ZoneStore store;
  Admin admin(cfg, store);
  try {
    admin.publish();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cumulo dns: %s\n", e.what());
    return 2;
  }

  http::Client client(loop);
  health::HealthChecker checker(
      loop, client,
      [](const std::string& endpoint, health::Health before, health::Health after, const std::string& why) {
        core::log_info(kComponent, "health check changed",
                       {{"check", endpoint},
                        {"from", health::to_string(before)},
                        {"to", health::to_string(after)},
                        {"reason", why}});
      });
  for (const auto& hc : cfg.health_checks)
    checker.watch(hc.name, *core::SocketAddress::parse(hc.address), hc.spec, hc.state);

  ServerOptions so;
  so.listen = cfg.listen;
  so.workers = cfg.workers;
  so.max_udp_payload = cfg.max_udp_payload;
  so.tcp_idle_timeout = cfg.tcp_idle_timeout;
  so.tcp_max_connections = cfg.tcp_max_connections;
  so.rate_limit = cfg.rate_limit;
  so.axfr_allow = cfg.axfr_allow;
  so.query_log = query_log;
  DnsServer server(so, store);
  std::unique_ptr<http::Server> admin_server;
  try {
    server.start();
    if (!cfg.admin.empty()) {
      http::ServerOptions ho;
      ho.listen = *core::SocketAddress::parse(cfg.admin);
      ho.max_body_bytes = 1 << 20;
      admin_server = std::make_unique<http::Server>(
          loop, std::move(ho),
          [&admin](http::Request& req, http::Responder respond) { admin.handle(req, std::move(respond)); });
      admin_server->start();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cumulo dns: cannot start: %s\n", e.what());
    return 1;
  }

  std::string listening;
  for (const auto& a : server.bound()) listening += (listening.empty() ? "" : " ") + a.to_string();
  size_t zones = store.get()->zones.size();
  core::log_info(kComponent, "started",
                 {{"listen", listening},
                  {"admin", admin_server ? admin_server->local_address().to_string() : std::string("off")},
                  {"zones", zones},
                  {"workers", cfg.workers},
                  {"config", cfg.source}});
  // UDP has nothing in flight to drain, and a TCP query is answered as it arrives.
  core::ServiceLife life;
  life.component = kComponent;
  core::run_service(loop, mask, life);
  server.stop();
  admin_server.reset();
  core::AccessLog::close();
  core::log_info(kComponent, "stopped");
  return 0;
}

}  // namespace cumulo::dns
