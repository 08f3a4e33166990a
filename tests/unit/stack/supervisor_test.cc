// `cumulo up` with a stand-in gateway (a script that listens where the generated config says) and small shell
// and Python instances: start-up, restart after a crash on the same port, stop order, and failed starts.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
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
#include "http/client.h"
#include "stack/stack.h"

namespace cumulo::stack {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Listens where the generated config says, as the real gateway would, and serves the part of the admin API
// that the supervisor uses (targets registered and deregistered, GET /targets, GET /stats). On SIGTERM it
// records which registered targets still accepted connections: the supervisor must stop the gateway while the
// instances still run.
constexpr char kFakeGateway[] = R"py(#!/usr/bin/python3
import json, os, re, signal, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
assert sys.argv[1:3] == ["gateway", "-c"], sys.argv
here = os.path.dirname(os.path.abspath(sys.argv[0]))
text = open(sys.argv[3]).read()
listen, admin = re.findall(r'listen: "([^"]+)"', text)[1], re.findall(r'listen: "([^"]+)"', text)[0]
targets = {}  # address -> (group, zone)
lock = threading.Lock()
def log(line):
    with open(os.path.join(here, "gateway-calls"), "a") as f:
        f.write(line + "\n")
class Admin(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        with lock:
            if self.path == "/targets":
                groups = {}
                for a, (g, z) in targets.items():
                    groups.setdefault(g, []).append({"address": a, "zone": z, "health": "healthy", "state": "active"})
                return self.answer(200, {"groups": [{"name": g, "targets": t} for g, t in groups.items()]})
            if self.path == "/stats":
                return self.answer(200, {"targets": [{"group": g, "address": a, "requests": 0, "bytes_in": 0,
                                                      "bytes_out": 0, "latency_bounds": [0.1], "latency_counts": [0, 0]}
                                                     for a, (g, z) in targets.items()]})
        self.answer(404, {"error": "no"})
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        group = self.path.split("/")[2]
        with lock:
            if body["address"] in targets:
                return self.answer(409, {"error": "there"})
            targets[body["address"]] = (group, body.get("zone", ""))
        log("register " + group + " " + body["address"] + " " + body.get("zone", ""))
        self.answer(201, {})
    def do_DELETE(self):
        parts = self.path.split("?")[0].split("/")
        address = parts[3].replace("%3A", ":")
        with lock:
            known = targets.pop(address, None)
        log("deregister " + parts[2] + " " + address)
        self.answer(202 if known else 404, {})
server = ThreadingHTTPServer(tuple([admin.rsplit(":", 1)[0], int(admin.rsplit(":", 1)[1])]), Admin)
threading.Thread(target=server.serve_forever, daemon=True).start()
public = socket.socket()
public.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
host, port = listen.rsplit(":", 1)
public.bind((host, int(port)))
public.listen(16)
def on_term(*_):
    up = []
    with lock:
        addresses = list(targets)
    for addr in addresses:
        host, port = addr.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            up.append(addr)
        except OSError:
            pass
    with open(os.path.join(here, "targets-up-at-gateway-stop"), "w") as f:
        f.write("\n".join(up))
    os._exit(0)
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

  void signal(int signo) { pthread_kill(thread_.native_handle(), signo); }
  bool exited() const { return exit_code_ != -1; }

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
    control_ = "127.0.0.1:" + std::to_string(free_port());
    options_.cumulo_binary = fake_gateway_.string();
    options_.state_dir = (dir_ / "state").string();
  }
  ~SupervisorTest() override { fs::remove_all(dir_); }

  fs::path write_stack(const std::string& groups) {
    fs::path p = dir_ / "stack.yaml";
    std::ofstream(p) << "name: test\nzones: [a, b]\ncontrol: {listen: " << control_
                     << "}\ngateway:\n  listen: " << listen_ << "\n  admin: " << admin_
                     << "\n  drain_timeout: 2s\ngroups:\n"
                     << groups;
    return p;
  }

  // A group of Python HTTP servers that record their PIDs; "/" answers 200, so it is the health check path.
  std::string http_group(int min, int max, int desired) {
    return "  - name: web\n    min: " + std::to_string(min) + "\n    max: " + std::to_string(max) +
           "\n    desired: " + std::to_string(desired) +
           "\n    drain_timeout: 1s\n    launch_template:\n      command: [/bin/sh, -c, \"echo $$ > " +
           dir_.string() +
           "/{instance_id}.pid; exec /usr/bin/python3 -m http.server {port} --bind 127.0.0.1\"]\n"
           "      health_check: {path: /, grace_period: 10s}\n      stop_timeout: 2s\n";
  }

  std::vector<nlohmann::json> instances_in(const nlohmann::json& status, const std::string& state) {
    std::vector<nlohmann::json> out;
    for (const auto& i : status.value("instances", nlohmann::json::array())) {
      if (i["state"] == state) out.push_back(i);
    }
    return out;
  }

