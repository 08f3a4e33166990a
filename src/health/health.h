// Health of endpoints, shared by the gateway, DNS and the database tier: active HTTP checks and passive
// outlier detection. State lives in atomics so worker threads read it without locks.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/event_loop.h"
#include "core/net.h"

namespace cumulo::http {
class Client;
}

namespace cumulo::health {

enum class Health : uint8_t { kInitial, kHealthy, kUnhealthy };
const char* to_string(Health h);

// kTcp passes when a TCP connection opens within the timeout (path and codes unused); the DNS server's checks
// of non-HTTP endpoints use it.
enum class CheckKind : uint8_t { kHttp, kTcp };

struct HttpCheckSpec {
  CheckKind kind = CheckKind::kHttp;
  std::string path = "/healthz";
  std::vector<std::pair<int, int>> expected_codes{{200, 399}};  // inclusive ranges
  std::chrono::milliseconds interval{2000};
  std::chrono::milliseconds timeout{1000};
  int healthy_threshold = 2;
  int unhealthy_threshold = 2;

  bool expects(int status) const;
};

// Parses "200", "200-299", "200,204,300-399"; false on anything else.
bool parse_expected_codes(std::string_view text, std::vector<std::pair<int, int>>& out);

// The shared health of one endpoint.
struct HealthState {
  std::atomic<Health> health{Health::kInitial};
  std::atomic<int64_t> changed_at_ms{0};  // steady clock, for slow start
};

// Runs periodic HTTP checks on one event loop and flips HealthState after the thresholds.
class HealthChecker {
 public:
  // (endpoint, previous, now, reason) on every transition, on the checker's loop.
  using TransitionFn =
      std::function<void(const std::string& endpoint, Health before, Health after, const std::string& why)>;

  HealthChecker(core::EventLoop& loop, http::Client& client, TransitionFn on_transition);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Starts checking `endpoint` (replacing an earlier watch of the same name). `host` is sent as Host.
  void watch(const std::string& endpoint, const core::SocketAddress& address, const HttpCheckSpec& spec,
             std::shared_ptr<HealthState> state);
  void unwatch(const std::string& endpoint);
  size_t watched() const;

 private:
  struct Probe;
  void run_probe(Probe& probe);
  void run_tcp_probe(Probe& probe);
  void record_result(Probe& probe, bool pass, const std::string& why);
  core::EventLoop& loop_;
  http::Client& client_;
  TransitionFn on_transition_;
  std::vector<std::unique_ptr<Probe>> probes_;
};

struct OutlierSpec {
  int consecutive_5xx = 5;               // 0 disables
  int consecutive_connect_failures = 2;  // 0 disables
  std::chrono::milliseconds base_ejection{5000};
  std::chrono::milliseconds max_ejection{60000};
};

// Passive detection from real traffic (Envoy's outlier detection): consecutive failures eject an endpoint for
// a time that doubles with each ejection. Lock-free; any thread may record.
class OutlierDetector {
 public:
  enum class Failure { kConnect, k5xx };
  // Returns true when this failure ejected the endpoint.
  bool record_failure(Failure kind, const OutlierSpec& spec, int64_t now_ms);
  void record_success();
  bool ejected(int64_t now_ms) const { return ejected_until_ms_.load(std::memory_order_relaxed) > now_ms; }
  int ejections() const { return ejections_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int> connect_failures_{0};
  std::atomic<int> server_errors_{0};
  std::atomic<int> ejections_{0};
  std::atomic<int64_t> ejected_until_ms_{0};
};

int64_t steady_ms(core::TimePoint t);

}  // namespace cumulo::health
