// `cumulo up` with a stand-in gateway (a script that listens where the generated config says) and small shell
// and Python instances: start-up, restart after a crash on the same port, stop order, and failed starts.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/config.h"
#include "core/net.h"
#include "stack/stack.h"

namespace cumulo::stack {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Listens on every `listen:` of its config, as the real gateway would, and on SIGTERM records which targets
// still accepted connections: the supervisor must stop the gateway while the instances still run.
constexpr char kFakeGateway[] = R"py(#!/usr/bin/python3
import os, re, signal, socket, sys, time
assert sys.argv[1:3] == ["gateway", "-c"], sys.argv
here = os.path.dirname(os.path.abspath(sys.argv[0]))
text = open(sys.argv[3]).read()
socks = []
for addr in re.findall(r'listen: "([^"]+)"', text):
    host, port = addr.rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(16)
    socks.append(s)
def on_term(*_):
    up = []
    for addr in re.findall(r'address: "([^"]+)"', text):
        host, port = addr.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            up.append(addr)
        except OSError:
            pass
    with open(os.path.join(here, "targets-up-at-gateway-stop"), "w") as f:
        f.write("\n".join(up))
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
with open(os.path.join(here, "gateway.pid"), "w") as f:
    f.write(str(os.getpid()))
print("fake gateway listening", flush=True)
while True:
    time.sleep(1)
)py";

uint16_t free_port() {
  core::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  return core::SocketAddress::from_fd_local(fd.get())->port();
}

bool accepts(const std::string& address) {
  auto addr = core::SocketAddress::parse(address);
  core::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  return ::connect(fd.get(), addr->sa(), addr->length) == 0;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

pid_t read_pid(const fs::path& path) {
  return static_cast<pid_t>(std::atol(read_file(path).c_str()));
}

// STATE_DIR/stack.json, or null while there is none (it is replaced atomically, so never half-written).
nlohmann::json read_status(const fs::path& state_dir) {
  std::string text = read_file(state_dir / "stack.json");
  return text.empty() ? nlohmann::json::object() : nlohmann::json::parse(text);
}

bool eventually(const std::function<bool()>& check, std::chrono::milliseconds within) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (check()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return check();
}

// run_up on its own thread, stopped with SIGTERM like a terminal's `kill` would, by stop() or at the latest
// when the test ends (also when an assertion returned early).
class RunningStack {
 public:
  RunningStack(const std::string& stack_file, const UpOptions& options) {
    // The stop signals must stay blocked in this thread too, or the kernel could deliver them here instead.
    sigset_t signals;
    sigemptyset(&signals);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&signals, sig);
    pthread_sigmask(SIG_BLOCK, &signals, &previous_mask_);
    thread_ = std::thread([this, stack_file, options] { exit_code_ = run_up(stack_file, options); });
  }
  ~RunningStack() { stop(); }

  int stop() {
    if (thread_.joinable()) {
      pthread_kill(thread_.native_handle(), SIGTERM);
      if (!eventually([&] { return exit_code_ != -1; }, 20s)) {
        ADD_FAILURE() << "cumulo up did not stop within 20 s after SIGTERM";
        std::abort();  // a hung supervisor thread cannot be joined: fail loudly instead of hanging the suite
      }
      thread_.join();
      pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
    }
    return exit_code_;
  }

 private:
  sigset_t previous_mask_{};
  std::atomic<int> exit_code_{-1};
  std::thread thread_;
};

class SupervisorTest : public testing::Test {
 protected:
  SupervisorTest() {
    char tmpl[] = "/tmp/cumulo-up-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    fake_gateway_ = dir_ / "cumulo";
    std::ofstream(fake_gateway_) << kFakeGateway;
    fs::permissions(fake_gateway_, fs::perms::owner_all);
    listen_ = "127.0.0.1:" + std::to_string(free_port());
    admin_ = "127.0.0.1:" + std::to_string(free_port());
    options_.cumulo_binary = fake_gateway_.string();
    options_.state_dir = (dir_ / "state").string();
  }
  ~SupervisorTest() override { fs::remove_all(dir_); }

  fs::path write_stack(const std::string& groups) {
    fs::path p = dir_ / "stack.yaml";
    std::ofstream(p) << "name: test\nzones: [a, b]\ngateway:\n  listen: " << listen_
                     << "\n  admin: " << admin_ << "\n  drain_timeout: 2s\ngroups:\n"
                     << groups;
    return p;
  }

  fs::path dir_;
  fs::path fake_gateway_;
  std::string listen_;
  std::string admin_;
  UpOptions options_;
};