  http::ClientResponse control(std::string_view method, const std::string& path, const std::string& body = {},
                               bool with_token = true) {
    http::HeaderList headers;
    if (with_token) {
      std::string token = read_file(fs::path(options_.state_dir) / "api-token");
      while (!token.empty() && token.back() == '\n') token.pop_back();
      headers.emplace_back("Authorization", "Bearer " + token);
    }
    return http::fetch_blocking(method, "http://" + control_ + path, body, headers);
  }

  fs::path dir_;
  fs::path fake_gateway_;
  std::string listen_;
  std::string admin_;
  std::string control_;
  UpOptions options_;
};

TEST_F(SupervisorTest, RunsReplacesAndStopsTheStackInOrder) {
  fs::path stack = write_stack(http_group(2, 4, 2));
  RunningStack running(stack.string(), options_);

  const fs::path state = options_.state_dir;
  ASSERT_TRUE(eventually([&] { return read_status(state).value("state", "") == "running"; }, 20s))
      << "the stack did not come up; gateway log:\n"
      << read_file(state / "logs/gateway.log") << "\nstatus: " << read_status(state).dump(1);
  nlohmann::json status = read_status(state);
  const pid_t gateway_pid = read_pid(dir_ / "gateway.pid");
  EXPECT_EQ(status["gateway"]["pid"], gateway_pid);
  EXPECT_EQ(status["gateway"]["admin"], admin_);
  EXPECT_EQ(status["control"]["address"], control_);
  EXPECT_EQ(status["url"], "http://" + listen_ + "/");
  auto serving = instances_in(status, "in_service");
  ASSERT_EQ(serving.size(), 2u) << status.dump(1);
  EXPECT_EQ(serving[0]["id"], "web-a-1");
  EXPECT_EQ(serving[1]["id"], "web-b-1");
  EXPECT_EQ(serving[0]["zone"], "a");
  EXPECT_EQ(serving[0]["pid"], read_pid(dir_ / "web-a-1.pid"));
  EXPECT_TRUE(accepts(listen_));
  EXPECT_EQ(fs::status(state / "api-token").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);

  // The generated config names no targets: the instances were registered through the admin API once healthy.
  core::ConfigNode config = core::ConfigNode::load_file((state / "gateway.yaml").string());
  EXPECT_TRUE(config["target_groups"].items().at(0)["targets"].items().empty());
  const std::string web_a_address = serving[0]["address"];
  std::string calls = read_file(dir_ / "gateway-calls");
  EXPECT_NE(calls.find("register web " + web_a_address + " a"), std::string::npos) << calls;

  // A crashed instance is replaced by a new one (a new id and port) and deregistered.
  const pid_t first_pid = read_pid(dir_ / "web-a-1.pid");
  ASSERT_GT(first_pid, 0);
  ASSERT_EQ(::kill(first_pid, SIGKILL), 0);
  EXPECT_TRUE(eventually(
      [&] {
        nlohmann::json now = read_status(state);
        auto in = instances_in(now, "in_service");
        return in.size() == 2 &&
               std::none_of(in.begin(), in.end(), [](auto& i) { return i["id"] == "web-a-1"; });
      },
      10s))
      << read_status(state).dump(1);
  calls = read_file(dir_ / "gateway-calls");
  EXPECT_NE(calls.find("deregister web " + web_a_address), std::string::npos) << calls;
  const auto replacement = instances_in(read_status(state), "in_service");
  const pid_t web_b_pid = read_pid(dir_ / "web-b-1.pid");

  // The control API: a token, and desired within min..max.
  EXPECT_EQ(control("GET", "/v1/status", {}, false).status, 401);
  http::ClientResponse r = control("GET", "/v1/status");
  ASSERT_EQ(r.status, 200) << r.error.message << r.body;
  nlohmann::json st = nlohmann::json::parse(r.body);
  EXPECT_EQ(st["stack"], "test");
  EXPECT_EQ(st["groups"][0]["in_service"], 2);
  r = control("POST", "/v1/groups/web/desired", R"({"desired": 5})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("outside min..max (2..4)"), std::string::npos) << r.body;
  r = control("POST", "/v1/groups/web/desired", R"({"desired": 3})");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(eventually([&] { return instances_in(read_status(state), "in_service").size() == 3; }, 10s))
      << read_status(state).dump(1);
  r = control("GET", "/v1/events");
  EXPECT_NE(r.body.find("web: desired 2 -> 3 (set through the control API)"), std::string::npos) << r.body;
  std::vector<pid_t> pids = {gateway_pid, web_b_pid};
  for (const auto& i : instances_in(read_status(state), "in_service")) pids.push_back(i["pid"].get<pid_t>());

  EXPECT_EQ(running.stop(), 0);
  EXPECT_EQ(read_status(state)["state"], "stopped");
  // Stopped and reaped, every one of them.
  for (pid_t pid : pids) EXPECT_EQ(::kill(pid, 0), -1) << "pid " << pid;
  // The gateway was stopped while the instances still served.
  std::string up = read_file(dir_ / "targets-up-at-gateway-stop");
  for (const auto& i : replacement)
    EXPECT_NE(up.find(i["address"].get<std::string>()), std::string::npos) << up;
  EXPECT_NE(read_file(state / "logs/gateway.log").find("fake gateway listening"), std::string::npos);
}

// SIGHUP stops the stack as SIGTERM does (the terminal went away); an instance that ignores its stop signal
// holds the stop up to its stop_timeout, and a second signal kills it at once. The supervisor still reaps
// it before it exits.
TEST_F(SupervisorTest, HangupStopsTheStackAndASecondSignalKillsWhatIsLeft) {
  fs::path stack = write_stack(
      "  - name: web\n    min: 1\n    max: 1\n    desired: 1\n    drain_timeout: 0s\n    launch_template:\n"
      "      command: [/bin/sh, -c, \"trap '' TERM; echo $$ > " +
      dir_.string() +
      "/{instance_id}.pid; exec /usr/bin/python3 -m http.server {port} --bind 127.0.0.1\"]\n"
      "      health_check: {path: /, grace_period: 10s}\n      stop_timeout: 60s\n");
  RunningStack running(stack.string(), options_);
  const fs::path state = options_.state_dir;
  ASSERT_TRUE(eventually([&] { return read_status(state).value("state", "") == "running"; }, 20s))
      << read_status(state).dump(1);
  const pid_t instance = read_pid(dir_ / "web-a-1.pid");
  ASSERT_GT(instance, 0);

  running.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] { return read_status(state).value("state", "") == "stopping"; }, 5s));
  // The gateway went first; the instance ignores SIGTERM, so the stack waits for its stop_timeout.
  EXPECT_TRUE(eventually([&] { return fs::exists(dir_ / "targets-up-at-gateway-stop"); }, 5s));
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(running.exited());
  EXPECT_EQ(::kill(instance, 0), 0);

  const auto second = std::chrono::steady_clock::now();
  running.signal(SIGTERM);
  EXPECT_TRUE(eventually([&] { return running.exited(); }, 10s));
  EXPECT_LT(std::chrono::steady_clock::now() - second, 10s);
  EXPECT_EQ(running.stop(), 0);
  EXPECT_EQ(read_status(state)["state"], "stopped");
  EXPECT_EQ(::kill(instance, 0), -1);  // killed and reaped
}

