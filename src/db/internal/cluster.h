// The managed MariaDB instances: their data directories and processes, replication between them, the monitor
// that watches them, the failover that replaces a lost primary and the repairs that bring every replica back
// (docs/db.md). Runs on its own thread, since every MariaDB call blocks; what it decides reaches the
// endpoints through the publish callback.
//
// What is guaranteed, and in which order (the failover's contract):
//  1. The failover is recorded in DATA_DIR/cluster.json before anything is done, and each later step (the
//     candidate and the target it must reach) before it is acted on; a manager that dies anywhere in between
//     resumes the same failover when it starts again, with the same or a stricter target.
//  2. The old primary is fenced first: killed by PID and waited for (SIGKILL also ends a stopped process), so
//     nothing can be acknowledged behind the decision. The writer endpoint routes nowhere from then on.
//  3. Replicas stop receiving (their source is dead); what each received is read, or, for a replica that was
//     restarted, learnt by applying its relay log. A replica's relay log is never discarded before it was
//     applied: IO threads are restarted or repointed only after that.
//  4. The candidate must hold every transaction that any replica may hold (`plan_promotion`); until one does
//     the tier waits and says why. It applies its whole relay log, is checked against the target, and only
//     then becomes writable (semi-sync on first). The new primary is recorded before the writer endpoint
//     points at it.
//  5. Other replicas are repointed; the old primary rejoins once it can be shown to hold nothing the new
//     primary lacks, and is rebuilt from a dump otherwise.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"
#include "core/result.h"
#include "db/internal/config.h"
#include "db/internal/sql.h"
#include "db/internal/topology.h"

namespace cumulo::db {

enum class Role { kPrimary, kReplica };

// Semi-synchronous replication as the primary last reported it.
enum class SemiSync {
  kOff,
  kOn,
  kAsync
};  // off: not enabled; async: enabled but fallen back (fallback mode)

struct InstanceStatus {
  std::string name, zone;
  uint16_t port = 0;
  pid_t pid = 0;
  bool adopted = false;  // started by an earlier run of the tier
  Role role = Role::kReplica;
  std::string state;  // "down", "starting", "recovering", "running", "broken", "fenced", "rebuilding"
  bool reachable = false;
  bool io_running = false;
  bool sql_running = false;
  std::optional<int64_t> seconds_behind;
  std::string source;  // the instance it replicates from ("" for none)
  std::string gtid_current_pos;
  std::string gtid_binlog_state;
  std::string gtid_io_pos;
  std::string gtid_slave_pos;
  std::string last_error;
  SemiSync semi_sync = SemiSync::kOff;  // primary only
  int semi_sync_clients = 0;
};

struct ClusterStatus {
  std::string primary;
  uint64_t epoch = 0;    // +1 at each change of primary
  std::string failover;  // while one runs: what it waits for or does
  std::vector<InstanceStatus> instances;
  std::vector<std::string> readers;
  std::deque<std::string> events;  // the latest decisions, newest last
  int failovers = 0;
  int64_t last_failover_ms = -1;  // from loss of the primary to the writer endpoint on the new one
};

// What the endpoints need after each change. State, not commands: applying the same publication twice is
// harmless, so the endpoints may skip all but the latest.
struct Publication {
  std::string writer;        // "" while a failover or switchover runs: writer connections are closed
  bool hold_writer = false;  // the primary is unreachable: new writer connections wait, open ones stay
  std::vector<std::string> readers;
  std::vector<std::string> cut;  // instances whose reader connections must be closed (not replicating)
  uint64_t epoch = 0;
};

class Cluster {
 public:
  using Publish = std::function<void(const Publication&)>;
  Cluster(DbConfig config, Publish publish);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Creates what is missing and starts every instance with replication, or adopts the servers an earlier run
  // left running (roles from cluster.json, checked against the servers). Blocks until the primary serves,
  // unless a failover is to be resumed. Throws std::runtime_error with the reason (and the server's log
  // tail).
  void start();
  // True when a server of an earlier run still runs on that instance's data directory (start() adopts it).
  bool server_left_running(const std::string& name);
  // True when start() found servers of an earlier run and adopted them.
  bool adopted() const { return adopted_any_; }
  // The monitor thread.
  void run_monitor();
  // Stops the monitor, then every mariadbd (SIGTERM, waiting for a clean InnoDB shutdown).
  void stop();

