// The control API's handler without a socket: token, status, instances, desired, events and custom metrics.
#include "stack/internal/control_api.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "stack/internal/gateway_admin.h"
#include "support/fake_scaling.h"

namespace cumulo::stack::internal {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class ControlApiTest : public ::testing::Test {
 protected:
  ControlApiTest() {
    scaling::GroupSpec spec;
    spec.name = "web";
    spec.min = 1;
    spec.max = 3;
    spec.desired = 2;
    spec.launch_template.command = {"app", "{port}"};
    scaling::GroupEnvironment env;
    env.zones = {"a", "b"};
    env.provider = &provider_;
    env.registry = &registry_;
    env.prober = &prober_;
    env.make_launch = [](const std::string& id, const std::string&, uint16_t port) {
      scaling::LaunchSpec s;
      s.name = id;
      s.argv = {"app", std::to_string(port)};
      return s;
    };
    env.pick_port = [this] { return port_++; };
    env.events = &events_;
    env.now = [this] { return clock_.now(); };
    group_ = std::make_unique<scaling::ScalingGroup>(spec, env);
    group_->tick(clock_.now());
    for (int i = 0; i < 3; ++i) {
      clock_.advance(100ms);
      group_->tick(clock_.now());
    }
    ctx_.stack_name = "webapp";
    ctx_.token = "secret";
    ctx_.groups = {group_.get()};
    ctx_.events = &events_;
    ctx_.now = [this] { return clock_.now(); };
  }

  http::Response call(const std::string& method, const std::string& target, const std::string& body = {},
                      const std::string& token = "secret") {
    http::Request req;
    req.method = method;
    req.target = target;
    auto q = target.find('?');
    req.path = target.substr(0, q);
    req.query = q == std::string::npos ? "" : target.substr(q + 1);
    if (!token.empty()) req.headers.emplace_back("Authorization", "Bearer " + token);
    req.body = body;
    return handle_control_request(req, ctx_);
  }

