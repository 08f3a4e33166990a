#include "core/config.h"

#include <set>

#include "core/net.h"
#include "gateway/internal/identity.h"
#include "gateway/internal/model.h"

namespace cumulo::gateway {

using core::ConfigNode;

const char* to_string(Balance b) {
  switch (b) {
    case Balance::kRoundRobin:
      return "round_robin";
    case Balance::kWeighted:
      return "weighted";
    case Balance::kLeastOutstanding:
      return "least_outstanding";
  }
  return "?";
}

namespace {

std::string address_of(const ConfigNode& n) {
  std::string s = n.as_string();
  if (!core::SocketAddress::parse(s))
    n.fail("expected an address like 127.0.0.1:8080 or [::1]:8080, got '" + s + "'");
  return s;
}

// What can stand as the first path segment towards the store; the store itself enforces S3's naming rules.
bool valid_bucket_name(std::string_view name) {
  return !name.empty() && name.size() <= 63 && name.find_first_of("/?#%\\ \t") == std::string_view::npos;
}

bool is_loopback(const core::SocketAddress& a) {
  std::string h = a.host();
  return h.rfind("127.", 0) == 0 || h == "::1";
}

TargetGroupConfig parse_group(const ConfigNode& n) {
  n.check_keys({"name", "balance", "zone_aware", "zone_min_healthy_percent", "slow_start", "drain_timeout",
                "max_idle_connections", "health_check", "outlier_detection", "retries", "targets"});
  TargetGroupConfig g;
  g.name = n.required("name").as_string();
  std::string balance = n.string_or("balance", "round_robin");
  if (balance == "round_robin")
    g.balance = Balance::kRoundRobin;
  else if (balance == "weighted")
    g.balance = Balance::kWeighted;
  else if (balance == "least_outstanding")
    g.balance = Balance::kLeastOutstanding;
  else
    n["balance"].fail("expected round_robin, weighted or least_outstanding, got '" + balance + "'");
  g.zone_aware = n.bool_or("zone_aware", false);
  g.zone_min_healthy_percent = static_cast<int>(n.int_or("zone_min_healthy_percent", 50, 0, 100));
  g.slow_start = n.duration_or("slow_start", g.slow_start);
  g.drain_timeout = n.duration_or("drain_timeout", g.drain_timeout);
  g.max_idle_connections = static_cast<int>(n.int_or("max_idle_connections", 64, 0, 100000));
  if (auto hc = n["health_check"]; hc.defined()) {
    hc.check_keys(
        {"path", "expected_codes", "interval", "timeout", "healthy_threshold", "unhealthy_threshold"});
    g.has_health_check = true;
    auto& s = g.health_check;
    s.path = hc.string_or("path", s.path);
    if (s.path.empty() || s.path[0] != '/') hc["path"].fail("expected a path starting with '/'");
    std::string codes = hc.string_or("expected_codes", "200-399");
    if (!health::parse_expected_codes(codes, s.expected_codes))
      hc["expected_codes"].fail("expected codes like 200, 200-299 or 200,204,300-399, got '" + codes + "'");
    s.interval = hc.duration_or("interval", s.interval);
    s.timeout = hc.duration_or("timeout", s.timeout);
    if (s.interval.count() <= 0) hc["interval"].fail("expected a duration above zero");
    if (s.timeout.count() <= 0) hc["timeout"].fail("expected a duration above zero");
    s.healthy_threshold = static_cast<int>(hc.int_or("healthy_threshold", 2, 1, 100));
    s.unhealthy_threshold = static_cast<int>(hc.int_or("unhealthy_threshold", 2, 1, 100));
  }
  if (auto od = n["outlier_detection"]; od.defined()) {
    od.check_keys({"consecutive_5xx", "consecutive_connect_failures", "base_ejection", "max_ejection"});
    auto& o = g.outlier;
    o.consecutive_5xx = static_cast<int>(od.int_or("consecutive_5xx", o.consecutive_5xx, 0, 1000000));
    o.consecutive_connect_failures = static_cast<int>(
        od.int_or("consecutive_connect_failures", o.consecutive_connect_failures, 0, 1000000));
    o.base_ejection = od.duration_or("base_ejection", o.base_ejection);
    o.max_ejection = od.duration_or("max_ejection", o.max_ejection);
    if (o.max_ejection < o.base_ejection) od["max_ejection"].fail("must not be shorter than base_ejection");
  }
  if (auto r = n["retries"]; r.defined()) {
    r.check_keys({"attempts", "budget_percent", "min_per_second"});
    g.retries.attempts = static_cast<int>(r.int_or("attempts", 2, 0, 10));
    g.retries.budget_percent = static_cast<int>(r.int_or("budget_percent", 20, 0, 100));
    g.retries.min_per_second = static_cast<int>(r.int_or("min_per_second", 10, 0, 1000000));
  }
  std::set<std::string> seen;
  for (auto& t : n["targets"].items()) {
    t.check_keys({"address", "zone", "weight"});
    TargetConfig tc;
    tc.address = address_of(t.required("address"));
    tc.zone = t.string_or("zone", "");
    tc.weight = static_cast<int>(t.int_or("weight", 1, 0, 1000));
    if (!seen.insert(tc.address).second) t["address"].fail("target " + tc.address + " is listed twice");
    g.targets.push_back(std::move(tc));
  }
  return g;
}

}  // namespace

GatewayConfig parse_gateway_config(const std::string& path) {
  ConfigNode root = ConfigNode::load_file(path);
  if (!root.is_map()) root.fail("expected a mapping with listeners, routes and target_groups");
  root.check_keys({"zone", "server_id", "monitor_uri", "workers", "log_level", "access_log", "admin",
                   "limits", "cache", "listeners", "routes", "target_groups"});
  GatewayConfig c;
  if (auto cache = root["cache"]; cache.defined()) {
    cache.check_keys({"max_bytes", "disk_path", "disk_max_bytes"});
    c.cache_max_bytes = cache.size_or("max_bytes", c.cache_max_bytes);
    if (c.cache_max_bytes < (1u << 20)) cache["max_bytes"].fail("expected at least 1MiB");
    c.cache_disk_path = cache.string_or("disk_path", "");
    c.cache_disk_max_bytes = cache.size_or("disk_max_bytes", c.cache_disk_max_bytes);
    if (c.cache_disk_max_bytes < (1u << 20)) cache["disk_max_bytes"].fail("expected at least 1MiB");
  }
  c.source = path;
  c.zone = root.string_or("zone", "");
  c.server_id = root.string_or("server_id", "");
  if (!c.server_id.empty() && !valid_server_id(c.server_id))
    root["server_id"].fail("expected at most " + std::to_string(kMaxServerIdBytes) +
                           " letters, digits, '-', '_' or '.', got '" + c.server_id + "'");
  c.monitor_uri = root.string_or("monitor_uri", "");
  if (root["monitor_uri"].defined() && !valid_monitor_uri(c.monitor_uri))
    root["monitor_uri"].fail(
        "expected a path starting with '/' (no query, fragment, spaces or control characters), got '" +
        c.monitor_uri + "'");
  c.workers = static_cast<int>(root.int_or("workers", 0, 0, 256));
  c.log_level = root.string_or("log_level", "info");
  if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warn" && c.log_level != "error")
    root["log_level"].fail("expected debug, info, warn or error");
  c.access_log = root.string_or("access_log", "off");
  if (auto a = root["admin"]; a.defined()) {
    a.check_keys({"listen"});
    if (a["listen"].defined()) c.admin_listen = address_of(a["listen"]);
    if (!is_loopback(*core::SocketAddress::parse(c.admin_listen)))
      a["listen"].fail("the admin API must listen on a loopback address (127.0.0.0/8 or [::1])");
  }
  if (auto l = root["limits"]; l.defined()) {
    l.check_keys({"max_header_bytes", "max_body_bytes", "header_timeout", "client_idle_timeout",
                  "upstream_idle_timeout", "drain_timeout"});
    auto& m = c.limits;
    m.max_header_bytes = l.size_or("max_header_bytes", m.max_header_bytes);
    if (m.max_header_bytes < 256 || m.max_header_bytes > 16 * 1024)
      l["max_header_bytes"].fail("expected a size from 256 to 16KiB");
    m.max_body_bytes = l.size_or("max_body_bytes", m.max_body_bytes);
    m.header_timeout = l.duration_or("header_timeout", m.header_timeout);
    m.client_idle_timeout = l.duration_or("client_idle_timeout", m.client_idle_timeout);
    m.upstream_idle_timeout = l.duration_or("upstream_idle_timeout", m.upstream_idle_timeout);
    m.drain_timeout = l.duration_or("drain_timeout", m.drain_timeout);
  }
  std::set<std::string> names;
  for (auto& l : root.required("listeners").items()) {
    l.check_keys({"name", "listen", "redirect_to_https", "tls"});
    ListenerConfig lc;
    lc.name = l.required("name").as_string();
    if (!names.insert("listener " + lc.name).second)
      l["name"].fail("listener '" + lc.name + "' is defined twice");
    lc.listen = address_of(l.required("listen"));
    lc.redirect_to_https = l.string_or("redirect_to_https", "");
    if (!lc.redirect_to_https.empty() && lc.redirect_to_https.rfind("https://", 0) != 0)
      l["redirect_to_https"].fail("expected a URL starting with https://");
    if (auto t = l["tls"]; t.defined()) {
      t.check_keys({"certificates"});
      for (auto& cert : t.required("certificates").items()) {
        cert.check_keys({"cert", "key"});
        lc.certificates.push_back({cert.required("cert").as_string(), cert.required("key").as_string()});
      }
      if (lc.certificates.empty()) t["certificates"].fail("expected at least one certificate");
    }
    c.listeners.push_back(std::move(lc));
  }
  if (c.listeners.empty()) root["listeners"].fail("expected at least one listener");
  for (auto& g : root.required("target_groups").items()) {
    auto tg = parse_group(g);
    if (!names.insert("group " + tg.name).second)
      g["name"].fail("target group '" + tg.name + "' is defined twice");
    c.target_groups.push_back(std::move(tg));
  }
  for (auto& r : root.required("routes").items()) {
    r.check_keys({"name", "host", "path_prefix", "target_group", "timeouts", "cache", "bucket",
                  "default_cache_control"});
    RouteConfig rc;
    rc.name = r.required("name").as_string();
    if (!names.insert("route " + rc.name).second) r["name"].fail("route '" + rc.name + "' is defined twice");
    rc.host = r.string_or("host", "*");
    rc.path_prefix = r.string_or("path_prefix", "/");
    if (rc.path_prefix.empty() || rc.path_prefix[0] != '/')
      r["path_prefix"].fail("expected a path starting with '/'");
    rc.bucket = r.string_or("bucket", "");
    if (r["bucket"].defined()) {
      if (!valid_bucket_name(rc.bucket))
        r["bucket"].fail(
            "expected a bucket name (at most 63 characters, no '/', '?', '#', '%' or spaces), got '" +
            rc.bucket + "'");
      if (rc.path_prefix.back() != '/')
        r["path_prefix"].fail(
            "a bucket route's path_prefix must end with '/' (it stands for the bucket's root)");
    }
    rc.default_cache_control = r.string_or("default_cache_control", "");
    if (rc.default_cache_control.find_first_of("\r\n") != std::string::npos)
      r["default_cache_control"].fail("expected one line");
    rc.target_group = r.required("target_group").as_string();
    if (!names.count("group " + rc.target_group))
      r["target_group"].fail("no target group named '" + rc.target_group + "'");
    if (auto t = r["timeouts"]; t.defined()) {
      t.check_keys({"connect", "first_byte", "idle"});
      rc.timeouts.connect = t.duration_or("connect", rc.timeouts.connect);
      rc.timeouts.first_byte = t.duration_or("first_byte", rc.timeouts.first_byte);
      rc.timeouts.idle = t.duration_or("idle", rc.timeouts.idle);
    }
    if (auto k = r["cache"]; k.defined()) {
      k.check_keys({"enabled", "default_ttl", "max_ttl", "ignore_origin_cache_control", "max_object_bytes",
                    "slice", "slice_bytes"});
      auto& cc = rc.cache;
      cc.enabled = k.bool_or("enabled", true);
      cc.default_ttl = k.duration_or("default_ttl", cc.default_ttl);
      cc.max_ttl = k.duration_or("max_ttl", cc.max_ttl);
      cc.ignore_origin_cache_control = k.bool_or("ignore_origin_cache_control", false);
      cc.max_object_bytes = k.size_or("max_object_bytes", cc.max_object_bytes);
      cc.slice = k.bool_or("slice", false);
      cc.slice_bytes = k.size_or("slice_bytes", cc.slice_bytes);
      if (cc.slice_bytes < (64u << 10) || cc.slice_bytes > (64u << 20))
        k["slice_bytes"].fail("expected 64KiB to 64MiB");
      if (cc.slice && cc.slice_bytes > c.cache_max_bytes / 8)
        k["slice_bytes"].fail("expected at most an eighth of cache.max_bytes (" +
                              std::to_string(c.cache_max_bytes) + " bytes), or no slice would stay cached");
      if (cc.ignore_origin_cache_control && cc.default_ttl.count() <= 0)
        k["ignore_origin_cache_control"].fail(
            "needs a default_ttl above zero (how long would objects stay?)");
    }
    c.routes.push_back(std::move(rc));
  }
  if (c.routes.empty()) root["routes"].fail("expected at least one route");
  return c;
}

}  // namespace cumulo::gateway
