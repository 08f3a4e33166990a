// Signals as events on a loop: a process blocks the signals it handles before it starts any thread (threads
// inherit the mask, so none of them is interrupted by one), then reads them from a signalfd on its main loop.
#pragma once

#include <signal.h>

#include <cstdint>
#include <functional>
#include <initializer_list>

#include "core/event_loop.h"
#include "core/net.h"

namespace cumulo::core {

// Blocks `signals` in the calling thread and in the threads it starts afterwards, and ignores SIGPIPE (a
// write to a closed socket is then an EPIPE the writer handles, not the end of the process). Returns the set,
// for a SignalWatcher.
sigset_t block_signals(std::initializer_list<int> signals);

// Clears the signal mask of the calling thread. For a child between fork and exec: the parent blocks the
// signals it reads from a signalfd, and a mask survives exec, so the program would start deaf to them.
// Async-signal-safe.
void unblock_all_signals();

// Calls `on_signal(signo)` on `loop` for each of `signals` (blocked beforehand with block_signals) that
// arrives.
class SignalWatcher final : public IoHandler {
 public:
  SignalWatcher(EventLoop& loop, const sigset_t& signals, std::function<void(int)> on_signal);
  ~SignalWatcher() override;
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  // core::IoHandler
  void on_io(uint32_t events) override;

 private:
  EventLoop& loop_;
  std::function<void(int)> on_signal_;
  Fd fd_;
};

}  // namespace cumulo::core
