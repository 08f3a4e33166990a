#include <gtest/gtest.h>

#include <map>

#include "gateway/internal/worker.h"

namespace cumulo::gateway {
namespace {

std::shared_ptr<Target> make(const std::string& addr, const std::string& zone, int weight = 1) {
  auto t = std::make_shared<Target>();
  t->address_text = addr;
  t->address = *core::SocketAddress::parse(addr);
  t->zone = zone;
  t->weight.store(weight);
  t->health->health.store(health::Health::kHealthy);
  return t;
}

std::map<std::string, int> spread(const TargetGroup& g, int n, const std::string& zone = "") {
  BalancerState st;
  std::map<std::string, int> hits;
  for (int i = 0; i < n; ++i) {
    Target* t = pick_target(g, st, zone, 1000);
    EXPECT_NE(t, nullptr);
    if (t) ++hits[t->address_text];
  }
  return hits;
}

TEST(Balancer, RoundRobinVisitsEveryTargetEvenly) {
  TargetGroup g;
  for (int i = 0; i < 3; ++i) g.targets.push_back(make("127.0.0.1:" + std::to_string(9000 + i), "a"));
  auto hits = spread(g, 300);
  ASSERT_EQ(hits.size(), 3u);
  for (auto& [addr, n] : hits) EXPECT_EQ(n, 100) << addr;
}

TEST(Balancer, WeightedFollowsWeights) {
  TargetGroup g;
  g.config.balance = Balance::kWeighted;
  g.targets.push_back(make("127.0.0.1:9000", "a", 1));
  g.targets.push_back(make("127.0.0.1:9001", "a", 3));
  auto hits = spread(g, 400);
  EXPECT_EQ(hits["127.0.0.1:9000"], 100);
  EXPECT_EQ(hits["127.0.0.1:9001"], 300);
}

TEST(Balancer, WeightZeroGetsNothing) {
  TargetGroup g;
  g.config.balance = Balance::kWeighted;
  g.targets.push_back(make("127.0.0.1:9000", "a", 0));
  g.targets.push_back(make("127.0.0.1:9001", "a", 2));
  auto hits = spread(g, 50);
  EXPECT_EQ(hits.count("127.0.0.1:9000"), 0u);
  EXPECT_EQ(hits["127.0.0.1:9001"], 50);
}

TEST(Balancer, LeastOutstandingAvoidsBusyTarget) {
  TargetGroup g;
  g.config.balance = Balance::kLeastOutstanding;
  g.targets.push_back(make("127.0.0.1:9000", "a"));
  g.targets.push_back(make("127.0.0.1:9001", "a"));
  g.targets[0]->in_flight.store(10);
  auto hits = spread(g, 20);
  EXPECT_EQ(hits["127.0.0.1:9001"], 20);
}

TEST(Balancer, SkipsUnhealthyEjectedDrainingAndTried) {
  TargetGroup g;
  for (int i = 0; i < 4; ++i) g.targets.push_back(make("127.0.0.1:" + std::to_string(9000 + i), "a"));
  g.targets[0]->health->health.store(health::Health::kUnhealthy);
  g.targets[1]->draining.store(true);
  health::OutlierSpec spec;
  spec.consecutive_connect_failures = 1;
  ASSERT_TRUE(g.targets[2]->outlier.record_failure(health::OutlierDetector::Failure::kConnect, spec, 1000));
  auto hits = spread(g, 10);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits["127.0.0.1:9003"], 10);
  BalancerState st;
  TriedTargets tried;
  tried.add(g.targets[3].get());
  EXPECT_EQ(pick_target(g, st, "", 1000, tried), nullptr);
}

TEST(Balancer, TakeTargetRecordsTheTryAndCountsItInFlight) {
  TargetGroup g;
  for (int i = 0; i < 2; ++i) g.targets.push_back(make("127.0.0.1:" + std::to_string(9000 + i), "a"));
  BalancerState st;
  TriedTargets tried;
  std::shared_ptr<Target> first = take_target(g, st, "", 1000, tried);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first.use_count(), 2);  // the group's and the attempt's
  EXPECT_EQ(first->in_flight.load(), 1);
  EXPECT_TRUE(tried.contains(first.get()));
  std::shared_ptr<Target> second = take_target(g, st, "", 1000, tried);
  ASSERT_NE(second, nullptr);
  EXPECT_NE(second, first);
  EXPECT_EQ(second->in_flight.load(), 1);
  EXPECT_EQ(take_target(g, st, "", 1000, tried), nullptr);  // both tried
  EXPECT_EQ(tried.count, 2);
  EXPECT_EQ(first->in_flight.load(), 1);
}

TEST(Balancer, TriedTargetsRemembersTheFirstFour) {
  TargetGroup g;
  for (int i = 0; i < 5; ++i) g.targets.push_back(make("127.0.0.1:" + std::to_string(9000 + i), "a"));
  TriedTargets tried;
  for (const auto& t : g.targets) tried.add(t.get());
  EXPECT_EQ(tried.count, TriedTargets::kRemembered);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(tried.contains(g.targets[i].get()));
  EXPECT_FALSE(tried.contains(g.targets[4].get()));
  BalancerState st;
  EXPECT_EQ(pick_target(g, st, "", 1000, tried), g.targets[4].get());
}

