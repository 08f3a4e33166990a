#include "core/event_loop.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/buffer.h"
#include "core/net.h"

namespace cumulo::core {
namespace {

using namespace std::chrono_literals;

// Runs the loop on this thread; aborts the test binary if it has not returned in time, so a loop that never
// stops fails the run instead of hanging it.
void run_with_deadline(EventLoop& loop, std::chrono::seconds limit = std::chrono::seconds(10)) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread watchdog([&] {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, limit, [&] { return done; })) {
      std::fprintf(stderr, "event loop did not stop within %llds\n", static_cast<long long>(limit.count()));
      std::abort();
    }
  });
  loop.run();
  {
    std::lock_guard lock(mu);
    done = true;
  }
  cv.notify_one();
  watchdog.join();
}

TEST(EventLoop, TimersFireInDeadlineOrder) {
  EventLoop loop;
  std::vector<int> fired;
  Timer t1(loop, [&] { fired.push_back(1); });
  Timer t2(loop, [&] { fired.push_back(2); });
  Timer t3(loop, [&] { fired.push_back(3); });
  Timer t4(loop, [&] { fired.push_back(4); });
  Timer last(loop, [&] { loop.stop(); });
  t1.arm(30ms);
  t2.arm(10ms);
  t3.arm(20ms);
  t4.arm(0ms);
  last.arm(45ms);
  EXPECT_TRUE(t1.armed());
  run_with_deadline(loop);
  EXPECT_EQ(fired, (std::vector<int>{4, 2, 3, 1}));
  EXPECT_FALSE(t1.armed());
}

TEST(EventLoop, CancelledTimersDoNotFire) {
  EventLoop loop;
  int fired = 0;
  Timer a(loop, [&] { ++fired; });
  Timer b(loop, [&] { ++fired; });
  Timer stop(loop, [&] { loop.stop(); });
  a.arm(5ms);
  b.arm(10ms);
  a.cancel();
  EXPECT_FALSE(a.armed());
  {
    Timer destroyed(loop, [&] { fired += 100; });
    destroyed.arm(1ms);
  }  // destroying a timer cancels it
  Timer canceller(loop, [&] { b.cancel(); });
  canceller.arm(1ms);
  stop.arm(30ms);
  run_with_deadline(loop);
  EXPECT_EQ(fired, 0);
}

TEST(EventLoop, RearmLaterIsHonouredLazily) {
  EventLoop loop;
  TimePoint start = loop.update_now();
  TimePoint fired_at{};
  bool fired_early = false;
  Timer t(loop, [&] {
    fired_at = loop.now();
    loop.stop();
  });
  Timer probe(loop, [&] { fired_early = fired_at != TimePoint{}; });
  t.arm(10ms);
  t.arm(60ms);  // pushed back: the heap entry at 10 ms is moved when it comes due
  EXPECT_EQ(t.deadline(), start + 60ms);
  probe.arm(30ms);
  run_with_deadline(loop);
  EXPECT_FALSE(fired_early);
  EXPECT_GE(fired_at - start, 60ms);
}

TEST(EventLoop, RearmEarlierFiresEarlier) {
  EventLoop loop;
  TimePoint start = Clock::now();
  Timer t(loop, [&] { loop.stop(); });
  Timer fallback(loop, [&] { loop.stop(); });
  t.arm(2000ms);
  t.arm(10ms);
  fallback.arm(3000ms);
  run_with_deadline(loop);
  EXPECT_LT(Clock::now() - start, 1000ms);
  EXPECT_FALSE(t.armed());
  EXPECT_TRUE(fallback.armed());
}

TEST(EventLoop, TimerCanRearmItselfAndDestroyOthers) {
  EventLoop loop;
  int ticks = 0;
  auto victim = std::make_unique<Timer>(loop, [] { FAIL() << "destroyed timer fired"; });
  Timer t(loop, [&] {
    victim.reset();  // destroying a timer that is due in this same pass
    if (++ticks < 3) {
      t.arm(1ms);
    } else {
      loop.stop();
    }
  });
  t.arm(5ms);
  victim->arm(6ms);  // after t, even when both are due in one pass
  run_with_deadline(loop);
  EXPECT_EQ(ticks, 3);
}

// A timer that re-arms itself for "now" must not keep run() from reaching epoll and the stop flag.
TEST(EventLoop, TimerRearmedForNowDoesNotStarveTheLoop) {
  EventLoop loop;
  int spins = 0;
  Timer busy(loop, [&] {
    ++spins;
    if (!loop.stopping()) busy.arm(0ms);
  });
  Timer stop(loop, [&] { loop.stop(); });
  busy.arm(0ms);
  stop.arm(20ms);
  bool posted_ran = false;
  loop.post([&] { posted_ran = true; });
  run_with_deadline(loop, std::chrono::seconds(5));
  EXPECT_GT(spins, 1);
  EXPECT_TRUE(posted_ran);
}

