// InstanceProvider for local child processes (instance_provider.h).
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

#include "core/log.h"
#include "core/net.h"
#include "core/signals.h"
#include "scaling/instance_provider.h"
#include "scaling/internal/cgroups.h"

extern char** environ;

namespace cumulo::scaling {

ExitStatus ExitStatus::from_wait_status(int status) {
  ExitStatus s;
  if (WIFEXITED(status)) {
    s.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    s.signal = WTERMSIG(status);
    s.core_dumped = WCOREDUMP(status);
  }
  return s;
}

std::string ExitStatus::describe() const {
  if (exit_code >= 0) return "exited with code " + std::to_string(exit_code);
  if (signal > 0) {
    const char* abbrev = sigabbrev_np(signal);
    std::string out = "killed by signal " + std::to_string(signal);
    if (abbrev) out += std::string(" (SIG") + abbrev + ")";
    if (core_dumped) out += ", core dumped";
    return out;
  }
  return "ended (status unknown)";
}

namespace {

// Between a slow poll and SIGCHLD, an exit is noticed at once; the poll only covers a SIGCHLD lost to a
// thread that did not block it.
constexpr core::Millis kReapPollInterval{1000};
class ProcessProvider final : public InstanceProvider, public core::IoHandler {
 public:
  ProcessProvider(core::EventLoop& loop, ExitCallback on_exit, const ProcessProviderOptions& options);
  ~ProcessProvider() override;

  // InstanceProvider
  InstanceHandle start(const LaunchSpec& spec) override;
  void stop(InstanceHandle handle, std::chrono::milliseconds grace) override;
  void kill(InstanceHandle handle) override;
  bool running(InstanceHandle handle) const override {
    return processes_.count(static_cast<pid_t>(handle)) > 0;
  }
  size_t running_count() const override { return processes_.size(); }
  std::optional<ProcSample> sample(InstanceHandle handle) const override;

  // core::IoHandler
  void on_io(uint32_t events) override;

 private:
  struct Process {
    std::string name;
    int stop_signal = SIGTERM;
    std::vector<std::string> cgroups;
    std::unique_ptr<core::Timer> kill_timer;  // armed while stopping
  };

  void reap();
  std::vector<std::string> enter_cgroups(const LaunchSpec& spec, pid_t pid);

  core::EventLoop& loop_;
  ExitCallback on_exit_;
  internal::Cgroups cgroups_;
  sigset_t previous_mask_{};
  core::Fd signal_fd_;
  core::Timer poll_timer_;
  std::map<pid_t, Process> processes_;
};

ProcessProvider::ProcessProvider(core::EventLoop& loop, ExitCallback on_exit,
                                 const ProcessProviderOptions& options)
    : loop_(loop), on_exit_(std::move(on_exit)), cgroups_(options.cgroup_root), poll_timer_(loop, [this] {
        reap();
        poll_timer_.arm(kReapPollInterval);
      }) {
  // An ignored SIGCHLD would make the kernel reap children itself and leave no exit status to report.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGCHLD, &dfl, nullptr);

  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &chld, &previous_mask_);
  signal_fd_.reset(signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signal_fd_) throw std::runtime_error("signalfd for SIGCHLD: " + core::errno_text(errno));
  loop_.add(signal_fd_.get(), this, core::kReadable);
  poll_timer_.arm(kReapPollInterval);
}

ProcessProvider::~ProcessProvider() {
  loop_.remove(signal_fd_.get());
  for (auto& [pid, process] : processes_) {
    core::log_warn("scaling", "killing a process still running at shutdown",
                   {{"instance", process.name}, {"pid", static_cast<long>(pid)}});
    ::kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    internal::Cgroups::remove(process.cgroups);
  }
  processes_.clear();
  if (!sigismember(&previous_mask_, SIGCHLD)) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    pthread_sigmask(SIG_UNBLOCK, &chld, nullptr);
  }
}

