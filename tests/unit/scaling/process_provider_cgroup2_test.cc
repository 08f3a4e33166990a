// The process provider on a real cgroup2 file system that the test mounts: the instance's pid in its leaf's
// cgroup.procs, each limit either written or warned about (whatever controllers this kernel offers there),
// and the leaf removed after the reap. Needs root: without it the test fails and says so.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "core/event_loop.h"
#include "core/log.h"
#include "scaling/instance_provider.h"

namespace cumulo::scaling {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::HasSubstr;
using testing::Not;

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::set<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::set<std::string> out;
  for (std::string w; in >> w;) out.insert(w);
  return out;
}

// A cgroup2 file system mounted at a fresh temporary directory, unmounted and removed at the end whatever
// happens in between. (It shows the machine's one unified hierarchy: what is made in it is seen elsewhere
// too, hence names of this process's own.)
class Cgroup2Mount {
 public:
  Cgroup2Mount() {
    std::string tmpl = (fs::temp_directory_path() / "cumulo-cgroup2-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      error_ = std::string("mkdtemp: ") + std::strerror(errno);
      return;
    }
    dir_ = tmpl;
    if (::mount("none", dir_.c_str(), "cgroup2", 0, nullptr) != 0) {
      error_ = "cannot mount a cgroup2 file system at " + dir_.string() +
               " (mount -t cgroup2 none DIR): " + std::strerror(errno) +
               ". This test needs root (CAP_SYS_ADMIN) and a kernel with cgroup2.";
      return;
    }
    mounted_ = true;
  }
  ~Cgroup2Mount() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    if (!dir_.empty()) ::rmdir(dir_.c_str());
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
  bool mounted_ = false;
  std::string error_;
};

// The process log into a file for the test's length, back to stderr after.
class CapturedLog {
 public:
  CapturedLog() {
    char tmpl[] = "/tmp/cumulo-cgroup2-log-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ::close(fd);
    path_ = tmpl;
    ok_ = core::log_set_file(path_);
  }
  ~CapturedLog() {
    core::log_set_file("-");
    std::remove(path_.c_str());
  }
  bool ok() const { return ok_; }
  std::string text() const { return read_file(path_); }

 private:
  std::string path_;
  bool ok_ = false;
};

TEST(ProcessProviderOnCgroup2, PutsTheInstanceInItsLeafWithItsLimitsOrAWarningAndRemovesTheLeafAfterTheReap) {
  Cgroup2Mount mount;
  ASSERT_TRUE(mount.mounted()) << mount.error();
  const fs::path root = mount.dir();
  const std::set<std::string> offered = words(read_file(root / "cgroup.controllers"));
  std::cout << "cgroup.controllers of the mounted cgroup2: " << read_file(root / "cgroup.controllers");
  const bool had_cumulo = fs::exists(root / "cumulo");
  const std::string stack = "cgroup2-test-" + std::to_string(::getpid());
  const fs::path stack_dir = root / "cumulo" / stack;
  const fs::path leaf = stack_dir / "web-a-1";
  // After the provider (declared later, so destroyed first: it kills and reaps the instance), whatever an
  // assertion left behind, children first; cumulo/ only when this test made it.
  struct Cleanup {
    std::function<void()> run;
    ~Cleanup() { run(); }
  } cleanup{[&] {
    ::rmdir(leaf.c_str());
    ::rmdir(stack_dir.c_str());
    if (!had_cumulo) ::rmdir((root / "cumulo").c_str());
  }};

  CapturedLog log;
  ASSERT_TRUE(log.ok());
  core::EventLoop loop;
  std::vector<std::pair<InstanceHandle, ExitStatus>> exits;
  auto provider = make_process_provider(
      loop, [&](InstanceHandle h, const ExitStatus& s) { exits.emplace_back(h, s); }, {root.string()});

  LaunchSpec spec;
  spec.name = "web-a-1";
  spec.executable = "/bin/sleep";
  spec.argv = {"sleep", "30"};
  spec.log_path = "/dev/null";
  spec.cpu = 0.25;
  spec.memory_bytes = 64ull * 1024 * 1024;
  spec.cgroup = stack + "/web-a-1";
  InstanceHandle h = provider->start(spec);

  EXPECT_EQ(words(read_file(leaf / "cgroup.procs")), std::set<std::string>{std::to_string(h)})
      << "the instance is in its leaf " << leaf;
  EXPECT_EQ(read_file(stack_dir / "cgroup.procs"), "") << "no process above the leaf";
  EXPECT_EQ(read_file(root / "cumulo/cgroup.procs"), "") << "no process above the leaf";
  const std::string logged = log.text();
  std::cout << "the provider's log:\n" << logged;
  for (const std::string c : {"cpu", "memory"}) {
    const std::string warning = "instance " + c + " limits are not enforced";
    if (offered.count(c)) {
      EXPECT_THAT(logged, Not(HasSubstr(warning)));
      EXPECT_THAT(words(read_file(stack_dir / "cgroup.subtree_control")), testing::Contains(c));
      EXPECT_EQ(read_file(leaf / (c + ".max")), c == "cpu" ? "25000 100000\n" : "67108864\n");
    } else {
      EXPECT_THAT(logged, HasSubstr(warning));
      EXPECT_THAT(logged, HasSubstr("the " + c + " controller is not available in " +
                                    (root / "cgroup.controllers").string()));
      EXPECT_FALSE(fs::exists(leaf / (c + ".max")));
    }
  }

  provider->kill(h);
  core::Timer check(loop, [&] {
    if (!exits.empty()) loop.stop();
    check.arm(10ms);
  });
  core::Timer deadline(loop, [&] { loop.stop(); });
  check.arm(0ms);
  deadline.arm(10s);
  loop.run();
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_FALSE(fs::exists(leaf)) << "the leaf is removed after the reap";
  EXPECT_FALSE(fs::exists(stack_dir)) << "and the stack's directory with its last instance";
}

}  // namespace
}  // namespace cumulo::scaling