TEST_F(SupervisorTest, RunsRestartsAndStopsTheStackInOrder) {
  // Each instance records its PID (the shell execs the server, so the PID stays) and serves HTTP on {port}.
  fs::path stack =
      write_stack("  - name: web\n    command: [/bin/sh, -c, \"echo $$ > " + dir_.string() +
                  "/{instance_id}.pid; exec /usr/bin/python3 -m http.server {port} --bind 127.0.0.1\"]\n");

  RunningStack running(stack.string(), options_);

  const fs::path state = options_.state_dir;
  ASSERT_TRUE(eventually([&] { return read_status(state).value("state", "") == "running"; }, 20s))
      << "the stack did not come up; gateway log:\n"
      << read_file(state / "logs/gateway.log");
  nlohmann::json status = read_status(state);
  const pid_t gateway_pid = read_pid(dir_ / "gateway.pid");
  EXPECT_EQ(status["gateway"]["pid"], gateway_pid);
  EXPECT_EQ(status["url"], "http://" + listen_ + "/");
  ASSERT_EQ(status["instances"].size(), 2u);
  EXPECT_EQ(status["instances"][0]["id"], "web-a-1");
  EXPECT_EQ(status["instances"][0]["pid"], read_pid(dir_ / "web-a-1.pid"));
  EXPECT_TRUE(accepts(listen_));

  // The generated config holds one target per instance, tagged with its zone.
  core::ConfigNode config = core::ConfigNode::load_file((dir_ / "state/gateway.yaml").string());
  auto targets = config["target_groups"].items().at(0)["targets"].items();
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[0]["zone"].as_string(), "a");
  EXPECT_EQ(targets[1]["zone"].as_string(), "b");
  const std::string web_a_address = targets[0]["address"].as_string();
  EXPECT_EQ(status["instances"][0]["address"], web_a_address);
  EXPECT_TRUE(accepts(web_a_address));
  EXPECT_EQ(config["listeners"].items().at(0)["listen"].as_string(), listen_);

  // A crashed instance comes back on the same port after the first backoff (1 s).
  const pid_t first_pid = read_pid(dir_ / "web-a-1.pid");
  ASSERT_GT(first_pid, 0);
  ASSERT_EQ(::kill(first_pid, SIGKILL), 0);
  EXPECT_TRUE(eventually(
      [&] {
        nlohmann::json web_a = read_status(state)["instances"][0];
        pid_t now = read_pid(dir_ / "web-a-1.pid");
        return web_a["restarts"] == 1 && web_a["pid"] == now && now != first_pid && accepts(web_a_address);
      },
      10s))
      << "web-a-1 was not restarted on " << web_a_address;
  const pid_t second_pid = read_pid(dir_ / "web-a-1.pid");
  const pid_t web_b_pid = read_pid(dir_ / "web-b-1.pid");

  EXPECT_EQ(running.stop(), 0);
  EXPECT_EQ(read_status(state)["state"], "stopped");
  // Stopped and reaped, every one of them.
  for (pid_t pid : {gateway_pid, second_pid, web_b_pid}) EXPECT_EQ(::kill(pid, 0), -1) << "pid " << pid;
  // The gateway was stopped while both instances still served.
  std::string up = read_file(dir_ / "targets-up-at-gateway-stop");
  EXPECT_NE(up.find(web_a_address), std::string::npos) << up;
  EXPECT_NE(up.find(targets[1]["address"].as_string()), std::string::npos) << up;
  EXPECT_NE(read_file(dir_ / "state/logs/gateway.log").find("fake gateway listening"), std::string::npos);
}

TEST_F(SupervisorTest, AnInstanceThatExitsAtStartFailsTheStartWithItsLog) {
  fs::path stack =
      write_stack("  - name: web\n    command: [/bin/sh, -c, \"echo cannot serve {port}; exit 7\"]\n");
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(run_up(stack.string(), options_), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  // Whichever instance failed first ended the start; the other may have been stopped before it said anything.
  std::string logs = read_file(dir_ / "state/logs/web-a-1.log") + read_file(dir_ / "state/logs/web-b-1.log");
  EXPECT_NE(logs.find("cannot serve "), std::string::npos) << logs;
  EXPECT_FALSE(fs::exists(dir_ / "gateway.pid")) << "the gateway starts only once every instance is ready";
}

TEST_F(SupervisorTest, AnInstanceThatNeverListensFailsAfterItsStartTimeout) {
  fs::path stack = write_stack(
      "  - name: web\n    command: [/bin/sh, -c, \"exec sleep 30 {port}\"]\n    start_timeout: 300ms\n");
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(run_up(stack.string(), options_), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s)
      << "the sleeping instances were stopped with SIGTERM";
}

TEST_F(SupervisorTest, ATakenGatewayPortFailsBeforeAnythingStarts) {
  fs::path stack = write_stack("  - name: web\n    command: [/bin/sh, -c, \"echo started > " + dir_.string() +
                               "/started; exec sleep 30 {port}\"]\n");
  core::Fd taken = core::listen_tcp(*core::SocketAddress::parse(listen_), false);
  EXPECT_EQ(run_up(stack.string(), options_), 1);
  EXPECT_FALSE(fs::exists(dir_ / "started"));
}

TEST_F(SupervisorTest, AMissingProgramIsABadStackFile) {
  fs::path stack = write_stack("  - name: web\n    command: [\"{bin_dir}/not-built-yet\", \"{port}\"]\n");
  EXPECT_EQ(run_up(stack.string(), options_), 2);
}

}  // namespace
}  // namespace cumulo::stack
