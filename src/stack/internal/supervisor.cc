#include "stack/internal/supervisor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "core/blocking_pool.h"
#include "core/config.h"
#include "core/event_loop.h"
#include "core/files.h"
#include "core/log.h"
#include "core/net.h"
#include "core/signals.h"
#include "core/text.h"
#include "core/workers.h"
#include "http/client.h"
#include "http/server.h"
#include "net/net.h"
#include "scaling/instance_provider.h"
#include "scaling/scaling.h"
#include "stack/internal/control_api.h"
#include "stack/internal/db_config.h"
#include "stack/internal/eip_config.h"
#include "stack/internal/gateway_admin.h"
#include "stack/internal/gateway_config.h"
#include "stack/internal/network_policy.h"
#include "stack/internal/objstore_config.h"

namespace cumulo::stack::internal {

namespace {

namespace fs = std::filesystem;
using core::Millis;

constexpr Millis kFirstBackoff{1000};
constexpr Millis kMaxBackoff{30'000};
// An instance that ran this long before it died was not crash-looping: its next restart waits kFirstBackoff
// again.
constexpr Millis kStableUptime{30'000};
constexpr Millis kGatewayStartTimeout{10'000};
// Time the gateway gets beyond its own drain timeout before it is killed.
constexpr Millis kGatewayStopSlack{5000};
constexpr Millis kReadyPollInterval{100};
constexpr Millis kTickInterval{100};
constexpr Millis kSampleInterval{1000};
constexpr size_t kRecentPorts = 512;
constexpr size_t kLogTailLines = 20;
constexpr char kComponent[] = "stack";

long as_long(Millis d) {
  return static_cast<long>(d.count());
}

// A process of the stack itself rather than of a group: the gateway, the object-store nodes, the edges, DNS.
// All start before the groups' instances and are restarted when they die (a restarted gateway is then told
// about every instance again).
struct ServiceProcess {
  enum class Kind { kGateway, kInternalLb, kStore, kEdge, kDns, kDatabase, kEipKeeper };
  Kind kind = Kind::kGateway;
  std::string id;       // "gateway", "internal-lb", "objstore-a", "edge-eu", "dns"
  std::string zone;     // "-" when it has none
  std::string address;  // what it serves on
  std::string config_path;
  // When it stops (begin_stop): with the gateway, before everything behind it; between the public groups'
  // instances and the internal groups' (the internal load balancer: the web tier may still proxy through it
  // until its last instance is gone); or after every instance, which may still read from it.
  enum class StopStage { kFront, kBetweenTiers, kLast };
  StopStage stop_stage = StopStage::kFront;
  Millis stop_grace{10'000};
  Millis start_timeout = kGatewayStartTimeout;  // not accepting on every probe by then: the start failed
  struct Probe {
    core::SocketAddress address;
    std::string netns;  // network mode: probed from inside this namespace
  };
  std::vector<Probe> probes;  // accepting connections on all of these means ready
  // Network mode: its admin address, bound on the host's loopback by the supervisor and inherited, so that
  // the admin API stays on the host while the process runs in its namespace.
  std::vector<core::Fd> host_listeners;
  scaling::LaunchSpec launch;
  scaling::InstanceHandle handle = 0;  // 0 while not running
  bool ready = false;
  core::TimePoint started_at{};
  // Restarts after a death wait first_backoff, doubling up to max_backoff while it keeps dying young.
  Millis first_backoff = kFirstBackoff;
  Millis max_backoff = kMaxBackoff;
  Millis backoff = kFirstBackoff;
  int restarts = 0;
  std::unique_ptr<core::Timer> restart_timer;
  bool stop_sent = false;
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
bool accepts_connections(const core::SocketAddress& addr);

bool probe_accepts(const ServiceProcess::Probe& p) {
  if (p.netns.empty()) return accepts_connections(p.address);
  const auto* in = reinterpret_cast<const sockaddr_in*>(&p.address.storage);
  return net::probe_tcp(p.netns, ntohl(in->sin_addr.s_addr), p.address.port(), Millis(300)) ==
         net::Reach::kConnected;
}

bool accepts_connections(const core::SocketAddress& addr) {
  core::Fd fd(::socket(addr.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  return ::connect(fd.get(), addr.sa(), addr.length) == 0;
}

// Asks the kernel for a free loopback port, skipping those to avoid (the stack's own and the ones recently
// given to instances, which may still be shutting down on them).
uint16_t pick_port(const std::set<uint16_t>& avoid) {
  std::vector<core::Fd> held;  // bound until the end, so that the kernel does not offer the same port again
  for (int attempt = 0; attempt < 64; ++attempt) {
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
    if (!avoid.count(local->port())) return local->port();
    held.push_back(std::move(fd));
  }
  throw std::runtime_error("cannot find a free port on 127.0.0.1");
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

class Supervisor {
 public:
  Supervisor(const StackSpec& stack, const SupervisorOptions& options);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  int run();

 private:
  enum class Phase { kStartingServices, kStartingGroups, kRunning, kStopping };

  void prepare_state_dir();
  void check_ports() const;
  void write_token();
  void make_groups();
  scaling::LaunchSpec make_launch(const GroupSpec& group, const std::string& id, const std::string& zone,
                                  uint16_t port);
  ServiceProcess& add_service(ServiceProcess::Kind kind, const std::string& id, const std::string& zone,
                              const std::string& address, const std::vector<std::string>& probe_addresses);
  void setup_network();
  void place_services();
  // Whether a stack-file address can be bound now; in network mode a process's address is in its own fresh
  // namespace, free by construction.
  void check_free(const std::string& address, const std::string& what) const;
  void plan_internal_lb();
  void plan_object_store();
  void plan_edges();
  void plan_dns();
  void plan_database();
  void write_configs() const;
  bool start_service(ServiceProcess& service);
  void poll_services_ready();
  void tick();
  void sample();
  void apply_sample(GatewayView view, GatewayView internal);
  void fail_start(const ServiceProcess& service, const std::string& why);
  void on_exit(scaling::InstanceHandle handle, const scaling::ExitStatus& status);
  void service_died(ServiceProcess& service, const scaling::ExitStatus& status,
                    scaling::InstanceHandle old_handle);
  void restart_service(ServiceProcess& service);
  void stop_services(ServiceProcess::StopStage stage);
  bool services_stopped(ServiceProcess::StopStage stage) const;
  // Stops the groups' instances, the internal groups or the others, once; true when they have all exited.
  bool stop_instances(bool internal);
  // A second stop signal while stopping kills everything at once: the way out of a stuck drain.
  void begin_stop(const std::string& reason, bool from_signal);
  void continue_stop();
  bool all_stopped() const;
  void print_banner() const;
  void status_changed();
  void write_status() const;
  const char* state_name() const;

  StackSpec stack_;
  SupervisorOptions options_;
  fs::path state_dir_;
  core::EventLoop loop_;
  // SIGINT, SIGTERM and SIGHUP, blocked before anything starts, read by core::run_service on loop_; SIGPIPE
  // ignored: a closed stdout (`cumulo up | head`) must not kill the supervisor and orphan the stack.
  const sigset_t signals_ = core::block_signals({SIGINT, SIGTERM, SIGHUP});
  core::Fd lock_fd_;
  std::string token_;
  std::unique_ptr<scaling::InstanceProvider> provider_;
  std::vector<std::unique_ptr<ServiceProcess>> services_;  // the gateway first
  ServiceProcess* gateway_ = nullptr;                      // the first of gateways_
  // One per `gateway.zones` entry (or the lone gateway): its service, its admin client, and the addresses its
  // config names (in network mode with elastic IPs it listens on every address of its namespace, so that a
  // held address reaches it).
  struct GatewayProcess {
    std::string id, zone;
    std::string listen, tls_listen, admin;     // where it is reached (probes, the banner)
    std::string bind_listen, bind_tls_listen;  // what its config says
    ServiceProcess* service = nullptr;
    std::unique_ptr<GatewayAdmin> admin_client;
  };
  std::vector<GatewayProcess> gateways_;
  std::unique_ptr<GatewayFanout> gateway_fanout_;
  ServiceProcess* eip_keeper_ = nullptr;
  void plan_gateways();
  void plan_eip_keeper();
  // "127.0.0.1:PORT" with a free port that no other address of the stack uses (the gateway's, the control
  // API's, those taken before), reserved from now on: an admin API that the stack file leaves to `cumulo up`.
  std::string take_loopback_address();
  ServiceProcess* internal_lb_ = nullptr;  // `internal_lb:`: in front of the internal groups
  scaling::EventLog events_;
  std::set<uint16_t> reserved_ports_;  // the gateway's and the control API's
  std::deque<uint16_t> recent_ports_;
  std::unique_ptr<http::Client> client_;
  std::unique_ptr<GatewayAdmin> internal_lb_admin_;
  std::unique_ptr<HttpProber> prober_;
  std::unique_ptr<HttpProber> internal_prober_;  // network mode: from the internal load balancer's namespace
  // Network mode (docs/network.md): the stack's namespaces, each service's member in it, and the instances'.
  std::unique_ptr<net::Vpc> vpc_;
  std::map<std::string, net::Member> members_;  // by service or instance id
  std::unique_ptr<http::Client> probe_client_;  // connects from the gateway's namespace
  // Connects from the internal load balancer's namespace: the internal groups' health probes (only it may
  // reach them).
  std::unique_ptr<http::Client> internal_probe_client_;
  // `cumulo net check` once the stack is up: the stack is reported running only when every path is as the
  // policy says.
  enum class NetCheck { kNotRun, kRunning, kPassed, kFailed };
  NetCheck net_check_ = NetCheck::kNotRun;
  std::vector<net::CheckRow> net_check_failures_;
  size_t net_check_paths_ = 0;
  std::unique_ptr<core::BlockingPool> check_pool_;
  void start_net_check();
  net::Result<std::string> reload_network();
  std::vector<std::unique_ptr<scaling::ScalingGroup>> groups_;
  std::unique_ptr<http::Server> control_server_;
  ControlContext control_;
  core::Timer ready_timer_;
  core::Timer tick_timer_;
  core::Timer sample_timer_;
  bool sampling_ = false;
  bool status_pending_ = false;
  bool public_groups_stopping_ = false;
  bool internal_groups_stopping_ = false;
  Phase phase_ = Phase::kStartingServices;
  bool stopped_ = false;
  std::string last_start_error_;
  int exit_code_ = 0;
};

Supervisor::Supervisor(const StackSpec& stack, const SupervisorOptions& options)
    : stack_(stack),
      options_(options),
      state_dir_(options.state_dir.empty() ? ".cumulo" : options.state_dir),
      ready_timer_(loop_, [this] { poll_services_ready(); }),
      tick_timer_(loop_, [this] { tick(); }),
      sample_timer_(loop_, [this] { sample(); }) {
  prepare_state_dir();
  check_ports();
  write_token();
  provider_ = scaling::make_process_provider(
      loop_, [this](scaling::InstanceHandle h, const scaling::ExitStatus& s) { on_exit(h, s); });
  client_ = std::make_unique<http::Client>(loop_);
  for (const GatewayInstance& g : gateway_instances(stack_)) {
    GatewayProcess p;
    p.id = g.id;
    p.zone = g.zone;
    p.listen = p.bind_listen = stack_.gateway.listen;
    p.tls_listen = p.bind_tls_listen = stack_.gateway.tls_listen;
    gateways_.push_back(std::move(p));
  }
  if (stack_.network.enabled) {
    setup_network();
  } else {
    core::log_warn(
        kComponent,
        "loopback mode: every process of the stack listens on 127.0.0.1 and can reach every other one "
        "and anything else; nothing is isolated (add a `network:` section for a VPC, docs/network.md)",
        {{"stack", stack_.name}});
  }
  prober_ = std::make_unique<HttpProber>(probe_client_ ? *probe_client_ : *client_);
  if (internal_probe_client_) internal_prober_ = std::make_unique<HttpProber>(*internal_probe_client_);

  plan_gateways();
  plan_internal_lb();
  plan_object_store();
  plan_edges();
  plan_dns();
  plan_database();
  plan_eip_keeper();
  if (vpc_) place_services();
  if (stack_.gateway.access_log != "off" && stack_.gateway.access_log != "-") {
    stack_.gateway.access_log = fs::absolute(stack_.gateway.access_log).string();
  }
  make_groups();

  control_.stack_name = stack_.name;
  control_.token = token_;
  for (auto& g : groups_) control_.groups.push_back(g.get());
  control_.events = &events_;
  control_.now = [this] { return loop_.update_now(); };
  if (vpc_) control_.reload_network = [this] { return reload_network(); };
  control_.after_change = [this] {
    if (phase_ == Phase::kRunning || phase_ == Phase::kStartingGroups) loop_.defer([this] { tick(); });
  };
  http::ServerOptions server_options;
  server_options.listen = *core::SocketAddress::parse(stack_.control.listen);
  server_options.max_body_bytes = 64 * 1024;
  control_server_ = std::make_unique<http::Server>(loop_, server_options,
                                                   [this](http::Request& req, http::Responder respond) {
                                                     respond(handle_control_request(req, control_));
                                                   });
  try {
    control_server_->start();
  } catch (const std::exception& e) {
    throw std::runtime_error(stack_.control.location + ": control.listen: " + e.what());
  }
}

Supervisor::~Supervisor() {
  control_server_.reset();
  // Outstanding requests complete (with an error) while the groups they report to still exist.
  client_.reset();
  probe_client_.reset();
  internal_probe_client_.reset();
  provider_.reset();  // kills and reaps anything still running while the loop is still there
  groups_.clear();
  if (vpc_) {
    vpc_->destroy();  // every namespace of the stack, with its links and rules
    core::log_info(kComponent, "network removed", {{"stack", stack_.name}});
  }
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
  // Instance logs of an earlier run: ids start from 1 again, and a log must tell one run's story.
  for (const auto& entry : fs::directory_iterator(state_dir_ / "logs", ec)) {
    if (entry.path().extension() == ".log") fs::remove(entry.path(), ec);
  }
}

// Found before anything starts, a taken port is one clear message instead of a crash loop.
void Supervisor::check_ports() const {
  const GatewaySpec& gw = stack_.gateway;
  auto check = [](const std::string& address, std::string_view key, const std::string& location) {
    if (std::string why; !core::address_free(*core::SocketAddress::parse(address), &why)) {
      throw std::runtime_error(location + ": " + std::string(key) + ": " + why);
    }
  };
  if (!stack_.network.enabled) check(gw.listen, "gateway.listen", gw.listen_location);
  if (!stack_.network.enabled && !gw.tls_listen.empty())
    check(gw.tls_listen, "gateway.tls.listen", gw.tls_location);
  check(gw.admin, "gateway.admin", gw.admin_location);
}

// The token is readable by the owner only: whoever can read it can change the stack.
void Supervisor::write_token() {
  token_ = random_token();
  const fs::path path = state_dir_ / "api-token";
  core::write_secret_file(path.string(), token_ + "\n");
}

void Supervisor::make_groups() {
  for (const std::string& address : {stack_.gateway.listen, stack_.gateway.admin, stack_.control.listen}) {
    reserved_ports_.insert(core::SocketAddress::parse(address)->port());
  }
  for (const GroupSpec& spec : stack_.groups) {
    scaling::GroupEnvironment env;
    env.zones = stack_.zones;
    env.provider = provider_.get();
    env.registry = spec.internal ? static_cast<scaling::TargetRegistry*>(internal_lb_admin_.get())
                                 : gateway_fanout_.get();
    env.prober = spec.internal && internal_prober_ ? internal_prober_.get() : prober_.get();
    const GroupSpec* group = &spec;
    env.make_launch = [this, group](const std::string& id, const std::string& zone, uint16_t port) {
      return make_launch(*group, id, zone, port);
    };
    env.pick_port = [this] {
      if (vpc_) return stack_.network.instance_port;  // every instance has an address of its own
      std::set<uint16_t> avoid = reserved_ports_;
      avoid.insert(recent_ports_.begin(), recent_ports_.end());
      const uint16_t port = pick_port(avoid);
      recent_ports_.push_back(port);
      if (recent_ports_.size() > kRecentPorts) recent_ports_.pop_front();
      return port;
    };
    env.events = &events_;
    env.on_change = [this] { status_changed(); };
    env.now = [this] { return loop_.update_now(); };
    groups_.push_back(std::make_unique<scaling::ScalingGroup>(spec, std::move(env)));
  }
}

scaling::LaunchSpec Supervisor::make_launch(const GroupSpec& group, const std::string& id,
                                            const std::string& zone, uint16_t port) {
  PlaceholderValues values{std::to_string(port), zone, id, options_.bin_dir};
  values.db_writer = stack_.database.writer;
  values.db_reader = stack_.database.reader;
  if (stack_.internal_lb.enabled) {
    values.internal_lb = probe_address(*core::SocketAddress::parse(stack_.internal_lb.listen)).to_string();
  }
  std::string netns;
  if (vpc_) {
    net::Result<net::Member> member = vpc_->attach(group.name, zone, id);
    if (!member) throw std::runtime_error("cannot give it an address: " + member.error().message);
    values.host = net::ipv4_text(member->address);
    netns = member->ns;
    members_[id] = *member;
  }
  ExpandedCommand cmd = expand_command(group.launch_template, values);
  scaling::LaunchSpec launch;
  launch.netns = netns;
  launch.drop_admin_capabilities = vpc_ != nullptr;
  launch.address = values.host + ":" + std::to_string(port);
  launch.name = id;
  launch.executable = resolve_executable(group, cmd.argv.front());
  launch.argv = std::move(cmd.argv);
  launch.env = std::move(cmd.env);
  launch.log_path = (state_dir_ / "logs" / (id + ".log")).string();
  if (!group.launch_template.working_dir.empty()) {
    launch.working_dir = fs::absolute(group.launch_template.working_dir).string();
  }
  launch.stop_signal = group.launch_template.stop_signal;
  launch.cpu = group.launch_template.cpu;
  launch.memory_bytes = group.launch_template.memory_bytes;
  launch.cgroup = stack_.name + "/" + id;
  return launch;
}

ServiceProcess& Supervisor::add_service(ServiceProcess::Kind kind, const std::string& id,
                                        const std::string& zone, const std::string& address,
                                        const std::vector<std::string>& probe_addresses) {
  auto service = std::make_unique<ServiceProcess>();
  ServiceProcess& s = *service;
  s.kind = kind;
  s.id = id;
  s.zone = zone;
  s.address = address;
  s.config_path = fs::absolute(state_dir_ / (id + ".yaml")).string();
  for (const std::string& a : probe_addresses)
    s.probes.push_back({probe_address(*core::SocketAddress::parse(a)), ""});
  s.launch.name = id;
  s.launch.executable = options_.cumulo_binary;
  const char* command = kind == ServiceProcess::Kind::kStore ? "s3" : "gateway";
  s.launch.argv = {options_.cumulo_binary, command, "-c", s.config_path};
  s.launch.log_path = (state_dir_ / "logs" / (id + ".log")).string();
  s.restart_timer = std::make_unique<core::Timer>(loop_, [this, &s] { restart_service(s); });
  {
    std::ofstream truncate(s.launch.log_path, std::ios::trunc);
    if (!truncate) throw std::runtime_error("cannot write " + s.launch.log_path);
  }
  for (const std::string& a : probe_addresses) reserved_ports_.insert(core::SocketAddress::parse(a)->port());
  services_.push_back(std::move(service));
  return s;
}

void Supervisor::check_free(const std::string& address, const std::string& what) const {
  if (vpc_) return;
  if (std::string why; !core::address_free(*core::SocketAddress::parse(address), &why)) {
    throw std::runtime_error(what + ": " + why);
  }
}

// Network mode: the VPC, and a member (a namespace with its address) for each process of the stack other than
// the instances, which get theirs at launch. The stack's addresses become the members' addresses, so that
// every generated config names where a process really listens.
void Supervisor::setup_network() {
  if (geteuid() != 0) {
    throw std::runtime_error(stack_.network.location +
                             ": network mode makes network namespaces and nftables rules and needs root; run "
                             "`cumulo up` as root, or remove `network:` from " +
                             stack_.source + " for loopback mode");
  }
  for (const auto& [program, package] : {std::pair{"ip", "iproute2"}, std::pair{"nft", "nftables"}}) {
    if (core::find_executable(program).empty()) {
      throw std::runtime_error(stack_.network.location + ": network mode needs `" + program +
                               "`, which is not installed: apt-get install -y " + package);
    }
  }
  net::Result<net::Plan> plan = net::make_plan(network_policy(stack_));
  if (!plan) throw std::runtime_error(plan.error().message);
  net::Result<std::unique_ptr<net::Vpc>> vpc = net::Vpc::create(std::move(*plan));
  if (!vpc) throw std::runtime_error("cannot make the stack's network: " + vpc.error().message);
  vpc_ = std::move(*vpc);
  auto attach = [&](const std::string& group, const std::string& zone, const std::string& id) {
    net::Result<net::Member> m = vpc_->attach(group, zone, id);
    if (!m) throw std::runtime_error("cannot attach " + id + " to the stack's network: " + m.error().message);
    members_[id] = *m;
    return net::ipv4_text(m->address);
  };
  auto with_host = [](const std::string& host, const std::string& address) {
    return host + ":" + std::to_string(core::SocketAddress::parse(address)->port());
  };
  // Gateways in their zones' public subnets. With elastic IPs each listens on every address of its namespace:
  // its own, and a held elastic IP, which the keeper adds and removes.
  GatewaySpec& gw = stack_.gateway;
  const bool any_address = !stack_.elastic_ips.empty();
  for (GatewayProcess& g : gateways_) {
    const std::string zone = !g.zone.empty() ? g.zone : gw.zone.empty() ? stack_.zones.front() : gw.zone;
    const std::string host = attach(kGatewayGroup, zone, g.id);
    g.listen = with_host(host, gw.listen);
    g.bind_listen = any_address ? with_host("0.0.0.0", gw.listen) : g.listen;
    if (!gw.tls_listen.empty()) {
      g.tls_listen = with_host(host, gw.tls_listen);
      g.bind_tls_listen = any_address ? with_host("0.0.0.0", gw.tls_listen) : g.tls_listen;
    }
  }
  gw.listen = gateways_.front().listen;
  gw.tls_listen = gateways_.front().tls_listen;
  for (EdgeSpec& edge : stack_.edges) {
    edge.listen = with_host(attach(kEdgeGroup, stack_.zones.front(), "edge-" + edge.name), edge.listen);
  }
  for (StoreNodeSpec& node : stack_.object_store.nodes) {
    const std::string host = attach(kStoreGroup, node.zone, "objstore-" + node.zone);
    node.listen =
        node.listen.empty() ? host + ":" + std::to_string(kDefaultStorePort) : with_host(host, node.listen);
  }
  if (stack_.internal_lb.enabled) {
    InternalLbSpec& lb = stack_.internal_lb;
    lb.listen = with_host(attach(kInternalLbGroup, lb.zone, "internal-lb"), lb.listen);
  }
  if (stack_.dns.enabled) {
    stack_.dns.listen = with_host(attach(kDnsGroup, stack_.zones.front(), "dns"), stack_.dns.listen);
  }
  if (stack_.database.enabled) {
    DatabaseSpec& db = stack_.database;
    const std::string host = attach(kDatabaseGroup, db.primary_zone, "db");
    db.writer = with_host(host, db.writer);
    db.reader = with_host(host, db.reader);
    db.endpoints_address = host;
    // Each server in its zone's private subnet; the manager starts it in its namespace.
    for (DatabaseInstancePlan& i : db.instances) {
      i.address = attach(kDatabaseServerGroup, i.zone, i.name);
      i.netns = members_.at(i.name).ns;
      i.port = kDatabaseServerPort;
    }
  }
  // The supervisor's own checks of new instances (before they join their load balancer) open their sockets in
  // the namespace of the gateway, or of the internal load balancer for internal groups, so that they pass the
  // same rules as that load balancer's checks.
  auto client_from = [this](const std::string& member) {
    net::Result<net::ConnectFunction> connect = net::connect_from(members_.at(member).ns);
    if (!connect) throw std::runtime_error(connect.error().message);
    http::ClientOptions options;
    options.connect = std::move(*connect);
    return std::make_unique<http::Client>(loop_, options);
  };
  probe_client_ = client_from(gateways_.front().id);
  if (stack_.internal_lb.enabled) internal_probe_client_ = client_from("internal-lb");
  core::log_info(
      kComponent, "network made",
      {{"stack", stack_.name},
       {"cidr", stack_.network.cidr},
       {"router", vpc_->plan().router_ns},
       {"outside", vpc_->plan().outside_ns + " at " + net::ipv4_text(vpc_->plan().outside_address)},
       {"members", static_cast<long>(members_.size())}});
}

// Each service runs in its member's namespace; what it serves there is probed from inside it, and its admin
// API (a loopback address) is bound here on the host and handed to it.
void Supervisor::place_services() {
  for (auto& sp : services_) {
    ServiceProcess& s = *sp;
    auto it = members_.find(s.id);
    if (it == members_.end()) continue;
    s.launch.netns = it->second.ns;
    for (ServiceProcess::Probe& p : s.probes) {
      const std::string host = p.address.host();
      if (host.rfind("127.", 0) == 0 || host == "::1") {
        s.host_listeners.push_back(core::listen_tcp_for_child(p.address));
        s.launch.inherit_fds.push_back(s.host_listeners.back().get());
      } else {
        p.netns = s.launch.netns;
      }
    }
  }
}

std::string Supervisor::take_loopback_address() {
  std::set<uint16_t> avoid = reserved_ports_;
  avoid.insert(core::SocketAddress::parse(stack_.gateway.listen)->port());
  avoid.insert(core::SocketAddress::parse(stack_.control.listen)->port());
  const uint16_t port = pick_port(avoid);
  reserved_ports_.insert(port);
  return "127.0.0.1:" + std::to_string(port);
}

// The gateways: the first takes gateway.admin, the others a free loopback port each; all register the same
// instances (GatewayFanout).
void Supervisor::plan_gateways() {
  const GatewaySpec& gw = stack_.gateway;
  std::vector<GatewayAdmin*> admins;
  for (GatewayProcess& g : gateways_) {
    if (&g == &gateways_.front()) {
      g.admin = gw.admin;
    } else {
      g.admin = take_loopback_address();
    }
    std::vector<std::string> probes = {g.listen, g.admin};
    if (!g.tls_listen.empty()) probes.push_back(g.tls_listen);
    g.service =
        &add_service(ServiceProcess::Kind::kGateway, g.id, g.zone.empty() ? "-" : g.zone, g.listen, probes);
    g.service->stop_grace = gw.drain_timeout + kGatewayStopSlack;
    g.admin_client = std::make_unique<GatewayAdmin>(*client_, *core::SocketAddress::parse(g.admin));
    admins.push_back(g.admin_client.get());
  }
  gateway_ = gateways_.front().service;
  gateway_fanout_ = std::make_unique<GatewayFanout>(std::move(admins));
}

// `elastic_ips:` the keeper (`cumulo eip run`) on the host: it enters the gateways' and the router's
// namespaces to move the addresses. A process of its own, so that its death leaves every address where it is.
void Supervisor::plan_eip_keeper() {
  if (stack_.elastic_ips.empty()) return;
  const std::string admin = take_loopback_address();
  ServiceProcess& s = add_service(ServiceProcess::Kind::kEipKeeper, "eip-keeper", "-", admin, {admin});
  s.launch.argv = {options_.cumulo_binary, "eip", "run", "-c", s.config_path};
  // While it is down nothing moves: back at once, and never later than 500 ms however often it dies (it holds
  // nothing, so a fast restart costs nothing; a crash loop costs two starts a second).
  s.first_backoff = s.backoff = Millis(100);
  s.max_backoff = Millis(500);
  eip_keeper_ = &s;
}

// `internal_lb:` a second gateway with its own config, started, probed and restarted as the public one is; it
// stops between the tiers: after the public groups' instances, which may proxy through it until they are
// gone, and before the internal groups' instances, which answer what it drains.
void Supervisor::plan_internal_lb() {
  InternalLbSpec& lb = stack_.internal_lb;
  if (!lb.enabled) return;
  check_free(lb.listen, lb.listen_location + ": internal_lb.listen");
  if (lb.admin.empty()) {
    lb.admin = take_loopback_address();
  } else if (std::string why; !core::address_free(*core::SocketAddress::parse(lb.admin), &why)) {
    throw std::runtime_error(lb.location + ": internal_lb.admin: " + why);
  }
  internal_lb_ = &add_service(ServiceProcess::Kind::kInternalLb, "internal-lb", lb.zone, lb.listen,
                              {lb.listen, lb.admin});
  internal_lb_->stop_grace = stack_.gateway.drain_timeout + kGatewayStopSlack;
  internal_lb_->stop_stage = ServiceProcess::StopStage::kBetweenTiers;
  internal_lb_admin_ = std::make_unique<GatewayAdmin>(*client_, *core::SocketAddress::parse(lb.admin));
}

// One node per zone; ports the stack file leaves open are taken now, so that every node's config can name the
// others as its replication peers.
void Supervisor::plan_object_store() {
  ObjectStoreSpec& store = stack_.object_store;
  if (!store.enabled) return;
  prepare_store_secrets(store, state_dir_.string());
  for (StoreNodeSpec& node : store.nodes) {
    if (!node.listen.empty()) {
      check_free(node.listen, store.location + ": object_store.listen." + node.zone);
    } else {
      std::set<uint16_t> avoid = reserved_ports_;
      avoid.insert(core::SocketAddress::parse(stack_.gateway.listen)->port());
      avoid.insert(core::SocketAddress::parse(stack_.gateway.admin)->port());
      avoid.insert(core::SocketAddress::parse(stack_.control.listen)->port());
      node.listen = "127.0.0.1:" + std::to_string(pick_port(avoid));
    }
    ServiceProcess& s = add_service(ServiceProcess::Kind::kStore, "objstore-" + node.zone, node.zone,
                                    node.listen, {node.listen});
    s.stop_stage = ServiceProcess::StopStage::kLast;
  }
}

void Supervisor::plan_edges() {
  for (EdgeSpec& edge : stack_.edges) {
    check_free(edge.listen, edge.location + ": edge " + edge.name + ": listen");
    if (edge.admin.empty()) edge.admin = take_loopback_address();
    add_service(ServiceProcess::Kind::kEdge, "edge-" + edge.name, "-", edge.listen,
                {edge.listen, edge.admin});
  }
}

// `cumulo dns` with the stack file's DNS configuration as it is; the supervisor adds the listen and admin
// addresses and the gateway's address for ALIAS records with `gateway: true`.
void Supervisor::plan_dns() {
  DnsSpec& dns = stack_.dns;
  if (!dns.enabled) return;
  check_free(dns.listen, dns.location + ": dns.listen");
  if (dns.admin.empty()) dns.admin = take_loopback_address();
  ServiceProcess& s =
      add_service(ServiceProcess::Kind::kDns, "dns", "-", dns.listen, {dns.listen, dns.admin});
  s.config_path = dns.config;
  s.launch.argv = {options_.cumulo_binary,
                   "dns",
                   "-c",
                   dns.config,
                   "--listen",
                   dns.listen,
                   "--admin",
                   dns.admin,
                   "--gateway-address",
                   probe_address(*core::SocketAddress::parse(stack_.gateway.listen)).host()};
  for (const ElasticIpSpec& e : stack_.elastic_ips) {
    s.launch.argv.push_back("--elastic-ip");
    s.launch.argv.push_back(e.name + "=" + e.address);
  }
}

// `database:` one `cumulo db run` with every MariaDB instance of the stack; ready once both endpoints accept,
// which they do only when the primary serves and the replicas replicate.
void Supervisor::plan_database() {
  DatabaseSpec& db = stack_.database;
  if (!db.enabled) return;
  for (const auto& [what, address] : {std::pair{"writer", db.writer}, std::pair{"reader", db.reader}}) {
    check_free(address, db.location + ": database." + what);
  }
  prepare_database_secret(db, state_dir_.string());
  std::set<uint16_t> avoid = reserved_ports_;
  avoid.insert(core::SocketAddress::parse(stack_.control.listen)->port());
  avoid.insert(core::SocketAddress::parse(db.writer)->port());
  avoid.insert(core::SocketAddress::parse(db.reader)->port());
  auto take = [&] {
    uint16_t p = pick_port(avoid);
    avoid.insert(p);
    return p;
  };
  if (db.admin.empty()) db.admin = "127.0.0.1:" + std::to_string(take());
  for (DatabaseInstancePlan& i : db.instances) {
    if (!i.netns.empty()) continue;  // network mode: its own address, kDatabaseServerPort
    i.port = take();
    reserved_ports_.insert(i.port);
  }
  ServiceProcess& s = add_service(ServiceProcess::Kind::kDatabase, "db", db.primary_zone, db.writer,
                                  {db.writer, db.reader, db.admin});
  s.launch.argv = {options_.cumulo_binary, "db", "run", "-c", s.config_path};
  s.stop_stage = ServiceProcess::StopStage::kLast;
  s.stop_grace = Millis(60'000);
  s.start_timeout = Millis(90'000);
}

// Each written aside and renamed, so a process reloading one never reads half a file.
void Supervisor::write_configs() const {
  // Network mode: each file says where its process runs and why its admin address is a host one.
  auto placed = [this](const std::string& id, std::string yaml) {
    auto it = members_.find(id);
    if (it == members_.end()) return yaml;
    const net::Member& m = it->second;
    return "# Network mode (docs/network.md): runs in network namespace " + m.ns + " at " +
           net::ipv4_text(m.address) + ", security group " + m.group + ", zone " + m.zone +
           ". Its admin API, if any, is\n# bound on the host's loopback by `cumulo up` and handed to it; no "
           "namespace reaches it.\n" +
           yaml;
  };
  // No targets: instances join through the admin API once they pass their health check.
  for (const GatewayProcess& g : gateways_) {
    StackSpec one = stack_;
    one.gateway.listen = g.bind_listen;
    one.gateway.tls_listen = g.bind_tls_listen;
    one.gateway.admin = g.admin;
    if (!g.zone.empty()) one.gateway.zone = g.zone;
    if (gateways_.size() > 1 || eip_keeper_ != nullptr) {
      one.gateway.server_id = g.id;
      one.gateway.monitor_uri = kGatewayMonitorUri;
    }
    core::write_file_atomically(g.service->config_path, placed(g.id, render_gateway_config(one, {})));
  }
  if (eip_keeper_) {
    std::vector<KeeperGateway> keeper_gateways;
    for (const GatewayProcess& g : gateways_) {
      const net::Member& m = members_.at(g.id);
      keeper_gateways.push_back(
          {g.id, m.ns, m.address, core::SocketAddress::parse(g.listen)->port(), m.router_interface, g.admin});
    }
    core::write_file_atomically(
        eip_keeper_->config_path,
        render_eip_keeper_config(stack_, keeper_gateways, vpc_->plan().router_ns, eip_keeper_->address,
                                 fs::absolute(state_dir_ / "eips.json").string()));
  }
  if (internal_lb_) {
    core::write_file_atomically(internal_lb_->config_path,
                                placed(internal_lb_->id, render_internal_lb_config(stack_, {})));
  }
  for (const StoreNodeSpec& node : stack_.object_store.nodes) {
    const ServiceProcess& s = **std::find_if(services_.begin(), services_.end(),
                                             [&](const auto& x) { return x->id == "objstore-" + node.zone; });
    StoreFiles files{fs::absolute(state_dir_ / "objstore" / node.zone).string(),
                     stack_.object_store.master_key_file};
    core::write_file_atomically(s.config_path, placed(s.id, render_store_config(stack_, node, files)));
  }
  if (stack_.database.enabled) {
    core::write_file_atomically(
        fs::absolute(state_dir_ / "db.yaml").string(),
        placed("db", render_db_config(stack_.database, fs::absolute(state_dir_ / "db").string())));
  }
  // Edges fetch from the first elastic IP when there is one: whichever gateway holds it.
  StackSpec for_edges = stack_;
  if (!stack_.elastic_ips.empty())
    for_edges.gateway.listen = stack_.elastic_ips.front().address + ":" +
                               std::to_string(core::SocketAddress::parse(stack_.gateway.listen)->port());
  for (const EdgeSpec& edge : stack_.edges) {
    core::write_file_atomically(fs::absolute(state_dir_ / ("edge-" + edge.name + ".yaml")).string(),
                                placed("edge-" + edge.name, render_edge_config(for_edges, edge)));
  }
}

int Supervisor::run() {
  long initial = 0;
  for (const GroupSpec& g : stack_.groups) initial += g.desired;
  core::log_info(kComponent, "starting stack",
                 {{"stack", stack_.name},
                  {"file", stack_.source},
                  {"instances", initial},
                  {"services", static_cast<long>(services_.size())},
                  {"control", stack_.control.listen},
                  {"state_dir", state_dir_.string()}});
  try {
    write_configs();
  } catch (const std::exception& e) {
    fail_start(*gateway_, e.what());
  }
  for (auto& s : services_) {
    if (phase_ == Phase::kStopping) break;
    if (!start_service(*s)) fail_start(*s, "could not be started: " + last_start_error_);
  }
  if (phase_ != Phase::kStopping) ready_timer_.arm(Millis(0));
  write_status();
  // The core's service life, with a supervisor's drain: the first stop signal (SIGHUP too: the terminal went
  // away) stops the processes in order and the loop ends once the last is gone (each has its own grace
  // period, so there is no overall limit); a second one kills what is left, and the loop still ends only once
  // every exit is reaped and logged.
  core::ServiceLife life;
  life.component = kComponent;
  life.stopping = "stopping the stack in order";
  life.drain_limit = Millis(0);
  life.hangup_stops = true;
  life.begin_drain = [this] { begin_stop("stop signal", true); };
  life.force_stop = [this] { begin_stop("second stop signal", true); };
  life.idle = [this] { return stopped_; };
  if (phase_ != Phase::kStopping || !stopped_) core::run_service(loop_, signals_, life);
  return exit_code_;
}

bool Supervisor::start_service(ServiceProcess& s) {
  try {
    s.handle = provider_->start(s.launch);
  } catch (const std::exception& e) {
    last_start_error_ = e.what();
    return false;
  }
  s.started_at = loop_.update_now();
  s.ready = false;
  s.stop_sent = false;
  core::log_info(kComponent, s.id + " started",
                 {{"pid", static_cast<long>(s.handle)}, {"address", s.address}, {"restarts", s.restarts}});
  status_changed();
  return true;
}

void Supervisor::poll_services_ready() {
  if (phase_ == Phase::kStopping) return;
  const core::TimePoint now = loop_.update_now();
  bool all_ready = true;
  for (auto& sp : services_) {
    ServiceProcess& s = *sp;
    if (s.ready) continue;
    if (s.handle == 0) {
      all_ready = false;
      continue;
    }
    if (std::all_of(s.probes.begin(), s.probes.end(), probe_accepts)) {
      s.ready = true;
      core::log_info(kComponent, s.id + " ready",
                     {{"pid", static_cast<long>(s.handle)},
                      {"after_ms", as_long(std::chrono::duration_cast<Millis>(now - s.started_at))}});
      if (phase_ != Phase::kStartingServices &&
          (s.kind == ServiceProcess::Kind::kGateway || s.kind == ServiceProcess::Kind::kInternalLb)) {
        // A restarted gateway knows only its config file, which names no instance.
        const bool internal = s.kind == ServiceProcess::Kind::kInternalLb;
        for (auto& g : groups_) {
          if (g->spec().internal == internal) g->reregister_all();
        }
        if (!tick_timer_.armed()) tick_timer_.arm(Millis(0));
      }
      status_changed();
      continue;
    }
    all_ready = false;
    if (now - s.started_at >= s.start_timeout) {
      std::string why = "does not accept connections on";
      for (const auto& p : s.probes)
        why += " " + p.address.to_string() + (p.netns.empty() ? "" : " (in " + p.netns + ")");
      why += " after " + core::format_duration(s.start_timeout);
      if (phase_ == Phase::kStartingServices) {
        fail_start(s, why);
        return;
      }
      core::log_warn(kComponent, "restarted " + s.id + " is not ready",
                     {{"reason", why}, {"log", s.launch.log_path}});
      s.started_at = now;  // say it again only after another timeout
    }
  }
  if (all_ready && phase_ == Phase::kStartingServices) {
    phase_ = Phase::kStartingGroups;
    tick_timer_.arm(Millis(0));
    sample_timer_.arm(kSampleInterval);
    status_changed();
    return;
  }
  if (!all_ready) ready_timer_.arm(kReadyPollInterval);
}

void Supervisor::tick() {
  if (phase_ != Phase::kStartingGroups && phase_ != Phase::kRunning) return;
  const core::TimePoint now = loop_.update_now();
  for (auto& g : groups_) g->tick(now);
  if (phase_ == Phase::kStartingGroups &&
      std::all_of(groups_.begin(), groups_.end(), [](const auto& g) { return g->settled(); })) {
    phase_ = Phase::kRunning;
    status_changed();
    print_banner();
    if (vpc_) start_net_check();
  }
  if (!tick_timer_.armed()) tick_timer_.arm(kTickInterval);
}

// Every second: what each instance uses, and how the gateway sees the targets and what they served.
void Supervisor::sample() {
  if (phase_ != Phase::kStartingGroups && phase_ != Phase::kRunning) return;
  sample_timer_.arm(kSampleInterval);
  if (sampling_) return;  // the gateway has not answered the last round yet
  sampling_ = true;
  gateway_fanout_->read_view([this](GatewayView view) {
    // Stopping (or the client going away with the supervisor): no second round trip.
    if (!internal_lb_admin_ || (phase_ != Phase::kStartingGroups && phase_ != Phase::kRunning)) {
      return apply_sample(std::move(view), {});
    }
    internal_lb_admin_->read_view([this, view = std::move(view)](GatewayView internal) mutable {
      apply_sample(std::move(view), std::move(internal));
    });
  });
}

// The public groups as the gateway sees them, the internal ones as the internal load balancer does.
void Supervisor::apply_sample(GatewayView view, GatewayView internal) {
  sampling_ = false;
  if (phase_ != Phase::kStartingGroups && phase_ != Phase::kRunning) return;
  const core::TimePoint now = loop_.update_now();
  for (auto& g : groups_) {
    scaling::MetricsSample s;
    for (const scaling::InstanceView& i : g->instances()) {
      if (i.pid == 0) continue;
      if (auto p = provider_->sample(i.pid)) s.processes[i.pid] = *p;
    }
    const std::string& name = g->spec().name;
    const bool is_internal = g->spec().internal;
    const GatewayView& from = is_internal ? internal : view;
    const ServiceProcess* balancer = is_internal ? internal_lb_ : gateway_;
    s.gateway_targets_read = from.targets_read && balancer != nullptr && balancer->ready;
    if (auto it = from.targets.find(name); it != from.targets.end()) s.targets = it->second;
    s.gateway_stats_read = from.stats_read;
    if (auto it = from.stats.find(name); it != from.stats.end()) s.stats = it->second;
    g->sample(now, s);
  }
  tick();
}

void Supervisor::fail_start(const ServiceProcess& service, const std::string& why) {
  const std::string& log = service.launch.log_path;
  core::log_error(kComponent, "start-up failed", {{"instance", service.id}, {"reason", why}, {"log", log}});
  std::string tail = log_tail(log, kLogTailLines);
  std::string msg = "cumulo up: " + service.id + " " + why + "\n";
  if (tail.empty()) {
    msg += "  (its log " + log + " is empty)\n";
  } else {
    msg += "  last lines of " + log + ":\n";
    std::istringstream lines(tail);
    for (std::string line; std::getline(lines, line);) msg += "  | " + line + "\n";
  }
  std::fputs(msg.c_str(), stderr);
  std::fflush(stderr);
  exit_code_ = 1;
  begin_stop("start-up failed", false);
}

void Supervisor::on_exit(scaling::InstanceHandle handle, const scaling::ExitStatus& status) {
  const core::TimePoint now = loop_.update_now();
  for (auto& sp : services_) {
    ServiceProcess& s = *sp;
    if (handle != s.handle) continue;
    s.handle = 0;
    s.ready = false;
    switch (phase_) {
      case Phase::kStartingServices:
        fail_start(s, "exited during start-up (" + status.describe() + ")");
        break;
      case Phase::kStartingGroups:
      case Phase::kRunning:
        service_died(s, status, handle);
        break;
      case Phase::kStopping:
        core::log_info(kComponent, s.id + " stopped",
                       {{"pid", static_cast<long>(handle)}, {"status", status.describe()}});
        continue_stop();
        break;
    }
    status_changed();
    return;
  }
  std::string instance_id;
  for (auto& g : groups_) {
    for (const scaling::InstanceView& i : g->instances()) {
      if (i.pid == handle) instance_id = i.id;
    }
    if (g->on_exit(handle, status, now)) break;
  }
  if (vpc_ && members_.count(instance_id)) {
    if (net::Result<void> r = vpc_->detach(instance_id); !r) {
      core::log_warn(kComponent, "cannot remove an instance's namespace",
                     {{"instance", instance_id}, {"error", r.error().message}});
    }
    members_.erase(instance_id);
  }
  if (phase_ == Phase::kStopping) {
    continue_stop();
  } else if (phase_ == Phase::kStartingGroups || phase_ == Phase::kRunning) {
    loop_.defer([this] { tick(); });  // a replacement now, not at the next tick
  }
}

void Supervisor::service_died(ServiceProcess& s, const scaling::ExitStatus& status,
                              scaling::InstanceHandle old_handle) {
  const Millis uptime = std::chrono::duration_cast<Millis>(loop_.update_now() - s.started_at);
  if (uptime >= kStableUptime) s.backoff = s.first_backoff;
  core::log_warn(kComponent, s.id + " died; restarting it",
                 {{"pid", static_cast<long>(old_handle)},
                  {"status", status.describe()},
                  {"uptime_ms", as_long(uptime)},
                  {"restart_in_ms", as_long(s.backoff)},
                  {"log", s.launch.log_path}});
  events_.add(s.id,
              s.id + " " + status.describe() + " -> restarting it in " + core::format_duration(s.backoff));
  s.restart_timer->arm(s.backoff);
  s.backoff = std::min(s.backoff * 2, s.max_backoff);
}

void Supervisor::restart_service(ServiceProcess& s) {
  if (phase_ == Phase::kStopping) return;
  ++s.restarts;
  if (!start_service(s)) {
    core::log_error(kComponent, s.id + " restart failed",
                    {{"reason", last_start_error_}, {"retry_in_ms", as_long(s.backoff)}});
    s.restart_timer->arm(s.backoff);
    s.backoff = std::min(s.backoff * 2, s.max_backoff);
    return;
  }
  if (!ready_timer_.armed()) ready_timer_.arm(kReadyPollInterval);
}

void Supervisor::begin_stop(const std::string& reason, bool from_signal) {
  if (phase_ == Phase::kStopping) {
    if (!from_signal) return;
    core::log_warn(kComponent, "stopping already; killing everything now", {{"reason", reason}});
    for (auto& s : services_) {
      if (s->handle != 0) provider_->kill(s->handle);
    }
    for (auto& g : groups_) {
      for (const scaling::InstanceView& i : g->instances()) {
        if (i.pid != 0) provider_->kill(i.pid);
      }
    }
    return;
  }
  phase_ = Phase::kStopping;
  ready_timer_.cancel();
  tick_timer_.cancel();
  sample_timer_.cancel();
  for (auto& s : services_) s->restart_timer->cancel();
  core::log_info(kComponent, "stopping stack", {{"stack", stack_.name}, {"reason", reason}});
  status_changed();
  // The gateway and the edges go first: they drain in-flight requests while the instances (and the object
  // store) behind them can still answer them. The tiers then stop from the front back: the public groups, the
  // internal load balancer, the internal groups.
  stop_services(ServiceProcess::StopStage::kFront);
  continue_stop();
}

void Supervisor::stop_services(ServiceProcess::StopStage stage) {
  for (auto& sp : services_) {
    ServiceProcess& s = *sp;
    if (s.stop_stage != stage || s.handle == 0 || s.stop_sent) continue;
    s.stop_sent = true;
    core::log_info(kComponent, "stopping " + s.id,
                   {{"pid", static_cast<long>(s.handle)}, {"grace_ms", as_long(s.stop_grace)}});
    provider_->stop(s.handle, s.stop_grace);
  }
}

bool Supervisor::services_stopped(ServiceProcess::StopStage stage) const {
  return std::none_of(services_.begin(), services_.end(),
                      [&](const auto& s) { return s->stop_stage == stage && s->handle != 0; });
}

bool Supervisor::all_stopped() const {
  for (auto stage : {ServiceProcess::StopStage::kFront, ServiceProcess::StopStage::kBetweenTiers,
                     ServiceProcess::StopStage::kLast}) {
    if (!services_stopped(stage)) return false;
  }
  for (const auto& g : groups_) {
    for (const scaling::InstanceView& i : g->instances()) {
      if (i.pid != 0) return false;
    }
  }
  return true;
}

bool Supervisor::stop_instances(bool internal) {
  bool& stopping = internal ? internal_groups_stopping_ : public_groups_stopping_;
  if (!stopping) {
    stopping = true;
    long count = 0;
    for (auto& g : groups_) {
      if (g->spec().internal != internal) continue;
      for (const scaling::InstanceView& i : g->instances()) count += i.pid != 0;
      g->stop_all();
    }
    if (count > 0) {
      core::log_info(kComponent, internal ? "stopping the internal groups' instances" : "stopping instances",
                     {{"count", count}});
    }
  }
  // By the groups, not the provider: an exit the provider has seen but not yet reported is still to be
  // logged.
  bool gone = true;
  for (const auto& g : groups_) {
    if (g->spec().internal != internal) continue;
    for (const scaling::InstanceView& i : g->instances()) gone &= i.pid == 0;
  }
  return gone;
}

void Supervisor::continue_stop() {
  using Stage = ServiceProcess::StopStage;
  if (!services_stopped(Stage::kFront)) return;
  if (!stop_instances(false)) return;
  stop_services(Stage::kBetweenTiers);
  if (!services_stopped(Stage::kBetweenTiers)) return;
  if (!stop_instances(true)) return;
  stop_services(Stage::kLast);
  if (!stopped_ && all_stopped()) {
    stopped_ = true;
    write_status();
    core::log_info(kComponent, "stack stopped", {{"stack", stack_.name}, {"exit_code", exit_code_}});
    loop_.stop();
  }
}

// The stack file read again: its security groups become the router's ruleset in one transaction (established
// connections stay up), and the check runs again. What would move a member (addresses, subnets, groups and
// their max) needs a restart and is refused by Vpc::reload with nothing changed.
net::Result<std::string> Supervisor::reload_network() {
  StackSpec fresh;
  try {
    fresh = load_stack_file(stack_.source);
  } catch (const std::exception& e) {
    return core::Err(core::Error{"config", std::string("the stack file is not valid: ") + e.what()});
  }
  if (!fresh.network.enabled) {
    return core::Err(core::Error{"config",
                                 "the stack file has no `network:` section any more; leaving network "
                                 "mode needs a restart"});
  }
  // The running stack's addresses, with the file's new rules.
  StackSpec next = stack_;
  next.network = fresh.network;
  net::Result<net::Plan> plan = net::make_plan(network_policy(next));
  if (!plan) return core::Err(plan.error());
  if (net::Result<void> r = vpc_->reload(std::move(*plan)); !r) return core::Err(r.error());
  stack_.network = fresh.network;
  core::log_info(kComponent, "network rules reloaded", {{"stack", stack_.name}, {"file", stack_.source}});
  if (phase_ == Phase::kRunning && net_check_ != NetCheck::kRunning) start_net_check();
  return std::string("network rules of stack " + stack_.name + " reloaded from " + stack_.source +
                     "; checking every path again (cumulo status shows the result)");
}

void Supervisor::start_net_check() {
  net_check_ = NetCheck::kRunning;
  check_pool_ = std::make_unique<core::BlockingPool>(1, "net-check");
  std::vector<net::Member> members = vpc_->members();
  check_pool_->submit(
      loop_,
      [plan = vpc_->plan(), stack = stack_, members] { return check_stack_network(plan, stack, members); },
      [this](std::vector<net::CheckRow> rows) {
        net_check_paths_ = rows.size();
        net_check_failures_.clear();
        for (const net::CheckRow& r : rows)
          if (!r.ok) net_check_failures_.push_back(r);
        net_check_ = net_check_failures_.empty() ? NetCheck::kPassed : NetCheck::kFailed;
        if (net_check_ == NetCheck::kPassed) {
          core::log_info(kComponent, "network check passed: every path is as the policy says",
                         {{"paths", static_cast<long>(net_check_paths_)}});
        } else {
          core::log_error(kComponent,
                          "network check failed: paths differ from the policy; the stack is unhealthy",
                          {{"paths", static_cast<long>(net_check_paths_)},
                           {"differ", static_cast<long>(net_check_failures_.size())},
                           {"matrix", net::render_matrix(net_check_failures_)}});
        }
        status_changed();
      });
}

const char* Supervisor::state_name() const {
  switch (phase_) {
    case Phase::kStartingServices:
    case Phase::kStartingGroups:
      return "starting";
    case Phase::kRunning:
      if (net_check_ == NetCheck::kRunning) return "starting";
      if (net_check_ == NetCheck::kFailed) return "unhealthy";
      return "running";
    case Phase::kStopping:
      return stopped_ ? "stopped" : "stopping";
  }
  return "?";
}

// Many changes come in one burst (a scale-out launches several instances): one write after the burst.
void Supervisor::status_changed() {
  if (status_pending_) return;
  status_pending_ = true;
  loop_.defer([this] {
    status_pending_ = false;
    write_status();
  });
}

// STATE_DIR/stack.json: what runs where, for people and scripts (which PID to look at, where the control API
// is).
void Supervisor::write_status() const {
  nlohmann::json doc = {{"stack", stack_.name},
                        {"state", state_name()},
                        {"pid", static_cast<long>(getpid())},
                        {"url", url_for(stack_.gateway.listen, "/")},
                        {"admin", url_for(stack_.gateway.admin, "/")}};
  doc["gateway"] = {{"id", gateway_->id},
                    {"pid", gateway_->handle},
                    {"address", stack_.gateway.listen},
                    {"admin", stack_.gateway.admin},
                    {"restarts", gateway_->restarts},
                    {"log", gateway_->launch.log_path}};
  doc["gateways"] = nlohmann::json::array();
  for (const GatewayProcess& g : gateways_) {
    doc["gateways"].push_back({{"id", g.id},
                               {"zone", g.zone},
                               {"pid", g.service->handle},
                               {"address", g.listen},
                               {"admin", g.admin},
                               {"restarts", g.service->restarts}});
  }
  if (eip_keeper_) {
    nlohmann::json eips = nlohmann::json::array();
    for (const ElasticIpSpec& e : stack_.elastic_ips)
      eips.push_back({{"name", e.name}, {"address", e.address}, {"gateways", e.gateways}});
    doc["elastic_ips"] = {{"keeper",
                           {{"pid", eip_keeper_->handle},
                            {"admin", eip_keeper_->address},
                            {"config", eip_keeper_->config_path},
                            {"state_file", (state_dir_ / "eips.json").string()}}},
                          {"addresses", eips}};
  }
  if (internal_lb_) {
    doc["internal_lb"] = {{"id", internal_lb_->id},
                          {"pid", internal_lb_->handle},
                          {"address", stack_.internal_lb.listen},
                          {"admin", stack_.internal_lb.admin},
                          {"from", stack_.internal_lb.from},
                          {"restarts", internal_lb_->restarts}};
  }
  doc["services"] = nlohmann::json::array();
  for (const auto& sp : services_) {
    doc["services"].push_back({{"id", sp->id},
                               {"zone", sp->zone},
                               {"address", sp->address},
                               {"pid", sp->handle},
                               {"ready", sp->ready},
                               {"restarts", sp->restarts},
                               {"config", sp->config_path},
                               {"log", sp->launch.log_path}});
  }
  if (stack_.object_store.enabled) {
    nlohmann::json users = nlohmann::json::array();
    for (const S3UserSpec& u : stack_.object_store.users)
      users.push_back({{"name", u.name}, {"access_key", u.access_key}});
    doc["object_store"] = {
        {"users", users},
        {"credentials_file", fs::absolute(state_dir_ / "objstore" / "credentials").string()}};
  }
  if (stack_.database.enabled) {
    nlohmann::json instances = nlohmann::json::array();
    for (const DatabaseInstancePlan& i : stack_.database.instances) {
      nlohmann::json one = {{"name", i.name}, {"zone", i.zone}, {"port", i.port}};
      if (!i.netns.empty()) {
        one["address"] = i.address;
        one["namespace"] = i.netns;
      }
      instances.push_back(std::move(one));
    }
    doc["database"] = {{"writer", stack_.database.writer},
                       {"reader", stack_.database.reader},
                       {"admin", stack_.database.admin},
                       {"instances", instances}};
  }
  if (vpc_) {
    const char* check = net_check_ == NetCheck::kPassed    ? "passed"
                        : net_check_ == NetCheck::kFailed  ? "failed"
                        : net_check_ == NetCheck::kRunning ? "running"
                                                           : "not run";
    nlohmann::json differ = nlohmann::json::array();
    for (const net::CheckRow& r : net_check_failures_)
      differ.push_back({{"from", r.from},
                        {"to", r.to},
                        {"port", r.port},
                        {"expected", r.expected ? "allowed" : "denied"},
                        {"observed", net::reach_name(r.observed)}});
    doc["network"] = {{"router", vpc_->plan().router_ns},
                      {"outside", vpc_->plan().outside_ns},
                      {"check", check},
                      {"paths", net_check_paths_},
                      {"differ", differ},
                      {"state_file", fs::absolute(state_dir_ / "network.json").string()}};
    try {
      core::write_file_atomically((state_dir_ / "network.json").string(),
                                  render_network_state(stack_, vpc_->plan(), vpc_->members()));
    } catch (const std::exception& e) {
      core::log_warn(kComponent, "cannot write the network state file", {{"error", e.what()}});
    }
  }
  doc["control"] = {{"address", stack_.control.listen},
                    {"url", url_for(stack_.control.listen, "/v1/")},
                    {"token_file", fs::absolute(state_dir_ / "api-token").string()}};
  doc["instances"] = nlohmann::json::array();
  for (const auto& g : groups_) {
    for (const scaling::InstanceView& i : g->instances()) {
      nlohmann::json j = instance_json(i);
      j["log"] = (state_dir_ / "logs" / (i.id + ".log")).string();
      doc["instances"].push_back(std::move(j));
    }
  }
  try {
    core::write_file_atomically((state_dir_ / "stack.json").string(), doc.dump(2) + "\n");
  } catch (const std::exception& e) {
    core::log_warn(kComponent, "cannot write the status file", {{"error", e.what()}});
  }
}

void Supervisor::print_banner() const {
  const GatewaySpec& gw = stack_.gateway;
  // With elastic IPs the address to open is the first of them: whichever gateway holds it answers.
  const std::string url = stack_.elastic_ips.empty()
                              ? url_for(gw.listen, "/")
                              : url_for(stack_.elastic_ips.front().address + ":" +
                                            std::to_string(core::SocketAddress::parse(gw.listen)->port()),
                                        "/");
  const std::string admin_url = url_for(gw.admin, "/targets");
  const std::string control_url = url_for(stack_.control.listen, "/v1/status");
  core::log_info(kComponent, "stack is up",
                 {{"stack", stack_.name}, {"url", url}, {"admin", admin_url}, {"control", control_url}});

  std::vector<std::vector<std::string>> rows = {{"NAME", "GROUP", "ZONE", "ADDRESS", "PID", "STATE"}};
  for (const auto& sp : services_) {
    rows.push_back(
        {sp->id, "-", sp->zone, sp->address, std::to_string(sp->handle), sp->ready ? "ready" : "starting"});
  }
  size_t count = 0;
  for (const auto& g : groups_) {
    for (const scaling::InstanceView& i : g->instances()) {
      if (i.pid == 0) continue;
      rows.push_back({i.id, i.group, i.zone, i.address, std::to_string(i.pid), scaling::to_string(i.state)});
      ++count;
    }
  }

  std::string out = "\nstack \"" + stack_.name + "\" is up (" + std::to_string(count) + " instances in " +
                    std::to_string(stack_.zones.size()) + " zones)\n\n";
  out += "  open     " + url + "\n";
  out += "  admin    " + admin_url + "\n";
  if (internal_lb_) {
    std::string groups;
    for (const GroupSpec& g : stack_.groups)
      if (g.internal) groups += (groups.empty() ? "" : ", ") + g.name;
    out += "  internal " + stack_.internal_lb.listen + " (internal load balancer of " + groups + ", admin " +
           url_for(stack_.internal_lb.admin, "/targets") + ")\n";
  }
  for (const ElasticIpSpec& e : stack_.elastic_ips) {
    std::string may;
    for (const std::string& g : e.gateways) may += (may.empty() ? "" : ", ") + g;
    out += "  eip      " + e.name + " " +
           url_for(e.address + ":" + std::to_string(core::SocketAddress::parse(gw.listen)->port()), "/") +
           " (held by one of " + may + "; `cumulo eip list --state-dir " + state_dir_.string() + "`)\n";
  }
  out += "  control  " + control_url + " (token in " + (state_dir_ / "api-token").string() + ")\n";
  out += "  state    " + state_dir_.string() + "/ (stack.json, " + gateway_->id + ".yaml, logs/)\n";
  if (vpc_) {
    out += "  network  " + stack_.network.cidr + ", router namespace " + vpc_->plan().router_ns +
           "; clients reach the stack from the outside namespace: ip netns exec " + vpc_->plan().outside_ns +
           " curl " + url + "\n";
    out += "           `cumulo net check --state-dir " + state_dir_.string() +
           "` probes every path against the policy (running now)\n";
  }
  out += "\n";
  for (const auto& g : groups_) {
    const scaling::GroupStatus s = g->status();
    out += "  group " + s.name + ": min " + std::to_string(s.min) + ", max " + std::to_string(s.max) +
           ", desired " + std::to_string(s.desired) + ", " + std::to_string(g->spec().policies.size()) +
           " policies\n";
  }
  out += "\n";
  out += core::format_columns(rows, "  ");
  out +=
      "\nInstances are replaced when they die or fail health checks; `cumulo status`, `cumulo instances` and "
      "`cumulo events` show what the groups do. Ctrl-C stops the stack in order: the gateway and the "
      "edges (they drain) and DNS, then the instances, then the object store and the database tier.\n";
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace

int run_supervisor(const StackSpec& stack, const SupervisorOptions& options) {
  Supervisor supervisor(stack, options);
  return supervisor.run();
}

}  // namespace cumulo::stack::internal