TEST(EventLoop, PostFromAnotherThreadRunsOnTheLoopThread) {
  EventLoop loop;
  std::thread::id loop_thread, ran_on;
  std::atomic<int> count{0};
  std::thread runner([&] {
    loop_thread = std::this_thread::get_id();
    loop.run();
  });
  constexpr int kPosts = 1000;
  std::thread poster([&] {
    for (int i = 0; i < kPosts; ++i) loop.post([&] { ++count; });
  });
  poster.join();
  loop.post([&] {
    ran_on = std::this_thread::get_id();
    EXPECT_EQ(EventLoop::current(), &loop);
    loop.stop();
  });
  runner.join();
  EXPECT_EQ(ran_on, loop_thread);
  EXPECT_EQ(count.load(), kPosts);
  EXPECT_EQ(EventLoop::current(), nullptr);
}

TEST(EventLoop, StopFromAnotherThreadWakesAnIdleLoop) {
  EventLoop loop;
  std::atomic<bool> running{false};
  std::thread runner([&] {
    running = true;
    loop.run();
  });
  while (!running) std::this_thread::yield();
  std::this_thread::sleep_for(50ms);  // let it block in epoll_wait (1 s timeout with nothing to do)
  TimePoint start = Clock::now();
  loop.stop();
  runner.join();
  EXPECT_LT(Clock::now() - start, 800ms);  // well before the ~950 ms left of epoll_wait's timeout
  EXPECT_TRUE(loop.stopping());
}

struct Tracked {
  explicit Tracked(std::vector<std::string>& log, std::string name) : log_(log), name_(std::move(name)) {}
  ~Tracked() { log_.push_back("~" + name_); }
  std::vector<std::string>& log_;
  std::string name_;
};

TEST(EventLoop, DestroyLaterWaitsForTheEndOfTheBatch) {
  EventLoop loop;
  std::vector<std::string> log;
  loop.post([&] {
    loop.destroy_later(std::make_unique<Tracked>(log, "a"));
    log.push_back("after destroy_later");
    loop.defer([&] { log.push_back("deferred"); });
  });
  loop.post([&] { log.push_back("second post"); });
  Timer stop(loop, [&] { loop.stop(); });
  stop.arm(10ms);
  run_with_deadline(loop);
  EXPECT_EQ(log, (std::vector<std::string>{"after destroy_later", "second post", "deferred", "~a"}));
}

// An owner destroyed later may itself hand a part to destroy_later, and deferred work may defer more.
struct Owner {
  Owner(EventLoop& loop, std::vector<std::string>& log) : loop_(loop), log_(log) {
    part_ = std::make_unique<Tracked>(log, "part");
  }
  ~Owner() {
    log_.push_back("~owner");
    loop_.destroy_later(std::move(part_));
  }
  EventLoop& loop_;
  std::vector<std::string>& log_;
  std::unique_ptr<Tracked> part_;
};

TEST(EventLoop, DestroyLaterFromADestructor) {
  EventLoop loop;
  std::vector<std::string> log;
  loop.post([&] {
    loop.destroy_later(std::make_unique<Owner>(loop, log));
    loop.defer([&] { loop.stop(); });
  });
  run_with_deadline(loop);
  EXPECT_EQ(log, (std::vector<std::string>{"~owner", "~part"}));
}

TEST(EventLoop, ShutdownDrainsNestedDeferredWork) {
  EventLoop loop;
  std::vector<std::string> log;
  loop.post([&] {
    loop.stop();
    loop.defer([&] {
      log.push_back("first");
      loop.defer([&] { log.push_back("second"); });
      loop.destroy_later(std::make_unique<Owner>(loop, log));
    });
  });
  run_with_deadline(loop);
  EXPECT_EQ(log, (std::vector<std::string>{"first", "second", "~owner", "~part"}));
}

TEST(EventLoop, DispatchesSocketReadiness) {
  EventLoop loop;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  struct Reader : IoHandler {
    EventLoop& loop;
    int fd;
    std::string got;
    Reader(EventLoop& l, int f) : loop(l), fd(f) {}
    void on_io(uint32_t events) override {
      if (!(events & kReadable)) return;
      char buf[64];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
      if (got == "ping") loop.stop();
    }
  } reader(loop, fds[0]);
  Fd rd(fds[0]), wr(fds[1]);
  ASSERT_EQ(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
  loop.add(rd.get(), &reader, kReadable);
  std::thread writer([&] {
    std::this_thread::sleep_for(10ms);
    ASSERT_EQ(::write(wr.get(), "ping", 4), 4);
  });
  run_with_deadline(loop);
  writer.join();
  loop.remove(rd.get());
  EXPECT_EQ(reader.got, "ping");
}

TEST(SocketAddress, ParsesHostAndPort) {
  auto v4 = SocketAddress::parse("127.0.0.1:80");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->to_string(), "127.0.0.1:80");
  EXPECT_EQ(v4->port(), 80);
  EXPECT_EQ(v4->host(), "127.0.0.1");

  auto v6 = SocketAddress::parse("[::1]:8080");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->to_string(), "[::1]:8080");
  EXPECT_EQ(v6->host(), "::1");
  EXPECT_EQ(v6->storage.ss_family, AF_INET6);

  auto local = SocketAddress::parse("localhost:1");
  ASSERT_TRUE(local);
  EXPECT_EQ(local->to_string(), "127.0.0.1:1");

  auto any = SocketAddress::parse(":9");
  ASSERT_TRUE(any);
  EXPECT_EQ(any->to_string(), "0.0.0.0:9");

  auto max_port = SocketAddress::parse("10.0.0.1:65535");
  ASSERT_TRUE(max_port);
  EXPECT_EQ(max_port->port(), 65535);
}

