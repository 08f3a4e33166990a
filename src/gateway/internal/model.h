// The gateway's configuration and the shared run-time model: targets (shared by every worker, mutable only
// through atomics), and immutable snapshots of routes and target groups that the control thread publishes to
// the workers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/metrics.h"
#include "core/net.h"
#include "health/health.h"
#include "http/transport.h"

namespace cumulo::gateway {

using std::chrono::milliseconds;

enum class Balance : uint8_t { kRoundRobin, kWeighted, kLeastOutstanding };
const char* to_string(Balance b);

struct TargetConfig {
  std::string address;
  std::string zone;
  int weight = 1;
};

struct RetryConfig {
  int attempts = 2;
  int budget_percent = 20;
  int min_per_second = 10;
};

struct TargetGroupConfig {
  std::string name;
  Balance balance = Balance::kRoundRobin;
  bool zone_aware = false;
  int zone_min_healthy_percent = 50;
  milliseconds slow_start{0};
  milliseconds drain_timeout{30'000};
  int max_idle_connections = 64;
  bool has_health_check = false;
  health::HttpCheckSpec health_check;
  health::OutlierSpec outlier;
  RetryConfig retries;
  std::vector<TargetConfig> targets;
};

struct RouteTimeouts {
  milliseconds connect{2000};
  milliseconds first_byte{30'000};
  milliseconds idle{60'000};
};

struct RouteCacheConfig {
  bool enabled = false;
  milliseconds default_ttl{0};  // for storable responses that say nothing about freshness
  milliseconds max_ttl{-1};     // caps any freshness lifetime (-1: no cap)
  bool ignore_origin_cache_control = false;
  uint64_t max_object_bytes = 64ull << 20;
  // Media: fetch the origin in aligned Range slices of slice_bytes, each stored as its own object, and answer
  // every GET/HEAD (ranges included) from slices, so that seeking in a large file works from the cache.
  bool slice = false;
  uint64_t slice_bytes = 1ull << 20;
};

struct RouteConfig {
  std::string name;
  std::string host = "*";
  std::string path_prefix = "/";
  std::string target_group;
  RouteTimeouts timeouts;
  RouteCacheConfig cache;
  // A route to an object-store bucket: path_prefix is replaced by "/BUCKET/" towards the target (path-style
  // S3), only GET and HEAD pass, and the client's credentials (Authorization, Cookie) are not forwarded.
  std::string bucket;
  // Given to 2xx/304 responses that carry no Cache-Control, before the cache or the client sees them.
  std::string default_cache_control;
};

struct ListenerConfig {
  std::string name;
  std::string listen;
  std::string redirect_to_https;
  std::vector<http::TlsCertificate> certificates;
};

struct Limits {
  size_t max_header_bytes = 16 * 1024;
  uint64_t max_body_bytes = 0;  // 0: no limit
  milliseconds header_timeout{10'000};
  milliseconds client_idle_timeout{60'000};
  milliseconds upstream_idle_timeout{30'000};
  milliseconds drain_timeout{30'000};
};

struct GatewayConfig {
  std::string source;                       // the file it came from
  uint64_t cache_max_bytes = 256ull << 20;  // memory for every route's cached objects together
  std::string cache_disk_path;              // the disk tier's directory ("" : memory only)
  uint64_t cache_disk_max_bytes = 1ull << 30;
  std::string zone;
  // Names this gateway in the cumulo-gateway field of every response ("": no field), so that whoever moves an
  // elastic IP between gateways can tell which one answered (docs/admin-api.md, Elastic IPs).
  std::string server_id;
  // A GET or HEAD of exactly this path (query ignored) is answered by the gateway itself on every listener:
  // 200 "ok", or 503 "draining" while it drains ("": none). HAProxy's monitor-uri.
  std::string monitor_uri;
  int workers = 0;  // 0: number of cores
  std::string log_level = "info";
  std::string access_log = "off";
  std::string admin_listen = "127.0.0.1:9901";
  Limits limits;
  std::vector<ListenerConfig> listeners;
  std::vector<RouteConfig> routes;
  std::vector<TargetGroupConfig> target_groups;
};

// Throws core::ConfigError with file:line:col.
GatewayConfig parse_gateway_config(const std::string& path);

// The index of a status in the responses[] series below: its hundreds, 0 for no (or no valid) response.
inline int status_class(int status) {
  return status >= 100 && status < 600 ? status / 100 : 0;
}

// Per-target metric series, resolved once so the request path only bumps atomics.
struct TargetMetrics {
  core::Counter* responses[6] = {};    // index status/100 (0: no response)
  core::Counter* bytes_in = nullptr;   // from the target
  core::Counter* bytes_out = nullptr;  // to the target
  core::Counter* connect_failures = nullptr;
  core::Counter* retries = nullptr;
  core::Histogram* latency = nullptr;
};

// One target, shared by all workers; lives as long as any snapshot or request references it.
struct Target {
  std::string group;
  std::string address_text;
  core::SocketAddress address;
  std::string zone;
  bool from_config = true;
  std::atomic<int> weight{1};
  std::shared_ptr<health::HealthState> health = std::make_shared<health::HealthState>();
  health::OutlierDetector outlier;
  std::atomic<bool> draining{false};
  std::atomic<int64_t> in_flight{0};
  std::atomic<int64_t> added_at_ms{0};
  TargetMetrics metrics;

  // Routable: healthy (or not yet known when the group has no check), not ejected, not draining.
  bool available(int64_t now_ms) const {
    return health->health.load(std::memory_order_relaxed) == health::Health::kHealthy &&
           !outlier.ejected(now_ms) && !draining.load(std::memory_order_relaxed);
  }
};

// Per-worker balancing state, padded so workers never share a cache line.
struct alignas(64) BalancerState {
  uint64_t next = 0;
  uint64_t rng = 0x9e3779b97f4a7c15ULL;  // a per-worker sequence for slow start, no shared state
  std::vector<int64_t> current_weight;   // smooth weighted round robin (one per target)
  double retry_tokens = 0;
  int64_t retry_window_start_ms = 0;
  int retries_in_window = 0;
};

struct TargetGroup {
  TargetGroupConfig config;  // `targets` here is the file's list; the live list is below
  std::vector<std::shared_ptr<Target>> targets;
  mutable std::vector<BalancerState> balancer;  // one per worker
};

struct RouteMetrics {
  core::Counter* cache_results[4] = {};  // hit, miss, stale (served stale or revalidated), bypass
  core::Counter* cache_bytes = nullptr;  // body bytes served from the cache
  core::Counter* responses[6] = {};
  core::Histogram* latency = nullptr;
  core::Counter* bytes_out = nullptr;  // to clients
};

struct Route {
  RouteConfig config;
  std::shared_ptr<const TargetGroup> group;
  RouteMetrics metrics;
};

}  // namespace cumulo::gateway
namespace cumulo::cache {
class Store;
}
namespace cumulo::gateway {

// What the workers route by. Immutable once published.
struct Snapshot {
  std::shared_ptr<const GatewayConfig> config;
  std::shared_ptr<cache::Store> cache;  // shared by every route that caches, across reloads
  std::vector<Route> routes;
  std::map<std::string, std::shared_ptr<const TargetGroup>, std::less<>> groups;

  // First route whose host matches, longest path prefix among those (file order breaks ties).
  const Route* match(std::string_view host, std::string_view path) const;
};

}  // namespace cumulo::gateway
