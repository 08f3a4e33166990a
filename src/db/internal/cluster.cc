#include "db/internal/cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "core/log.h"
#include "core/net.h"
#include "db/internal/process.h"

namespace cumulo::db {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr std::string_view kComponent = "db";
constexpr size_t kMaxEvents = 50;
constexpr milliseconds kStartLimit{60'000};
constexpr milliseconds kStopGrace{30'000};
constexpr milliseconds kRestartBackoff{1'000};
constexpr int kCatchUpSeconds = 10;  // MASTER_GTID_WAIT before a promotion

std::string sql_literal(const std::string& s) {
  return "'" + s + "'";
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

struct Cluster::Instance {
  InstanceSpec spec;
  int server_id = 0;
  fs::path dir;      // DATA_DIR/NAME
  fs::path datadir;  // DATA_DIR/NAME/data
  std::string socket;
  std::string error_log;
  pid_t pid = 0;
  Role role = Role::kReplica;
  std::string state = "down";
  bool needs_rebuild = false;
  bool fenced = false;
  SqlConnection conn;
  bool reachable = false;
  ReplicaView view;
  std::string gtid_current_pos;
  std::string last_error;
  SemiSync semi_sync = SemiSync::kOff;
  int dump_threads = 0;
  Clock::time_point next_restart{};
  // Bound (not listening) while the server is down, so that the kernel does not hand its port to an outgoing
  // connection as an ephemeral port meanwhile: a client reconnecting during a failover could take it and keep
  // the server from starting again.
  core::Fd port_guard;

  void guard_port() {
    if (port_guard) return;
    core::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(spec.port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0) port_guard = std::move(fd);
  }
};

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
    inst->view.name = spec.name;
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

Cluster::Instance& Cluster::primary() {
  return *find(primary_);
}

void Cluster::event(const std::string& msg) {
  core::log_info(kComponent, msg, {{"primary", primary_}});
  std::lock_guard lock(status_mu_);
  events_.push_back(core::utc_timestamp() + " " + msg);
  while (events_.size() > kMaxEvents) events_.pop_front();
}

std::vector<std::string> Cluster::server_args(const Instance& inst) const {
  const std::string bin = config_.bin_dir;
  std::vector<std::string> a = {
      bin + "/sbin/mariadbd",
      "--no-defaults",
      "--datadir=" + inst.datadir.string(),
      "--socket=" + inst.socket,
      "--pid-file=" + (inst.dir / "mariadbd.pid").string(),
      "--port=" + std::to_string(inst.spec.port),
      "--bind-address=127.0.0.1",
      "--log-error=" + inst.error_log,
      "--server-id=" + std::to_string(inst.server_id),
      "--log-bin=binlog",
      "--relay-log=relay",
      "--binlog-format=ROW",
      "--sync-binlog=1",
      "--innodb-flush-log-at-trx-commit=1",
      "--log-slave-updates=ON",
      "--gtid-strict-mode=ON",
      "--rpl-semi-sync-master-wait-point=AFTER_SYNC",
      "--rpl-semi-sync-master-timeout=" + std::to_string(config_.semi_sync_timeout.count()),
      "--rpl-semi-sync-master-enabled=OFF",  // switched on once a replica is connected
      "--rpl-semi-sync-slave-enabled=ON",
      std::string("--read-only=") + (inst.role == Role::kPrimary ? "OFF" : "ON"),
      "--skip-slave-start",
      "--skip-name-resolve",
      "--slave-net-timeout=5",
      "--expire-logs-days=1",
      "--innodb-buffer-pool-size=" + std::to_string(config_.buffer_pool_bytes),
      "--innodb-log-file-size=16M",
      "--performance-schema=OFF",
      "--max-connections=1000",
  };
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

void Cluster::start_instance(Instance& inst) {
  // A server left by an earlier run that did not stop (cumulo killed): stop it by its PID file first.
  const fs::path pid_file = inst.dir / "mariadbd.pid";
  if (fs::exists(pid_file)) {
    pid_t old = static_cast<pid_t>(std::atol(read_text(pid_file).c_str()));
    std::string cmdline = old > 0 ? read_text("/proc/" + std::to_string(old) + "/cmdline") : "";
    if (old > 0 && cmdline.find(inst.datadir.string()) != std::string::npos) {
      core::log_warn(kComponent, "stopping a server left running by an earlier run",
                     {{"instance", inst.spec.name}, {"pid", static_cast<long>(old)}});
      ::kill(old, SIGTERM);
      for (int i = 0; i < 1500 && ::kill(old, 0) == 0; ++i) ::usleep(20'000);
      if (::kill(old, 0) == 0) ::kill(old, SIGKILL);
    }
    fs::remove(pid_file);
  }
  inst.conn.close();
  inst.port_guard.reset();
  inst.pid = spawn(server_args(inst), (inst.dir / "mariadbd.out").string());
  inst.state = "starting";
  inst.reachable = false;
}

bool Cluster::wait_ready(Instance& inst, milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (inst.pid == 0 || reap(inst.pid)) {
      inst.pid = 0;
      inst.guard_port();
      inst.state = "down";
      inst.last_error =
          "mariadbd exited during start-up; " + inst.error_log + ":\n" + file_tail(inst.error_log, 8);
      return false;
    }
    if (inst.conn.connect_socket(inst.socket, config_.connect_timeout)) {
      inst.state = "running";
      inst.reachable = true;
      return true;
    }
    ::usleep(50'000);
  }
  inst.last_error =
      "mariadbd did not accept connections within " + std::to_string(limit.count() / 1000) + " s";
  return false;
}

void Cluster::apply_users(Instance& inst) {
  // Every instance gets the same users and empty databases locally (outside the binary log), so that its GTID
  // history holds only what the primary replicated.
  std::vector<std::string> sql = {"SET SESSION sql_log_bin=0"};
  const UserSpec& r = config_.replication;
  const std::string repl = sql_literal(r.name) + "@'127.0.0.1'";
  sql.push_back("CREATE USER IF NOT EXISTS " + repl + " IDENTIFIED BY " + sql_literal(r.password));
  sql.push_back("ALTER USER " + repl + " IDENTIFIED BY " + sql_literal(r.password));
  sql.push_back("GRANT REPLICATION SLAVE ON *.* TO " + repl);
  for (const UserSpec& u : config_.users) {
    const std::string user = sql_literal(u.name) + "@'127.0.0.1'";
    sql.push_back("CREATE USER IF NOT EXISTS " + user + " IDENTIFIED BY " + sql_literal(u.password));
    sql.push_back("ALTER USER " + user + " IDENTIFIED BY " + sql_literal(u.password));
    for (const std::string& d : u.databases) {
      sql.push_back("CREATE DATABASE IF NOT EXISTS `" + d + "`");
      sql.push_back("GRANT ALL PRIVILEGES ON `" + d + "`.* TO " + user);
    }
  }
  sql.push_back("SET SESSION sql_log_bin=1");
  for (const std::string& s : sql) {
    if (!inst.conn.exec(s)) {
      throw std::runtime_error(inst.spec.name + ": cannot set up users: " + inst.conn.error() +
                               " (in: " + s.substr(0, s.find(" IDENTIFIED")) + ")");
    }
  }
}

void Cluster::make_replica_of(Instance& inst, const Instance& p) {
  const UserSpec& r = config_.replication;
  // current_pos: a former primary continues from its own binary log, a replica from what it applied.
  std::vector<std::string> sql = {
      "STOP SLAVE", "SET GLOBAL read_only=ON", "SET GLOBAL rpl_semi_sync_master_enabled=OFF",
      "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=" + std::to_string(p.spec.port) +
          ", MASTER_USER=" + sql_literal(r.name) + ", MASTER_PASSWORD=" + sql_literal(r.password) +
          ", MASTER_USE_GTID=current_pos, MASTER_CONNECT_RETRY=1",
      "START SLAVE"};
  for (const std::string& s : sql) {
    if (!inst.conn.exec(s)) {
      throw std::runtime_error(inst.spec.name + ": cannot replicate from " + p.spec.name + ": " +
                               inst.conn.error());
    }
  }
  inst.role = Role::kReplica;
}

void Cluster::save_state() const {
  nlohmann::json j;
  j["primary"] = primary_;
  j["epoch"] = epoch_;
  j["rebuild"] = nlohmann::json::array();
  for (const auto& i : instances_) {
    if (i->needs_rebuild) j["rebuild"].push_back(i->spec.name);
  }
  const fs::path path = fs::path(config_.data_dir) / "cluster.json";
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
  }
  fs::rename(tmp, path);
}

void Cluster::start() {
  fs::create_directories(config_.data_dir);
  ::chmod(config_.data_dir.c_str(), 0700);
  primary_ = config_.primary;
  const fs::path state_path = fs::path(config_.data_dir) / "cluster.json";
  if (fs::exists(state_path)) {
    auto j = nlohmann::json::parse(read_text(state_path), nullptr, false);
    if (j.is_object() && j.contains("primary") && find(j["primary"].get<std::string>())) {
      primary_ = j["primary"].get<std::string>();
      epoch_ = j.value("epoch", 0ull);
      for (const auto& n : j.value("rebuild", nlohmann::json::array())) {
        if (Instance* i = find(n.get<std::string>())) i->needs_rebuild = true;
      }
    }
  }
  bool fresh = false;
  for (auto& i : instances_) {
    i->role = i->spec.name == primary_ ? Role::kPrimary : Role::kReplica;
    if (!fs::exists(i->datadir / "mysql")) fresh = true;
  }
  if (fresh) bootstrap_template();
  primary().needs_rebuild = false;
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
    if (!i->needs_rebuild) start_instance(*i);
  }
  for (auto& i : instances_) {
    if (i->needs_rebuild) continue;
    if (!wait_ready(*i, kStartLimit)) throw std::runtime_error(i->spec.name + ": " + i->last_error);
    apply_users(*i);
  }
  Instance& p = primary();
  if (!p.conn.exec("STOP SLAVE") || !p.conn.exec("RESET SLAVE ALL") ||
      !p.conn.exec("SET GLOBAL read_only=OFF")) {
    throw std::runtime_error(p.spec.name + ": cannot make it the primary: " + p.conn.error());
  }
  for (auto& i : instances_) {
    if (i.get() == &p) continue;
    if (i->needs_rebuild) {
      rebuild(*i);
    } else {
      make_replica_of(*i, p);
    }
  }
  save_state();
  event("started: " + p.spec.name + " is the primary, " + std::to_string(instances_.size() - 1) +
        " replica(s)");
  for (auto& i : instances_) poll(*i);
  last_semi_sync_ = primary().semi_sync;
  readers_.clear();
  publish();
  update_status();
}

void Cluster::poll(Instance& inst) {
  if (inst.pid == 0 || inst.state == "rebuilding") {
    inst.reachable = false;
    return;
  }
  if (!inst.conn.connected() && !inst.conn.connect_socket(inst.socket, config_.connect_timeout)) {
    inst.reachable = false;
    inst.last_error = "unreachable: " + inst.conn.error();
    return;
  }
  auto vars = inst.conn.query(
      "SELECT @@gtid_current_pos AS cur, @@gtid_slave_pos AS slave, @@rpl_semi_sync_master_enabled AS sse, "
      "(SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%') AS dumps");
  auto slave = vars ? inst.conn.query("SHOW SLAVE STATUS") : std::nullopt;
  auto semi = slave ? inst.conn.query("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'") : std::nullopt;
  if (!vars || vars->empty() || !slave || !semi) {
    inst.reachable = false;
    inst.last_error = "unreachable: " + inst.conn.error();
    inst.conn.close();
    return;
  }
  inst.reachable = true;
  inst.view.reachable = true;
  inst.state = "running";
  const SqlRow& v = (*vars)[0];
  auto str = [](const SqlRow& row, const char* key) {
    auto it = row.find(key);
    return it != row.end() && it->second ? *it->second : std::string();
  };
  inst.gtid_current_pos = str(v, "cur");
  inst.view.gtid_slave_pos = str(v, "slave");
  inst.dump_threads = std::atoi(str(v, "dumps").c_str());
  bool semi_enabled = str(v, "sse") == "1";
  if (!slave->empty()) {
    const SqlRow& s = (*slave)[0];
    inst.view.io_running = str(s, "Slave_IO_Running") == "Yes";
    inst.view.sql_running = str(s, "Slave_SQL_Running") == "Yes";
    auto it = s.find("Seconds_Behind_Master");
    inst.view.seconds_behind.reset();
    if (it != s.end() && it->second) inst.view.seconds_behind = std::atoll(it->second->c_str());
    inst.view.gtid_io_pos = str(s, "Gtid_IO_Pos");
    std::string err = str(s, "Last_IO_Error");
    if (err.empty()) err = str(s, "Last_SQL_Error");
    if (!err.empty())
      inst.last_error = err;
    else if (inst.view.io_running && inst.view.sql_running)
      inst.last_error.clear();
  } else {
    inst.view.io_running = inst.view.sql_running = false;
    inst.view.seconds_behind.reset();
    inst.view.gtid_io_pos.clear();
    if (inst.role == Role::kPrimary) inst.last_error.clear();
  }
  if (inst.role == Role::kPrimary) {
    bool status_on = !semi->empty() && str((*semi)[0], "Value") == "ON";
    inst.semi_sync = !semi_enabled ? SemiSync::kOff : status_on ? SemiSync::kOn : SemiSync::kAsync;
    if (!semi_enabled && inst.dump_threads > 0) {
      // Only now: enabled with no replica, the first commit would wait out the timeout and fall back.
      if (inst.conn.exec("SET GLOBAL rpl_semi_sync_master_enabled=ON")) {
        inst.semi_sync = SemiSync::kOn;
        event("semi-synchronous replication enabled on " + inst.spec.name + " (" +
              std::to_string(inst.dump_threads) + " replica(s) connected)");
      }
    }
  } else {
    inst.semi_sync = SemiSync::kOff;
  }
}

void Cluster::publish(std::vector<std::string> close_backends) {
  std::string writer = primary_lost_ ? std::string() : primary_;
  if (writer == published_writer_ && readers_ == published_readers_ && close_backends.empty()) return;
  published_writer_ = writer;
  published_readers_ = readers_;
  Publication p{writer, readers_, std::move(close_backends)};
  publish_(p);
}

void Cluster::fence(Instance& inst) {
  inst.fenced = true;
  inst.needs_rebuild = true;
  inst.conn.close();
  inst.reachable = false;
  inst.state = "fenced";
  if (inst.pid > 0 && !reap(inst.pid)) {
    // Still running but unreachable (hung, or cut off): it must never take another write.
    ::kill(inst.pid, SIGKILL);
    stop_process(inst.pid, milliseconds(5'000));
    event("fenced " + inst.spec.name + ": killed (pid " + std::to_string(inst.pid) + ")");
  }
  inst.pid = 0;
  inst.guard_port();
}

bool Cluster::failover(const std::string& why) {
  Instance& old = primary();
  std::vector<Instance*> replicas;
  for (auto& i : instances_) {
    if (i.get() != &old && i->reachable && !i->fenced && i->state == "running") replicas.push_back(i.get());
  }
  // Freeze what each replica received, then compare.
  std::vector<ReplicaView> views;
  for (Instance* r : replicas) {
    r->conn.exec("STOP SLAVE IO_THREAD");
    poll(*r);
    if (r->reachable) views.push_back(r->view);
  }
  auto choice = choose_promotion_candidate(views);
  if (!choice) {
    if (!refused_logged_) event("cannot fail over from " + old.spec.name + ": no replica is reachable");
    refused_logged_ = true;
    for (Instance* r : replicas) r->conn.exec("START SLAVE IO_THREAD");
    return false;
  }
  Instance& c = *find(*choice);
  event("failing over from " + old.spec.name + " (" + why + ") to " + c.spec.name + " (received " +
        c.view.gtid_io_pos + ")");
  fence(old);
  std::string wait_for = c.view.gtid_io_pos.empty() ? c.view.gtid_slave_pos : c.view.gtid_io_pos;
  c.conn.exec("START SLAVE SQL_THREAD");
  if (!wait_for.empty()) {
    auto r = c.conn.value("SELECT MASTER_GTID_WAIT(" + sql_literal(wait_for) + ", " +
                          std::to_string(kCatchUpSeconds) + ")");
    if (!r || *r != "0") {
      event(c.spec.name + " did not apply its relay log up to " + wait_for + " within " +
            std::to_string(kCatchUpSeconds) + " s; promoting it anyway");
    }
  }
  if (!c.conn.exec("STOP SLAVE") || !c.conn.exec("RESET SLAVE ALL") ||
      !c.conn.exec("SET GLOBAL read_only=OFF")) {
    event("promotion of " + c.spec.name + " failed: " + c.conn.error());
    return false;
  }
  c.role = Role::kPrimary;
  old.role = Role::kReplica;
  primary_ = c.spec.name;
  ++epoch_;
  primary_lost_ = false;
  last_semi_sync_ = SemiSync::kOff;
  for (Instance* r : replicas) {
    if (r == &c) continue;
    try {
      make_replica_of(*r, c);
    } catch (const std::exception& e) {
      event(e.what());
    }
  }
  readers_.clear();
  publish({old.spec.name});
  const int64_t took = std::chrono::duration_cast<milliseconds>(Clock::now() - primary_lost_at_).count();
  {
    std::lock_guard lock(status_mu_);
    ++failovers_;
    last_failover_ms_ = took;
  }
  save_state();
  event("failover done: " + c.spec.name + " is the primary (" + std::to_string(took) +
        " ms after the primary was lost); " + old.spec.name + " will rejoin as a replica, rebuilt");
  return true;
}

void Cluster::rebuild(Instance& inst) {
  Instance& p = primary();
  inst.state = "rebuilding";
  inst.role = Role::kReplica;
  event("rebuilding " + inst.spec.name + " from " + p.spec.name + " (its own data is discarded)");
  if (inst.pid > 0) stop_process(inst.pid, kStopGrace);
  inst.pid = 0;
  inst.guard_port();
  update_status();
  const std::string log = (inst.dir / "rebuild.log").string();
  const std::string dump = (inst.dir / "rebuild.sql").string();
  try {
    prepare_data_dir(inst);
    start_instance(inst);
    if (!wait_ready(inst, kStartLimit)) throw std::runtime_error(inst.last_error);
    inst.state = "rebuilding";
    apply_users(inst);
    std::vector<std::string> dbs;
    for (const UserSpec& u : config_.users)
      for (const std::string& d : u.databases)
        if (std::find(dbs.begin(), dbs.end(), d) == dbs.end()) dbs.push_back(d);
    std::string gtid;
    if (dbs.empty()) {
      gtid = p.conn.value("SELECT @@gtid_binlog_pos").value_or("");
    } else {
      std::vector<std::string> argv = {config_.bin_dir + "/bin/mariadb-dump",
                                       "--no-defaults",
                                       "--socket=" + p.socket,
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
      const std::string text = read_text(dump);
      size_t at = text.find("gtid_slave_pos='");
      if (at == std::string::npos)
        throw std::runtime_error("the dump of " + p.spec.name + " names no GTID position");
      at += 16;
      gtid = text.substr(at, text.find('\'', at) - at);
      std::vector<std::string> load = {config_.bin_dir + "/bin/mariadb", "--no-defaults",
                                       "--socket=" + inst.socket, "--user=root",
                                       "--init-command=SET SESSION sql_log_bin=0"};
      if (int rc = run_tool(load, log, dump); rc != 0) {
        throw std::runtime_error("loading the dump failed (exit " + std::to_string(rc) +
                                 "): " + file_tail(log, 5));
      }
      fs::remove(dump);
    }
    if (!inst.conn.exec("SET GLOBAL gtid_slave_pos=" + sql_literal(gtid)))
      throw std::runtime_error(inst.conn.error());
    make_replica_of(inst, p);
    inst.needs_rebuild = false;
    inst.fenced = false;
    inst.state = "running";
    save_state();
    event(inst.spec.name + " rejoined as a replica of " + p.spec.name + " from " +
          (gtid.empty() ? "the start" : gtid));
  } catch (const std::exception& e) {
    inst.last_error = std::string("rebuild failed: ") + e.what();
    inst.state = "down";
    event(inst.spec.name + ": " + inst.last_error);
    if (inst.pid > 0) stop_process(inst.pid, kStopGrace);
    inst.pid = 0;
    inst.guard_port();
    inst.next_restart = Clock::now() + milliseconds(5'000);
  }
}

void Cluster::handle_primary_loss() {
  Instance& p = primary();
  if (last_semi_sync_ != SemiSync::kOn) {
    if (!refused_logged_) {
      refused_logged_ = true;
      event(std::string("refusing automatic failover from ") + p.spec.name +
            ": semi-synchronous replication was " +
            (last_semi_sync_ == SemiSync::kAsync ? "running asynchronously (fallen back)" : "not enabled") +
            " when it was lost, so acknowledged writes may exist only on it; restarting it in place (or run "
            "`cumulo db switchover`)");
    }
    if (p.pid == 0 && Clock::now() >= p.next_restart) {
      p.next_restart = Clock::now() + kRestartBackoff;
      start_instance(p);
      if (wait_ready(p, kStartLimit) && p.conn.exec("SET GLOBAL read_only=OFF")) {
        event(p.spec.name + " restarted in place as the primary");
      }
    }
    return;
  }
  failover("unreachable for " + std::to_string(config_.failover_after.count()) + " ms");
}

void Cluster::tick() {
  for (auto& i : instances_) {
    int st = 0;
    if (i->pid > 0 && reap(i->pid, &st)) {
      event(i->spec.name + " (pid " + std::to_string(i->pid) + ") exited" +
            (WIFSIGNALED(st) ? " on signal " + std::to_string(WTERMSIG(st))
                             : " with " + std::to_string(WEXITSTATUS(st))));
      i->pid = 0;
      i->guard_port();
      i->conn.close();
      i->reachable = false;
      if (i->state != "fenced") i->state = "down";
      i->next_restart = Clock::now() + kRestartBackoff;
    }
  }
  for (auto& i : instances_) poll(*i);
  Instance& p = primary();
  if (p.reachable) {
    if (primary_lost_) event(p.spec.name + " is reachable again");
    primary_lost_ = false;
    refused_logged_ = false;
    last_semi_sync_ = p.semi_sync;
  } else if (!primary_lost_) {
    primary_lost_ = true;
    primary_lost_at_ = Clock::now();
    event("primary " + p.spec.name + " lost: " + (p.pid == 0 ? std::string("not running") : p.last_error) +
          "; new writer connections wait");
  }
  if (primary_lost_ && Clock::now() - primary_lost_at_ >= config_.failover_after) handle_primary_loss();
  // Replicas that are down come back: restarted as they were, or rebuilt from the primary when their data
  // cannot be trusted (a fenced former primary).
  if (!primary_lost_) {
    for (auto& i : instances_) {
      if (i->spec.name == primary_ || i->pid > 0 || Clock::now() < i->next_restart) continue;
      if (i->needs_rebuild) {
        rebuild(*i);
        continue;
      }
      i->next_restart = Clock::now() + kRestartBackoff;
      try {
        start_instance(*i);
        if (!wait_ready(*i, kStartLimit)) throw std::runtime_error(i->last_error);
        make_replica_of(*i, primary());
        event(i->spec.name + " restarted as a replica");
      } catch (const std::exception& e) {
        event(i->spec.name + ": restart failed: " + e.what());
      }
    }
  }
  std::vector<ReplicaView> views;
  for (auto& i : instances_) {
    if (i->spec.name == primary_) continue;
    ReplicaView v = i->view;
    v.reachable = i->reachable;
    v.fenced = i->fenced || i->state != "running";
    views.push_back(v);
  }
  std::vector<std::string> readers = readers_within_lag(views, config_.lag_limit);
  // A reader that stopped replicating (threads stopped, unreachable) loses its open reader connections too,
  // so that no client goes on reading data that no longer changes; one that merely lags keeps them.
  std::vector<std::string> cut;
  for (const ReplicaView& v : views) {
    bool was_reader = std::find(readers_.begin(), readers_.end(), v.name) != readers_.end();
    bool replicating = v.reachable && !v.fenced && v.io_running && v.sql_running;
    if (was_reader && !replicating) {
      cut.push_back(v.name);
      event(
          v.name + " left the reader endpoint: " +
          (v.reachable ? "not replicating (" + find(v.name)->last_error + ")" : std::string("unreachable")) +
          "; its reader connections are closed");
    }
  }
  readers_ = std::move(readers);
  publish(std::move(cut));
  update_status();
}

void Cluster::update_status() {
  ClusterStatus s;
  s.primary = primary_;
  s.epoch = epoch_;
  for (auto& i : instances_) {
    InstanceStatus is;
    is.name = i->spec.name;
    is.zone = i->spec.zone;
    is.port = i->spec.port;
    is.pid = i->pid;
    is.role = i->role;
    is.state = i->state;
    is.view = i->view;
    is.view.reachable = i->reachable;
    is.gtid_current_pos = i->gtid_current_pos;
    is.last_error = i->last_error;
    is.semi_sync = i->semi_sync;
    is.semi_sync_clients = i->dump_threads;
    s.instances.push_back(std::move(is));
  }
  s.readers = readers_;
  std::lock_guard lock(status_mu_);
  s.events = events_;
  s.failovers = failovers_;
  s.last_failover_ms = last_failover_ms_;
  status_ = std::move(s);
}

ClusterStatus Cluster::status() const {
  std::lock_guard lock(status_mu_);
  return status_;
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

std::string Cluster::switchover(const std::string& target) {
  std::unique_lock lock(work_mu_);
  Instance& old = primary();
  if (!old.reachable)
    return "the primary " + old.spec.name + " is not reachable: automatic failover handles that";
  std::vector<ReplicaView> views;
  for (auto& i : instances_) {
    if (i.get() != &old && i->reachable && i->state == "running" && i->view.io_running && i->view.sql_running)
      views.push_back(i->view);
  }
  std::string to = target;
  if (to.empty()) {
    auto c = choose_promotion_candidate(views);
    if (!c) return "no replica is replicating: nothing to switch over to";
    to = *c;
  }
  Instance* c = find(to);
  if (!c) return "no instance named '" + to + "'";
  if (c == &old) return to + " is already the primary";
  if (std::none_of(views.begin(), views.end(), [&](const ReplicaView& v) { return v.name == to; })) {
    return to + " is not a healthy replica (both replication threads running): " + c->last_error;
  }
  event("switchover from " + old.spec.name + " to " + to + " requested");
  // Stop writes on the old primary, cut its clients, wait for the target to have everything, then swap.
  primary_lost_ = true;  // new writer connections wait
  publish({old.spec.name});
  if (!old.conn.exec("SET GLOBAL read_only=ON")) {
    primary_lost_ = false;
    publish();
    return "cannot make " + old.spec.name + " read-only: " + old.conn.error();
  }
  old.conn.exec("SET GLOBAL rpl_semi_sync_master_enabled=OFF");
  std::string pos = old.conn.value("SELECT @@gtid_binlog_pos").value_or("");
  auto r = c->conn.value("SELECT MASTER_GTID_WAIT(" + sql_literal(pos) + ", " +
                         std::to_string(kCatchUpSeconds) + ")");
  if (!r || *r != "0") {
    old.conn.exec("SET GLOBAL read_only=OFF");
    primary_lost_ = false;
    publish();
    return to + " did not catch up with " + pos + " within " + std::to_string(kCatchUpSeconds) +
           " s; the primary stays " + old.spec.name;
  }
  if (!c->conn.exec("STOP SLAVE") || !c->conn.exec("RESET SLAVE ALL") ||
      !c->conn.exec("SET GLOBAL read_only=OFF")) {
    std::string err = c->conn.error();
    c->conn.exec("START SLAVE");
    old.conn.exec("SET GLOBAL read_only=OFF");
    primary_lost_ = false;
    publish();
    return "cannot promote " + to + ": " + err;
  }
  c->role = Role::kPrimary;
  primary_ = to;
  ++epoch_;
  last_semi_sync_ = SemiSync::kOff;
  primary_lost_ = false;
  for (auto& i : instances_) {
    if (i.get() == c || !i->reachable) continue;
    try {
      make_replica_of(*i, *c);
    } catch (const std::exception& e) {
      event(e.what());
    }
  }
  readers_.clear();
  publish({old.spec.name});
  save_state();
  event("switchover done: " + to + " is the primary, " + old.spec.name + " replicates from it");
  update_status();
  return "";
}

void Cluster::stop() {
  stopping_ = true;
  wake_.notify_all();
  std::unique_lock lock(work_mu_);
  for (auto& i : instances_) {
    if (i->pid > 0) ::kill(i->pid, SIGTERM);
  }
  for (auto& i : instances_) {
    i->conn.close();
    if (i->pid > 0) stop_process(i->pid, kStopGrace);
    i->pid = 0;
  }
}

}  // namespace cumulo::db
