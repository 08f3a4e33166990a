// The cluster's instances and processes, its state file, the monitor's tick, status and switchover. Replicas'
// repairs are in replica.cc, the failover in failover.cc.
#include "db/internal/cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/files.h"
#include "core/log.h"
#include "db/internal/instance.h"
#include "db/internal/process.h"

namespace cumulo::db {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr std::string_view kComponent = "db";
constexpr size_t kMaxEvents = 50;
constexpr milliseconds kStopGrace{30'000};
constexpr milliseconds kAdoptConnect{5'000};
constexpr int kSwitchoverCatchUpSeconds = 10;
// Strict semi-sync: the primary waits this long for a replica's acknowledgement, which is to say it does not
// give up (rpl_semi_sync_master_timeout counts milliseconds; this is about 49 days).
constexpr uint64_t kStrictSemiSyncTimeoutMs = 4'294'967'295ull;

GtidSet parse_set(const std::string& text) {
  return GtidSet::parse(text).value_or(GtidSet{});
}

}  // namespace

void Cluster::Instance::guard_port() {
  // A server in a namespace of its own has its port to itself; a guard here would hold the manager's.
  if (port_guard || !spec.netns.empty()) return;
  core::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(spec.port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0) port_guard = std::move(fd);
}

const char* Cluster::state_name(State s) {
  switch (s) {
    case State::kDown:
      return "down";
    case State::kStarting:
      return "starting";
    case State::kRecovering:
      return "recovering";
    case State::kRunning:
      return "running";
    case State::kBroken:
      return "broken";
    case State::kFenced:
      return "fenced";
    case State::kRebuilding:
      return "rebuilding";
  }
  return "?";
}

Cluster::Cluster(DbConfig config, Publish publish)
    : config_(std::move(config)), publish_(std::move(publish)) {
  sql_library_init();
  const fs::path root = fs::absolute(config_.data_dir);
  template_dir_ = (root / "template").string();
  int id = 1;
  for (const InstanceSpec& spec : config_.instances) {
    auto inst = std::make_unique<Instance>();
    inst->spec = spec;
    inst->server_id = id++;
    inst->dir = root / spec.name;
    inst->datadir = inst->dir / "data";
    inst->socket = (inst->dir / "mariadbd.sock").string();
    inst->error_log = (inst->dir / "error.log").string();
    inst->pid_file = (inst->dir / "mariadbd.pid").string();
    if (inst->socket.size() >= 100) {
      throw std::runtime_error("data_dir " + root.string() + " is too deep: the Unix socket path " +
                               inst->socket + " would pass the 107-byte limit; choose a shorter data_dir");
    }
    instances_.push_back(std::move(inst));
  }
}

Cluster::~Cluster() {
  stop();
}

Cluster::Instance* Cluster::find(const std::string& name) {
  for (auto& i : instances_) {
    if (i->spec.name == name) return i.get();
  }
  return nullptr;
}

Cluster::Instance* Cluster::find_by_port(int port) {
  for (auto& i : instances_) {
    if (i->spec.port == port) return i.get();
  }
  return nullptr;
}

Cluster::Instance& Cluster::primary() {
  return *find(primary_);
}

void Cluster::event(std::string_view kind, const std::string& msg,
                    std::initializer_list<core::LogField> fields) {
  std::vector<core::LogField> all;
  all.reserve(fields.size() + 2);
  all.emplace_back("event", kind);
  all.insert(all.end(), fields.begin(), fields.end());
  all.emplace_back("primary", primary_);
  core::log(core::LogLevel::kInfo, kComponent, msg, std::span<const core::LogField>(all));
  std::lock_guard lock(status_mu_);
  events_.push_back(core::utc_timestamp() + " " + msg);
  while (events_.size() > kMaxEvents) events_.pop_front();
}

std::vector<std::string> Cluster::server_args(const Instance& inst, bool after_fence) const {
  const std::string bin = config_.bin_dir;
  const bool strict = config_.semi_sync == DbConfig::SemiSyncMode::kStrict;
  const uint64_t semi_timeout =
      strict ? kStrictSemiSyncTimeoutMs : static_cast<uint64_t>(config_.semi_sync_timeout.count());
  std::vector<std::string> a = {
      bin + "/sbin/mariadbd",
      "--no-defaults",
      "--datadir=" + inst.datadir.string(),
      "--socket=" + inst.socket,
      "--pid-file=" + inst.pid_file,
      "--port=" + std::to_string(inst.spec.port),
      "--bind-address=" + inst.spec.address,
      "--log-error=" + inst.error_log,
      "--server-id=" + std::to_string(inst.server_id),
      "--log-bin=binlog",
      "--relay-log=relay",
      "--binlog-format=ROW",
      // The primary flushes every commit; a replica flushes its binary log and redo log to the OS only (a
      // killed replica loses nothing; one whose machine loses power may lose its last second, which the
      // primary still holds), and is made as durable as a primary before it is promoted (promote()). A
      // replica's acknowledgement of a commit never meant more than that: its relay log is not flushed
      // either.
      std::string("--sync-binlog=") + (inst.role == Role::kPrimary ? "1" : "0"),
      std::string("--innodb-flush-log-at-trx-commit=") + (inst.role == Role::kPrimary ? "1" : "2"),
      "--log-slave-updates=ON",
      "--gtid-strict-mode=ON",
      "--rpl-semi-sync-master-wait-point=AFTER_SYNC",
      "--rpl-semi-sync-master-timeout=" + std::to_string(semi_timeout),
      "--rpl-semi-sync-master-wait-no-slave=ON",
      "--rpl-semi-sync-master-enabled=OFF",  // switched on when it becomes the primary
      "--rpl-semi-sync-slave-enabled=ON",
      std::string("--read-only=") + (inst.role == Role::kPrimary ? "OFF" : "ON"),
      // Replication starts only when the tier says so: a restarted IO thread would discard the relay log,
      // which may be the only copy of acknowledged commits.
      "--skip-slave-start",
      "--skip-name-resolve",
      "--slave-net-timeout=5",
      "--expire-logs-days=1",
      "--innodb-buffer-pool-size=" + std::to_string(config_.buffer_pool_bytes),
      "--innodb-log-file-size=16M",
      "--performance-schema=OFF",
      "--max-connections=1000",
  };
  // A fenced primary recovers as a semi-sync replica: transactions that were written to its binary log but
  // never acknowledged (prepared, not committed) are truncated instead of committed, so that it usually holds
  // nothing its successor lacks and can rejoin without a rebuild.
  if (after_fence) a.push_back("--init-rpl-role=SLAVE");
  if (::geteuid() == 0) a.push_back("--user=root");
  return a;
}

void Cluster::bootstrap_template() {
  if (fs::exists(fs::path(template_dir_) / "mysql")) return;
  fs::remove_all(template_dir_);
  const std::string log = (fs::path(config_.data_dir) / "install-db.log").string();
  std::vector<std::string> argv = {
      config_.bin_dir + "/bin/mariadb-install-db", "--no-defaults",  "--datadir=" + template_dir_,
      "--auth-root-authentication-method=normal",  "--skip-test-db", "--innodb-log-file-size=16M"};
  if (::geteuid() == 0) argv.push_back("--user=root");
  core::log_info(kComponent, "creating the initial data directory", {{"dir", template_dir_}});
  int rc = run_tool(argv, log);
  if (rc != 0) {
    throw std::runtime_error(argv[0] + " failed (exit " + std::to_string(rc) + "), see " + log + ":\n" +
                             file_tail(log, 10));
  }
}

void Cluster::prepare_data_dir(Instance& inst) {
  fs::create_directories(inst.dir);
  ::chmod(inst.dir.c_str(), 0700);
  fs::remove_all(inst.datadir);
  fs::copy(template_dir_, inst.datadir, fs::copy_options::recursive);
}

void Cluster::start_instance(Instance& inst, bool after_fence) {
  // A server still running on this data directory (an earlier run's, not adopted) would keep this one from
  // starting: end it first.
  if (auto leftover = find_running(inst.pid_file, {inst.datadir_arg()})) {
    core::log_warn(kComponent, "stopping a server left running on this data directory",
                   {{"instance", inst.spec.name}, {"pid", static_cast<long>(leftover->pid)}});
    kill_now(leftover->pid, false, kKillWait);
  }
  fs::remove(inst.pid_file);
  inst.conn.close();
  inst.port_guard.reset();
  inst.pid =
      spawn(server_args(inst, after_fence), (inst.dir / "mariadbd.out").string(), "", "", inst.spec.netns);
  inst.adopted = false;
  inst.state = State::kStarting;
  inst.reachable = false;
  inst.received_known = false;
  inst.io_pos = GtidSet{};
  inst.unreachable_since = Clock::now();
}

bool Cluster::server_left_running(const std::string& name) {
  Instance* inst = find(name);
  return inst && find_running(inst->pid_file, {inst->datadir_arg()}).has_value();
}

void Cluster::forget_process(Instance& inst, State next) {
  inst.pid = 0;
  inst.adopted = false;
  inst.guard_port();
  inst.conn.close();
  inst.reachable = false;
  inst.received_known = false;
  inst.io_pos = GtidSet{};
  inst.state = next;
}

void Cluster::kill_server(Instance& inst, State next) {
  if (inst.pid > 0) kill_now(inst.pid, !inst.adopted, kKillWait);
  forget_process(inst, next);
}

bool Cluster::process_running(Instance& inst) {
  if (inst.pid <= 0) return false;
  if (inst.adopted) return running(inst.adopted_process);
  return !reap(inst.pid);
}

bool Cluster::wait_ready(Instance& inst, milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (!process_running(inst)) {
      forget_process(inst, State::kDown);
      inst.last_error =
          "mariadbd exited during start-up; " + inst.error_log + ":\n" + file_tail(inst.error_log, 8);
      return false;
    }
    if (inst.conn.connect_socket(inst.socket, config_.connect_timeout)) {
      inst.reachable = true;
      return true;
    }
    ::usleep(50'000);
  }
  inst.last_error =
      "mariadbd did not accept connections within " + std::to_string(limit.count() / 1000) + " s";
  return false;
}

std::vector<std::string> Cluster::application_databases() const {
  std::vector<std::string> dbs;
  for (const UserSpec& u : config_.users)
    for (const std::string& d : u.databases)
      if (std::find(dbs.begin(), dbs.end(), d) == dbs.end()) dbs.push_back(d);
  return dbs;
}

void Cluster::apply_users(Instance& inst) {
  // Every instance gets the same users and empty databases locally (outside the binary log), so that its GTID
  // history holds only what the primary replicated.
  std::vector<std::string> sql = {"SET SESSION sql_log_bin=0"};
  for (std::string& s : user_setup_sql(config_)) sql.push_back(std::move(s));
  for (const std::string& s : sql) {
    if (!inst.conn.exec(s)) {
      throw std::runtime_error(inst.spec.name + ": cannot set up users: " + inst.conn.error() +
                               " (in: " + s.substr(0, s.find(" IDENTIFIED")) + ")");
    }
  }
  auto rows = inst.conn.query("SELECT User, Host FROM mysql.user");
  if (!rows) throw std::runtime_error(inst.spec.name + ": cannot list users: " + inst.conn.error());
  std::vector<std::pair<std::string, std::string>> existing;
  for (const SqlRow& r : *rows) existing.emplace_back(r.at("User").value_or(""), r.at("Host").value_or(""));
  sql = stale_users_sql(config_, existing);
  sql.push_back("SET SESSION sql_log_bin=1");
  for (const std::string& s : sql) {
    if (!inst.conn.exec(s)) {
      throw std::runtime_error(inst.spec.name + ": cannot set up users: " + inst.conn.error() +
                               " (in: " + s.substr(0, s.find(" IDENTIFIED")) + ")");
    }
  }
}

void Cluster::load_state() {
  primary_ = config_.primary;
  const fs::path state_path = fs::path(config_.data_dir) / "cluster.json";
  if (!fs::exists(state_path)) return;
  auto j = nlohmann::json::parse(core::read_file(state_path.string()), nullptr, false);
  if (!j.is_object() || !j.contains("primary") || !find(j["primary"].get<std::string>())) {
    throw std::runtime_error(
        state_path.string() +
        " is not a state this tier wrote (no known primary in it); move it away to start "
        "afresh from the configured primary");
  }
  primary_ = j["primary"].get<std::string>();
  epoch_ = j.value("epoch", 0ull);
  failovers_ = j.value("failovers", 0);
  last_failover_ms_ = j.value("last_failover_ms", -1ll);
  history_ = parse_set(j.value("history", ""));
  for (const auto& n : j.value("rebuild", nlohmann::json::array())) {
    if (Instance* i = find(n.get<std::string>())) i->needs_rebuild = true;
  }
  if (j.contains("failover") && j["failover"].is_object()) {
    const auto& f = j["failover"];
    failover_.active = true;
    failover_.old_primary = f.value("old", primary_);
    failover_.candidate = f.value("candidate", "");
    failover_.target = parse_set(f.value("target", ""));
    failover_.started = Clock::now();
    if (!find(failover_.old_primary)) failover_.old_primary = primary_;
    if (!failover_.candidate.empty() && !find(failover_.candidate)) failover_.candidate.clear();
  }
}

void Cluster::save_state() {
  nlohmann::json j;
  j["primary"] = primary_;
  j["epoch"] = epoch_;
  j["failovers"] = failovers_;
  j["last_failover_ms"] = last_failover_ms_;
  j["history"] = history_.to_string();
  j["rebuild"] = nlohmann::json::array();
  for (const auto& i : instances_) {
    if (i->needs_rebuild) j["rebuild"].push_back(i->spec.name);
  }
  if (failover_.active) {
    j["failover"] = {{"old", failover_.old_primary},
                     {"candidate", failover_.candidate},
                     {"target", failover_.target.to_string()}};
  }
  core::write_file_atomically((fs::path(config_.data_dir) / "cluster.json").string(), j.dump(2) + "\n",
                              /*durable=*/true, 0600);
}

void Cluster::adopt(Instance& inst) {
  auto p = find_running(inst.pid_file, {inst.datadir_arg()});
  if (!p) return;
  inst.pid = p->pid;
  inst.adopted = true;
  inst.adopted_process = *p;
  inst.state = State::kStarting;
  inst.received_known = false;  // what its IO thread did before is unknown to this run
  adopted_any_ = true;
  event("adopted",
        "adopted " + inst.spec.name + " (pid " + std::to_string(p->pid) + "), left running by an earlier run",
        {{"instance", inst.spec.name}, {"pid", static_cast<long>(p->pid)}});
}

void Cluster::start() {
  fs::create_directories(config_.data_dir);
  ::chmod(config_.data_dir.c_str(), 0700);
  load_state();
  for (auto& i : instances_) {
    i->role = i->spec.name == primary_ ? Role::kPrimary : Role::kReplica;
    adopt(*i);
  }
  if (adopted_any_) {
    // An earlier run died and left its servers serving: take them over as they are, with no failover. Roles
    // come from cluster.json and are checked against the servers by the monitor (a replica not replicating
    // from the primary is repaired, a failover that was under way is resumed).
    for (auto& i : instances_) {
      if (i->pid == 0) {
        i->state = State::kDown;
        i->guard_port();
        continue;
      }
      if (!wait_ready(*i, kAdoptConnect)) {
        core::log_warn(kComponent, "an adopted server does not answer yet",
                       {{"instance", i->spec.name}, {"error", i->last_error}});
      }
    }
    poll_all();
    Instance& p = primary();
    if (!failover_.active && p.reachable && (p.read_only || p.has_source)) {
      // Left read-only by a switchover that the earlier run did not finish (the target was not promoted: it
      // would be the recorded primary otherwise).
      if (auto promoted = promote(p); !promoted) {
        throw std::runtime_error(p.spec.name +
                                 ": cannot make it the primary again: " + promoted.error().message);
      }
      event("primary_restored",
            p.spec.name + " was left read-only by an unfinished switchover: writable again",
            {{"instance", p.spec.name}});
      poll(p);
    }
    if (p.reachable) last_semi_sync_ = p.semi_sync;
    save_state();
    event("started", "adopted the running tier: " + primary_ + " is the primary" +
                         (failover_.active ? "; resuming the failover from " + failover_.old_primary : ""));
    publish();
    update_status();
    return;
  }

  bool fresh = false;
  for (auto& i : instances_) {
    if (!fs::exists(i->datadir / "mysql")) fresh = true;
  }
  if (fresh) bootstrap_template();
  if (!failover_.active) primary().needs_rebuild = false;
  for (auto& i : instances_) {
    if (fs::exists(i->datadir / "mysql") || i->needs_rebuild) continue;
    if (i->role == Role::kReplica && !fresh) {
      // A new replica beside a primary that already has data is cloned from it rather than replaying history
      // that the primary's binary log may no longer hold.
      i->needs_rebuild = true;
    } else {
      prepare_data_dir(*i);
    }
  }
  for (auto& i : instances_) {
    if (failover_.active && i->spec.name == failover_.old_primary) {
      i->state = State::kFenced;  // stays down until the failover is done, then rejoins
      i->guard_port();
      continue;
    }
    if (i->needs_rebuild) {
      i->guard_port();
      continue;
    }
    start_instance(*i);
  }
  for (auto& i : instances_) {
    if (i->needs_rebuild || i->state == State::kFenced) continue;
    if (!wait_ready(*i, kServerStartLimit)) throw std::runtime_error(i->spec.name + ": " + i->last_error);
    apply_users(*i);
  }
  poll_all();
  if (failover_.active) {
    // Stopped in the middle of a failover: the monitor resumes it (the old primary stays fenced).
    save_state();
    event("started", "resuming the failover from " + failover_.old_primary + " that an earlier run began");
    publish();
    update_status();
    return;
  }
  Instance& p = primary();
  if (auto promoted = promote(p); !promoted) {
    throw std::runtime_error(p.spec.name + ": cannot make it the primary: " + promoted.error().message);
  }
  poll(p);
  history_.merge(p.binlog_state);
  for (auto& i : instances_) {
    if (i.get() == &p || i->needs_rebuild) continue;
    reconcile(*i);
  }
  save_state();
  event("started", "started: " + p.spec.name + " is the primary, " + std::to_string(instances_.size() - 1) +
                       " replica(s)");
  poll_all();
  last_semi_sync_ = p.semi_sync;
  readers_.clear();
  publish();
  update_status();
}

void Cluster::reap_exited() {
  for (auto& i : instances_) {
    if (i->pid <= 0 || i->state == State::kRebuilding) continue;
    int st = 0;
    bool gone = i->adopted ? !running(i->adopted_process) : reap(i->pid, &st);
    if (!gone) continue;
    std::string how = i->adopted ? std::string(" is gone")
                                 : (WIFSIGNALED(st) ? " exited on signal " + std::to_string(WTERMSIG(st))
                                                    : " exited with " + std::to_string(WEXITSTATUS(st)));
    event("exited", i->spec.name + " (pid " + std::to_string(i->pid) + ")" + how,
          {{"instance", i->spec.name}, {"pid", static_cast<long>(i->pid)}});
    forget_process(*i, i->state == State::kFenced ? State::kFenced : State::kDown);
    i->next_attempt = Clock::now() + kRestartBackoff;
  }
}

void Cluster::poll_all() {
  for (auto& i : instances_)
    if (i->spec.name != primary_) poll(*i);
  poll(primary());
}

void Cluster::poll(Instance& inst) {
  auto unreachable = [&](const std::string& why) {
    if (inst.reachable || inst.unreachable_since == Clock::time_point{})
      inst.unreachable_since = Clock::now();
    inst.reachable = false;
    inst.last_error = "unreachable: " + why;
  };
  if (inst.pid == 0 || inst.state == State::kRebuilding) {
    inst.reachable = false;
    return;
  }
  if (!inst.conn.connected() && !inst.conn.connect_socket(inst.socket, config_.connect_timeout)) {
    unreachable(inst.conn.error());
    return;
  }
  const auto asked = Clock::now();
  auto vars = inst.conn.query(
      "SELECT @@gtid_current_pos AS cur, @@gtid_slave_pos AS slave, @@gtid_binlog_state AS bstate, "
      "@@read_only AS ro, @@rpl_semi_sync_master_enabled AS sse");
  auto slave = vars ? inst.conn.query("SHOW SLAVE STATUS") : std::nullopt;
  auto semi = slave ? inst.conn.query("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_%'") : std::nullopt;
  // Replicas connected to it (registered binlog dump threads): without a temporary table, unlike a query of
  // information_schema.PROCESSLIST, which MariaDB 10.11 was seen to crash on (in free_tmp_table) during a
  // poll.
  auto hosts = semi && inst.spec.name == primary_ ? inst.conn.query("SHOW SLAVE HOSTS")
                                                  : std::optional<std::vector<SqlRow>>(std::vector<SqlRow>{});
  if (!vars || vars->empty() || !slave || !semi || !hosts) {
    unreachable(inst.conn.error());
    inst.conn.close();
    return;
  }
  inst.last_seen = asked;
  inst.reachable = true;
  inst.unreachable_since = Clock::time_point{};
  const SqlRow& v = (*vars)[0];
  inst.gtid_current_pos = column(v, "cur");
  inst.slave_pos = parse_set(column(v, "slave"));
  inst.binlog_state = parse_set(column(v, "bstate"));
  inst.read_only = column(v, "ro") == "1";
  inst.dump_threads = static_cast<int>(hosts->size());
  bool semi_enabled = column(v, "sse") == "1";
  if (!slave->empty()) {
    const SqlRow& s = (*slave)[0];
    inst.has_source = !column(s, "Master_Host").empty();
    inst.source_port = std::atoi(column(s, "Master_Port").c_str());
    const std::string io = column(s, "Slave_IO_Running");
    inst.io_running = io == "Yes";
    inst.io_connecting = io == "Connecting";
    inst.sql_running = column(s, "Slave_SQL_Running") == "Yes";
    if (inst.io_running) inst.received_known = true;
    inst.seconds_behind.reset();
    std::string behind = column(s, "Seconds_Behind_Master");
    if (!behind.empty()) inst.seconds_behind = std::atoll(behind.c_str());
    inst.io_pos = parse_set(column(s, "Gtid_IO_Pos"));
    inst.relay_log_file = column(s, "Relay_Log_File");
    inst.relay_log_pos = std::strtoull(column(s, "Relay_Log_Pos").c_str(), nullptr, 10);
    inst.last_io_error = column(s, "Last_IO_Error");
    inst.last_sql_error = column(s, "Last_SQL_Error");
  } else {
    inst.has_source = false;
    inst.source_port = 0;
    inst.io_running = inst.io_connecting = inst.sql_running = false;
    inst.seconds_behind.reset();
    inst.io_pos = GtidSet{};
    inst.relay_log_file.clear();
    inst.relay_log_pos = 0;
    inst.last_io_error.clear();
    inst.last_sql_error.clear();
  }
  std::string semi_status;
  inst.semi_sync_clients = 0;
  for (const SqlRow& row : *semi) {
    const std::string name = column(row, "Variable_name");
    if (name == "Rpl_semi_sync_master_status") semi_status = column(row, "Value");
    if (name == "Rpl_semi_sync_master_clients")
      inst.semi_sync_clients = std::atoi(column(row, "Value").c_str());
  }
  inst.semi_sync = !semi_enabled ? SemiSync::kOff : (semi_status == "ON" ? SemiSync::kOn : SemiSync::kAsync);
  if (inst.spec.name == primary_ && !failover_.active && !semi_enabled && !inst.read_only &&
      instances_.size() > 1) {
    // Strict: on whatever happens (promote() switches it on first; this covers a primary restarted in place).
    // Fallback: only once a replica is connected; enabled earlier, the first commit would wait out the
    // timeout and fall back.
    bool strict = config_.semi_sync == DbConfig::SemiSyncMode::kStrict;
    if ((strict || inst.dump_threads > 0) && inst.conn.exec("SET GLOBAL rpl_semi_sync_master_enabled=ON")) {
      inst.semi_sync = SemiSync::kOn;
      event("semi_sync_enabled",
            "semi-synchronous replication enabled on " + inst.spec.name + " (" +
                std::to_string(inst.dump_threads) + " replica(s) connected)",
            {{"instance", inst.spec.name}});
    }
  }
  if (!inst.last_sql_error.empty()) {
    inst.last_error = "replication SQL thread: " + inst.last_sql_error;
  } else if (!inst.last_io_error.empty() && !inst.io_running) {
    inst.last_error = "replication IO thread: " + inst.last_io_error;
  } else if (inst.state != State::kBroken) {
    inst.last_error.clear();
  }
  if (inst.state == State::kStarting) inst.state = State::kRecovering;
}

void Cluster::check_primary() {
  Instance& p = primary();
  if (p.reachable && p.state != State::kFenced) {
    if (primary_lost_)
      event("primary_back", p.spec.name + " is reachable again", {{"instance", p.spec.name}});
    primary_lost_ = false;
    refused_logged_ = false;
    last_semi_sync_ = p.semi_sync;
    p.state = State::kRunning;
    return;
  }
  if (!primary_lost_) {
    primary_lost_ = true;
    // Unreachable since it last answered: a poll that times out has already waited connect_timeout.
    primary_lost_at_ = p.pid == 0 || p.last_seen == Clock::time_point{} ? Clock::now() : p.last_seen;
    event("primary_lost",
          "primary " + p.spec.name + " lost: " + (p.pid == 0 ? std::string("not running") : p.last_error) +
              "; new writer connections wait",
          {{"instance", p.spec.name}});
  }
  // A primary whose process exited is certainly gone: no reason to wait. failover_after guards against taking
  // a slow answer for a dead server.
  if (p.pid != 0 && Clock::now() - primary_lost_at_ < config_.failover_after) return;
  if (config_.semi_sync == DbConfig::SemiSyncMode::kFallback || instances_.size() == 1) {
    handle_primary_loss_fallback();
    return;
  }
  begin_failover(p.pid == 0 ? std::string("its server is not running")
                            : "unreachable for " + std::to_string(config_.failover_after.count()) + " ms");
}

void Cluster::tick() {
  reap_exited();
  poll_all();
  const uint64_t epoch = epoch_;
  if (failover_.active) {
    continue_failover();
  } else {
    check_primary();
  }
  // Repairs read what the polls above saw: not in a tick that changed the primary.
  if (!failover_.active && !primary_lost_ && epoch == epoch_) repair_replicas();
  publish();
  update_status();
}

void Cluster::publish() {
  Publication p;
  p.writer = failover_.active ? "" : primary_;
  p.hold_writer = primary_lost_ && !failover_.active;
  p.epoch = epoch_;
  std::vector<ReplicaView> views;
  for (auto& i : instances_) {
    if (i->spec.name == primary_) continue;
    const bool replicating = i->state == State::kRunning && !failover_.active && replicating_from_primary(*i);
    ReplicaView v;
    v.name = i->spec.name;
    v.reachable = i->reachable;
    v.io_running = i->io_running;
    v.sql_running = i->sql_running;
    v.seconds_behind = i->seconds_behind;
    v.fenced = !replicating;
    views.push_back(v);
    // A replica that stopped replicating loses its open reader connections, so that no client goes on reading
    // data that no longer changes; one that merely lags keeps them.
    if (!replicating) p.cut.push_back(i->spec.name);
  }
  p.readers = readers_within_lag(views, config_.lag_limit);
  for (const std::string& r : readers_) {
    if (std::find(p.readers.begin(), p.readers.end(), r) == p.readers.end() &&
        std::find(p.cut.begin(), p.cut.end(), r) != p.cut.end()) {
      Instance* i = find(r);
      event("reader_left",
            r + " left the reader endpoint: " +
                (i && i->reachable ? "not replicating (" + i->last_error + ")" : std::string("unreachable")) +
                "; its reader connections are closed",
            {{"instance", r}});
    }
  }
  readers_ = p.readers;
  bool same = published_once_ && p.writer == published_.writer && p.hold_writer == published_.hold_writer &&
              p.readers == published_.readers && p.cut == published_.cut && p.epoch == published_.epoch;
  if (same) return;
  published_ = p;
  published_once_ = true;
  publish_(p);
}

void Cluster::update_status() {
  ClusterStatus s;
  s.primary = primary_;
  s.epoch = epoch_;
  if (failover_.active) {
    s.failover = "from " + failover_.old_primary +
                 (failover_.candidate.empty() ? std::string() : " to " + failover_.candidate) +
                 (failover_.waiting_for.empty() ? std::string() : ": waiting: " + failover_.waiting_for);
  }
  for (auto& i : instances_) {
    InstanceStatus is;
    is.name = i->spec.name;
    is.zone = i->spec.zone;
    is.port = i->spec.port;
    is.pid = i->rebuild ? i->rebuild->pid.load() : i->pid;
    is.adopted = i->adopted;
    is.role = i->role;
    is.state = state_name(i->state);
    is.reachable = i->reachable;
    is.io_running = i->io_running;
    is.sql_running = i->sql_running;
    is.seconds_behind = i->seconds_behind;
    if (i->has_source) {
      Instance* src = find_by_port(i->source_port);
      is.source = src ? src->spec.name : "port " + std::to_string(i->source_port);
    }
    is.gtid_current_pos = i->gtid_current_pos;
    is.gtid_binlog_state = i->binlog_state.to_string();
    is.gtid_io_pos = i->io_pos.to_string();
    is.gtid_slave_pos = i->slave_pos.to_string();
    is.last_error = i->last_error;
    is.semi_sync = i->semi_sync;
    is.semi_sync_clients = i->semi_sync_clients;
    s.instances.push_back(std::move(is));
  }
  s.readers = readers_;
  std::lock_guard lock(status_mu_);
  s.failovers = failovers_;
  s.last_failover_ms = last_failover_ms_;
  status_ = std::move(s);
}

ClusterStatus Cluster::status() const {
  std::lock_guard lock(status_mu_);
  ClusterStatus s = status_;
  s.events = events_;  // live: a long step (a catch-up) shows what it is doing
  return s;
}

void Cluster::run_monitor() {
  while (!stopping_) {
    {
      std::unique_lock lock(work_mu_);
      try {
        tick();
      } catch (const std::exception& e) {
        core::log_error(kComponent, "monitor step failed", {{"error", e.what()}});
      }
      wake_.wait_for(lock, config_.monitor_interval, [this] { return stopping_.load(); });
    }
  }
}

namespace {

// Why a switchover was refused or undone; `source` kClient when the request named something that cannot be.
core::Err<core::Error> refused(std::string kind, std::string message,
                               core::ErrorSource source = core::ErrorSource::kUpstream,
                               core::Retry retry = core::Retry::kSafe) {
  return core::Err(core::Error{std::move(kind), std::move(message), source, retry});
}

}  // namespace

core::Result<void, core::Error> Cluster::switchover(const std::string& target) {
  std::unique_lock lock(work_mu_);
  // Taken after stop() (a request handed over just before the manager stopped): the servers are gone.
  if (stopping_) {
    return refused("stopping", "the database tier is stopping", core::ErrorSource::kInternal,
                   core::Retry::kNo);
  }
  if (failover_.active || primary_lost_) {
    if (target.empty()) {
      return refused(
          "primary_lost",
          "the primary " + (failover_.active ? failover_.old_primary : primary_) +
              " is lost and automatic failover handles it" +
              (failover_.waiting_for.empty() ? std::string() : " (waiting: " + failover_.waiting_for + ")") +
              "; name a replica with --to to promote it anyway, accepting the loss of any "
              "acknowledged commit that only another replica holds",
          core::ErrorSource::kUpstream, core::Retry::kNo);
    }
    Instance* c = find(target);
    if (!c)
      return refused("no_such_instance", "no instance named '" + target + "'", core::ErrorSource::kClient,
                     core::Retry::kNo);
    if ((!failover_.active && c->spec.name == primary_) ||
        (failover_.active && c->spec.name == failover_.old_primary)) {
      return refused("is_primary", target + " is the primary that was lost", core::ErrorSource::kClient,
                     core::Retry::kNo);
    }
    forced_candidate_ = target;
    event("forced_promotion", "operator asked to promote " + target + " while the primary is lost",
          {{"instance", target}});
    if (!failover_.active) begin_failover("an operator's switchover --to " + target);
    for (int attempt = 0; attempt < 20 && failover_.active && !stopping_; ++attempt) {
      continue_failover();
      publish();
      update_status();
      if (failover_.active) std::this_thread::sleep_for(milliseconds(500));
    }
    forced_candidate_.clear();
    // The failover goes on either way: asking again changes nothing it would not do by itself.
    if (failover_.active) {
      return refused("promotion_unfinished",
                     "the promotion of " + target + " did not finish: " + failover_.waiting_for,
                     core::ErrorSource::kUpstream, core::Retry::kNo);
    }
    if (primary_ != target) {
      return refused("other_candidate", "the failover chose " + primary_ + " instead",
                     core::ErrorSource::kUpstream, core::Retry::kNo);
    }
    return {};
  }
  Instance& old = primary();
  if (!old.reachable) {
    return refused("primary_unreachable",
                   "the primary " + old.spec.name + " is not reachable: automatic failover handles that");
  }
  std::vector<ReplicaState> states;
  for (auto& i : instances_) {
    if (i.get() == &old || i->state != State::kRunning || !replicating_from_primary(*i)) continue;
    ReplicaState rs;
    rs.name = i->spec.name;
    rs.known = true;
    rs.received = received_set(i->binlog_state, i->slave_pos, i->io_pos, history());
    states.push_back(rs);
  }
  std::string to = target;
  if (to.empty()) {
    auto plan = plan_promotion(states, {}, "");
    if (!plan.candidate)
      return refused("not_replicating", "no replica is replicating: nothing to switch over to");
    to = *plan.candidate;
  }
  Instance* c = find(to);
  if (!c)
    return refused("no_such_instance", "no instance named '" + to + "'", core::ErrorSource::kClient,
                   core::Retry::kNo);
  if (c == &old)
    return refused("is_primary", to + " is already the primary", core::ErrorSource::kClient,
                   core::Retry::kNo);
  if (std::none_of(states.begin(), states.end(), [&](const ReplicaState& s) { return s.name == to; })) {
    return refused("not_replicating", to + " is not a healthy replica of " + old.spec.name +
                                          " (both replication threads running): " +
                                          (c->last_error.empty() ? state_name(c->state) : c->last_error));
  }
  event("switchover_started", "switchover from " + old.spec.name + " to " + to + " requested",
        {{"instance", to}, {"old", old.spec.name}});
  const auto began = Clock::now();
  // Stop writes on the old primary and cut its clients (new writer connections wait), wait for the target to
  // hold everything the old primary wrote, then swap.
  auto undo = [&](std::string kind, const std::string& why) {
    old.conn.exec("SET GLOBAL read_only=OFF");
    failover_ = Failover{};
    save_state();
    publish();
    update_status();
    event("switchover_failed", why + "; the primary stays " + old.spec.name, {{"instance", to}});
    return refused(std::move(kind), why + "; the primary stays " + old.spec.name);
  };
  failover_.active = true;  // the writer endpoint routes nowhere meanwhile
  failover_.old_primary = old.spec.name;
  publish();
  if (!old.conn.exec("SET GLOBAL read_only=ON"))
    return undo("primary_unreachable", "cannot make " + old.spec.name + " read-only: " + old.conn.error());
  auto state = old.conn.value("SELECT @@gtid_binlog_state");
  if (!state) {
    return undo("primary_unreachable",
                "cannot read " + old.spec.name + "'s binlog state: " + old.conn.error());
  }
  GtidSet want = parse_set(*state);
  {
    SqlConnection waiter;
    if (!waiter.connect_socket(c->socket, config_.connect_timeout,
                               std::chrono::seconds(kSwitchoverCatchUpSeconds) + config_.connect_timeout)) {
      return undo("not_caught_up", "cannot reach " + to + ": " + waiter.error());
    }
    auto r = waiter.value("SELECT MASTER_GTID_WAIT(" + sql_literal(want.position()) + ", " +
                          std::to_string(kSwitchoverCatchUpSeconds) + ")");
    if (!r || *r != "0") {
      return undo("not_caught_up", to + " did not catch up with " + want.position() + " within " +
                                       std::to_string(kSwitchoverCatchUpSeconds) + " s");
    }
  }
  poll(*c);
  if (!applied_set(*c).contains(want)) {
    return undo("not_caught_up",
                to + " lacks " + want.missing_from(applied_set(*c)).to_string() + " of " + old.spec.name);
  }
  // Recorded as a failover to `to` with the old primary's whole history as the target: a manager that dies
  // from here on finishes the promotion when it starts again.
  failover_.candidate = to;
  failover_.target = want;
  save_state();
  if (auto promoted = promote(*c); !promoted) {
    c->conn.exec("START SLAVE");
    return undo("promotion_failed", "cannot promote " + to + ": " + promoted.error().message);
  }
  poll(*c);
  c->role = Role::kPrimary;
  old.role = Role::kReplica;
  primary_ = to;
  ++epoch_;
  history_.merge(c->binlog_state);
  failover_ = Failover{};
  last_semi_sync_ = c->semi_sync;
  save_state();
  for (auto& i : instances_) {
    if (i.get() == c || !i->reachable || i->state == State::kRebuilding) continue;
    // The old primary wrote nothing after `to` caught up, and every replica received only what the old
    // primary wrote: `to` holds all of it, so relay logs may be discarded.
    if (auto repointed = make_replica_of(*i, *c); !repointed) mark_broken(*i, repointed.error().message);
  }
  readers_.clear();
  publish();
  const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - began).count();
  event("switchover_done",
        "switchover done: " + to + " is the primary (" + std::to_string(took) + " ms), " + old.spec.name +
            " replicates from it",
        {{"instance", to}, {"old", old.spec.name}, {"ms", static_cast<long>(took)}});
  update_status();
  return {};
}

void Cluster::stop() {
  stopping_ = true;
  wake_.notify_all();
  std::unique_lock lock(work_mu_);
  for (auto& i : instances_) {
    if (i->rebuild) {
      if (pid_t p = i->rebuild->pid.load(); p > 0) ::kill(p, SIGTERM);
      if (i->rebuild->thread.joinable()) i->rebuild->thread.join();
      if (pid_t p = i->rebuild->pid.load(); p > 0 && i->pid == 0) i->pid = p;
      i->rebuild.reset();
    }
  }
  for (auto& i : instances_) {
    if (i->pid > 0) ::kill(i->pid, SIGTERM);
  }
  for (auto& i : instances_) {
    i->conn.close();
    if (i->pid > 0) {
      if (i->adopted) {
        stop_adopted(i->adopted_process, kStopGrace);
      } else {
        stop_process(i->pid, kStopGrace);
      }
    }
    i->pid = 0;
  }
}

}  // namespace cumulo::db
