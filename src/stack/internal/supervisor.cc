#include "stack/internal/supervisor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "core/event_loop.h"
#include "core/log.h"
#include "core/net.h"
#include "stack/instance_provider.h"
#include "stack/internal/gateway_config.h"

namespace cumulo::stack::internal {

namespace {

namespace fs = std::filesystem;
using core::Millis;

constexpr Millis kFirstBackoff{1000};
constexpr Millis kMaxBackoff{30'000};
// An instance that ran this long before it died was not crash-looping: its next restart waits kFirstBackoff
// again.
constexpr Millis kStableUptime{30'000};
constexpr Millis kInstanceStopGrace{5000};
constexpr Millis kGatewayStartTimeout{10'000};
// Time the gateway gets beyond its own drain timeout before it is killed.
constexpr Millis kGatewayStopSlack{5000};
constexpr Millis kReadyPollInterval{100};
constexpr size_t kLogTailLines = 20;
constexpr char kComponent[] = "stack";

long as_long(Millis d) {
  return static_cast<long>(d.count());
}

// Blocks the stop signals so that they arrive through a signalfd on the loop instead of interrupting whatever
// runs, and ignores SIGPIPE: a closed stdout (`cumulo up | head`) must not kill the supervisor and orphan the
// stack. The destructor consumes stop signals still pending, then puts everything back.
class SupervisorSignals {
 public:
  SupervisorSignals() {
    sigemptyset(&set_);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set_, sig);
    pthread_sigmask(SIG_BLOCK, &set_, &previous_mask_);
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, &previous_pipe_);
    fd_.reset(signalfd(-1, &set_, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!fd_) throw std::runtime_error("signalfd: " + core::errno_text(errno));
  }
  ~SupervisorSignals() {
    fd_.reset();
    const timespec zero{};
    while (sigtimedwait(&set_, nullptr, &zero) > 0) {
    }
    sigaction(SIGPIPE, &previous_pipe_, nullptr);
    pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
  }
  SupervisorSignals(const SupervisorSignals&) = delete;
  SupervisorSignals& operator=(const SupervisorSignals&) = delete;
  int fd() const { return fd_.get(); }

 private:
  sigset_t set_{};
  sigset_t previous_mask_{};
  struct sigaction previous_pipe_ {};
  core::Fd fd_;
};

// An instance of a group, or the gateway.
struct Member {
  std::string id;     // "web-a-1", or "gateway"
  std::string group;  // empty for the gateway
  std::string zone;
  std::string address;                      // what it serves on
  std::vector<core::SocketAddress> probes;  // accepting connections on all of these means ready
  LaunchSpec launch;
  Millis start_timeout{10'000};
  InstanceHandle handle = 0;  // 0 while not running
  bool ready = false;
  bool slow_reported = false;
  core::TimePoint started_at{};
  Millis backoff = kFirstBackoff;
  int restarts = 0;
  std::unique_ptr<core::Timer> restart_timer;
};

// A wildcard address is probed through loopback: that is where a local client reaches it.
core::SocketAddress probe_address(const core::SocketAddress& addr) {
  std::string host = addr.host();
  if (host == "0.0.0.0") return *core::SocketAddress::parse("127.0.0.1:" + std::to_string(addr.port()));
  if (host == "::") return *core::SocketAddress::parse("[::1]:" + std::to_string(addr.port()));
  return addr;
}

std::string url_for(const std::string& address, std::string_view path) {
  core::SocketAddress a = probe_address(*core::SocketAddress::parse(address));
  std::string host = a.host();
  if (a.storage.ss_family == AF_INET6) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(a.port()) + std::string(path);
}

// A local connect succeeds or is refused at once, so a blocking one never stalls the loop.
bool accepts_connections(const core::SocketAddress& addr) {
  core::Fd fd(::socket(addr.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  return ::connect(fd.get(), addr.sa(), addr.length) == 0;
}

// Asks the kernel for free loopback ports. The sockets stay bound until all are picked, so no port comes
// twice.
std::vector<uint16_t> pick_ports(size_t count, const std::vector<uint16_t>& avoid) {
  std::vector<core::Fd> held;
  std::vector<uint16_t> ports;
  while (ports.size() < count) {
    if (held.size() > count + 64) throw std::runtime_error("cannot find enough free ports on 127.0.0.1");
    core::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw std::runtime_error("socket: " + core::errno_text(errno));
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
      throw std::runtime_error("cannot bind a free port on 127.0.0.1: " + core::errno_text(errno));
    }
    auto local = core::SocketAddress::from_fd_local(fd.get());
    if (!local) throw std::runtime_error("getsockname: " + core::errno_text(errno));
    held.push_back(std::move(fd));
    if (std::find(avoid.begin(), avoid.end(), local->port()) != avoid.end()) continue;
    ports.push_back(local->port());
  }
  return ports;
}

// The last `count` lines of a file (of its last 64 KiB at most); empty when the file is empty or unreadable.
std::string log_tail(const std::string& path, size_t count) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  in.seekg(0, std::ios::end);
  constexpr std::streamoff kMaxRead = 64 * 1024;
  const std::streamoff size = in.tellg();
  in.seekg(size > kMaxRead ? size - kMaxRead : 0);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(std::move(line));
  std::string out;
  for (size_t i = lines.size() > count ? lines.size() - count : 0; i < lines.size(); ++i)
    out += lines[i] + "\n";
  return out;
}

class Supervisor : public core::IoHandler {
 public:
  Supervisor(const StackSpec& stack, const SupervisorOptions& options);
  ~Supervisor() override;
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  int run();

  // core::IoHandler (the stop signals)
  void on_io(uint32_t events) override;

 private:
  enum class Phase { kStartingInstances, kStartingGateway, kRunning, kStopping };

  void prepare_state_dir();
  void check_gateway_ports() const;
  void plan_members();
  void write_gateway_config() const;
  bool start_member(Member& m);
  void poll_ready();
  void start_gateway();
  void fail_start(const Member& m, const std::string& why);
  void on_exit(InstanceHandle handle, const ExitStatus& status);
  void schedule_restart(Member& m, const ExitStatus& status, InstanceHandle old_handle);
  void restart(Member& m);
  // A second stop signal while stopping kills everything at once: the way out of a stuck drain.
  void begin_stop(const std::string& reason, bool from_signal);
  void continue_stop();
  void print_banner() const;
  void write_status(std::string_view state) const;
  bool all_stopped();
  Member* find(InstanceHandle handle);
  std::vector<Member*> all_members();

  StackSpec stack_;
  SupervisorOptions options_;
  fs::path state_dir_;
  fs::path gateway_config_path_;
  core::EventLoop loop_;
  SupervisorSignals signals_;
  core::Fd lock_fd_;
  std::unique_ptr<InstanceProvider> provider_;
  std::vector<std::unique_ptr<Member>> instances_;  // by pointer: timers capture them
  std::unique_ptr<Member> gateway_;
  core::Timer ready_timer_;
  Phase phase_ = Phase::kStartingInstances;
  bool instances_stopping_ = false;
  bool stopped_ = false;
  std::string last_start_error_;
  int exit_code_ = 0;
};

Supervisor::Supervisor(const StackSpec& stack, const SupervisorOptions& options)
    : stack_(stack),
      options_(options),
      state_dir_(options.state_dir.empty() ? ".cumulo" : options.state_dir),
      ready_timer_(loop_, [this] { poll_ready(); }) {
  prepare_state_dir();
  check_gateway_ports();
  plan_members();
  loop_.add(signals_.fd(), this, core::kReadable);
  provider_ = make_process_provider(loop_, [this](InstanceHandle h, const ExitStatus& s) { on_exit(h, s); });
}

Supervisor::~Supervisor() {
  loop_.remove(signals_.fd());
  provider_.reset();  // kills and reaps anything still running while the loop and the members are still there
}

void Supervisor::prepare_state_dir() {
  std::error_code ec;
  fs::create_directories(state_dir_ / "logs", ec);
  if (ec)
    throw std::runtime_error("cannot create the state directory " + (state_dir_ / "logs").string() + ": " +
                             ec.message());

  // Two supervisors on one state directory would overwrite each other's config and logs.
  fs::path lock_path = state_dir_ / "lock";
  lock_fd_.reset(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock_fd_)
    throw std::runtime_error("cannot open " + lock_path.string() + ": " + core::errno_text(errno));
  if (flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    [[maybe_unused]] ssize_t n = ::pread(lock_fd_.get(), buf, sizeof buf - 1, 0);
    std::string pid(buf);
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    throw std::runtime_error("another `cumulo up`" + (pid.empty() ? std::string() : " (pid " + pid + ")") +
                             " is using the state directory " + state_dir_.string() +
                             "; stop it first, or give this one another --state-dir");
  }
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(lock_fd_.get(), 0) != 0 || ::pwrite(lock_fd_.get(), pid.data(), pid.size(), 0) < 0) {
    throw std::runtime_error("cannot write " + lock_path.string() + ": " + core::errno_text(errno));
  }
  gateway_config_path_ = fs::absolute(state_dir_ / "gateway.yaml");
}

// Found before any instance starts, a taken gateway port is one clear message instead of a gateway crash
// loop.
void Supervisor::check_gateway_ports() const {
  const GatewaySpec& gw = stack_.gateway;
  auto check = [](const std::string& address, std::string_view key, const std::string& location) {
    try {
      core::listen_tcp(*core::SocketAddress::parse(address), false);  // closed again at once
    } catch (const std::exception& e) {
      throw std::runtime_error(location + ": " + std::string(key) + ": " + e.what());
    }
  };
  check(gw.listen, "gateway.listen", gw.listen_location);
  check(gw.admin, "gateway.admin", gw.admin_location);
}

void Supervisor::plan_members() {
  const GatewaySpec& gw = stack_.gateway;
  const auto listen = *core::SocketAddress::parse(gw.listen);
  const auto admin = *core::SocketAddress::parse(gw.admin);
  std::vector<InstancePlan> plans = plan_instances(stack_);
  std::vector<uint16_t> ports = pick_ports(plans.size(), {listen.port(), admin.port()});

  for (size_t i = 0; i < plans.size(); ++i) {
    const InstancePlan& plan = plans[i];
    auto m = std::make_unique<Member>();
    m->id = plan.id;
    m->group = plan.group;
    m->zone = plan.zone;
    m->address = "127.0.0.1:" + std::to_string(ports[i]);
    m->probes.push_back(*core::SocketAddress::parse(m->address));
    ExpandedCommand cmd = expand_command(
        *plan.spec, PlaceholderValues{std::to_string(ports[i]), plan.zone, plan.id, options_.bin_dir});
    m->launch.name = plan.id;
    m->launch.executable = resolve_executable(*plan.spec, cmd.argv.front());
    m->launch.argv = std::move(cmd.argv);
    m->launch.env = std::move(cmd.env);
    m->launch.log_path = (state_dir_ / "logs" / (plan.id + ".log")).string();
    m->start_timeout = plan.spec->start_timeout;
    Member* raw = m.get();
    m->restart_timer = std::make_unique<core::Timer>(loop_, [this, raw] { restart(*raw); });
    instances_.push_back(std::move(m));
  }

  gateway_ = std::make_unique<Member>();
  gateway_->id = "gateway";
  gateway_->address = gw.listen;
  gateway_->probes = {probe_address(listen), probe_address(admin)};
  gateway_->launch.name = "gateway";
  gateway_->launch.executable = options_.cumulo_binary;
  gateway_->launch.argv = {options_.cumulo_binary, "gateway", "-c", gateway_config_path_.string()};
  gateway_->launch.log_path = (state_dir_ / "logs" / "gateway.log").string();
  gateway_->start_timeout = kGatewayStartTimeout;
  gateway_->restart_timer = std::make_unique<core::Timer>(loop_, [this] { restart(*gateway_); });

  // Each run starts with fresh logs; restarts within a run append, so a crash's last words stay readable.
  for (Member* m : all_members()) {
    std::ofstream truncate(m->launch.log_path, std::ios::trunc);
    if (!truncate) throw std::runtime_error("cannot write " + m->launch.log_path);
  }
  if (stack_.gateway.access_log != "off" && stack_.gateway.access_log != "-") {
    stack_.gateway.access_log = fs::absolute(stack_.gateway.access_log).string();
  }
}

std::vector<Member*> Supervisor::all_members() {
  std::vector<Member*> out;
  for (auto& m : instances_) out.push_back(m.get());
  if (gateway_) out.push_back(gateway_.get());
  return out;
}

Member* Supervisor::find(InstanceHandle handle) {
  for (Member* m : all_members()) {
    if (m->handle == handle) return m;
  }
  return nullptr;
}

void Supervisor::write_gateway_config() const {
  std::vector<GatewayTarget> targets;
  for (const auto& m : instances_) targets.push_back(GatewayTarget{m->group, m->zone, m->address});
  std::string text = render_gateway_config(stack_, targets);
  // Written aside and renamed, so a gateway reloading it never reads half a file.
  fs::path tmp = gateway_config_path_;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, gateway_config_path_, ec);
  if (ec) throw std::runtime_error("cannot write " + gateway_config_path_.string() + ": " + ec.message());
}

int Supervisor::run() {
  core::log_info(kComponent, "starting stack",
                 {{"stack", stack_.name},
                  {"file", stack_.source},
                  {"instances", static_cast<long>(instances_.size())},
                  {"state_dir", state_dir_.string()}});
  for (auto& m : instances_) {
    if (!start_member(*m)) {
      fail_start(*m, "could not be started: " + last_start_error_);
      break;
    }
  }
  write_status("starting");
  if (phase_ == Phase::kStartingInstances) ready_timer_.arm(Millis(0));
  loop_.run();
  return exit_code_;
}

bool Supervisor::start_member(Member& m) {
  try {
    m.handle = provider_->start(m.launch);
  } catch (const std::exception& e) {
    last_start_error_ = e.what();
    return false;
  }
  m.started_at = loop_.update_now();
  m.ready = false;
  m.slow_reported = false;
  core::log_info(kComponent, m.id == "gateway" ? "gateway started" : "instance started",
                 {{"instance", m.id},
                  {"pid", static_cast<long>(m.handle)},
                  {"address", m.address},
                  {"restarts", m.restarts}});
  return true;
}

void Supervisor::poll_ready() {
  const core::TimePoint now = loop_.update_now();
  bool waiting = false;
  for (Member* m : all_members()) {
    if (m->handle == 0 || m->ready) continue;
    if (std::all_of(m->probes.begin(), m->probes.end(), accepts_connections)) {
      m->ready = true;
      core::log_info(kComponent, m->id == "gateway" ? "gateway ready" : "instance ready",
                     {{"instance", m->id},
                      {"pid", static_cast<long>(m->handle)},
                      {"address", m->address},
                      {"after_ms", as_long(std::chrono::duration_cast<Millis>(now - m->started_at))}});
      continue;
    }
    waiting = true;
    if (now - m->started_at < m->start_timeout || m->slow_reported) continue;
    std::string why = "does not accept connections on " + m->probes.front().to_string() +
                      (m->probes.size() > 1 ? " and " + m->probes.back().to_string() : std::string()) +
                      " after " + format_duration(m->start_timeout);
    if (phase_ == Phase::kRunning) {
      m->slow_reported = true;
      core::log_warn(kComponent, "restarted instance is not ready",
                     {{"instance", m->id}, {"reason", why}, {"log", m->launch.log_path}});
      continue;
    }
    fail_start(*m, why);
    return;
  }

  if (phase_ == Phase::kStartingInstances &&
      std::all_of(instances_.begin(), instances_.end(), [](const auto& m) { return m->ready; })) {
    start_gateway();
    waiting = phase_ == Phase::kStartingGateway;
  } else if (phase_ == Phase::kStartingGateway && gateway_->ready) {
    phase_ = Phase::kRunning;
    write_status("running");
    print_banner();
  }
  if (waiting && phase_ != Phase::kStopping) ready_timer_.arm(kReadyPollInterval);
}

void Supervisor::start_gateway() {
  try {
    write_gateway_config();
  } catch (const std::exception& e) {
    fail_start(*gateway_, e.what());
    return;
  }
  phase_ = Phase::kStartingGateway;
  if (!start_member(*gateway_)) fail_start(*gateway_, "could not be started: " + last_start_error_);
}

void Supervisor::fail_start(const Member& m, const std::string& why) {
  core::log_error(kComponent, "start-up failed",
                  {{"instance", m.id}, {"reason", why}, {"log", m.launch.log_path}});
  std::string tail = log_tail(m.launch.log_path, kLogTailLines);
  std::string msg = "cumulo up: " + m.id + " " + why + "\n";
  if (tail.empty()) {
    msg += "  (its log " + m.launch.log_path + " is empty)\n";
  } else {
    msg += "  last lines of " + m.launch.log_path + ":\n";
    std::istringstream lines(tail);
    for (std::string line; std::getline(lines, line);) msg += "  | " + line + "\n";
  }
  std::fputs(msg.c_str(), stderr);
  std::fflush(stderr);
  exit_code_ = 1;
  begin_stop("start-up failed", false);
}

void Supervisor::on_exit(InstanceHandle handle, const ExitStatus& status) {
  Member* m = find(handle);
  if (!m) return;
  m->handle = 0;
  m->ready = false;
  switch (phase_) {
    case Phase::kStartingInstances:
    case Phase::kStartingGateway:
      fail_start(*m, "exited during start-up (" + status.describe() + ")");
      break;
    case Phase::kRunning:
      schedule_restart(*m, status, handle);
      write_status("running");
      break;
    case Phase::kStopping:
      core::log_info(
          kComponent, m == gateway_.get() ? "gateway stopped" : "instance stopped",
          {{"instance", m->id}, {"pid", static_cast<long>(handle)}, {"status", status.describe()}});
      continue_stop();
      break;
  }
}

void Supervisor::schedule_restart(Member& m, const ExitStatus& status, InstanceHandle old_handle) {
  const Millis uptime = std::chrono::duration_cast<Millis>(loop_.update_now() - m.started_at);
  if (uptime >= kStableUptime) m.backoff = kFirstBackoff;
  const std::string_view msg =
      m.id == "gateway" ? "gateway died; restarting it" : "instance died; restarting it";
  const std::string description = status.describe();
  if (status.signal > 0) {
    const char* abbrev = sigabbrev_np(status.signal);
    core::log_warn(kComponent, msg,
                   {{"instance", m.id},
                    {"pid", static_cast<long>(old_handle)},
                    {"status", description},
                    {"signal", abbrev ? std::string("SIG") + abbrev : std::to_string(status.signal)},
                    {"uptime_ms", as_long(uptime)},
                    {"restart_in_ms", as_long(m.backoff)},
                    {"log", m.launch.log_path}});
  } else {
    core::log_warn(kComponent, msg,
                   {{"instance", m.id},
                    {"pid", static_cast<long>(old_handle)},
                    {"status", description},
                    {"exit_code", status.exit_code},
                    {"uptime_ms", as_long(uptime)},
                    {"restart_in_ms", as_long(m.backoff)},
                    {"log", m.launch.log_path}});
  }
  m.restart_timer->arm(m.backoff);
  m.backoff = std::min(m.backoff * 2, kMaxBackoff);
}

void Supervisor::restart(Member& m) {
  if (phase_ != Phase::kRunning) return;
  ++m.restarts;
  if (!start_member(m)) {
    core::log_error(kComponent, "restart failed",
                    {{"instance", m.id}, {"reason", last_start_error_}, {"retry_in_ms", as_long(m.backoff)}});
    m.restart_timer->arm(m.backoff);
    m.backoff = std::min(m.backoff * 2, kMaxBackoff);
    return;
  }
  write_status("running");
  if (!ready_timer_.armed()) ready_timer_.arm(kReadyPollInterval);
}

void Supervisor::begin_stop(const std::string& reason, bool from_signal) {
  if (phase_ == Phase::kStopping) {
    if (!from_signal) return;
    core::log_warn(kComponent, "stopping already; killing everything now", {{"reason", reason}});
    for (Member* m : all_members()) {
      if (m->handle != 0) provider_->kill(m->handle);
    }
    return;
  }
  phase_ = Phase::kStopping;
  ready_timer_.cancel();
  for (Member* m : all_members()) m->restart_timer->cancel();
  core::log_info(kComponent, "stopping stack", {{"stack", stack_.name}, {"reason", reason}});
  // The gateway goes first: it drains in-flight requests while the instances behind it can still answer them.
  if (gateway_->handle != 0) {
    const Millis grace = stack_.gateway.drain_timeout + kGatewayStopSlack;
    core::log_info(kComponent, "stopping gateway",
                   {{"pid", static_cast<long>(gateway_->handle)}, {"grace_ms", as_long(grace)}});
    provider_->stop(gateway_->handle, grace);
  }
  continue_stop();
}

bool Supervisor::all_stopped() {
  const auto members = all_members();
  return std::all_of(members.begin(), members.end(), [](const Member* m) { return m->handle == 0; });
}

void Supervisor::continue_stop() {
  if (gateway_->handle != 0) return;
  if (!instances_stopping_) {
    instances_stopping_ = true;
    long count = 0;
    for (auto& m : instances_) {
      if (m->handle == 0) continue;
      provider_->stop(m->handle, kInstanceStopGrace);
      ++count;
    }
    if (count > 0) {
      core::log_info(kComponent, "stopping instances",
                     {{"count", count}, {"grace_ms", as_long(kInstanceStopGrace)}});
    }
  }
  // By the members, not the provider: an exit the provider has seen but not yet reported is still to be
  // logged.
  if (!stopped_ && all_stopped()) {
    stopped_ = true;
    write_status("stopped");
    core::log_info(kComponent, "stack stopped", {{"stack", stack_.name}, {"exit_code", exit_code_}});
    loop_.stop();
  }
}

// STATE_DIR/stack.json: what runs where, for people and scripts (which PID to look at, which port an instance
// has).
void Supervisor::write_status(std::string_view state) const {
  nlohmann::json doc = {{"stack", stack_.name},
                        {"state", state},
                        {"pid", static_cast<long>(getpid())},
                        {"url", url_for(stack_.gateway.listen, "/")},
                        {"admin", url_for(stack_.gateway.admin, "/")}};
  auto describe = [](const Member& m) {
    nlohmann::json j = {{"id", m.id},
                        {"address", m.address},
                        {"pid", m.handle},
                        {"restarts", m.restarts},
                        {"log", m.launch.log_path}};
    if (!m.group.empty()) j["group"] = m.group;
    if (!m.zone.empty()) j["zone"] = m.zone;
    return j;
  };
  doc["gateway"] = describe(*gateway_);
  doc["instances"] = nlohmann::json::array();
  for (const auto& m : instances_) doc["instances"].push_back(describe(*m));
  const fs::path path = state_dir_ / "stack.json";
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << doc.dump(2) << "\n";
    if (!out.flush()) {
      core::log_warn(kComponent, "cannot write the status file", {{"path", tmp.string()}});
      return;
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
}

void Supervisor::on_io(uint32_t) {
  signalfd_siginfo info;
  while (::read(signals_.fd(), &info, sizeof info) == sizeof info) {
    const char* abbrev = sigabbrev_np(static_cast<int>(info.ssi_signo));
    begin_stop(abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(info.ssi_signo), true);
  }
}

void Supervisor::print_banner() const {
  const GatewaySpec& gw = stack_.gateway;
  const std::string url = url_for(gw.listen, "/");
  const std::string admin_url = url_for(gw.admin, "/targets");
  core::log_info(kComponent, "stack is up", {{"stack", stack_.name}, {"url", url}, {"admin", admin_url}});

  std::vector<std::vector<std::string>> rows = {{"NAME", "GROUP", "ZONE", "ADDRESS", "PID", "LOG"}};
  auto add_row = [&](const Member& m) {
    rows.push_back({m.id, m.group.empty() ? "-" : m.group, m.zone.empty() ? "-" : m.zone, m.address,
                    std::to_string(m.handle), m.launch.log_path});
  };
  add_row(*gateway_);
  for (const auto& m : instances_) add_row(*m);
  std::vector<size_t> widths(rows.front().size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }

  std::string out = "\nstack \"" + stack_.name + "\" is up (" + std::to_string(instances_.size()) +
                    " instances in " + std::to_string(stack_.zones.size()) + " zones)\n\n";
  out += "  open   " + url + "\n";
  out += "  admin  " + admin_url + "\n";
  out += "  state  " + state_dir_.string() + "/ (gateway.yaml, logs/)\n\n";
  for (const auto& row : rows) {
    out += "  ";
    for (size_t c = 0; c < row.size(); ++c) {
      out += row[c];
      if (c + 1 < row.size()) out += std::string(widths[c] - row[c].size() + 2, ' ');
    }
    out += "\n";
  }
  out +=
      "\nCrashed instances are restarted. Ctrl-C stops the stack: the gateway first (it drains), then the "
      "instances.\n";
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace

int run_supervisor(const StackSpec& stack, const SupervisorOptions& options) {
  Supervisor supervisor(stack, options);
  return supervisor.run();
}

}  // namespace cumulo::stack::internal
