#include "db/internal/endpoints.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "core/event_loop.h"
#include "core/files.h"
#include "core/log.h"
#include "core/net.h"
#include "core/signals.h"
#include "core/workers.h"
#include "db/internal/proxy.h"

namespace cumulo::db {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr std::string_view kComponent = "db-endpoints";
constexpr milliseconds kWaitForPrimary{15'000};
constexpr milliseconds kStartLimit{10'000};
constexpr milliseconds kStopGrace{10'000};
constexpr milliseconds kRestartBackoff{1'000};

std::string routes_file(const DbConfig& cfg) {
  return (fs::path(cfg.data_dir) / "routes.json").string();
}
std::string pid_file(const DbConfig& cfg) {
  return (fs::path(cfg.data_dir) / "endpoints.pid").string();
}

// Hands each set of routes to every proxy loop.
class Loops {
 public:
  explicit Loops(const DbConfig& cfg) {
    for (const InstanceSpec& i : cfg.instances) {
      addresses_[i.name] = *core::SocketAddress::parse(i.address + ":" + std::to_string(i.port));
    }
  }
  void add(core::EventLoop* loop, ProxyWorker* worker) {
    loops_.push_back(loop);
    workers_.push_back(worker);
  }
  void apply(const Publication& p) {
    for (size_t i = 0; i < workers_.size(); ++i) {
      loops_[i]->post([w = workers_[i], routes = routes_for(p)] { w->set_routes(routes); });
    }
  }

 private:
  Routes routes_for(const Publication& p) const {
    Routes r;
    r.writer = p.writer;
    r.hold_writer = p.hold_writer;
    r.reader = ReaderRoute(p.readers, p.writer);
    r.cut = p.cut;
    r.addresses = addresses_;
    return r;
  }
  std::map<std::string, core::SocketAddress> addresses_;
  std::vector<core::EventLoop*> loops_;
  std::vector<ProxyWorker*> workers_;
};

}  // namespace

std::string routes_to_json(const Publication& p) {
  json j;
  j["writer"] = p.writer;
  j["hold_writer"] = p.hold_writer;
  j["readers"] = p.readers;
  j["cut"] = p.cut;
  j["epoch"] = p.epoch;
  return j.dump() + "\n";
}

std::optional<Publication> routes_from_json(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("writer") || !j["writer"].is_string()) return std::nullopt;
  Publication p;
  try {
    p.writer = j["writer"].get<std::string>();
    p.hold_writer = j.value("hold_writer", false);
    p.readers = j.value("readers", std::vector<std::string>{});
    p.cut = j.value("cut", std::vector<std::string>{});
    p.epoch = j.value("epoch", 0ull);
  } catch (const json::exception&) {
    return std::nullopt;
  }
  return p;
}

int run_endpoints(const DbConfig& cfg) {
  const sigset_t mask = core::block_signals({SIGINT, SIGTERM, SIGHUP});
  // The main loop is worker 0 (it also takes the signals); the others run on threads of their own.
  core::EventLoop main_loop;
  core::LoopThreads extra_loops(static_cast<size_t>(std::max(cfg.workers, 1) - 1));
  std::vector<std::unique_ptr<ProxyWorker>> workers;
  Loops loops(cfg);
  try {
    auto writer = *core::SocketAddress::parse(cfg.writer);
    auto reader = *core::SocketAddress::parse(cfg.reader);
    workers.push_back(std::make_unique<ProxyWorker>(main_loop, writer, reader, kWaitForPrimary));
    // Port 0 resolved by the first listener, so that every loop shares the same one.
    writer = workers[0]->local_address(EndpointKind::kWriter);
    reader = workers[0]->local_address(EndpointKind::kReader);
    loops.add(&main_loop, workers[0].get());
    for (size_t i = 0; i < extra_loops.size(); ++i) {
      workers.push_back(std::make_unique<ProxyWorker>(extra_loops.loop(i), writer, reader, kWaitForPrimary));
      loops.add(&extra_loops.loop(i), workers.back().get());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cumulo db endpoints: cannot listen: %s\n", e.what());
    core::log_error(kComponent, "cannot listen", {{"error", e.what()}});
    return 1;
  }
  uint64_t applied_epoch = 0;
  auto reload = [&] {
    auto p = routes_from_json(core::read_file(routes_file(cfg)));
    if (!p) {
      core::log_warn(kComponent, "no routes to apply yet: new writer connections wait",
                     {{"file", routes_file(cfg)}});
      return;
    }
    loops.apply(*p);
    if (p->epoch != applied_epoch || p->writer.empty()) {
      core::log_info(kComponent, "routes applied",
                     {{"writer", p->writer.empty() ? std::string("(none: clients wait)") : p->writer},
                      {"hold_writer", p->hold_writer},
                      {"readers", static_cast<long>(p->readers.size())},
                      {"epoch", static_cast<long>(p->epoch)}});
    }
    applied_epoch = p->epoch;
  };
  reload();
  extra_loops.start();
  try {
    core::write_file_atomically(pid_file(cfg), std::to_string(::getpid()) + "\n", false, 0600);
  } catch (const std::exception& e) {
    core::log_error(kComponent, "cannot write the pid file", {{"error", e.what()}});
    extra_loops.stop();
    return 1;
  }
  core::log_info(kComponent, "listening",
                 {{"writer", workers[0]->local_address(EndpointKind::kWriter).to_string()},
                  {"reader", workers[0]->local_address(EndpointKind::kReader).to_string()},
                  {"pid", static_cast<long>(::getpid())}});
  // A stop closes the client connections at once: a session cut here is one a failover could cut too.
  core::ServiceLife life;
  life.component = kComponent;
  life.reload = reload;
  core::run_service(main_loop, mask, life);
  core::log_info(kComponent, "stopping: listeners and client connections closed");
  extra_loops.stop();
  workers.clear();
  if (core::read_file(pid_file(cfg)) == std::to_string(::getpid()) + "\n") fs::remove(pid_file(cfg));
  return 0;
}

EndpointsProcess::EndpointsProcess(const DbConfig& cfg, std::string binary, std::string config_path)
    : cfg_(cfg), binary_(std::move(binary)), config_path_(std::move(config_path)) {}

bool EndpointsProcess::adopt() {
  std::lock_guard lock(mu_);
  auto p =
      find_running(pid_file(cfg_), {std::string(1, '\0') + "endpoints" + std::string(1, '\0'), config_path_});
  if (!p) return false;
  pid_ = p->pid;
  adopted_ = true;
  adopted_process_ = *p;
  core::log_info("db", "adopted the endpoints process left running by an earlier run",
                 {{"pid", static_cast<long>(pid_)}});
  return true;
}

bool EndpointsProcess::alive_locked() {
  if (pid_ <= 0) return false;
  if (adopted_) return running(adopted_process_);
  return !reap(pid_);
}

void EndpointsProcess::start() {
  std::lock_guard lock(mu_);
  start_locked();
}

void EndpointsProcess::start_locked() {
  const std::string log = (fs::path(cfg_.data_dir) / "endpoints.out").string();
  std::error_code ec;
  fs::remove(pid_file(cfg_), ec);
  pid_t pid = spawn({binary_, "db", "endpoints", "-c", config_path_}, log);
  pid_ = pid;
  adopted_ = false;
  const auto deadline = Clock::now() + kStartLimit;
  while (Clock::now() < deadline) {
    if (reap(pid)) {
      pid_ = 0;
      throw std::runtime_error("the endpoints process exited at start; " + log + ":\n" + file_tail(log, 5));
    }
    if (std::atol(core::read_file(pid_file(cfg_)).c_str()) == pid) return;
    std::this_thread::sleep_for(milliseconds(20));
  }
  kill_now(pid, true, milliseconds(5'000));
  pid_ = 0;
  throw std::runtime_error("the endpoints process did not listen within 10 s; " + log + ":\n" +
                           file_tail(log, 5));
}

void EndpointsProcess::publish(const Publication& p) {
  std::lock_guard lock(mu_);
  last_ = p;
  core::write_file_atomically(routes_file(cfg_), routes_to_json(p), false, 0600);
  if (alive_locked()) ::kill(pid_, SIGHUP);
}

void EndpointsProcess::watch() {
  std::lock_guard lock(mu_);
  if (alive_locked() || Clock::now() < next_restart_) return;
  core::log_warn("db", "the endpoints process is gone: starting it again with the last routes",
                 {{"pid", static_cast<long>(pid_)}});
  next_restart_ = Clock::now() + kRestartBackoff;
  try {
    start_locked();
  } catch (const std::exception& e) {
    core::log_error("db", "cannot start the endpoints process", {{"error", e.what()}});
  }
}

void EndpointsProcess::stop() {
  std::lock_guard lock(mu_);
  if (pid_ <= 0) return;
  if (adopted_) {
    stop_adopted(adopted_process_, kStopGrace);
  } else {
    stop_process(pid_, kStopGrace);
  }
  pid_ = 0;
}

pid_t EndpointsProcess::pid() const {
  std::lock_guard lock(mu_);
  return pid_;
}

bool EndpointsProcess::adopted() const {
  std::lock_guard lock(mu_);
  return adopted_;
}

}  // namespace cumulo::db