TEST(SocketAddress, Rejects) {
  for (const char* bad : {"1.2.3.4", "[::1]80", "host:99999", "::1:80", "1.2.3.4:65536",
                          "1.2.3.4:", "1.2.3.4:-1", "1.2.3.4:+80", "1.2.3.4:8o", "[::1]:", "[::1",
                          "example.com:80", "1.2.3:80", "", ":", "256.0.0.1:80", "[::1]:80x"}) {
    EXPECT_FALSE(SocketAddress::parse(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(Net, ListenAndConnectOnLoopback) {
  auto addr = SocketAddress::parse("127.0.0.1:0");
  ASSERT_TRUE(addr);
  Fd listener = listen_tcp(*addr, false);
  auto bound = SocketAddress::from_fd_local(listener.get());
  ASSERT_TRUE(bound);
  EXPECT_NE(bound->port(), 0);
  int err = -1;
  Fd client = connect_tcp(*bound, &err);
  ASSERT_TRUE(client) << errno_text(err);
  EXPECT_EQ(err, 0);
  // Either already connected or in progress; SO_ERROR stays clear on loopback.
  std::this_thread::sleep_for(10ms);
  EXPECT_EQ(socket_error(client.get()), 0);
  auto peer = SocketAddress::from_fd_peer(client.get());
  ASSERT_TRUE(peer);
  EXPECT_EQ(peer->port(), bound->port());
}

TEST(Buffer, AppendConsumeCompact) {
  Buffer b;
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.write_space(), Buffer::kCapacity);
  EXPECT_EQ(b.append("hello "), 6u);
  EXPECT_EQ(b.append("world"), 5u);
  EXPECT_EQ(b.view(), "hello world");
  b.consume(6);
  EXPECT_EQ(b.view(), "world");
  EXPECT_EQ(b.size(), 5u);
  b.compact();
  EXPECT_EQ(b.view(), "world");
  EXPECT_EQ(b.write_space(), Buffer::kCapacity - 5);

  // Filling up: append takes what fits, then compaction makes room for more.
  std::string big(Buffer::kCapacity, 'x');
  EXPECT_EQ(b.append(big), Buffer::kCapacity - 5);
  EXPECT_TRUE(b.full());
  EXPECT_EQ(b.append("more"), 0u);
  b.consume(100);
  EXPECT_FALSE(b.full());
  EXPECT_EQ(b.write_space(), 0u);  // the free bytes are at the front until write_ptr() compacts
  char* w = b.write_ptr();
  EXPECT_EQ(b.write_space(), 100u);
  EXPECT_EQ(b.view().substr(0, 5), "xxxxx");
  std::memcpy(w, "tail", 4);
  b.commit(4);
  EXPECT_EQ(b.size(), Buffer::kCapacity - 96);
  EXPECT_EQ(b.view().substr(b.size() - 4), "tail");
  b.consume(10);
  EXPECT_EQ(b.append(std::string(100, 'y')), 100u);  // 96 free at the end: append compacts by itself
  EXPECT_EQ(b.size(), Buffer::kCapacity - 6);
  EXPECT_EQ(b.view().substr(b.size() - 104), "tail" + std::string(100, 'y'));
}

TEST(Buffer, EmptiedBufferReturnsItsBlockToThePool) {
  Buffer b;
  b.append("payload");
  size_t pooled_while_held = Buffer::pooled_blocks();
  b.consume(3);
  EXPECT_EQ(Buffer::pooled_blocks(), pooled_while_held);
  b.consume(4);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(Buffer::pooled_blocks(), pooled_while_held + 1);
  // The next buffer reuses the pooled block instead of allocating.
  Buffer c;
  c.append("x");
  EXPECT_EQ(Buffer::pooled_blocks(), pooled_while_held);
  c.clear();
  EXPECT_EQ(Buffer::pooled_blocks(), pooled_while_held + 1);
  // Holding no bytes means holding no block, even after an empty append.
  Buffer d;
  EXPECT_EQ(d.append(""), 0u);
  EXPECT_EQ(Buffer::pooled_blocks(), pooled_while_held + 1);
}

TEST(Buffer, MoveTransfersTheBlock) {
  Buffer a;
  a.append("abc");
  size_t pooled = Buffer::pooled_blocks();
  Buffer b(std::move(a));
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): a moved-from buffer is defined to be empty
  EXPECT_EQ(b.view(), "abc");
  EXPECT_EQ(Buffer::pooled_blocks(), pooled);
  Buffer c;
  c.append("zz");
  pooled = Buffer::pooled_blocks();
  c = std::move(b);  // c's own block goes back to the pool
  EXPECT_EQ(c.view(), "abc");
  EXPECT_EQ(Buffer::pooled_blocks(), pooled + 1);
}

}  // namespace
}  // namespace cumulo::core