TEST_F(SupervisorTest, ALaunchTemplateThatExitsIsBackedOffAndTheStackStillRuns) {
  fs::path stack = write_stack(
      "  - name: web\n    launch_template:\n      command: [/bin/sh, -c, \"echo cannot serve {port}; exit "
      "7\"]\n");
  RunningStack running(stack.string(), options_);
  const fs::path state = options_.state_dir;
  ASSERT_TRUE(eventually([&] { return read_status(state).value("state", "") == "running"; }, 20s));
  EXPECT_TRUE(eventually(
      [&] { return control("GET", "/v1/events").body.find("retrying in 2s") != std::string::npos; }, 10s))
      << control("GET", "/v1/events").body;
  EXPECT_NE(read_file(state / "logs/web-a-1.log").find("cannot serve "), std::string::npos);
  EXPECT_EQ(running.stop(), 0);
}

TEST_F(SupervisorTest, ATakenGatewayPortFailsBeforeAnythingStarts) {
  fs::path stack =
      write_stack("  - name: web\n    launch_template:\n      command: [/bin/sh, -c, \"echo started > " +
                  dir_.string() + "/started; exec sleep 30 {port}\"]\n");
  core::Fd taken = core::listen_tcp(*core::SocketAddress::parse(listen_), false);
  EXPECT_EQ(run_up(stack.string(), options_), 1);
  EXPECT_FALSE(fs::exists(dir_ / "started"));
}

TEST_F(SupervisorTest, ATakenControlPortFailsBeforeAnythingStarts) {
  fs::path stack = write_stack(http_group(1, 1, 1));
  core::Fd taken = core::listen_tcp(*core::SocketAddress::parse(control_), false);
  EXPECT_EQ(run_up(stack.string(), options_), 1);
  EXPECT_FALSE(fs::exists(dir_ / "gateway.pid"));
}

TEST_F(SupervisorTest, AMissingProgramIsABadStackFile) {
  fs::path stack = write_stack(
      "  - name: web\n    launch_template:\n      command: [\"{bin_dir}/not-built-yet\", \"{port}\"]\n");
  EXPECT_EQ(run_up(stack.string(), options_), 2);
}

}  // namespace
}  // namespace cumulo::stack
