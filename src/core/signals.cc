#include "core/signals.h"

#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>

namespace cumulo::core {

sigset_t block_signals(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : signals) sigaddset(&set, sig);
  if (int rc = pthread_sigmask(SIG_BLOCK, &set, nullptr); rc != 0) {
    throw std::runtime_error("pthread_sigmask: " + errno_text(rc));
  }
  ::signal(SIGPIPE, SIG_IGN);
  return set;
}

void unblock_all_signals() {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

SignalWatcher::SignalWatcher(EventLoop& loop, const sigset_t& signals, std::function<void(int)> on_signal)
    : loop_(loop),
      on_signal_(std::move(on_signal)),
      fd_(::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC)) {
  if (!fd_) throw std::runtime_error("signalfd: " + errno_text(errno));
  loop_.add(fd_.get(), this, kReadable);
}

SignalWatcher::~SignalWatcher() {
  loop_.remove(fd_.get());
}

void SignalWatcher::on_io(uint32_t) {
  signalfd_siginfo info;
  while (::read(fd_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    on_signal_(static_cast<int>(info.ssi_signo));
  }
}

}  // namespace cumulo::core
