// Starting, stopping and observing instances. A scaling group decides what runs, where and when; a provider
// knows how. Local processes are the first provider; instances on other machines can be others.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/event_loop.h"

namespace cumulo::scaling {

struct LaunchSpec {
  std::string name;                                      // for messages: "web-a-1"
  std::string executable;                                // resolved path of the program
  std::vector<std::string> argv;                         // argv[0] as the program will see it
  std::vector<std::pair<std::string, std::string>> env;  // set on top of the supervisor's environment
  std::string log_path;                                  // stdout and stderr are appended here
  std::string working_dir;                               // empty: the supervisor's
  int stop_signal = SIGTERM;                             // what stop() sends first
  // Resource limits, enforced where the provider can (cgroup v1 or v2 for local processes). cpu is in vCPUs.
  double cpu = 0;             // 0: no limit
  uint64_t memory_bytes = 0;  // 0: no limit
  std::string cgroup;         // "STACK/INSTANCE": where the limits live
  // Where the instance listens, HOST:PORT (the gateway's target); empty: 127.0.0.1 and the picked port.
  std::string address;
  // Network mode (docs/network.md): the child joins this network namespace (a name under /run/netns) before
  // it runs the program.
  std::string netns;
  // Network mode: the child (and whatever it runs, root or not) cannot administer namespaces, networks,
  // modules or other processes: CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_MODULE, CAP_SYS_PTRACE, CAP_SYS_RAWIO,
  // CAP_BPF and CAP_SYS_BOOT leave its capability bounding set before exec, so it cannot enter the router's
  // namespace or change rules, even its own.
  bool drop_admin_capabilities = false;
  // Listening sockets the child inherits as descriptors 3, 4, ... in this order, named in CUMULO_LISTEN_FDS
  // (core::kInheritedListenersEnv). Borrowed: the caller keeps them open until start() returns.
  std::vector<int> inherit_fds;
};

// How an instance ended.
struct ExitStatus {
  int exit_code = -1;  // >= 0 when it exited by itself
  int signal = 0;      // > 0 when a signal ended it
  bool core_dumped = false;
  static ExitStatus from_wait_status(int status);
  std::string describe() const;  // "exited with code 1", "killed by signal 9 (SIGKILL)"
};

// A provider's name for a running instance; for local processes, the PID.
using InstanceHandle = int64_t;

// What an instance uses, for the metrics pipeline.
struct ProcSample {
  double cpu_seconds = 0;  // user + system since it started
  uint64_t rss_bytes = 0;
};

class InstanceProvider {
 public:
  // Called on the provider's loop once for every instance that ended, whatever ended it.
  using ExitCallback = std::function<void(InstanceHandle, const ExitStatus&)>;

  virtual ~InstanceProvider() = default;

  // Throws std::runtime_error saying what could not be started and why (the program could not be executed,
  // the log file could not be opened).
  virtual InstanceHandle start(const LaunchSpec& spec) = 0;
  // Asks the instance to stop (its stop signal) and forces it when it is still there after `grace`.
  // Idempotent.
  virtual void stop(InstanceHandle handle, std::chrono::milliseconds grace) = 0;
  // Forces the instance to stop now.
  virtual void kill(InstanceHandle handle) = 0;
  virtual bool running(InstanceHandle handle) const = 0;
  virtual size_t running_count() const = 0;
  // Its resource use now; nullopt when it is not running or cannot be measured.
  virtual std::optional<ProcSample> sample(InstanceHandle handle) const = 0;
};

struct ProcessProviderOptions {
  // ROOT below: where the cgroup file systems are mounted. Tests point it at a cgroup2 file system of their
  // own.
  std::string cgroup_root = "/sys/fs/cgroup";
};

// Child processes of this process. Each gets its own process group, so that a terminal's Ctrl-C reaches only
// the supervisor, which then stops things in order; and each gets SIGTERM from the kernel should the
// supervisor die without stopping it (PR_SET_PDEATHSIG), so a crash never leaves instances holding ports.
// Signals go to PIDs only, never to groups. Stop is the spec's stop signal, then SIGKILL after the grace
// period.
//
// CPU and memory limits go into cgroups: on cgroup v2 (ROOT is a cgroup2 file system)
// ROOT/cumulo/STACK/INSTANCE with cpu.max and memory.max, on v1 (ROOT/cpu and ROOT/memory are cgroup v1 file
// systems, hybrid machines included) ROOT/{cpu,memory}/cumulo/STACK/INSTANCE with cpu.cfs_quota_us and
// memory.limit_in_bytes; the directories are removed once the instance has ended. A limit that cannot be
// enforced (no cgroup file system, no permission, a controller v2 does not offer) is one warning in the log;
// the instances run without it.
//
// Exits are noticed through a signalfd for SIGCHLD on `loop` (with a slow poll as a safety net). The
// constructor blocks SIGCHLD in the calling thread, which must be the one running `loop`, and creates no
// threads; the destructor kills and reaps whatever is still running.
std::unique_ptr<InstanceProvider> make_process_provider(core::EventLoop& loop,
                                                        InstanceProvider::ExitCallback on_exit,
                                                        const ProcessProviderOptions& options = {});

}  // namespace cumulo::scaling
