// Replicas: pointing them at the primary, applying what their relay logs hold before anything may discard it,
// noticing errant transactions, and repairing or rebuilding a replica that stopped replicating.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/files.h"
#include "core/log.h"
#include "db/internal/cluster.h"
#include "db/internal/instance.h"
#include "db/internal/process.h"

namespace cumulo::db {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// A relay log is applied for as long as the SQL thread makes progress; this long without any ends the
// attempt.
constexpr milliseconds kApplyStall{30'000};
constexpr milliseconds kApplyPoll{20};
constexpr int kRepairsBeforeRebuild = 5;

struct RelayStart {
  std::string error;
  bool found = false;  // something beyond `applied` is in the relay log
  std::string file;
  uint64_t pos = 0;
  std::string gtid;
};

// Where the relay log holds the first transaction beyond `applied`, from the SQL thread's position on. The
// position the server keeps (relay-log.info) may lag its last commit by one transaction after a crash, so the
// start is found by reading the GTIDs with mariadb-binlog rather than trusted.
RelayStart find_relay_start(const std::string& bin_dir, const fs::path& datadir, const fs::path& scratch,
                            const std::string& relay_log_file, uint64_t relay_log_pos,
                            const GtidSet& applied) {
  RelayStart out;
  std::vector<std::string> files;
  {
    std::ifstream index(datadir / "relay.index");
    for (std::string line; std::getline(index, line);) {
      if (!line.empty()) files.push_back(fs::path(line).filename().string());
    }
  }
  const std::string first = fs::path(relay_log_file).filename().string();
  auto it = std::find(files.begin(), files.end(), first);
  if (it == files.end()) return out;  // no relay log to read (never replicated, or already discarded)
  for (; it != files.end(); ++it) {
    std::vector<std::string> argv = {bin_dir + "/bin/mariadb-binlog", "--no-defaults",
                                     "--base64-output=decode-rows"};
    if (*it == first && relay_log_pos > 4)
      argv.push_back("--start-position=" + std::to_string(relay_log_pos));
    argv.push_back((datadir / *it).string());
    const std::string text_path = (scratch / "relay-scan.txt").string();
    int rc = run_tool(argv, (scratch / "relay-scan.err").string(), "", text_path);
    if (rc != 0) {
      out.error = "mariadb-binlog could not read " + *it + " (exit " + std::to_string(rc) +
                  "): " + file_tail((scratch / "relay-scan.err").string(), 3);
      return out;
    }
    std::ifstream text(text_path);
    uint64_t at = 0;
    for (std::string line; std::getline(text, line);) {
      if (line.rfind("# at ", 0) == 0) {
        at = std::strtoull(line.c_str() + 5, nullptr, 10);
        continue;
      }
      if (line.empty() || line[0] != '#') continue;
      size_t g = line.find("GTID ");
      if (g == std::string::npos || g == 0 || (line[g - 1] != '\t' && line[g - 1] != ' ')) continue;
      std::string item = line.substr(g + 5);
      item = item.substr(0, item.find_first_of(" \t"));
      auto gtid = GtidSet::parse(item);
      if (!gtid || gtid->entries().size() != 1) continue;
      const auto& [key, seq] = *gtid->entries().begin();
      if (seq > applied.highest_seq(key.domain)) {
        out.found = true;
        out.file = *it;
        out.pos = at;
        out.gtid = item;
        return out;
      }
    }
  }
  return out;
}

}  // namespace

core::Result<void, core::Error> Cluster::make_replica_of(Instance& inst, const Instance& p) {
  const UserSpec& r = config_.replication;
  // current_pos: it continues from what it applied (or wrote, as a former primary). Callers make sure that
  // its relay log holds nothing that `p` lacks, since CHANGE MASTER discards it.
  std::vector<std::string> sql = {"STOP SLAVE",
                                  "SET GLOBAL read_only=ON",
                                  "SET GLOBAL rpl_semi_sync_master_enabled=OFF",
                                  "SET GLOBAL sync_binlog=0",
                                  "SET GLOBAL innodb_flush_log_at_trx_commit=2",
                                  "CHANGE MASTER TO MASTER_HOST=" + sql_literal(p.spec.address) +
                                      ", MASTER_PORT=" + std::to_string(p.spec.port) + ", MASTER_USER=" +
                                      sql_literal(r.name) + ", MASTER_PASSWORD=" + sql_literal(r.password) +
                                      ", MASTER_USE_GTID=current_pos, MASTER_CONNECT_RETRY=1",
                                  "START SLAVE"};
  for (const std::string& s : sql) {
    if (!inst.conn.exec(s)) {
      return server_error(
          "sql", inst.spec.name + ": cannot replicate from " + p.spec.name + ": " + inst.conn.error());
    }
  }
  inst.role = Role::kReplica;
  inst.state = State::kRunning;
  inst.has_source = true;
  inst.source_port = p.spec.port;
  inst.last_error.clear();
  inst.repair_failures = 0;
  return {};
}

bool Cluster::replicating_from_primary(const Instance& inst) {
  const Instance* p = find(primary_);
  return inst.reachable && inst.has_source && p && inst.source_port == p->spec.port &&
         (inst.io_running || inst.io_connecting) && inst.sql_running;
}

GtidSet Cluster::history() const {
  GtidSet h = history_;
  for (const auto& i : instances_) {
    if (i->spec.name == primary_) h.merge(i->binlog_state);
  }
  return h;
}

GtidSet Cluster::applied_set(const Instance& inst) const {
  return received_set(inst.binlog_state, inst.slave_pos, GtidSet{}, history());
}

core::Result<void, core::Error> Cluster::apply_relay_log(Instance& inst, const std::string& purpose) {
  if (!inst.reachable) return server_error("unreachable", "not reachable");
  if (!inst.has_source) return {};
  if (inst.io_running || inst.io_connecting) {
    if (!inst.conn.exec("STOP SLAVE IO_THREAD"))
      return server_error("sql", "cannot stop its IO thread: " + inst.conn.error());
    poll(inst);
    if (!inst.reachable) return server_error("unreachable", "not reachable: " + inst.last_error);
  }
  if (!inst.sql_running) {
    // Started again from a stopped state, the SQL thread would purge the relay log (with MASTER_USE_GTID,
    // both threads stopped) and start over from its applied position. So the relay log is applied without
    // GTIDs from the first transaction beyond what it applied (the SQL thread still records each GTID it
    // applies).
    RelayStart start = find_relay_start(config_.bin_dir, inst.datadir, inst.dir, inst.relay_log_file,
                                        inst.relay_log_pos, inst.slave_pos);
    if (!start.error.empty()) return server_error("relay_log_unreadable", start.error);
    if (!start.found) return {};
    core::log_info("db", "applying the relay log " + purpose,
                   {{"instance", inst.spec.name},
                    {"from", start.file + ":" + std::to_string(start.pos)},
                    {"first", start.gtid}});
    if (!inst.conn.exec("STOP SLAVE") ||
        !inst.conn.exec("CHANGE MASTER TO MASTER_USE_GTID=no, RELAY_LOG_FILE=" + sql_literal(start.file) +
                        ", RELAY_LOG_POS=" + std::to_string(start.pos)) ||
        !inst.conn.exec("START SLAVE SQL_THREAD")) {
      return server_error("sql", "cannot start applying its relay log: " + inst.conn.error());
    }
  }
  // Otherwise its SQL thread still runs in the server that received the relay log: it goes on to the end.
  auto last_progress = Clock::now();
  std::string last_pos;
  int settled = 0;
  for (;;) {
    std::this_thread::sleep_for(kApplyPoll);
    if (stopping_) {
      return core::Err(
          core::Error{"stopping", "the tier is stopping", core::ErrorSource::kInternal, core::Retry::kSafe});
    }
    if (!process_running(inst)) return server_error("server_exited", "its server exited");
    auto rows = inst.conn.query("SHOW SLAVE STATUS");
    auto pos = rows ? inst.conn.value("SELECT @@gtid_slave_pos") : std::nullopt;
    if (!rows || rows->empty() || !pos) {
      std::string err = inst.conn.error();
      inst.conn.close();
      inst.reachable = false;
      return server_error("connection_lost", "lost its connection: " + err);
    }
    const SqlRow& s = (*rows)[0];
    if (column(s, "Slave_SQL_Running") != "Yes") {
      return server_error("sql_thread_stopped", "its SQL thread stopped: " + column(s, "Last_SQL_Error"));
    }
    if (*pos != last_pos) {
      last_pos = *pos;
      last_progress = Clock::now();
      settled = 0;
    }
    // The SQL thread says so once it waits at the end of the relay log; seen twice with no progress between.
    if (column(s, "Slave_SQL_Running_State").rfind("Slave has read all relay log", 0) == 0) {
      if (++settled >= 2) break;
    } else {
      settled = 0;
    }
    if (Clock::now() - last_progress > kApplyStall) {
      return server_error("stalled", "its SQL thread made no progress for " +
                                         std::to_string(kApplyStall.count() / 1000) + " s");
    }
  }
  inst.conn.exec("STOP SLAVE SQL_THREAD");
  poll(inst);
  return {};
}

void Cluster::mark_broken(Instance& inst, const std::string& why) {
  if (inst.state != State::kBroken || inst.last_error != why) {
    event("replica_broken", inst.spec.name + " is not replicating from " + primary_ + ": " + why,
          {{"instance", inst.spec.name}, {"reason", why}});
  }
  inst.state = State::kBroken;
  inst.last_error = why;
}

void Cluster::reconcile(Instance& inst) {
  Instance& p = primary();
  if (!p.reachable || !inst.reachable) return;
  // Errant transactions first: such a replica is rebuilt, and applying its relay log would only fail on them
  // (gtid_strict_mode refuses the primary's next transaction of the same sequence). The primary's binlog
  // state is read now, after the replica's: it holds whatever the replica received from it.
  auto errant_now = [&]() -> std::optional<GtidSet> {
    auto state = p.conn.value("SELECT @@gtid_binlog_state");
    if (!state) return std::nullopt;
    GtidSet primary_state = GtidSet::parse(*state).value_or(GtidSet{});
    primary_state.merge(history_);
    return errant_transactions(applied_set(inst), primary_state);
  };
  std::optional<GtidSet> errant = errant_now();
  if (!errant) return;
  if (errant->empty() && inst.has_source && !replicating_from_primary(inst)) {
    if (auto applied = apply_relay_log(inst, "before it is repointed"); !applied) {
      mark_broken(inst, "cannot apply its relay log: " + applied.error().message);
      return;
    }
    errant = errant_now();
    if (!errant) return;
  }
  if (!errant->empty()) {
    event("errant",
          inst.spec.name + " holds transactions the primary " + p.spec.name + " lacks (" +
              errant->to_string() + "): it is rebuilt from the primary, never promoted",
          {{"instance", inst.spec.name}, {"gtids", errant->to_string()}});
    inst.conn.exec("STOP SLAVE");
    inst.needs_rebuild = true;
    save_state();
    mark_broken(inst, "errant transactions " + errant->to_string());
    return;
  }
  if (replicating_from_primary(inst)) {
    inst.state = State::kRunning;
    inst.role = Role::kReplica;
    return;
  }
  if (auto repointed = make_replica_of(inst, p); !repointed) {
    mark_broken(inst, repointed.error().message);
    return;
  }
  event("rejoined", inst.spec.name + " replicates from " + p.spec.name + " from " + inst.gtid_current_pos,
        {{"instance", inst.spec.name}});
}

void Cluster::repair_replicas() {
  Instance& p = primary();
  if (!p.reachable) return;
  const auto now = Clock::now();
  for (auto& ip : instances_) {
    Instance& inst = *ip;
    if (&inst == &p) continue;
    // What a failover may assume of this replica if it is unreachable then (see Instance::bound).
    if (inst.state == State::kRebuilding) {
      inst.bound = GtidSet{};
    } else if (replicating_from_primary(inst)) {
      inst.bound.reset();
    } else if (!inst.bound) {
      bool cannot_receive =
          inst.pid == 0 || (inst.reachable && ((!inst.io_running && !inst.io_connecting) ||
                                               !inst.has_source || inst.source_port != p.spec.port));
      if (cannot_receive) inst.bound = p.binlog_state;
    }
  }
  for (auto& ip : instances_) {
    Instance& inst = *ip;
    if (&inst == &p) continue;
    if (inst.rebuild) {
      if (inst.rebuild->done) finish_rebuild(inst);
      continue;
    }
    if (now < inst.next_attempt) continue;
    switch (inst.state) {
      case State::kDown:
        inst.next_attempt = now + kRestartBackoff;
        if (inst.needs_rebuild) {
          start_rebuild(inst);
        } else {
          event("restarting", "restarting " + inst.spec.name + " as a replica",
                {{"instance", inst.spec.name}});
          start_instance(inst);
        }
        break;
      case State::kFenced:
        if (inst.pid == 0) {
          inst.next_attempt = now + kRestartBackoff;
          event(
              "restarting",
              "restarting the former primary " + inst.spec.name + " to rejoin as a replica of " + p.spec.name,
              {{"instance", inst.spec.name}});
          start_instance(inst, true);
        }
        break;
      case State::kStarting:
        if (now - inst.unreachable_since > kServerStartLimit) {
          event("restarting",
                inst.spec.name + " did not answer within 60 s of its start: killed, started again",
                {{"instance", inst.spec.name}});
          kill_server(inst, State::kDown);
        }
        break;
      case State::kRecovering:
      case State::kBroken:
        if (!inst.reachable) break;
        if (inst.needs_rebuild) {
          start_rebuild(inst);
          break;
        }
        reconcile(inst);
        if (inst.state == State::kRunning) {
          inst.repair_failures = 0;
        } else if (!inst.needs_rebuild) {
          ++inst.repair_failures;
          inst.next_attempt = now + milliseconds(500) * (1 << std::min(inst.repair_failures, 5));
          if (inst.repair_failures >= kRepairsBeforeRebuild) {
            event("rebuild_needed",
                  inst.spec.name + " could not be repaired " + std::to_string(inst.repair_failures) +
                      " times (" + inst.last_error + "): it is rebuilt from the primary",
                  {{"instance", inst.spec.name}});
            inst.needs_rebuild = true;
            save_state();
          }
        }
        break;
      case State::kRunning: {
        if (!inst.reachable) break;
        if (inst.needs_rebuild) {
          start_rebuild(inst);
          break;
        }
        // Polled before the primary in this tick, so the primary's state holds whatever it received.
        GtidSet primary_state = p.binlog_state;
        primary_state.merge(history_);
        GtidSet errant = errant_transactions(applied_set(inst), primary_state);
        if (!errant.empty()) {
          reconcile(inst);  // says so, marks it for a rebuild
          break;
        }
        if (!inst.has_source) {
          mark_broken(inst, "no replication source is configured");
        } else if (inst.source_port != p.spec.port) {
          mark_broken(
              inst, "it replicates from port " + std::to_string(inst.source_port) + ", not from the primary");
        } else if (!inst.sql_running) {
          mark_broken(inst, "its SQL thread stopped" +
                                (inst.last_sql_error.empty() ? std::string() : ": " + inst.last_sql_error));
        } else if (!inst.io_running && !inst.io_connecting) {
          mark_broken(inst, "its IO thread stopped" +
                                (inst.last_io_error.empty() ? std::string() : ": " + inst.last_io_error));
        }
        break;
      }
      case State::kRebuilding:
        break;
    }
  }
  // Strict semi-sync: with no replica connected, commits wait. Say so once per episode.
  if (config_.semi_sync == DbConfig::SemiSyncMode::kStrict && instances_.size() > 1) {
    if (p.semi_sync != SemiSync::kOff && p.semi_sync_clients == 0) {
      if (!no_replica_logged_) {
        event("writes_wait",
              "no replica is connected to " + p.spec.name +
                  ": commits wait until one is (strict semi-sync never acknowledges a commit no replica has)",
              {{"instance", p.spec.name}});
      }
      no_replica_logged_ = true;
    } else if (p.semi_sync_clients > 0) {
      no_replica_logged_ = false;
    }
  }
}

void Cluster::start_rebuild(Instance& inst) {
  Instance& p = primary();
  // Its data is about to be replaced: it needs no clean shutdown.
  kill_server(inst, State::kRebuilding);
  inst.port_guard.reset();  // the rebuild's server binds it
  // Recorded, so that a manager restarted while the dump is half loaded starts the rebuild over.
  inst.needs_rebuild = true;
  save_state();
  inst.role = Role::kReplica;
  inst.bound = GtidSet{};
  event("rebuild_started",
        "rebuilding " + inst.spec.name + " from " + p.spec.name + " (its own data is discarded)",
        {{"instance", inst.spec.name}, {"source", p.spec.name}});
  auto job = std::make_unique<RebuildJob>();
  job->source = p.spec.name;
  RebuildJob* j = job.get();
  std::vector<std::string> args = server_args(inst, false);
  std::string source_socket = p.socket;
  std::vector<std::string> dbs = application_databases();
  job->thread = std::thread([this, &inst, j, args, source_socket, dbs] {
    // This thread owns inst.conn and the new server until j->done.
    const std::string log = (inst.dir / "rebuild.log").string();
    const std::string dump = (inst.dir / "rebuild.sql").string();
    try {
      prepare_data_dir(inst);
      fs::remove(inst.pid_file);
      pid_t pid = spawn(args, (inst.dir / "mariadbd.out").string(), "", "", inst.spec.netns);
      j->pid = pid;
      const auto deadline = Clock::now() + kServerStartLimit;
      while (!inst.conn.connect_socket(inst.socket, config_.connect_timeout)) {
        if (reap(pid)) {
          j->pid = 0;
          throw std::runtime_error("mariadbd exited during start-up: " + file_tail(inst.error_log, 5));
        }
        if (Clock::now() > deadline || stopping_)
          throw std::runtime_error("mariadbd did not start within 60 s");
        std::this_thread::sleep_for(milliseconds(50));
      }
      apply_users(inst);
      SqlConnection source;
      if (!source.connect_socket(source_socket, config_.connect_timeout)) {
        throw std::runtime_error("cannot reach " + j->source + ": " + source.error());
      }
      // The source's history before the dump: with the dump's position (the source's own transactions since)
      // it is the binlog state the rebuilt server must show, so that GTID sets compare it rightly.
      auto before = source.value("SELECT @@gtid_binlog_state");
      if (!before)
        throw std::runtime_error("cannot read " + j->source + "'s binlog state: " + source.error());
      std::string position;
      if (dbs.empty()) {
        position = source.value("SELECT @@gtid_binlog_pos").value_or("");
      } else {
        std::vector<std::string> argv = {config_.bin_dir + "/bin/mariadb-dump",
                                         "--no-defaults",
                                         "--socket=" + source_socket,
                                         "--user=root",
                                         "--single-transaction",
                                         "--gtid",
                                         "--master-data=2",
                                         "--routines",
                                         "--triggers",
                                         "--events",
                                         "--databases"};
        argv.insert(argv.end(), dbs.begin(), dbs.end());
        if (int rc = run_tool(argv, log, "", dump); rc != 0) {
          throw std::runtime_error("mariadb-dump failed (exit " + std::to_string(rc) +
                                   "): " + file_tail(log, 5));
        }
        const std::string text = core::read_file(dump);
        size_t at = text.find("gtid_slave_pos='");
        if (at == std::string::npos)
          throw std::runtime_error("the dump of " + j->source + " names no GTID position");
        at += 16;
        position = text.substr(at, text.find('\'', at) - at);
        std::vector<std::string> load = {config_.bin_dir + "/bin/mariadb", "--no-defaults",
                                         "--socket=" + inst.socket, "--user=root",
                                         "--init-command=SET SESSION sql_log_bin=0"};
        if (int rc = run_tool(load, log, dump); rc != 0) {
          throw std::runtime_error("loading the dump failed (exit " + std::to_string(rc) +
                                   "): " + file_tail(log, 5));
        }
        fs::remove(dump);
      }
      GtidSet state = GtidSet::parse(*before).value_or(GtidSet{});
      auto pos = GtidSet::parse(position);
      if (!pos) throw std::runtime_error("the dump's GTID position '" + position + "' cannot be read");
      state.merge(*pos);
      if (!inst.conn.exec("RESET MASTER") ||
          !inst.conn.exec("SET GLOBAL gtid_binlog_state=" + sql_literal(state.to_string())) ||
          !inst.conn.exec("SET GLOBAL gtid_slave_pos=" + sql_literal(position))) {
        throw std::runtime_error("cannot set its GTID state: " + inst.conn.error());
      }
      j->binlog_state = state;
      j->position = position;
    } catch (const std::exception& e) {
      j->error = e.what();
    }
    j->done = true;
  });
  inst.rebuild = std::move(job);
}

void Cluster::finish_rebuild(Instance& inst) {
  RebuildJob& j = *inst.rebuild;
  if (j.thread.joinable()) j.thread.join();
  pid_t pid = j.pid.load();
  if (!j.error.empty()) {
    event("rebuild_failed", inst.spec.name + ": rebuild from " + j.source + " failed: " + j.error,
          {{"instance", inst.spec.name}, {"error", j.error}});
    inst.pid = pid;  // the job's child, if it got that far
    kill_server(inst, State::kDown);
    inst.last_error = "rebuild failed: " + j.error;
    inst.next_attempt = Clock::now() + milliseconds(5'000);
    inst.rebuild.reset();
    return;
  }
  inst.pid = pid;
  inst.adopted = false;
  inst.needs_rebuild = false;
  inst.state = State::kRecovering;
  inst.reachable = true;
  inst.received_known = false;
  const std::string position = j.position;
  const std::string source = j.source;
  inst.rebuild.reset();
  save_state();
  event("rebuild_done", inst.spec.name + " was rebuilt from " + source + " at " + position,
        {{"instance", inst.spec.name}, {"position", position}});
  poll(inst);
  reconcile(inst);
}

}  // namespace cumulo::db
