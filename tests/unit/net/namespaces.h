// What the tests that make real network namespaces share (vpc_test.cc, netlink_test.cc): commands run through
// the shell, and the sweep of namespaces that a killed earlier run left. Their namespaces are named
// "cu-utPID-..." (a stack "utPID-..."), so that no two runs, and no real stack, can clash.
#pragma once

#include <dirent.h>
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace cumulo::net::test_namespaces {

// What `cmd` wrote to stdout and stderr.
inline std::string shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return "popen failed";
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  pclose(p);
  return out;
}

// Whether `cmd` succeeded; its output is dropped.
inline bool run(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
}

// Namespaces of an earlier run of these tests that was killed before its clean-up: "cu-utPID-..." whose
// process is gone.
inline void remove_namespaces_of_dead_runs() {
  DIR* dir = ::opendir("/run/netns");
  if (dir == nullptr) return;
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(dir)) {
    std::string name(e->d_name);
    if (name.rfind("cu-ut", 0) != 0) continue;
    pid_t pid = static_cast<pid_t>(std::atol(name.c_str() + 5));
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(name);
  }
  ::closedir(dir);
  for (const std::string& name : stale) run("ip netns delete " + name);
}

}  // namespace cumulo::net::test_namespaces