  ClusterStatus status() const;
  // Planned switchover to `target` (empty: the most up-to-date replica). With the primary lost and `target`
  // named, the operator's forced promotion of it. Blocks. An error says why it did not happen (the primary
  // stays) or, for a forced promotion, why it has not finished (the failover goes on); its kind is one of
  // no_such_instance, is_primary, primary_lost, primary_unreachable, not_replicating, not_caught_up,
  // promotion_failed, promotion_unfinished, other_candidate, stopping; retry_safe() when asking again later
  // may work.
  core::Result<void, core::Error> switchover(const std::string& target);

 private:
  struct Instance;
  struct RebuildJob;
  enum class State { kDown, kStarting, kRecovering, kRunning, kBroken, kFenced, kRebuilding };
  static const char* state_name(State s);

  // Instances and processes (cluster.cc).
  void bootstrap_template();
  void prepare_data_dir(Instance& inst);
  void start_instance(Instance& inst, bool after_fence = false);
  bool wait_ready(Instance& inst, std::chrono::milliseconds limit);
  void apply_users(Instance& inst);
  void adopt(Instance& inst);
  void reap_exited();
  // Its server process is gone (exited, killed, or never started): everything known of that process is
  // forgotten, its port is held, and it is in `next` state.
  void forget_process(Instance& inst, State next);
  // SIGKILL, waited for, then forget_process.
  void kill_server(Instance& inst, State next);
  bool process_running(Instance& inst);
  void poll(Instance& inst);
  // Every instance, the replicas first and the primary last: its binlog state is then read after every
  // replica's, so it holds whatever they received (bounds and errant checks rely on that order).
  void poll_all();
  void tick();
  void check_primary();
  void publish();
  void load_state();
  void save_state();
  void event(std::string_view kind, const std::string& msg,
             std::initializer_list<core::LogField> fields = {});
  void update_status();
  Instance* find(const std::string& name);
  Instance* find_by_port(int port);
  Instance& primary();
  std::vector<std::string> server_args(const Instance& inst, bool after_fence) const;
  std::vector<std::string> application_databases() const;

  // Replicas (replica.cc).
  // Points it at `primary` and starts replication; an error (a statement the server refused) leaves it for
  // the caller to mark broken.
  core::Result<void, core::Error> make_replica_of(Instance& inst, const Instance& primary);
  bool replicating_from_primary(const Instance& inst);
  // Applies whatever the relay log holds beyond what it applied, with the IO thread stopped; blocks while the
  // SQL thread makes progress. Trying again after an error is harmless.
  core::Result<void, core::Error> apply_relay_log(Instance& inst, const std::string& purpose);
  void repair_replicas();
  void reconcile(Instance& inst);
  GtidSet applied_set(const Instance& inst) const;
  GtidSet history() const;
  void start_rebuild(Instance& inst);
  void finish_rebuild(Instance& inst);
  void mark_broken(Instance& inst, const std::string& why);

  // Failover (failover.cc).
  void begin_failover(const std::string& why);
  void continue_failover();
  bool fence(Instance& inst);
  // Makes it the primary: its relay log applied (unless the caller just did, as a failover's catch-up), then
  // replication reset, full durability, semi-sync, writable. Each step may be repeated: after an error,
  // trying again is harmless.
  core::Result<void, core::Error> promote(Instance& inst, bool relay_log_applied = false);
  void handle_primary_loss_fallback();

  DbConfig config_;
  Publish publish_;
  std::vector<std::unique_ptr<Instance>> instances_;
  std::string primary_;
  uint64_t epoch_ = 0;
  std::string template_dir_;
  bool adopted_any_ = false;
  // The primary's binlog state at its promotion (cluster.json): the history that replicas' positions reach
  // back through (received_set).
  GtidSet history_;

  std::chrono::steady_clock::time_point primary_lost_at_{};
  bool primary_lost_ = false;
  bool refused_logged_ = false;
  bool no_replica_logged_ = false;
  SemiSync last_semi_sync_ = SemiSync::kOff;
  std::vector<std::string> readers_;
  Publication published_;
  bool published_once_ = false;

  // A failover in progress (also in cluster.json).
  struct Failover {
    bool active = false;
    std::string old_primary;
    std::string candidate;
    GtidSet target;
    std::chrono::steady_clock::time_point started{};
    std::string waiting_for;  // the last reason it could not go on
    std::chrono::steady_clock::time_point waiting_logged{};
    bool refusal_logged = false;
  };
  Failover failover_;
  std::string forced_candidate_;  // an operator's `switchover --to` while the primary is lost

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
