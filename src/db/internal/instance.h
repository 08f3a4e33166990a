// One managed MariaDB server as the cluster sees it: its files, its process, what the monitor last read of
// it, and the work under way on it. Shared by cluster.cc, replica.cc and failover.cc; touched by the monitor
// thread only, except a rebuild job's fields (see RebuildJob).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include "core/net.h"
#include "core/result.h"
#include "db/internal/cluster.h"
#include "db/internal/process.h"
#include "db/internal/sql.h"
#include "db/internal/topology.h"

namespace cumulo::db {

// Limits the cluster's files share.
inline constexpr std::chrono::milliseconds kServerStartLimit{
    60'000};                                                        // a starting mariadbd must answer by then
inline constexpr std::chrono::milliseconds kKillWait{10'000};       // for a killed process to be gone
inline constexpr std::chrono::milliseconds kRestartBackoff{1'000};  // between starts of one instance

// An instance's server (or the connection to it) did not do what was asked; the kind names the step
// ("sql", "server_exited", "stalled"). Safe to try again unless `retry` says otherwise.
inline core::Err<core::Error> server_error(std::string kind, std::string message,
                                           core::Retry retry = core::Retry::kSafe) {
  return core::Err(core::Error{std::move(kind), std::move(message), core::ErrorSource::kUpstream, retry});
}

// A rebuild runs on its own thread (a dump and its load take as long as the data is large), while the monitor
// goes on watching the primary. The thread owns the instance's connection and server process until `done`.
struct Cluster::RebuildJob {
  std::thread thread;
  std::atomic<bool> done{false};
  std::atomic<pid_t> pid{0};  // the server being rebuilt, once started
  std::string source;         // the primary it dumps
  // Results, read once `done`.
  std::string error;
  GtidSet binlog_state;  // what the rebuilt server now holds (the dump's position, with the source's history)
  std::string position;  // the dump's gtid_slave_pos
};

struct Cluster::Instance {
  InstanceSpec spec;
  int server_id = 0;
  std::filesystem::path dir;      // DATA_DIR/NAME
  std::filesystem::path datadir;  // DATA_DIR/NAME/data
  std::string socket;
  std::string error_log;
  std::string pid_file;

  // The process: a child of this manager, or adopted from an earlier run (watched through /proc).
  pid_t pid = 0;
  bool adopted = false;
  AdoptedProcess adopted_process;

  Role role = Role::kReplica;
  State state = State::kDown;
  bool needs_rebuild = false;
  std::string last_error;
  std::chrono::steady_clock::time_point next_attempt{};
  int repair_failures = 0;
  std::unique_ptr<RebuildJob> rebuild;

  // What the last poll read.
  SqlConnection conn;
  bool reachable = false;
  std::chrono::steady_clock::time_point unreachable_since{};
  std::chrono::steady_clock::time_point last_seen{};  // when the last poll that it answered began
  GtidSet binlog_state;
  GtidSet slave_pos;
  GtidSet io_pos;  // received (Gtid_IO_Pos); in memory only, so empty after the server restarted
  std::string gtid_current_pos;
  bool read_only = true;
  bool has_source = false;  // a replication source is configured
  int source_port = 0;
  bool io_running = false;
  bool io_connecting = false;
  bool sql_running = false;
  std::optional<int64_t> seconds_behind;
  std::string relay_log_file;
  uint64_t relay_log_pos = 0;
  std::string last_io_error;
  std::string last_sql_error;
  SemiSync semi_sync = SemiSync::kOff;
  int semi_sync_clients = 0;
  int dump_threads = 0;

  // For failovers: everything this replica can have received from the primary since it stopped replicating
  // (the primary's binlog state read after that was seen). nullopt while it replicates, or when unknown.
  std::optional<GtidSet> bound;
  // Its IO thread ran in this server process and has been stopped: io_pos is what it received, in full.
  bool received_known = false;

  // Bound (not listening) while the server is down, so that the kernel does not hand its port to an outgoing
  // connection as an ephemeral port meanwhile: a client reconnecting during a failover could take it and keep
  // the server from starting again.
  core::Fd port_guard;
  void guard_port();

  // "--datadir=PATH" with the NUL that ends it in /proc/PID/cmdline: how a running server is told to be this
  // instance's.
  std::string datadir_arg() const { return "--datadir=" + datadir.string() + std::string(1, '\0'); }
};

}  // namespace cumulo::db
