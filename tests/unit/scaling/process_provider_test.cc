// Local processes as instances: start, observe the exit, stop with SIGTERM then SIGKILL.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>

#include "core/event_loop.h"
#include "core/net.h"
#include "scaling/instance_provider.h"

namespace cumulo::scaling {
namespace {

using namespace std::chrono_literals;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ProcessProviderTest : public testing::Test {
 protected:
  ProcessProviderTest() {
    char tmpl[] = "/tmp/cumulo-provider-test-XXXXXX";
    int fd = mkstemp(tmpl);
    ::close(fd);
    log_path_ = tmpl;
    provider_ = make_process_provider(
        loop_, [this](InstanceHandle h, const ExitStatus& s) { exits_.emplace_back(h, s); });
  }
  ~ProcessProviderTest() override {
    provider_.reset();
    std::remove(log_path_.c_str());
  }

  LaunchSpec shell(const std::string& script) {
    LaunchSpec spec;
    spec.name = "test";
    spec.executable = "/bin/sh";
    spec.argv = {"sh", "-c", script};
    spec.log_path = log_path_;
    return spec;
  }

  // Runs the loop until `done` holds or 10 s pass (the loop runs once per test: stop() is final).
  void run_until(std::function<bool()> done) {
    std::unique_ptr<core::Timer> check;
    check = std::make_unique<core::Timer>(loop_, [&] {
      if (done()) {
        loop_.stop();
      } else {
        check->arm(10ms);
      }
    });
    core::Timer deadline(loop_, [this] { loop_.stop(); });
    check->arm(0ms);
    deadline.arm(10s);
    loop_.run();
  }

  // Before the loop runs: waits until the instances have written `text` to the log.
  bool log_shows(const std::string& text) {
    for (int i = 0; i < 500; ++i) {
      if (read_file(log_path_).find(text) != std::string::npos) return true;
      usleep(10'000);
    }
    return false;
  }

  const ExitStatus* exit_of(InstanceHandle h) const {
    for (const auto& [handle, status] : exits_) {
      if (handle == h) return &status;
    }
    return nullptr;
  }

  core::EventLoop loop_;
  std::string log_path_;
  std::vector<std::pair<InstanceHandle, ExitStatus>> exits_;
  std::unique_ptr<InstanceProvider> provider_;
};

TEST_F(ProcessProviderTest, ReportsTheExitCodeAndWritesOutputToTheLog) {
  LaunchSpec spec = shell("echo \"$GREETING\"; echo oops >&2; read line || exit 3");
  spec.env = {{"GREETING", "hello from the instance"}};
  InstanceHandle h = provider_->start(spec);
  EXPECT_TRUE(provider_->running(h));
  EXPECT_EQ(getpgid(static_cast<pid_t>(h)), h) << "the instance leads its own process group";
  run_until([&] { return exit_of(h) != nullptr; });
  ASSERT_NE(exit_of(h), nullptr);
  // stdin is /dev/null, so `read` sees end of file at once.
  EXPECT_EQ(exit_of(h)->exit_code, 3);
  EXPECT_EQ(exit_of(h)->describe(), "exited with code 3");
  EXPECT_FALSE(provider_->running(h));
  EXPECT_EQ(provider_->running_count(), 0u);
  EXPECT_EQ(read_file(log_path_), "hello from the instance\noops\n");
}

TEST_F(ProcessProviderTest, StopSendsSigtermThenSigkillAfterTheGracePeriod) {
  InstanceHandle polite = provider_->start(shell("exec sleep 30"));
  InstanceHandle stubborn = provider_->start(shell("trap '' TERM; echo ignoring TERM; exec sleep 30"));
  EXPECT_EQ(provider_->running_count(), 2u);
  ASSERT_TRUE(
      log_shows("ignoring TERM"));  // SIGTERM before the trap would end it, which is not the point here
  provider_->stop(polite, 5s);
  provider_->stop(stubborn, 200ms);
  provider_->stop(stubborn, 200ms);  // idempotent
  run_until([&] { return exits_.size() == 2; });
  ASSERT_NE(exit_of(polite), nullptr);
  ASSERT_NE(exit_of(stubborn), nullptr);
  EXPECT_EQ(exit_of(polite)->signal, SIGTERM);
  EXPECT_EQ(exit_of(stubborn)->signal, SIGKILL);
  EXPECT_EQ(exit_of(stubborn)->describe(), "killed by signal 9 (SIGKILL)");
}

TEST_F(ProcessProviderTest, StopSendsTheSpecsStopSignal) {
  LaunchSpec spec = shell("trap 'echo got QUIT; exit 4' QUIT; echo ready; while :; do sleep 0.05; done");
  spec.stop_signal = SIGQUIT;
  InstanceHandle h = provider_->start(spec);
  ASSERT_TRUE(log_shows("ready"));
  provider_->stop(h, 5s);
  run_until([&] { return exit_of(h) != nullptr; });
  ASSERT_NE(exit_of(h), nullptr);
  EXPECT_EQ(exit_of(h)->exit_code, 4);
  EXPECT_NE(read_file(log_path_).find("got QUIT"), std::string::npos);
}

TEST_F(ProcessProviderTest, RunsInTheWorkingDirectory) {
  LaunchSpec spec = shell("pwd");
  spec.working_dir = "/tmp";
  InstanceHandle h = provider_->start(spec);
  run_until([&] { return exit_of(h) != nullptr; });
  EXPECT_EQ(read_file(log_path_), "/tmp\n");
  spec.working_dir = "/nonexistent/dir";
  EXPECT_THROW(provider_->start(spec), std::runtime_error);
}

// Listening sockets handed down (network mode: admin APIs bound on the host) arrive as descriptors 3, 4, ...
// in order, named in CUMULO_LISTEN_FDS, the same sockets as the parent's.
TEST_F(ProcessProviderTest, InheritsListenersAsDescriptorsFromThree) {
  core::Fd a = core::listen_tcp_for_child(*core::SocketAddress::parse("127.0.0.1:0"));
  core::Fd b = core::listen_tcp_for_child(*core::SocketAddress::parse("127.0.0.1:0"));
  auto link = [](const std::string& path) {
    char buf[256] = {};
    ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  };
  const std::string socket_a = link("/proc/self/fd/" + std::to_string(a.get()));
  const std::string socket_b = link("/proc/self/fd/" + std::to_string(b.get()));
  ASSERT_EQ(socket_a.rfind("socket:[", 0), 0u) << socket_a;
  LaunchSpec spec = shell("echo \"$CUMULO_LISTEN_FDS\"; readlink /proc/$$/fd/3; readlink /proc/$$/fd/4");
  spec.inherit_fds = {b.get(), a.get()};
  InstanceHandle h = provider_->start(spec);
  run_until([&] { return exit_of(h) != nullptr; });
  EXPECT_EQ(read_file(log_path_), "3,4\n" + socket_b + "\n" + socket_a + "\n");
}

// Network mode: the child runs in the named network namespace (made here with iproute2, as root).
TEST_F(ProcessProviderTest, RunsInItsNetworkNamespace) {
  ASSERT_EQ(geteuid(), 0u) << "network namespaces need root: run the unit tests as root";
  const std::string ns = "cumulo-unit-" + std::to_string(getpid());
  ASSERT_EQ(std::system(("ip netns add " + ns).c_str()), 0)
      << "ip netns add failed; if `ip` is missing: apt-get install -y iproute2";
  struct stat st {};
  ASSERT_EQ(stat(("/run/netns/" + ns).c_str(), &st), 0);
  LaunchSpec spec = shell("readlink /proc/$$/ns/net");
  spec.netns = ns;
  InstanceHandle h = provider_->start(spec);
  run_until([&] { return exit_of(h) != nullptr; });
  EXPECT_EQ(read_file(log_path_), "net:[" + std::to_string(st.st_ino) + "]\n");
  EXPECT_EQ(std::system(("ip netns del " + ns).c_str()), 0);

  spec.netns = ns;  // gone now
  try {
    provider_->start(spec);
    ADD_FAILURE() << "started in a namespace that does not exist";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open the network namespace /run/netns/" + ns),
              std::string::npos)
        << e.what();
  }
}

// Network mode: an instance, root or not, cannot administer networks or namespaces (its bounding set lacks
// CAP_SYS_ADMIN and CAP_NET_ADMIN, so it cannot enter the router's namespace or change rules); without the
// flag the set is the parent's.
TEST_F(ProcessProviderTest, DropsAdminCapabilitiesWhenAsked) {
  auto bounding_set = [this](bool drop) {
    std::remove(log_path_.c_str());
    LaunchSpec spec = shell("grep CapBnd /proc/$$/status");
    spec.drop_admin_capabilities = drop;
    InstanceHandle h = provider_->start(spec);
    for (int i = 0; i < 500 && read_file(log_path_).empty(); ++i) usleep(10'000);
    (void)h;
    const std::string line = read_file(log_path_);
    return line.size() > 8 ? std::stoull(line.substr(line.find_first_of("0123456789abcdef", 7)), nullptr, 16)
                           : ~0ull;
  };
  const unsigned long long dropped = bounding_set(true);
  EXPECT_EQ(dropped & (1ull << 21), 0u) << "CAP_SYS_ADMIN";
  EXPECT_EQ(dropped & (1ull << 12), 0u) << "CAP_NET_ADMIN";
  EXPECT_EQ(dropped & (1ull << 19), 0u) << "CAP_SYS_PTRACE";
  EXPECT_NE(dropped & (1ull << 10), 0u) << "CAP_NET_BIND_SERVICE stays";
  const unsigned long long kept = bounding_set(false);
  EXPECT_NE(kept & (1ull << 21), 0u) << "the test runs with CAP_SYS_ADMIN in its bounding set";
  run_until([&] { return exits_.size() == 2; });
}

TEST_F(ProcessProviderTest, SamplesCpuAndMemoryOfARunningInstance) {
  InstanceHandle h =
      provider_->start(shell("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo done; exec sleep 30"));
  ASSERT_TRUE(log_shows("done"));
  // Sampled right after its exec, `sleep` has not mapped its libraries yet (84 KiB resident was seen; 1.8 MB
  // once it has): sample again until it settles, for up to a second.
  auto s = provider_->sample(h);
  for (int i = 0; i < 100 && s && s->rss_bytes <= 100u * 1024; ++i) {
    usleep(10'000);
    s = provider_->sample(h);
  }
  ASSERT_TRUE(s.has_value());
  EXPECT_GT(s->cpu_seconds, 0.01);
  EXPECT_GT(s->rss_bytes, 100u * 1024);
  provider_->kill(h);
  run_until([&] { return exit_of(h) != nullptr; });
  EXPECT_FALSE(provider_->sample(h).has_value());
}

TEST_F(ProcessProviderTest, KillStopsAtOnce) {
  InstanceHandle h = provider_->start(shell("trap '' TERM; exec sleep 30"));
  provider_->kill(h);
  run_until([&] { return exit_of(h) != nullptr; });
  ASSERT_NE(exit_of(h), nullptr);
  EXPECT_EQ(exit_of(h)->signal, SIGKILL);
}

TEST_F(ProcessProviderTest, AProgramThatCannotRunIsAnErrorFromStart) {
  LaunchSpec spec;
  spec.name = "broken";
  spec.executable = "/nonexistent/program";
  spec.argv = {"program"};
  spec.log_path = log_path_;
  try {
    provider_->start(spec);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot run /nonexistent/program for broken"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(provider_->running_count(), 0u);
}

TEST_F(ProcessProviderTest, AnUnwritableLogIsAnErrorFromStart) {
  LaunchSpec spec = shell("exit 0");
  spec.log_path = "/nonexistent/dir/x.log";
  EXPECT_THROW(provider_->start(spec), std::runtime_error);
}

TEST_F(ProcessProviderTest, DestructionKillsWhatIsStillRunning) {
  InstanceHandle h = provider_->start(shell("exec sleep 30"));
  provider_.reset();
  EXPECT_EQ(::kill(static_cast<pid_t>(h), 0), -1) << "killed and reaped";
}

TEST(ExitStatus, DescribesExitsAndSignals) {
  EXPECT_EQ((ExitStatus{0, 0, false}).describe(), "exited with code 0");
  EXPECT_EQ((ExitStatus{-1, SIGSEGV, true}).describe(), "killed by signal 11 (SIGSEGV), core dumped");
  EXPECT_EQ(ExitStatus{}.describe(), "ended (status unknown)");
}

}  // namespace
}  // namespace cumulo::scaling
