// ScalingGroup against a fake provider, gateway registry, health prober and clock: the instance lifecycle,
// replacement, backoff, zone balance, draining and the policies that move desired.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "scaling/scaling.h"
#include "support/fake_scaling.h"

namespace cumulo::scaling {
namespace {

using namespace std::chrono_literals;
using cumulo::fakes::FakeClock;
using cumulo::fakes::FakeHealthProber;
using cumulo::fakes::FakeInstanceProvider;
using cumulo::fakes::FakeTargetRegistry;

// The refusal's message, or "" when the call succeeded.
std::string error_text(const core::Result<void, core::Error>& r) {
  return r ? std::string() : r.error().message;
}

GroupSpec web(int min, int max, int desired) {
  GroupSpec g;
  g.name = "web";
  g.min = min;
  g.max = max;
  g.desired = desired;
  g.launch_template.command = {"/bin/app", "{port}"};
  g.launch_template.cpu = 0.5;
  g.warmup = 0s;
  g.cooldown = 5s;
  g.drain_timeout = 10s;
  return g;
}

class GroupTest : public ::testing::Test {
 protected:
  void make(GroupSpec spec, std::vector<std::string> zones = {"a", "b"}) {
    GroupEnvironment env;
    env.zones = std::move(zones);
    env.provider = &provider_;
    env.registry = &registry_;
    env.prober = &prober_;
    env.make_launch = [](const std::string& id, const std::string&, uint16_t port) {
      LaunchSpec s;
      s.name = id;
      s.executable = "/bin/app";
      s.argv = {"/bin/app", std::to_string(port)};
      return s;
    };
    env.pick_port = [this] { return next_port_++; };
    env.events = &events_;
    env.on_change = [this] { ++changes_; };
    env.now = [this] { return clock_.now(); };
    env.wall_clock = [this] { return wall_; };
    group_ = std::make_unique<ScalingGroup>(std::move(spec), std::move(env));
  }

  // Moves the clock in 100 ms ticks, as the supervisor does.
  void run_for(std::chrono::milliseconds d) {
    for (auto t = 0ms; t < d; t += 100ms) {
      clock_.advance(100ms);
      group_->tick(clock_.now());
    }
  }
  // One second of metrics: every running instance used `cpu_seconds_per_s` of CPU.
  void sample_second(double cpu_seconds_per_s, MetricsSample extra = {}) {
    for (const InstanceView& i : group_->instances()) {
      if (i.pid != 0) provider_.usage[i.pid].cpu_seconds += cpu_seconds_per_s;
    }
    run_for(1000ms);
    for (const InstanceView& i : group_->instances()) {
      if (i.pid != 0) extra.processes[i.pid] = provider_.usage[i.pid];
    }
    group_->sample(clock_.now(), extra);
    group_->tick(clock_.now());
  }
  std::vector<InstanceView> in_state(InstanceState s) const {
    std::vector<InstanceView> out;
    for (const InstanceView& i : group_->instances()) {
      if (i.state == s) out.push_back(i);
    }
    return out;
  }
  // The instance ended; like the supervisor, the group gets a tick after the batch of exits.
  void exit(const InstanceView& i, int signal = 9, bool tick = true) {
    provider_.ended(i.pid);
    ExitStatus st;
    st.signal = signal;
    EXPECT_TRUE(group_->on_exit(i.pid, st, clock_.now()));
    if (tick) group_->tick(clock_.now());
  }
  // Stopped instances exit at once, as a well-behaved program does on SIGTERM.
  void reap_stopped() {
    for (InstanceHandle h : provider_.stopped) {
      if (!provider_.running(h)) continue;
      provider_.ended(h);
      ExitStatus st;
      st.signal = 15;
      group_->on_exit(h, st, clock_.now());
    }
  }
  bool event_with(const std::string& text) const {
    for (const Event& e : events_.since(0)) {
      if (e.message.find(text) != std::string::npos) return true;
    }
    return false;
  }
  std::string all_events() const {
    std::string out;
    for (const Event& e : events_.since(0)) out += e.message + "\n";
    return out;
  }

