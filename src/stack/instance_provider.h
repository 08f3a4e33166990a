// Starting, stopping and observing instances. The supervisor decides what runs, where and when; a provider
// knows how. Local processes are the first provider; auto scaling groups reuse this interface for theirs.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/event_loop.h"

namespace cumulo::stack {

struct LaunchSpec {
  std::string name;                                      // for messages: "web-a-1"
  std::string executable;                                // resolved path of the program
  std::vector<std::string> argv;                         // argv[0] as the program will see it
  std::vector<std::pair<std::string, std::string>> env;  // set on top of the supervisor's environment
  std::string log_path;                                  // stdout and stderr are appended here
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

class InstanceProvider {
 public:
  // Called on the provider's loop once for every instance that ended, whatever ended it.
  using ExitCallback = std::function<void(InstanceHandle, const ExitStatus&)>;

  virtual ~InstanceProvider() = default;

  // Throws std::runtime_error saying what could not be started and why (the program could not be executed,
  // the log file could not be opened).
  virtual InstanceHandle start(const LaunchSpec& spec) = 0;
  // Asks the instance to stop and forces it when it is still there after `grace`. Idempotent.
  virtual void stop(InstanceHandle handle, std::chrono::milliseconds grace) = 0;
  // Forces the instance to stop now.
  virtual void kill(InstanceHandle handle) = 0;
  virtual bool running(InstanceHandle handle) const = 0;
  virtual size_t running_count() const = 0;
};

// Child processes of this process. Each gets its own process group, so that a terminal's Ctrl-C reaches only
// the supervisor, which then stops things in order; and each gets SIGTERM from the kernel should the
// supervisor die without stopping it (PR_SET_PDEATHSIG), so a crash never leaves instances holding ports.
// Signals go to PIDs only, never to groups. Stop is SIGTERM, then SIGKILL after the grace period.
//
// Exits are noticed through a signalfd for SIGCHLD on `loop` (with a slow poll as a safety net). The
// constructor blocks SIGCHLD in the calling thread, which must be the one running `loop`, and creates no
// threads; the destructor kills and reaps whatever is still running.
std::unique_ptr<InstanceProvider> make_process_provider(core::EventLoop& loop,
                                                        InstanceProvider::ExitCallback on_exit);

}  // namespace cumulo::stack
