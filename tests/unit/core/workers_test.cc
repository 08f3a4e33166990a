#include "core/workers.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "core/signals.h"

namespace cumulo::core {
namespace {

// Every worker runs its own loop on its own thread, where worker_index() names it; outside them it is -1.
TEST(LoopThreads, EachWorkerRunsItsLoopOnItsThread) {
  EXPECT_EQ(worker_index(), -1);
  LoopThreads workers(3);
  ASSERT_EQ(workers.size(), 3u);
  workers.start();
  std::mutex mu;
  std::set<int> indexes;
  std::set<std::thread::id> threads;
  std::atomic<int> ran{0};
  workers.post_each([&](size_t i) {
    std::lock_guard lock(mu);
    EXPECT_EQ(worker_index(), static_cast<int>(i));
    EXPECT_EQ(EventLoop::current(), &workers.loop(i));
    indexes.insert(worker_index());
    threads.insert(std::this_thread::get_id());
    ++ran;
  });
  for (int i = 0; i < 200 && ran < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  workers.stop();
  EXPECT_EQ(ran.load(), 3);
  EXPECT_EQ(indexes, (std::set<int>{0, 1, 2}));
  EXPECT_EQ(threads.size(), 3u);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
}

TEST(LoopThreads, DefaultWorkerCountIsTheCpusWeMayUse) {
  cpu_set_t set;
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  EXPECT_EQ(default_worker_count(), static_cast<size_t>(CPU_COUNT(&set)));
}

// SIGHUP reloads; the first stop signal begins the drain, which ends when the component is idle.
TEST(RunService, ReloadThenDrainUntilIdle) {
  const sigset_t set = block_signals({SIGTERM, SIGHUP});
  EventLoop main;
  int reloads = 0, drains = 0, idle_polls = 0;
  ServiceLife life;
  life.component = "test";
  life.drain_limit = std::chrono::milliseconds(5000);
  life.reload = [&] { ++reloads; };
  life.begin_drain = [&] { ++drains; };
  life.idle = [&] { return ++idle_polls >= 3; };  // busy for two polls
  ASSERT_EQ(raise(SIGHUP), 0);
  ASSERT_EQ(raise(SIGTERM), 0);
  auto started = Clock::now();
  run_service(main, set, life);
  EXPECT_EQ(reloads, 1);
  EXPECT_EQ(drains, 1);
  EXPECT_EQ(idle_polls, 3);
  EXPECT_LT(Clock::now() - started, std::chrono::milliseconds(2000));
}

// A component that never becomes idle is stopped by the drain limit.
TEST(RunService, DrainLimitEndsABusyDrain) {
  const sigset_t set = block_signals({SIGTERM});
  EventLoop main;
  ServiceLife life;
  life.component = "test";
  life.drain_limit = std::chrono::milliseconds(200);
  life.idle = [] { return false; };
  ASSERT_EQ(raise(SIGTERM), 0);
  auto started = Clock::now();
  run_service(main, set, life);
  auto took = Clock::now() - started;
  EXPECT_GE(took, std::chrono::milliseconds(190));
  EXPECT_LT(took, std::chrono::milliseconds(2000));
}

// A second stop signal ends a drain at once.
TEST(RunService, SecondStopSignalEndsTheDrain) {
  const sigset_t set = block_signals({SIGINT, SIGTERM});
  EventLoop main;
  ServiceLife life;
  life.component = "test";
  life.drain_limit = std::chrono::milliseconds(10'000);
  life.idle = [] { return false; };
  ASSERT_EQ(raise(SIGTERM), 0);
  Timer second(main, [] { raise(SIGINT); });
  second.arm(Millis(100));
  auto started = Clock::now();
  run_service(main, set, life);
  EXPECT_LT(Clock::now() - started, std::chrono::milliseconds(2000));
}

// A supervisor's life: SIGHUP stops like SIGTERM, the drain has no limit, and the second stop signal forces
// the stop instead of leaving the loop: the component ends the loop itself once it has done so.
TEST(RunService, SupervisorHangupStopsAndSecondSignalForces) {
  const sigset_t set = block_signals({SIGTERM, SIGHUP});
  EventLoop main;
  int drains = 0, forced = 0;
  bool done = false;
  ServiceLife life;
  life.component = "test";
  life.drain_limit = Millis(0);
  life.hangup_stops = true;
  life.begin_drain = [&] { ++drains; };
  life.idle = [&] { return done; };
  Timer end_by_itself(main, [&] { done = true; });
  life.force_stop = [&] {
    ++forced;
    end_by_itself.arm(Millis(300));  // still reaping what it killed
  };
  ASSERT_EQ(raise(SIGHUP), 0);
  Timer second(main, [] { raise(SIGTERM); });
  second.arm(Millis(300));
  auto started = Clock::now();
  run_service(main, set, life);
  auto took = Clock::now() - started;
  EXPECT_EQ(drains, 1);
  EXPECT_EQ(forced, 1);
  EXPECT_GE(took, Millis(590));  // neither a drain limit nor the second signal ended the loop
  EXPECT_LT(took, Millis(3000));
}

// The component may end the loop itself (a failed start) before any signal came.
TEST(RunService, TheComponentMayEndTheLoopItself) {
  const sigset_t set = block_signals({SIGTERM});
  EventLoop main;
  ServiceLife life;
  life.component = "test";
  int drains = 0;
  life.begin_drain = [&] { ++drains; };
  Timer end(main, [&] { main.stop(); });
  end.arm(Millis(50));
  run_service(main, set, life);
  EXPECT_EQ(drains, 0);
}

}  // namespace
}  // namespace cumulo::core