  FakeClock clock_;
  std::chrono::system_clock::time_point wall_ = std::chrono::system_clock::now();
  FakeInstanceProvider provider_;
  FakeTargetRegistry registry_;
  FakeHealthProber prober_;
  EventLog events_;
  uint16_t next_port_ = 40000;
  int changes_ = 0;
  std::unique_ptr<ScalingGroup> group_;
};

TEST_F(GroupTest, LaunchesDesiredAcrossZonesAndRegistersThemOnceHealthy) {
  make(web(2, 8, 4));
  group_->tick(clock_.now());
  ASSERT_EQ(provider_.started.size(), 4u);
  EXPECT_EQ(in_state(InstanceState::kPending).size(), 4u);
  GroupStatus s = group_->status();
  EXPECT_EQ(s.pending, 4);
  EXPECT_EQ(s.in_service, 0);
  EXPECT_EQ(s.zones, (std::vector<std::pair<std::string, int>>{{"a", 2}, {"b", 2}}));
  EXPECT_EQ(provider_.started[0].spec.name, "web-a-1");
  EXPECT_EQ(provider_.started[1].spec.name, "web-b-1");
  EXPECT_EQ(provider_.started[2].spec.name, "web-a-2");
  EXPECT_TRUE(registry_.targets.empty()) << "not registered before a passed health check";
  EXPECT_FALSE(group_->settled());

  run_for(300ms);
  s = group_->status();
  EXPECT_EQ(s.in_service, 4);
  EXPECT_EQ(s.pending, 0);
  EXPECT_EQ(registry_.targets.size(), 4u);
  EXPECT_TRUE(group_->settled());
  EXPECT_TRUE(event_with("web: web-a-1 in service in zone a")) << all_events();
}

TEST_F(GroupTest, CountsAnInstanceInServiceOnlyOnceTheGatewayHasIt) {
  make(web(1, 2, 1));
  registry_.hold = true;
  group_->tick(clock_.now());
  run_for(500ms);
  EXPECT_EQ(group_->status().pending, 1);
  registry_.release();
  EXPECT_EQ(group_->status().in_service, 1);
}

TEST_F(GroupTest, ReplacesACrashedInstanceAndDeregistersIt) {
  make(web(2, 8, 4));
  group_->tick(clock_.now());
  run_for(300ms);
  run_for(20s);  // long enough in service that a crash is not a failed launch
  InstanceView victim = in_state(InstanceState::kInService)[0];
  exit(victim);
  EXPECT_NE(
      std::find(registry_.calls.begin(), registry_.calls.end(), "deregister web " + victim.address + " 0ms"),
      registry_.calls.end());
  EXPECT_EQ(provider_.started.size(), 5u) << "replaced at once";
  EXPECT_EQ(provider_.started.back().spec.name, "web-a-3") << "in the zone that lost it";
  EXPECT_TRUE(event_with("web: web-a-1 in zone a killed by signal 9")) << all_events();
  run_for(300ms);
  EXPECT_EQ(group_->status().in_service, 4);
}

TEST_F(GroupTest, AZoneThatLosesEveryInstanceGivesItsCapacityToTheOthersThenGetsItBack) {
  make(web(2, 8, 4));
  group_->tick(clock_.now());
  run_for(20s);
  for (const InstanceView& i : in_state(InstanceState::kInService)) {
    if (i.zone == "a") exit(i, 9, false);  // one batch of exits, as one SIGCHLD reaps them all
  }
  group_->tick(clock_.now());
  run_for(300ms);
  GroupStatus s = group_->status();
  EXPECT_EQ(s.in_service, 4);
  EXPECT_EQ(s.zones, (std::vector<std::pair<std::string, int>>{{"a", 0}, {"b", 4}})) << all_events();
  EXPECT_TRUE(event_with("zone a has no instance in service")) << all_events();

  // After the impairment: one instance at a time moves back, launched before the other zone gives one up.
  run_for(30s);
  reap_stopped();
  run_for(5s);
  reap_stopped();
  run_for(20s);
  reap_stopped();
  run_for(1s);
  s = group_->status();
  EXPECT_EQ(s.in_service, 4);
  EXPECT_EQ(s.zones, (std::vector<std::pair<std::string, int>>{{"a", 2}, {"b", 2}})) << all_events();
  EXPECT_TRUE(event_with("rebalancing zones")) << all_events();
}

TEST_F(GroupTest, ALaunchTemplateThatKeepsFailingIsBackedOffExponentially) {
  make(web(1, 2, 1));
  std::vector<std::chrono::seconds> launches;
  auto start = clock_.now();
  group_->tick(clock_.now());
  for (int second = 0; second < 40; ++second) {
    for (int k = 0; k < 10; ++k) {
      // Every instance exits as soon as it started.
      for (const InstanceView& i : in_state(InstanceState::kPending)) {
        launches.push_back(std::chrono::duration_cast<std::chrono::seconds>(clock_.now() - start));
        exit(i, 0);
      }
      clock_.advance(100ms);
      group_->tick(clock_.now());
    }
  }
  // 0, 1, 3, 7, 15, 31: the delay doubles.
  ASSERT_GE(launches.size(), 5u) << all_events();
  EXPECT_LE(launches.size(), 7u) << all_events();
  for (size_t i = 2; i < launches.size(); ++i) {
    EXPECT_GE((launches[i] - launches[i - 1]).count(), 2 * (launches[i - 1] - launches[i - 2]).count() - 1);
  }
  EXPECT_TRUE(event_with("retrying in 2s")) << all_events();
  EXPECT_TRUE(group_->settled()) << "a failing group does not hold up the stack";
}

TEST_F(GroupTest, AProgramThatCannotStartIsBackedOffToo) {
  make(web(1, 2, 1));
  provider_.fail_next_start = true;
  group_->tick(clock_.now());
  EXPECT_TRUE(event_with("cannot launch web-a-1: cannot run /bin/app")) << all_events();
  EXPECT_TRUE(provider_.started.empty());
  run_for(500ms);
  EXPECT_TRUE(provider_.started.empty()) << "waits for the backoff";
  run_for(600ms);
  EXPECT_EQ(provider_.started.size(), 1u);
}

TEST_F(GroupTest, AnInstanceThatNeverPassesItsHealthCheckIsReplacedAfterTheGracePeriod) {
  GroupSpec spec = web(1, 2, 1);
  spec.launch_template.health_check.grace_period = 2s;
  make(spec);
  prober_.failing.insert("127.0.0.1:40000");
  group_->tick(clock_.now());
  run_for(2100ms);
  ASSERT_EQ(provider_.killed.size(), 1u);
  EXPECT_TRUE(event_with("did not pass its health check on /healthz within its grace period of 2s"))
      << all_events();
  run_for(1100ms);
  EXPECT_EQ(provider_.started.size(), 2u);
  run_for(300ms);
  EXPECT_EQ(group_->status().in_service, 1);
}

TEST_F(GroupTest, AnInstanceFailingChecksInServiceIsDrainedAndReplaced) {
  make(web(1, 2, 1));
  group_->tick(clock_.now());
  run_for(300ms);
  ASSERT_EQ(group_->status().in_service, 1);
  const InstanceView first = in_state(InstanceState::kInService)[0];
  prober_.failing.insert(first.address);
  run_for(3500ms);  // three failed checks at 1 s intervals
  EXPECT_EQ(in_state(InstanceState::kDraining).size() + in_state(InstanceState::kTerminated).size(), 1u);
  EXPECT_TRUE(event_with("failed 3 health checks")) << all_events();
  run_for(300ms);
  EXPECT_EQ(group_->status().in_service, 1);
  EXPECT_EQ(provider_.started.size(), 2u);
}

TEST_F(GroupTest, ScaleInDrainsZoneBalancedThenStops) {
  make(web(2, 8, 6));
  group_->tick(clock_.now());
  run_for(300ms);
  ASSERT_EQ(group_->status().in_service, 6);
  auto refused = group_->set_desired(9, clock_.now());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "desired 9 is outside min..max (2..8) of group web");
  EXPECT_EQ(refused.error().kind, "out_of_range");
  EXPECT_EQ(refused.error().source, core::ErrorSource::kClient);
  EXPECT_EQ(group_->status().desired, 6);
  EXPECT_EQ(error_text(group_->set_desired(2, clock_.now())), "");
  EXPECT_TRUE(event_with("web: desired 6 -> 2 (set through the control API)")) << all_events();
  group_->tick(clock_.now());
  GroupStatus s = group_->status();
  EXPECT_EQ(s.in_service, 2);
  EXPECT_EQ(s.draining, 4);
  EXPECT_EQ(s.zones, (std::vector<std::pair<std::string, int>>{{"a", 1}, {"b", 1}}));
  EXPECT_TRUE(provider_.stopped.empty()) << "not stopped while draining";
  // The oldest go first: the newest of each zone stay.
  std::vector<std::string> staying;
  for (const InstanceView& i : in_state(InstanceState::kInService)) staying.push_back(i.id);
  EXPECT_EQ(staying, (std::vector<std::string>{"web-a-3", "web-b-3"}));

