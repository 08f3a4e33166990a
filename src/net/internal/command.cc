#include "net/internal/command.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/net.h"

extern char** environ;

namespace cumulo::net::internal {

namespace {

// What installs a missing program, in the words of the machine it runs on (Debian).
std::string install_hint(const std::string& program) {
  if (program == "ip") return " (iproute2 is not installed: apt-get install -y iproute2)";
  if (program == "nft") return " (nftables is not installed: apt-get install -y nftables)";
  return " (is it installed? see scripts/install-deps.sh)";
}

std::string command_line(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

core::Error command_error(const std::vector<std::string>& argv, const std::string& what) {
  return core::Error{"command", command_line(argv) + ": " + what, core::ErrorSource::kInternal,
                     core::Retry::kNo};
}

// Keeps what a failing command says short enough for one log line.
std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.size() > 2000) s = s.substr(0, 2000) + "...";
  return s;
}

}  // namespace

Result<std::string> run_command(const std::vector<std::string>& argv, std::string_view input) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return core::Err(command_error(argv, "pipe: " + core::errno_text(errno)));
  if (::pipe2(out, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(in[0]);
    ::close(in[1]);
    return core::Err(command_error(argv, "pipe: " + core::errno_text(e)));
  }
  if (::pipe2(err, O_CLOEXEC) != 0) {
    int e = errno;
    for (int fd : {in[0], in[1], out[0], out[1]}) ::close(fd);
    return core::Err(command_error(argv, "pipe: " + core::errno_text(e)));
  }
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  // The service blocks its stop signals for a signalfd; the child gets the default mask and dispositions.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    for (int fd : {in[1], out[0], err[0]}) ::close(fd);
    return core::Err(command_error(
        argv, "cannot start: " + core::errno_text(rc) + (rc == ENOENT ? install_hint(argv[0]) : "")));
  }

  // Feed stdin and drain stdout and stderr together, so that neither side blocks on a full pipe.
  std::string stdout_text, stderr_text;
  size_t written = 0;
  int to_child = in[1];
  if (input.empty()) {
    ::close(to_child);
    to_child = -1;
  } else {
    ::fcntl(to_child, F_SETFL, O_NONBLOCK);
  }
  int from_out = out[0], from_err = err[0];
  // A child that exits before reading all its input makes write() raise SIGPIPE: blocked on this thread and
  // consumed afterwards, so that the exit status reports the failure instead of the signal ending the
  // process.
  sigset_t pipe_set, old_mask, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigpending(&pending);
  const bool pipe_was_pending = sigismember(&pending, SIGPIPE) == 1;
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
  while (from_out >= 0 || from_err >= 0 || to_child >= 0) {
    pollfd fds[3];
    int n = 0;
    if (to_child >= 0) fds[n++] = {to_child, POLLOUT, 0};
    if (from_out >= 0) fds[n++] = {from_out, POLLIN, 0};
    if (from_err >= 0) fds[n++] = {from_err, POLLIN, 0};
    if (::poll(fds, static_cast<nfds_t>(n), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      int fd = fds[i].fd;
      if (fd == to_child) {
        ssize_t w = ::write(fd, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) {
          ::close(to_child);  // EPIPE: the child stopped reading; its exit status says why
          to_child = -1;
        }
        continue;
      }
      char buf[4096];
      ssize_t r = ::read(fd, buf, sizeof buf);
      if (r > 0) {
        (fd == from_out ? stdout_text : stderr_text).append(buf, static_cast<size_t>(r));
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(fd);
        (fd == from_out ? from_out : from_err) = -1;
      }
    }
  }
  for (int fd : {to_child, from_out, from_err})
    if (fd >= 0) ::close(fd);
  sigpending(&pending);
  if (!pipe_was_pending && sigismember(&pending, SIGPIPE) == 1) {
    timespec zero{};
    sigtimedwait(&pipe_set, nullptr, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return core::Err(command_error(argv, "waitpid: " + core::errno_text(errno)));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return stdout_text;
  std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                      : "killed by signal " + std::to_string(WTERMSIG(status));
  std::string said = trimmed(stderr_text.empty() ? stdout_text : stderr_text);
  return core::Err(command_error(argv, how + (said.empty() ? "" : ": " + said)));
}

Result<void> ip_batch(const std::string& ns, const std::string& commands) {
  auto r = run_command({"ip", "-n", ns, "-batch", "-"}, commands);
  if (!r) {
    core::Error e = r.error();
    e.message += " (batch: " + trimmed(commands) + ")";
    for (char& c : e.message)
      if (c == '\n') c = ';';
    return core::Err(std::move(e));
  }
  return {};
}

}  // namespace cumulo::net::internal
