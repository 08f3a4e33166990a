#include "core/blocking_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <thread>
#include <utility>
#include <vector>

namespace cumulo::core {
namespace {

using namespace std::chrono_literals;

// The work runs on a pool thread, its result comes back to the loop that submitted it, and the loop keeps
// running other work meanwhile.
TEST(BlockingPool, WorkOffTheLoopResultOnTheLoop) {
  BlockingPool pool(2);
  EventLoop loop;
  std::thread::id loop_thread, work_thread, done_thread;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  int result = 0;
  int ticks_while_blocked = 0;
  Timer ticker(loop, [&] {
    ++ticks_while_blocked;
    if (ticks_while_blocked == 3) release.set_value();  // the loop ran while the work blocked
    if (ticks_while_blocked < 3) ticker.arm(1ms);
  });
  loop.post([&] {
    loop_thread = std::this_thread::get_id();
    pool.submit(
        loop,
        [&] {
          work_thread = std::this_thread::get_id();
          released.wait();  // blocks until the loop has run its timer three times
          return 42;
        },
        [&](int r) {
          done_thread = std::this_thread::get_id();
          result = r;
          loop.stop();
        });
    ticker.arm(1ms);
  });
  loop.run();
  EXPECT_EQ(result, 42);
  EXPECT_EQ(ticks_while_blocked, 3);
  EXPECT_NE(work_thread, loop_thread);
  EXPECT_EQ(done_thread, loop_thread);
}

// A move-only result (a file handle, a reader) travels whole; void work calls done() without an argument.
TEST(BlockingPool, MoveOnlyResultsAndVoidWork) {
  BlockingPool pool(1);
  EventLoop loop;
  std::unique_ptr<int> got;
  bool void_done = false;
  pool.submit(
      loop, [] { return std::make_unique<int>(7); },
      [&](std::unique_ptr<int> p) {
        got = std::move(p);
        if (void_done) loop.stop();
      });
  pool.submit(
      loop, [] {},
      [&] {
        void_done = true;
        if (got) loop.stop();
      });
  loop.run();
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, 7);
  EXPECT_TRUE(void_done);
}

// Many jobs from several submitting threads all complete, each once, on the pool's threads only.
TEST(BlockingPool, ManyJobsEachRunOnce) {
  BlockingPool pool(3);
  EXPECT_EQ(pool.threads(), 3u);
  EventLoop loop;
  constexpr int kJobs = 600;
  std::atomic<int> ran{0};
  int done = 0;
  std::vector<std::thread> submitters;
  for (int t = 0; t < 3; ++t)
    submitters.emplace_back([&] {
      for (int i = 0; i < kJobs / 3; ++i)
        pool.submit(
            loop, [&] { return ran.fetch_add(1) + 1; },
            [&](int) {
              if (++done == kJobs) loop.stop();
            });
    });
  for (auto& t : submitters) t.join();
  loop.run();
  EXPECT_EQ(ran.load(), kJobs);
  EXPECT_EQ(done, kJobs);
}

// stop() lets the running job finish, drops the queued ones (their captures destroyed, nothing run), and
// refuses later work; the running job's result, posted to a loop that no longer runs, is dropped with it.
// A pool of one thread is a serial worker (the database manager's switchovers): jobs one at a time, in the
// order submitted, all on that thread, none on the loop's.
TEST(BlockingPool, PoolOfOneRunsJobsInOrderOnItsThread) {
  EventLoop loop;
  BlockingPool pool(1, "test-serial");
  std::atomic<bool> release{false};
  std::atomic<int> running{0};
  int most_at_once = 0;
  std::vector<int> order;  // on the loop
  std::set<std::thread::id> threads;
  for (int i = 1; i <= 4; ++i) {
    pool.submit(
        loop,
        [&, i] {
          int now = ++running;
          while (i == 1 && !release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
          --running;
          return std::make_pair(i, std::make_pair(now, std::this_thread::get_id()));
        },
        [&](std::pair<int, std::pair<int, std::thread::id>> r) {
          order.push_back(r.first);
          most_at_once = std::max(most_at_once, r.second.first);
          threads.insert(r.second.second);
          if (order.size() == 4) loop.stop();
        });
  }
  for (int i = 0; i < 1000 && running == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(pool.queued(), 3u);  // the first is running, three wait
  release = true;
  Timer guard(loop, [&] { loop.stop(); });
  guard.arm(std::chrono::seconds(10));
  loop.run();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(most_at_once, 1);
  EXPECT_EQ(threads.size(), 1u);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
}

TEST(BlockingPool, StopFinishesRunningDropsQueued) {
  auto pool = std::make_unique<BlockingPool>(1);
  EventLoop loop;
  std::promise<void> started, release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> ran{0};
  std::atomic<int> done{0};
  auto witness = std::make_shared<int>(0);
  pool->submit(
      loop,
      [&] {
        started.set_value();
        released.wait();
        return ++ran;
      },
      [&](int) { ++done; });
  started.get_future().wait();
  for (int i = 0; i < 5; ++i)
    pool->submit(
        loop, [&, witness] { return ++ran; }, [&](int) { ++done; });
  EXPECT_EQ(pool->queued(), 5u);
  EXPECT_EQ(witness.use_count(), 6);
  std::thread stopper([&] { pool->stop(); });
  std::this_thread::sleep_for(20ms);
  release.set_value();
  stopper.join();
  EXPECT_EQ(ran.load(), 1);
  EXPECT_EQ(pool->queued(), 0u);
  EXPECT_EQ(witness.use_count(), 1);  // the dropped jobs' captures are gone
  pool->run([&] { ++ran; });          // after stop: dropped
  pool.reset();
  EXPECT_EQ(ran.load(), 1);
  EXPECT_EQ(done.load(), 0);  // the loop never ran
}

}  // namespace
}  // namespace cumulo::core