  // The gateway says they are gone: stopped.
  MetricsSample gone;
  gone.gateway_targets_read = true;
  for (const InstanceView& i : in_state(InstanceState::kInService))
    gone.targets[i.address] = {"healthy", false};
  clock_.advance(1s);
  group_->sample(clock_.now(), gone);
  group_->tick(clock_.now());
  EXPECT_EQ(provider_.stopped.size(), 4u);
  EXPECT_EQ(in_state(InstanceState::kTerminated).size(), 4u);
  reap_stopped();
  EXPECT_EQ(group_->status().draining, 0);
}

TEST_F(GroupTest, DrainingEndsAtTheDrainTimeoutWhenTheGatewayKeepsTheTarget) {
  make(web(1, 4, 2));
  group_->tick(clock_.now());
  run_for(300ms);
  ASSERT_TRUE(group_->set_desired(1, clock_.now()));
  group_->tick(clock_.now());
  run_for(9s);
  EXPECT_TRUE(provider_.stopped.empty());
  run_for(1100ms);
  EXPECT_EQ(provider_.stopped.size(), 1u);
}

TEST_F(GroupTest, TargetTrackingOnCpuScalesOutAtOnceAndInAfterStabilization) {
  GroupSpec spec = web(2, 8, 2);
  PolicySpec p;
  p.name = "cpu60";
  p.metric = MetricName{MetricKind::kCpu, {}};
  p.target = 60;
  p.window = 3s;
  p.scale_in_stabilization = 10s;
  spec.policies.push_back(p);
  spec.warmup = 10s;  // the new instance's first, idle seconds do not count
  make(spec);
  group_->tick(clock_.now());
  run_for(10300ms);
  sample_second(0.05);  // baseline
  // 0.45 s of CPU per second on a 0.5 vCPU allowance: 90%.
  for (int i = 0; i < 3; ++i) sample_second(0.45);
  EXPECT_EQ(group_->status().desired, 3) << all_events();  // ceil(2 * 90 / 60)
  EXPECT_TRUE(event_with("web: cpu average 90% over 3s > target 60% -> desired 2 -> 3 (policy cpu60)"))
      << all_events();
  ASSERT_TRUE(group_->metric(p.metric, Statistic::kAverage, 3s).has_value());
  EXPECT_NEAR(*group_->metric(p.metric, Statistic::kAverage, 3s), 90, 0.5);

  // Idle: not before every evaluation of the stabilization window asked for fewer.
  for (int i = 0; i < 6; ++i) sample_second(0.0);
  EXPECT_EQ(group_->status().desired, 3) << all_events();
  for (int i = 0; i < 8; ++i) sample_second(0.0);
  EXPECT_EQ(group_->status().desired, 2) << all_events();
  EXPECT_TRUE(event_with("< target 60% for 10s -> desired 3 -> 2 (policy cpu60)")) << all_events();
}

TEST_F(GroupTest, StepPolicyOnCustomMetricRespectsCooldownAndMax) {
  GroupSpec spec = web(1, 3, 1);
  spec.cooldown = 3s;
  PolicySpec p;
  p.name = "queue";
  p.type = PolicyType::kStep;
  p.metric = MetricName{MetricKind::kCustom, "queue_depth"};
  p.statistic = Statistic::kMaximum;
  p.window = 2s;
  p.steps = {StepAdjustment{100.0, std::nullopt, 1, false}, StepAdjustment{std::nullopt, 10.0, -1, false}};
  spec.policies.push_back(p);
  make(spec);
  group_->tick(clock_.now());
  run_for(300ms);
  EXPECT_EQ(error_text(group_->put_metric("queue depth", 1, "", clock_.now())),
            "metric name 'queue depth' must be 1 to 64 letters, digits, '_', '-' or '.'");
  auto unknown = group_->put_metric("queue_depth", 1, "web-z-9", clock_.now());
  EXPECT_EQ(error_text(unknown), "no instance 'web-z-9' running in group web");
  EXPECT_EQ(unknown.ok() ? "" : unknown.error().kind, "no_such_instance");
  sample_second(0);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(error_text(group_->put_metric("queue_depth", 150, "web-a-1", clock_.now())), "");
    sample_second(0);
  }
  // +1 at once, then one more after the 3 s cooldown, then max 3 holds.
  EXPECT_EQ(group_->status().desired, 3) << all_events();
  EXPECT_TRUE(
      event_with("custom:queue_depth maximum 150 over 2s >= 100: step +1 -> desired 1 -> 2 (policy queue)"))
      << all_events();
}