  fakes::FakeClock clock_;
  fakes::FakeInstanceProvider provider_;
  fakes::FakeTargetRegistry registry_;
  fakes::FakeHealthProber prober_;
  scaling::EventLog events_;
  uint16_t port_ = 41000;
  std::unique_ptr<scaling::ScalingGroup> group_;
  ControlContext ctx_;
};

TEST_F(ControlApiTest, EveryEndpointNeedsTheToken) {
  for (const char* path : {"/v1/status", "/v1/instances", "/v1/events", "/v1/nothing"}) {
    EXPECT_EQ(call("GET", path, {}, "").status, 401) << path;
    EXPECT_EQ(call("GET", path, {}, "secreT").status, 401) << path;
  }
  EXPECT_EQ(call("POST", "/v1/groups/web/desired", R"({"desired":3})", "x").status, 401);
  EXPECT_EQ(group_->status().desired, 2);
}

TEST_F(ControlApiTest, StatusAndInstances) {
  http::Response r = call("GET", "/v1/status");
  ASSERT_EQ(r.status, 200);
  json s = json::parse(r.body);
  EXPECT_EQ(s["stack"], "webapp");
  EXPECT_EQ(s["groups"][0], (json{{"name", "web"},
                                  {"min", 1},
                                  {"max", 3},
                                  {"desired", 2},
                                  {"in_service", 2},
                                  {"pending", 0},
                                  {"draining", 0},
                                  {"zones", {{"a", 1}, {"b", 1}}}}));
  r = call("GET", "/v1/instances");
  ASSERT_EQ(r.status, 200);
  json i = json::parse(r.body)["instances"];
  ASSERT_EQ(i.size(), 2u);
  EXPECT_EQ(i[0]["id"], "web-a-1");
  EXPECT_EQ(i[0]["group"], "web");
  EXPECT_EQ(i[0]["zone"], "a");
  EXPECT_EQ(i[0]["address"], "127.0.0.1:41000");
  EXPECT_EQ(i[0]["pid"], 1000);
  EXPECT_EQ(i[0]["state"], "in_service");
  EXPECT_EQ(i[0]["restarts"], 0);
  for (const char* key : {"started_at", "cpu_percent", "rss_bytes"}) EXPECT_TRUE(i[0].contains(key)) << key;
}

TEST_F(ControlApiTest, DesiredWithinMinMax) {
  http::Response r = call("POST", "/v1/groups/web/desired", R"({"desired":4})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json::parse(r.body)["error"], "desired 4 is outside min..max (1..3) of group web");
  EXPECT_EQ(call("POST", "/v1/groups/web/desired", R"({"desired":"two"})").status, 400);
  EXPECT_EQ(call("POST", "/v1/groups/web/desired", "not json").status, 400);
  EXPECT_EQ(call("POST", "/v1/groups/api/desired", R"({"desired":1})").status, 404);
  r = call("POST", "/v1/groups/web/desired", R"({"desired":3})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["desired"], 3);
  EXPECT_EQ(group_->status().desired, 3);

  json events = json::parse(call("GET", "/v1/events").body)["events"];
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["message"], "web: desired 2 -> 3 (set through the control API)");
  EXPECT_EQ(events.back()["group"], "web");
  const uint64_t last = events.back()["seq"];
  EXPECT_TRUE(json::parse(call("GET", "/v1/events?since=" + std::to_string(last)).body)["events"].empty());
  EXPECT_EQ(call("GET", "/v1/events?since=x").status, 400);
}

TEST_F(ControlApiTest, CustomMetrics) {
  EXPECT_EQ(call("POST", "/v1/metrics", R"({"group":"web","name":"queue_depth","value":12.5})").status, 204);
  EXPECT_EQ(
      call("POST", "/v1/metrics", R"({"group":"web","name":"queue_depth","value":1,"instance":"web-a-1"})")
          .status,
      204);
  EXPECT_EQ(
      call("POST", "/v1/metrics", R"({"group":"web","name":"queue_depth","value":1,"instance":"web-c-9"})")
          .status,
      400);
  EXPECT_EQ(call("POST", "/v1/metrics", R"({"group":"nope","name":"q","value":1})").status, 404);
  EXPECT_EQ(call("POST", "/v1/metrics", R"({"group":"web","name":"q","value":"lots"})").status, 400);
  EXPECT_EQ(call("POST", "/v1/metrics", R"({"group":"web","value":1})").status, 400);
}

// The fields every view of an instance shares; each view adds its own.
// Network mode's reload: refused in loopback mode, the supervisor's refusal passed on, its message on
// success; POST only, and only with the token.
TEST_F(ControlApiTest, NetworkReload) {
  EXPECT_EQ(call("POST", "/v1/network/reload", "{}", "").status, 401);
  http::Response loopback = call("POST", "/v1/network/reload", "{}");
  EXPECT_EQ(loopback.status, 409);
  EXPECT_NE(loopback.body.find("loopback mode"), std::string::npos) << loopback.body;

  int reloads = 0;
  bool refuse = true;
  ctx_.reload_network = [&]() -> core::Result<std::string, core::Error> {
    ++reloads;
    if (refuse) return core::Err(core::Error{"network", "the subnets differ: that needs a restart"});
    return std::string("reloaded from stack.yaml");
  };
  EXPECT_EQ(call("GET", "/v1/network/reload").status, 405);
  EXPECT_EQ(reloads, 0);
  http::Response refused = call("POST", "/v1/network/reload", "{}");
  EXPECT_EQ(refused.status, 409);
  EXPECT_NE(refused.body.find("needs a restart"), std::string::npos) << refused.body;
  refuse = false;
  http::Response done = call("POST", "/v1/network/reload", "{}");
  EXPECT_EQ(done.status, 200);
  EXPECT_NE(done.body.find("reloaded from stack.yaml"), std::string::npos) << done.body;
  EXPECT_EQ(reloads, 2);
}

TEST(InstanceJson, SharedFields) {
  scaling::InstanceView v;
  v.id = "web-1";
  v.group = "web";
  v.zone = "zone-a";
  v.address = "127.0.0.1:9001";
  v.pid = 4242;
  v.state = scaling::InstanceState::kInService;
  v.restarts = 2;
  v.cpu_percent = 12.5;
  EXPECT_EQ(instance_json(v), json({{"id", "web-1"},
                                    {"group", "web"},
                                    {"zone", "zone-a"},
                                    {"address", "127.0.0.1:9001"},
                                    {"pid", 4242},
                                    {"state", scaling::to_string(scaling::InstanceState::kInService)},
                                    {"restarts", 2}}));
}

TEST(GatewayAdminBodies, ParsesTargetsAndStats) {
  GatewayView v;
  ASSERT_TRUE(parse_targets_body(
      R"({"groups":[{"name":"web","balance":"round_robin","targets":[{"address":"127.0.0.1:9001","zone":"a","weight":1,"health":"unhealthy","ejected":false,"state":"active","in_flight":0,"source":"api"},{"address":"127.0.0.1:9002","health":"healthy","state":"draining"}]}]})",
      v));
  EXPECT_TRUE(v.targets_read);
  EXPECT_EQ(v.targets["web"]["127.0.0.1:9001"].health, "unhealthy");
  EXPECT_TRUE(v.targets["web"]["127.0.0.1:9002"].draining);
  ASSERT_TRUE(parse_stats_body(
      R"({"targets":[{"group":"web","address":"127.0.0.1:9001","zone":"a","requests":123,"responses_5xx":1,"bytes_in":1000,"bytes_out":2000,"in_flight":1,"latency_bounds":[0.0005,0.001],"latency_counts":[3,5,7]}]})",
      v));
  const scaling::TargetCounters& c = v.stats["web"]["127.0.0.1:9001"];
  EXPECT_EQ(c.requests, 123u);
  EXPECT_EQ(c.bytes_out, 2000u);
  EXPECT_EQ(c.latency_counts, (std::vector<uint64_t>{3, 5, 7}));
  GatewayView bad;
  EXPECT_FALSE(parse_stats_body("{\"targets\": 3}", bad));
  EXPECT_FALSE(bad.stats_read);
}

}  // namespace
}  // namespace cumulo::stack::internal
