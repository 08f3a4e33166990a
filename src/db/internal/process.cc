#include "db/internal/process.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "core/files.h"
#include "core/net.h"
#include "core/signals.h"

namespace cumulo::db {

pid_t spawn(const std::vector<std::string>& argv, const std::string& output_path,
            const std::string& stdin_path, const std::string& stdout_path, const std::string& netns) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int in = ::open(stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) throw std::runtime_error("cannot open " + stdin_path + ": " + std::strerror(errno));
  int out = ::open(output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (out < 0) {
    ::close(in);
    throw std::runtime_error("cannot open " + output_path + ": " + std::strerror(errno));
  }
  // Opened here, joined in the child (setns before exec), as the scaling process provider does.
  core::Fd netns_fd;
  if (!netns.empty()) {
    netns_fd = core::open_network_namespace(netns);
    if (!netns_fd) {
      int err = errno;
      ::close(in);
      ::close(out);
      throw std::runtime_error("cannot open the network namespace " + core::network_namespace_path(netns) +
                               " of " + argv[0] + ": " + std::strerror(err));
    }
  }
  int sout = out;
  if (!stdout_path.empty()) {
    sout = ::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (sout < 0) {
      ::close(in);
      ::close(out);
      throw std::runtime_error("cannot open " + stdout_path + ": " + std::strerror(errno));
    }
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    // The parent blocks its stop signals for a signalfd; the child must get them back.
    core::unblock_all_signals();
    signal(SIGPIPE, SIG_DFL);
    ::setpgid(0, 0);  // a Ctrl-C at the terminal reaches cumulo, which stops its servers in order
    ::dup2(in, 0);
    ::dup2(sout, 1);
    ::dup2(out, 2);
    if (netns_fd && ::setns(netns_fd.get(), CLONE_NEWNET) != 0) {
      dprintf(2, "cannot join the network namespace %s: %s\n", netns.c_str(), std::strerror(errno));
      _exit(127);
    }
    ::execv(args[0], args.data());
    dprintf(2, "cannot run %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  int err = errno;
  ::close(in);
  ::close(out);
  if (sout != out) ::close(sout);
  if (pid < 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(err));
  return pid;
}

int run_tool(const std::vector<std::string>& argv, const std::string& output_path,
             const std::string& stdin_path, const std::string& stdout_path) {
  pid_t pid = spawn(argv, output_path, stdin_path, stdout_path);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

bool reap(pid_t pid, int* status) {
  int st = 0;
  pid_t r = ::waitpid(pid, &st, WNOHANG);
  if (r == pid) {
    if (status) *status = st;
    return true;
  }
  return r < 0 && errno == ECHILD;
}

void stop_process(pid_t pid, std::chrono::milliseconds grace) {
  if (pid <= 0 || reap(pid)) return;
  ::kill(pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (reap(pid)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid, SIGKILL);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
}

namespace {

// State and start time from /proc/PID/stat; false when the process is gone.
bool read_stat(pid_t pid, char& state, uint64_t& start_ticks) {
  std::string stat = core::read_file("/proc/" + std::to_string(pid) + "/stat");
  // "PID (COMM) STATE ..." where COMM may hold spaces and parentheses: fields start after the last ')'.
  size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return false;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  fields >> state;
  // The state is field 3; the start time is field 22.
  for (int i = 4; i <= 22; ++i) {
    if (!(fields >> field)) return false;
  }
  start_ticks = std::strtoull(field.c_str(), nullptr, 10);
  return true;
}

}  // namespace

std::optional<AdoptedProcess> find_running(const std::string& pid_file,
                                           const std::vector<std::string>& needles) {
  pid_t pid = static_cast<pid_t>(std::atol(core::read_file(pid_file).c_str()));
  if (pid <= 0) return std::nullopt;
  char state = 0;
  uint64_t start = 0;
  if (!read_stat(pid, state, start) || state == 'Z' || state == 'X') return std::nullopt;
  std::string cmdline = core::read_file("/proc/" + std::to_string(pid) + "/cmdline");
  for (const std::string& needle : needles) {
    if (cmdline.find(needle) == std::string::npos) return std::nullopt;
  }
  return AdoptedProcess{pid, start};
}

bool running(const AdoptedProcess& p) {
  char state = 0;
  uint64_t start = 0;
  return p.pid > 0 && read_stat(p.pid, state, start) && state != 'Z' && state != 'X' &&
         start == p.start_ticks;
}

void stop_adopted(const AdoptedProcess& p, std::chrono::milliseconds grace) {
  if (!running(p)) return;
  ::kill(p.pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (running(p) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (running(p)) kill_now(p.pid, false, std::chrono::milliseconds(10'000));
}

bool kill_now(pid_t pid, bool child, std::chrono::milliseconds limit) {
  if (pid <= 0) return true;
  if (child && reap(pid)) return true;
  char state = 0;
  uint64_t start = 0;
  if (!child && !read_stat(pid, state, start)) return true;
  ::kill(pid, SIGKILL);
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (child ? reap(pid) : (!read_stat(pid, state, start) || state == 'Z' || state == 'X')) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string file_tail(const std::string& path, size_t count) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(std::move(line));
    if (lines.size() > count) lines.erase(lines.begin());
  }
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

}  // namespace cumulo::db