TEST_F(GroupTest, LatencyFromGatewayStatsFeedsPolicies) {
  GroupSpec spec = web(2, 8, 2);
  make(spec);
  group_->tick(clock_.now());
  run_for(300ms);
  auto stats_with = [&](uint64_t n_fast, uint64_t n_slow) {
    MetricsSample s;
    s.gateway_stats_read = true;
    for (const InstanceView& i : in_state(InstanceState::kInService)) {
      TargetCounters c;
      c.requests = n_fast + n_slow;
      c.bytes_out = 1000 * (n_fast + n_slow);
      c.latency_bounds = {0.01, 0.1, 1.0};
      c.latency_counts = {n_fast, n_fast, n_fast + n_slow, n_fast + n_slow};
      s.stats[i.address] = c;
    }
    return s;
  };
  sample_second(0, stats_with(0, 0));
  sample_second(0, stats_with(90, 10));
  auto rate = group_->metric(MetricName{MetricKind::kRequestRate, {}}, Statistic::kAverage, 10s);
  ASSERT_TRUE(rate.has_value());
  EXPECT_NEAR(*rate, 100, 1);
  auto p99 = group_->metric(MetricName{MetricKind::kLatencyP99, {}}, Statistic::kMaximum, 10s);
  ASSERT_TRUE(p99.has_value());
  EXPECT_GT(*p99, 0.1);
  EXPECT_LE(*p99, 1.0);
  auto out = group_->metric(MetricName{MetricKind::kNetworkOut, {}}, Statistic::kAverage, 10s);
  ASSERT_TRUE(out.has_value());
  EXPECT_NEAR(*out, 100'000, 1000);
}

TEST_F(GroupTest, ScheduledActionsFireAtTheStartOfAMatchingMinute) {
  GroupSpec spec = web(1, 4, 1);
  ScheduledAction a;
  a.name = "every-minute";
  a.cron = parse_cron("* * * * *");
  a.min = 2;
  a.desired = 3;
  spec.scheduled.push_back(a);
  make(spec);
  wall_ = std::chrono::system_clock::time_point(std::chrono::minutes(29'000'000)) + 30s;
  group_->tick(clock_.now());
  run_for(300ms);
  sample_second(0);
  EXPECT_EQ(group_->status().desired, 1) << "the minute the group started in is under way already";
  wall_ += 29s;
  sample_second(0);
  EXPECT_EQ(group_->status().desired, 1);
  wall_ += 2s;
  sample_second(0);
  GroupStatus s = group_->status();
  EXPECT_EQ(s.min, 2);
  EXPECT_EQ(s.desired, 3);
  EXPECT_TRUE(
      event_with("web: scheduled action every-minute (* * * * *): min 1 -> 2, max 4 -> 4, desired 1 -> 3"))
      << all_events();
  EXPECT_EQ(error_text(group_->set_desired(1, clock_.now())),
            "desired 1 is outside min..max (2..4) of group web");
  run_for(300ms);
  EXPECT_EQ(group_->status().in_service, 3);
}

TEST_F(GroupTest, AnInstanceTheGatewayKeepsCallingUnhealthyIsReplaced) {
  make(web(1, 2, 1));
  group_->tick(clock_.now());
  run_for(300ms);
  const InstanceView first = in_state(InstanceState::kInService)[0];
  MetricsSample unhealthy;
  unhealthy.gateway_targets_read = true;
  unhealthy.targets[first.address] = {"unhealthy", false};
  for (int i = 0; i < 9; ++i) sample_second(0, unhealthy);
  EXPECT_EQ(group_->status().in_service, 1) << "a few seconds can be an overloaded instance recovering";
  EXPECT_EQ(in_state(InstanceState::kInService)[0].id, first.id);
  sample_second(0, unhealthy);
  EXPECT_TRUE(event_with("the gateway has marked it unhealthy for 10s -> replacing it")) << all_events();
  run_for(300ms);
  EXPECT_EQ(group_->status().in_service, 1);
  EXPECT_NE(in_state(InstanceState::kInService)[0].id, first.id);
}

TEST_F(GroupTest, StopAllStopsEverythingAndLaunchesNothingMore) {
  make(web(2, 8, 2));
  group_->tick(clock_.now());
  run_for(300ms);
  group_->stop_all();
  EXPECT_EQ(provider_.stopped.size(), 2u);
  reap_stopped();
  run_for(2s);
  EXPECT_EQ(provider_.started.size(), 2u);
}

TEST(EventLog, KeepsTheLastEventsNumberedFromOne) {
  EventLog log(3);
  for (int i = 0; i < 5; ++i) log.add("web", "web: event " + std::to_string(i));
  std::vector<Event> all = log.since(0);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].seq, 3u);
  EXPECT_EQ(all[2].message, "web: event 4");
  EXPECT_EQ(log.since(4).size(), 1u);
  EXPECT_EQ(log.last_seq(), 5u);
  EXPECT_FALSE(all[0].time.empty());
}

}  // namespace
}  // namespace cumulo::scaling
