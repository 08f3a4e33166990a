// The managed MariaDB instances: their data directories and processes, replication between them, the monitor
// that watches them and the failover that replaces a lost primary (docs/db.md). Runs on its own thread, since
// every MariaDB call blocks; what it decides reaches the proxy loops through the publish callback.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "db/internal/config.h"
#include "db/internal/sql.h"
#include "db/internal/topology.h"

namespace cumulo::db {

enum class Role { kPrimary, kReplica };

// Semi-synchronous replication as the primary last reported it.
enum class SemiSync { kOff, kOn, kAsync };  // off: not enabled yet (no replica connected); async: fell back

struct InstanceStatus {
  std::string name, zone;
  uint16_t port = 0;
  pid_t pid = 0;
  Role role = Role::kReplica;
  std::string state;  // "starting", "running", "down", "fenced", "rebuilding"
  ReplicaView view;   // replication threads and positions (replicas)
  std::string gtid_current_pos;
  std::string last_error;
  SemiSync semi_sync = SemiSync::kOff;  // primary only
  int semi_sync_clients = 0;
};

struct ClusterStatus {
  std::string primary;
  uint64_t epoch = 0;  // +1 at each change of primary
  std::vector<InstanceStatus> instances;
  std::vector<std::string> readers;
  std::deque<std::string> events;  // the latest decisions, newest last
  int failovers = 0;
  int64_t last_failover_ms = -1;  // from loss of the primary to the writer endpoint on the new one
};

// What the proxies need after each change: the writer, the readers, and primaries to cut off.
struct Publication {
  std::string writer;
  std::vector<std::string> readers;
  std::vector<std::string> close_backends;
};

class Cluster {
 public:
  using Publish = std::function<void(const Publication&)>;
  Cluster(DbConfig config, Publish publish);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Creates what is missing and starts every instance with replication; blocks until the primary serves.
  // Throws std::runtime_error with the reason (and the server's log tail).
  void start();
  // The monitor thread.
  void run_monitor();
  // Stops the monitor, then every mariadbd (SIGTERM, waiting for a clean InnoDB shutdown).
  void stop();

  ClusterStatus status() const;
  // Planned switchover to `target` (empty: the most up-to-date replica). Blocks; returns "" or why it failed.
  std::string switchover(const std::string& target);

 private:
  struct Instance;
  void bootstrap_template();
  void prepare_data_dir(Instance& inst);
  void start_instance(Instance& inst);
  bool wait_ready(Instance& inst, std::chrono::milliseconds limit);
  void apply_users(Instance& inst);
  void make_replica_of(Instance& inst, const Instance& primary);
  void poll(Instance& inst);
  void tick();
  void handle_primary_loss();
  bool failover(const std::string& why);
  void rebuild(Instance& inst);
  void fence(Instance& inst);
  void publish(std::vector<std::string> close_backends = {});
  void save_state() const;
  void event(const std::string& msg);
  void update_status();
  Instance* find(const std::string& name);
  Instance& primary();
  std::vector<std::string> server_args(const Instance& inst) const;

  DbConfig config_;
  Publish publish_;
  std::vector<std::unique_ptr<Instance>> instances_;
  std::string primary_;
  uint64_t epoch_ = 0;
  std::string template_dir_;
  std::chrono::steady_clock::time_point primary_lost_at_{};
  bool primary_lost_ = false;
  bool refused_logged_ = false;
  SemiSync last_semi_sync_ = SemiSync::kOff;
  std::vector<std::string> readers_;
  std::string published_writer_;
  std::vector<std::string> published_readers_;

  mutable std::mutex status_mu_;
  ClusterStatus status_;
  std::deque<std::string> events_;
  int failovers_ = 0;
  int64_t last_failover_ms_ = -1;

  std::mutex work_mu_;  // held by the monitor while it acts; a switchover takes it too
  std::condition_variable wake_;
  std::atomic<bool> stopping_{false};
};

}  // namespace cumulo::db
