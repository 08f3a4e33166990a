// What every served component does between start-up and exit, in one place:
//
//  - LoopThreads: N worker event loops, each run by a thread of its own, started and stopped together. A
//    worker owns what it accepted; other threads reach it only through EventLoop::post. Each worker's
//    listening socket is its own (SO_REUSEPORT), so the kernel spreads connections without a shared accept
//    queue.
//  - run_service: the main loop's life after start-up: the first SIGINT/SIGTERM begins a drain (listeners
//    closed, in-flight work may finish) that ends when the component says it is idle or after its limit; a
//    second stop signal ends it at once; SIGHUP reloads where the component can. A supervisor, whose drain
//    is stopping its children in order, keeps the same skeleton: SIGHUP may stop too, and the second stop
//    signal may force the stop (kill the children) instead of leaving the loop with them still running.
//  Work that blocks (a file open, a MariaDB call that waits for a replica) goes to a core::BlockingPool
//  (blocking_pool.h), never onto a loop.
//
// Signals must be blocked (block_signals) before any thread starts, so that only the main loop's signalfd
// sees them.
#pragma once

#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/event_loop.h"

namespace cumulo::core {

class LoopThreads {
 public:
  explicit LoopThreads(size_t count);
  ~LoopThreads();  // stops and joins
  LoopThreads(const LoopThreads&) = delete;
  LoopThreads& operator=(const LoopThreads&) = delete;

  size_t size() const { return loops_.size(); }
  EventLoop& loop(size_t i) { return *loops_[i]; }

  // Runs each loop on a thread of its own; there worker_index() is the loop's index. `on_exit(i)`, when set,
  // runs on worker i's thread after its loop has stopped (to flush what the thread buffered).
  void start(std::function<void(size_t)> on_exit = {});
  // Stops every loop and joins its thread; work still posted to them is dropped with them.
  void stop();
  // Runs fn(i) on every worker's thread (asynchronously).
  void post_each(const std::function<void(size_t)>& fn);

 private:
  std::vector<std::unique_ptr<EventLoop>> loops_;
  std::vector<std::thread> threads_;
};

// On a LoopThreads worker: its index; elsewhere -1.
int worker_index();

// The number of workers a component runs when its config says 0 ("auto"): one per CPU it may run on.
size_t default_worker_count();

struct ServiceLife {
  std::string component;  // for the log
  // 0: no limit, the drain ends only when `idle` says so (a supervisor whose children each have a grace
  // period of their own, after which they are killed).
  std::chrono::milliseconds drain_limit{10'000};
  // What the first stop signal does, for the log line that reports it.
  std::string stopping = "stopping: no new connections, in-flight requests may finish";
  // On the first stop signal, on the main loop: stop accepting, let in-flight work finish.
  std::function<void()> begin_drain;
  // Polled on the main loop during the drain; the drain ends when it returns true. Empty: ends at once.
  std::function<bool()> idle;
  // SIGHUP, on the main loop; empty: SIGHUP is not expected (and not in the blocked set), unless
  // hangup_stops.
  std::function<void()> reload;
  // SIGHUP is a stop signal like SIGINT and SIGTERM (`cumulo up`: the terminal it ran in went away); `reload`
  // stays empty then.
  bool hangup_stops = false;
  // A stop signal during the drain, on the main loop. Empty: the loop ends at once. Set: called instead, and
  // the component ends the loop itself (EventLoop::stop, or `idle` turning true) once it has done what it
  // must (a supervisor kills its children, then reaps them).
  std::function<void()> force_stop;
};

// Runs `main` until a stop signal (and its drain) ends it; a component may also end it itself
// (EventLoop::stop), as after a failed start. `signals` is what block_signals returned; it holds SIGHUP
// exactly when life.reload is set or life.hangup_stops. `life` is read when a signal comes (a reload may
// change drain_limit).
void run_service(EventLoop& main, const sigset_t& signals, ServiceLife& life);

}  // namespace cumulo::core
