// The gateway's control plane, on the main thread: owns the configuration and the live target lists, runs
// health checks and the admin API, and publishes snapshots to the workers.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/event_loop.h"
#include "core/workers.h"
#include "gateway/internal/identity.h"
#include "gateway/internal/model.h"
#include "gateway/internal/worker.h"
#include "health/health.h"

namespace cumulo::http {
class Client;
}
namespace cumulo::cache {
class Store;
}

namespace cumulo::gateway {

class Admin;

class Control {
 public:
  explicit Control(std::string config_path);
  ~Control();
  int run();

  // Control-loop thread only. Each returns an empty string on success or "STATUS message" (e.g. "404 no
  // ...").
  std::string register_target(const std::string& group, const TargetConfig& target);
  std::string deregister_target(const std::string& group, const std::string& address,
                                std::optional<std::chrono::milliseconds> drain_timeout);
  std::string set_weight(const std::string& group, const std::string& address, int weight);
  bool reload(std::string* error);
  // Elastic-IP leases named in the cumulo-gateway field (identity.h); run-time state only, kept across
  // reloads. `done` runs on this loop once every worker writes the new field: an admin call answered after it
  // means every response begun from then on says so.
  std::string set_lease(const std::string& name, int64_t term, std::function<void()> done);
  std::string remove_lease(const std::string& name, std::function<void()> done);
  const Leases& leases() const { return leases_; }
  // Draining without stopping (Worker::set_draining), for an elastic IP moving away; `done` once every worker
  // applied it. A stop (SIGTERM) drains for good whatever this says.
  void set_client_drain(bool on, std::function<void()> done);
  bool client_drain() const { return client_drain_ || stopping_; }
  int64_t client_connections() const { return shared_.sessions.load(std::memory_order_relaxed); }

  const GatewayConfig& config() const { return *config_; }
  cache::Store& cache() { return *cache_; }
  const std::map<std::string, std::vector<std::shared_ptr<Target>>, std::less<>>& targets() const {
    return targets_;
  }
  struct Draining {
    std::shared_ptr<Target> target;
    core::TimePoint deadline;
  };
  const std::vector<Draining>& draining() const { return draining_; }

 private:
  std::shared_ptr<Target> make_target(const std::string& group, const TargetConfig& tc, bool from_config,
                                      bool has_check);
  void watch_health(const std::shared_ptr<Target>& t, const TargetGroupConfig& g);
  void apply_config(std::shared_ptr<const GatewayConfig> cfg);
  std::shared_ptr<const Snapshot> build_snapshot() const;
  void publish();
  void start_drain(const std::shared_ptr<Target>& t, std::chrono::milliseconds timeout);
  void check_drains();
  // Runs fn on every worker's loop, then `done` (may be empty) on this loop when all have.
  void on_every_worker(std::function<void(Worker&)> fn, std::function<void()> done);
  void publish_identity(std::function<void()> done);

  std::string config_path_;
  core::EventLoop loop_;
  std::shared_ptr<const GatewayConfig> config_;
  std::map<std::string, std::vector<std::shared_ptr<Target>>, std::less<>> targets_;
  std::vector<Draining> draining_;
  Leases leases_;
  std::shared_ptr<const std::string> identity_field_;  // rendered from config_->server_id and leases_
  bool client_drain_ = false;                          // POST /drain
  bool stopping_ = false;                              // SIGTERM/SIGINT: draining until the process ends
  std::shared_ptr<const Snapshot> current_;
  std::shared_ptr<cache::Store> cache_;  // one for the process: reloads keep what it holds
  WorkerShared shared_;
  std::vector<std::unique_ptr<ListenerRuntime>> listeners_;
  std::unique_ptr<http::Client> http_client_;
  std::unique_ptr<health::HealthChecker> checker_;
  std::unique_ptr<Admin> admin_;
  std::unique_ptr<core::LoopThreads> loops_;      // the workers' loops; stopped before anything is destroyed
  std::vector<std::unique_ptr<Worker>> workers_;  // after loops_: destroyed before the loops they ran on
  std::unique_ptr<core::Timer> drain_check_;
  core::ServiceLife life_;
};

}  // namespace cumulo::gateway