InstanceHandle ProcessProvider::start(const LaunchSpec& spec) {
  if (spec.argv.empty()) throw std::invalid_argument("LaunchSpec without argv for " + spec.name);

  core::Fd log_fd(::open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!log_fd) {
    throw std::runtime_error("cannot open the log file " + spec.log_path + " of " + spec.name + ": " +
                             core::errno_text(errno));
  }
  core::Fd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null_fd) throw std::runtime_error("cannot open /dev/null: " + core::errno_text(errno));

  // Everything the child needs is built before fork: between fork and exec only async-signal-safe calls are
  // made.
  std::vector<char*> argv;
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    bool overridden = false;
    for (const auto& [key, value] : spec.env) {
      if (entry.size() > key.size() && entry.compare(0, key.size(), key) == 0 && entry[key.size()] == '=') {
        overridden = true;
      }
    }
    if (!overridden) env_strings.emplace_back(entry);
  }
  for (const auto& [key, value] : spec.env) env_strings.push_back(key + "=" + value);
  // Inherited listeners go to 3, 4, ...; until then they (and the exec pipe) wait above kHighFd, where
  // the dup2s cannot overwrite them.
  constexpr int kHighFd = 100;
  std::vector<core::Fd> inherit;
  std::string inherit_list;
  for (size_t i = 0; i < spec.inherit_fds.size(); ++i) {
    inherit.emplace_back(fcntl(spec.inherit_fds[i], F_DUPFD_CLOEXEC, kHighFd));
    if (!inherit.back()) throw std::runtime_error("dup: " + core::errno_text(errno));
    inherit_list += (i ? "," : "") + std::to_string(3 + i);
  }
  if (!inherit.empty()) env_strings.push_back(std::string(core::kInheritedListenersEnv) + "=" + inherit_list);
  core::Fd netns_fd;
  if (!spec.netns.empty()) {
    netns_fd = core::open_network_namespace(spec.netns);
    if (!netns_fd) {
      throw std::runtime_error("cannot open the network namespace " +
                               core::network_namespace_path(spec.netns) + " of " + spec.name + ": " +
                               core::errno_text(errno));
    }
  }
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  // The child writes errno here when exec fails; on success the close-on-exec end closes and the read sees
  // EOF.
  int exec_pipe[2];
  if (pipe2(exec_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe: " + core::errno_text(errno));
  core::Fd exec_read(exec_pipe[0]), exec_write(fcntl(exec_pipe[1], F_DUPFD_CLOEXEC, kHighFd));
  ::close(exec_pipe[1]);
  if (!exec_write) throw std::runtime_error("dup: " + core::errno_text(errno));

  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("cannot fork to start " + spec.name + ": " + core::errno_text(errno));
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);  // the supervisor died before PR_SET_PDEATHSIG took effect
    // Ignored signals stay ignored across exec; the program starts with the defaults it expects.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
    core::unblock_all_signals();
    dup2(null_fd.get(), STDIN_FILENO);
    dup2(log_fd.get(), STDOUT_FILENO);
    dup2(log_fd.get(), STDERR_FILENO);
    for (size_t i = 0; i < inherit.size(); ++i) {
      if (dup2(inherit[i].get(), static_cast<int>(3 + i)) < 0) {  // the copy is not close-on-exec
        int err = errno;
        [[maybe_unused]] ssize_t n = write(exec_write.get(), &err, sizeof err);
        _exit(127);
      }
    }
    if (netns_fd && setns(netns_fd.get(), CLONE_NEWNET) != 0) {
      int err = errno;
      [[maybe_unused]] ssize_t n = write(exec_write.get(), &err, sizeof err);
      _exit(127);
    }
    if (spec.drop_admin_capabilities) {
      // After setns: joining the namespace needed CAP_SYS_ADMIN. CAP_BPF (39) is newer than Debian 12's
      // kernel headers; a kernel without it answers EINVAL, which leaves nothing to drop.
      constexpr int kCapBpf = 39;
      constexpr int kCaps[] = {CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_MODULE, CAP_SYS_PTRACE,
                               CAP_SYS_RAWIO, CAP_SYS_BOOT,  kCapBpf};
      for (int cap : kCaps) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
          int err = errno;
          [[maybe_unused]] ssize_t n = write(exec_write.get(), &err, sizeof err);
          _exit(127);
        }
      }
    }
    if (!spec.working_dir.empty() && chdir(spec.working_dir.c_str()) != 0) {
      int err = errno;
      [[maybe_unused]] ssize_t n = write(exec_write.get(), &err, sizeof err);
      _exit(127);
    }
    execve(spec.executable.c_str(), argv.data(), envp.data());
    int err = errno;
    [[maybe_unused]] ssize_t n = write(exec_write.get(), &err, sizeof err);
    _exit(127);
  }
  setpgid(pid, pid);  // also from here, so the group exists whichever of the two runs first
  exec_write.reset();
  int child_errno = 0;
  ssize_t n;
  while ((n = ::read(exec_read.get(), &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {
  }
  if (n > 0) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    std::string where = spec.working_dir.empty() ? std::string() : " in " + spec.working_dir;
    if (!spec.netns.empty()) where += " in network namespace " + spec.netns;
    throw std::runtime_error("cannot run " + spec.executable + " for " + spec.name + where + ": " +
                             core::errno_text(child_errno));
  }
  processes_.emplace(pid, Process{spec.name, spec.stop_signal, enter_cgroups(spec, pid), nullptr});
  return pid;
}

// The child may run a few instructions before it is moved: the limits bound a long-running instance, not its
// first microseconds. Returns the directories made, to be removed when the instance has ended.
std::vector<std::string> ProcessProvider::enter_cgroups(const LaunchSpec& spec, pid_t pid) {
  internal::CgroupPlacement placed = cgroups_.enter(spec.cgroup, {spec.cpu, spec.memory_bytes}, pid);
  for (const internal::CgroupWarning& w : placed.warnings) {
    core::log_warn("scaling", "instance " + w.limit + " limits are not enforced",
                   {{"cgroups", cgroups_.describe()}, {"reason", w.reason}});
  }
  return std::move(placed.dirs);
}

void ProcessProvider::stop(InstanceHandle handle, std::chrono::milliseconds grace) {
  auto it = processes_.find(static_cast<pid_t>(handle));
  if (it == processes_.end() || it->second.kill_timer) return;
  const pid_t pid = it->first;
  ::kill(pid, it->second.stop_signal);
  it->second.kill_timer = std::make_unique<core::Timer>(loop_, [this, pid, grace] {
    auto p = processes_.find(pid);
    if (p == processes_.end()) return;
    core::log_warn("scaling", "still running after its stop signal; sending SIGKILL",
                   {{"instance", p->second.name},
                    {"pid", static_cast<long>(pid)},
                    {"grace_ms", static_cast<long>(grace.count())}});
    ::kill(pid, SIGKILL);
  });
  it->second.kill_timer->arm(grace);
}

void ProcessProvider::kill(InstanceHandle handle) {
  auto it = processes_.find(static_cast<pid_t>(handle));
  if (it != processes_.end()) ::kill(it->first, SIGKILL);
}

// /proc/PID/stat fields 14 and 15 (utime, stime, in clock ticks) after the parenthesized command, which may
// itself hold spaces and parentheses; VmRSS from /proc/PID/status.
std::optional<ProcSample> ProcessProvider::sample(InstanceHandle handle) const {
  if (!running(handle)) return std::nullopt;
  const std::string dir = "/proc/" + std::to_string(handle);
  std::ifstream stat_file(dir + "/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // After ')' the fields start at 3 (state); utime is 14, stime 15.
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  static const long ticks = sysconf(_SC_CLK_TCK) > 0 ? sysconf(_SC_CLK_TCK) : 100;
  ProcSample s;
  s.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(ticks);
  std::ifstream status(dir + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) {
      s.rss_bytes = std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
      break;
    }
  }
  return s;
}

void ProcessProvider::on_io(uint32_t) {
  signalfd_siginfo info;
  // Edge-triggered: drain everything. Several SIGCHLDs may have merged into one, so reap() checks every
  // child.
  while (::read(signal_fd_.get(), &info, sizeof info) == sizeof info) {
  }
  reap();
}

void ProcessProvider::reap() {
  std::vector<std::pair<pid_t, ExitStatus>> ended;
  for (auto it = processes_.begin(); it != processes_.end();) {
    int status = 0;
    pid_t r = waitpid(it->first, &status, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR)) {
      ++it;
      continue;
    }
    ended.emplace_back(it->first, r == it->first ? ExitStatus::from_wait_status(status) : ExitStatus{});
    internal::Cgroups::remove(it->second.cgroups);
    it = processes_.erase(it);
  }
  // After the bookkeeping, so a callback that starts or stops instances sees the provider as it now is.
  for (const auto& [pid, status] : ended) on_exit_(pid, status);
}

}  // namespace

std::unique_ptr<InstanceProvider> make_process_provider(core::EventLoop& loop,
                                                        InstanceProvider::ExitCallback on_exit,
                                                        const ProcessProviderOptions& options) {
  return std::make_unique<ProcessProvider>(loop, std::move(on_exit), options);
}

}  // namespace cumulo::scaling
