#include "core/signals.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <vector>

namespace cumulo::core {
namespace {

// A blocked signal stays pending until the loop reads it from the signalfd: it reaches the callback once per
// delivery, on the loop's thread, and SIGPIPE is ignored from then on.
TEST(SignalWatcher, BlockedSignalsArriveOnTheLoop) {
  const sigset_t set = block_signals({SIGUSR1, SIGUSR2});
  EXPECT_EQ(sigismember(&set, SIGUSR1), 1);
  EXPECT_EQ(sigismember(&set, SIGINT), 0);
  struct sigaction pipe_action {};
  ASSERT_EQ(sigaction(SIGPIPE, nullptr, &pipe_action), 0);
  EXPECT_EQ(pipe_action.sa_handler, SIG_IGN);

  EventLoop loop;
  std::vector<int> seen;
  SignalWatcher watcher(loop, set, [&](int signo) {
    seen.push_back(signo);
    if (signo == SIGUSR2) loop.stop();
  });
  Timer give_up(loop, [&] { loop.stop(); });
  give_up.arm(Millis(2000));
  ASSERT_EQ(raise(SIGUSR1), 0);  // pending, not delivered: blocked in this thread
  ASSERT_EQ(raise(SIGUSR2), 0);
  loop.run();
  EXPECT_EQ(seen, (std::vector<int>{SIGUSR1, SIGUSR2}));
}

// What a child runs between fork and exec: every signal the parent blocked is deliverable again.
TEST(Signals, UnblockAllSignalsClearsTheMask) {
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGUSR1);
  sigaddset(&blocked, SIGTERM);
  sigset_t saved;
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &blocked, &saved), 0);
  unblock_all_signals();
  sigset_t now;
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, nullptr, &now), 0);
  for (int sig = 1; sig < NSIG; ++sig) EXPECT_EQ(sigismember(&now, sig), 0) << sig;
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &saved, nullptr), 0);
}

}  // namespace
}  // namespace cumulo::core