TEST(Balancer, ZoneAwarePrefersOwnZoneAndSpillsWhenItLacksCapacity) {
  TargetGroup g;
  g.config.zone_aware = true;
  g.config.zone_min_healthy_percent = 50;
  g.targets.push_back(make("127.0.0.1:9000", "a"));
  g.targets.push_back(make("127.0.0.1:9001", "a"));
  g.targets.push_back(make("127.0.0.1:9002", "b"));
  g.targets.push_back(make("127.0.0.1:9003", "b"));
  auto hits = spread(g, 100, "a");
  EXPECT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits.count("127.0.0.1:9002") + hits.count("127.0.0.1:9003"), 0u);
  // One of two zone-a targets down: 50% is still enough.
  g.targets[0]->health->health.store(health::Health::kUnhealthy);
  hits = spread(g, 100, "a");
  EXPECT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits["127.0.0.1:9001"], 100);
  // Both down: spread over zone b.
  g.targets[1]->health->health.store(health::Health::kUnhealthy);
  hits = spread(g, 100, "a");
  EXPECT_EQ(hits["127.0.0.1:9002"], 50);
  EXPECT_EQ(hits["127.0.0.1:9003"], 50);
}

TEST(Balancer, SlowStartRampsANewTargetUp) {
  TargetGroup g;
  g.config.slow_start = std::chrono::milliseconds(10'000);
  g.targets.push_back(make("127.0.0.1:9000", "a"));
  g.targets.push_back(make("127.0.0.1:9001", "a"));
  g.targets[0]->added_at_ms.store(-1'000'000);  // long established
  g.targets[0]->health->changed_at_ms.store(-1'000'000);
  g.targets[1]->added_at_ms.store(0);  // new at time 0
  auto share_of_new = [&](int64_t now_ms) {
    BalancerState st;
    int n = 0;
    for (int i = 0; i < 2000; ++i) n += pick_target(g, st, "", now_ms) == g.targets[1].get();
    return n / 2000.0;
  };
  double early = share_of_new(1'000), half = share_of_new(5'000), done = share_of_new(10'000);
  EXPECT_LT(early, 0.15);
  EXPECT_GT(half, early);
  EXPECT_LT(half, 0.45);
  EXPECT_NEAR(done, 0.5, 0.01);
}

TEST(Balancer, NoTargetsGivesNull) {
  TargetGroup g;
  BalancerState st;
  EXPECT_EQ(pick_target(g, st, "", 0), nullptr);
}

TEST(RetryBudget, AllowsMinimumPerSecondThenNeedsDeposits) {
  RetryConfig cfg;
  cfg.budget_percent = 50;
  cfg.min_per_second = 2;
  BalancerState st;
  EXPECT_TRUE(retry_allowed(cfg, st, 10'000));
  EXPECT_TRUE(retry_allowed(cfg, st, 10'000));
  EXPECT_FALSE(retry_allowed(cfg, st, 10'000));
  retry_deposit(cfg, st);
  EXPECT_FALSE(retry_allowed(cfg, st, 10'000));  // half a token
  retry_deposit(cfg, st);
  EXPECT_TRUE(retry_allowed(cfg, st, 10'000));
  EXPECT_FALSE(retry_allowed(cfg, st, 10'000));
  EXPECT_TRUE(retry_allowed(cfg, st, 11'001));  // a new second
}

TEST(Outlier, EjectionDoublesUpToTheMaximum) {
  health::OutlierSpec spec;
  spec.consecutive_5xx = 2;
  spec.base_ejection = std::chrono::milliseconds(100);
  spec.max_ejection = std::chrono::milliseconds(300);
  health::OutlierDetector d;
  using F = health::OutlierDetector::Failure;
  EXPECT_FALSE(d.record_failure(F::k5xx, spec, 0));
  EXPECT_TRUE(d.record_failure(F::k5xx, spec, 0));
  EXPECT_TRUE(d.ejected(99));
  EXPECT_FALSE(d.ejected(100));
  d.record_failure(F::k5xx, spec, 200);
  EXPECT_TRUE(d.record_failure(F::k5xx, spec, 200));
  EXPECT_TRUE(d.ejected(399));
  EXPECT_FALSE(d.ejected(400));
  d.record_failure(F::k5xx, spec, 1000);
  EXPECT_TRUE(d.record_failure(F::k5xx, spec, 1000));
  EXPECT_TRUE(d.ejected(1299));
  EXPECT_FALSE(d.ejected(1300));  // capped at 300 ms
  // A success in between resets the count.
  d.record_failure(F::k5xx, spec, 5000);
  d.record_success();
  EXPECT_FALSE(d.record_failure(F::k5xx, spec, 5000));
}

}  // namespace
}  // namespace cumulo::gateway
