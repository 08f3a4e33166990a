#include "core/workers.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "core/log.h"
#include "core/signals.h"

namespace cumulo::core {

namespace {
thread_local int t_worker_index = -1;
constexpr Millis kDrainPoll{50};
}  // namespace

LoopThreads::LoopThreads(size_t count) {
  loops_.reserve(count);
  for (size_t i = 0; i < count; ++i) loops_.push_back(std::make_unique<EventLoop>());
}

LoopThreads::~LoopThreads() {
  stop();
}

void LoopThreads::start(std::function<void(size_t)> on_exit) {
  if (!threads_.empty()) return;
  for (size_t i = 0; i < loops_.size(); ++i) {
    threads_.emplace_back([this, i, on_exit] {
      t_worker_index = static_cast<int>(i);
      loops_[i]->run();
      if (on_exit) on_exit(i);
    });
  }
}

void LoopThreads::stop() {
  for (auto& l : loops_) l->stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void LoopThreads::post_each(const std::function<void(size_t)>& fn) {
  for (size_t i = 0; i < loops_.size(); ++i) loops_[i]->post([fn, i] { fn(i); });
}

int worker_index() {
  return t_worker_index;
}

size_t default_worker_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<size_t>(n);
  }
  unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? n : 1;
}

void run_service(EventLoop& main, const sigset_t& signals, ServiceLife& life) {
  bool stopping = false;
  Timer drain_limit(main, [&] {
    log_warn(life.component, "drain limit reached: closing what is still open",
             {{"drain_limit_ms", static_cast<int64_t>(life.drain_limit.count())}});
    main.stop();
  });
  std::optional<Timer> drain_poll;
  drain_poll.emplace(main, [&] {
    if (!life.idle || life.idle()) {
      main.stop();
    } else {
      drain_poll->arm(kDrainPoll);
    }
  });
  SignalWatcher watcher(main, signals, [&](int signo) {
    if (signo == SIGHUP && !life.hangup_stops) {
      if (life.reload) life.reload();
      return;
    }
    const char* abbrev = sigabbrev_np(signo);
    const std::string name = abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(signo);
    if (stopping) {
      if (life.force_stop) {
        life.force_stop();
        return;
      }
      log_warn(life.component, "second stop signal: exiting without waiting for in-flight requests",
               {{"signal", name}});
      main.stop();
      return;
    }
    stopping = true;
    log_info(life.component, life.stopping,
             {{"signal", name}, {"drain_limit_ms", static_cast<int64_t>(life.drain_limit.count())}});
    if (life.begin_drain) life.begin_drain();
    if (life.drain_limit.count() > 0) drain_limit.arm(life.drain_limit);
    drain_poll->arm(Millis(0));
  });
  main.run();
}

}  // namespace cumulo::core
