// GatewayFanout, the registry of a stack with a gateway per zone: each registration reaches every gateway and
// counts as done when one took it; the view merges the gateways' (targets from the first that answered,
// counters summed). Against two admin APIs served on loopback.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/event_loop.h"
#include "http/client.h"
#include "http/server.h"
#include "stack/internal/gateway_admin.h"

namespace cumulo::stack::internal {
namespace {

using namespace std::chrono_literals;

// A gateway admin API: POST /targets/... answers `register_status`; GET /targets and /stats a fixed view.
struct FakeAdmin {
  FakeAdmin(core::EventLoop& loop, int register_status, uint64_t requests)
      : server(loop, options(), [this, register_status, requests](http::Request& req, http::Responder respond) {
          if (req.method == "POST") {
            posts.push_back(req.path);
            return respond(http::Response::json(register_status, "{}"));
          }
          if (req.path == "/targets")
            return respond(http::Response::json(
                200,
                R"({"groups":[{"name":"web","targets":[{"address":"10.0.0.5:80","health":"healthy"}]}]})"));
          if (req.path == "/stats")
            return respond(http::Response::json(
                200, R"({"targets":[{"group":"web","address":"10.0.0.5:80","requests":)" +
                         std::to_string(requests) + R"(,"responses_5xx":1,"in_flight":2}]})"));
          respond(http::Response::json(404, "{}"));
        }) {
    server.start();
  }
  static http::ServerOptions options() {
    http::ServerOptions o;
    o.listen = *core::SocketAddress::parse("127.0.0.1:0");
    return o;
  }
  http::Server server;
  std::vector<std::string> posts;
};

void run_loop(core::EventLoop& loop) {
  bool timed_out = false;
  core::Timer guard(loop, [&] {
    timed_out = true;
    loop.stop();
  });
  guard.arm(10s);
  loop.run();
  EXPECT_FALSE(timed_out);
}

TEST(GatewayFanout, RegistersWithEveryGatewayAndIsDoneWhenOneTookIt) {
  core::EventLoop loop;
  FakeAdmin up(loop, 201, 0), down(loop, 500, 0);
  http::Client client(loop);
  GatewayAdmin a(client, up.server.local_address()), b(client, down.server.local_address());
  GatewayFanout fan({&a, &b});
  bool ok = false;
  fan.register_target("web", "10.0.0.5:80", "a", [&](bool o, const std::string&) {
    ok = o;
    loop.stop();
  });
  run_loop(loop);
  EXPECT_TRUE(ok);
  EXPECT_EQ(up.posts.size(), 1u);
  EXPECT_EQ(down.posts.size(), 1u);
}

TEST(GatewayFanout, NotDoneWhenNoGatewayTookItWithEveryReason) {
  core::EventLoop loop;  // a loop that was stopped returns from run() at once: one per test
  FakeAdmin down(loop, 500, 0), bad(loop, 500, 0);
  http::Client client(loop);
  GatewayAdmin b(client, down.server.local_address()), c(client, bad.server.local_address());
  GatewayFanout both_bad({&b, &c});
  std::string error;
  bool ok = true;
  both_bad.register_target("web", "10.0.0.5:80", "a", [&](bool o, const std::string& e) {
    ok = o;
    error = e;
    loop.stop();
  });
  run_loop(loop);
  EXPECT_FALSE(ok);
  EXPECT_NE(error.find("gateway 1: status 500"), std::string::npos) << error;
  EXPECT_NE(error.find("gateway 2: status 500"), std::string::npos) << error;
}

TEST(GatewayFanout, SumsTheGatewaysCounters) {
  core::EventLoop loop;
  FakeAdmin one(loop, 201, 10), two(loop, 201, 32);
  http::Client client(loop);
  GatewayAdmin a(client, one.server.local_address()), b(client, two.server.local_address());
  GatewayFanout fan({&a, &b});
  GatewayView view;
  fan.read_view([&](GatewayView v) {
    view = std::move(v);
    loop.stop();
  });
  run_loop(loop);
  ASSERT_TRUE(view.targets_read);
  ASSERT_TRUE(view.stats_read);
  EXPECT_EQ(view.targets["web"]["10.0.0.5:80"].health, "healthy");
  const scaling::TargetCounters& c = view.stats["web"]["10.0.0.5:80"];
  EXPECT_EQ(c.requests, 42u);
  EXPECT_EQ(c.responses_5xx, 2u);
  EXPECT_EQ(c.in_flight, 4);
}

}  // namespace
}  // namespace cumulo::stack::internal
