// Metric windows, quantiles, latency histograms, target tracking and step rows, placement.
#include <gtest/gtest.h>

#include "scaling/internal/metric_window.h"
#include "scaling/internal/placement.h"
#include "scaling/internal/policy.h"

namespace cumulo::scaling::internal {
namespace {

using namespace std::chrono_literals;

const TimePoint kStart = TimePoint{} + std::chrono::hours(1000);

TEST(MetricWindow, StatisticsOverTheSecondsThatHaveValues) {
  MetricWindow w;
  for (int i = 0; i < 10; ++i) w.record(kStart + std::chrono::seconds(i), i);  // 0..9
  const TimePoint now = kStart + 9s;
  EXPECT_DOUBLE_EQ(*w.statistic(Statistic::kAverage, 10s, now), 4.5);
  EXPECT_DOUBLE_EQ(*w.statistic(Statistic::kAverage, 2s, now), 8.5);
  EXPECT_DOUBLE_EQ(*w.statistic(Statistic::kMaximum, 5s, now), 9);
  EXPECT_DOUBLE_EQ(*w.statistic(Statistic::kMinimum, 5s, now), 5);
  EXPECT_DOUBLE_EQ(*w.statistic(Statistic::kP50, 10s, now), 4.5);
  EXPECT_NEAR(*w.statistic(Statistic::kP99, 10s, now), 8.91, 1e-9);
  EXPECT_EQ(w.count(10s, now), 10u);
  // Seconds without data are not zeros.
  EXPECT_DOUBLE_EQ(*w.statistic(Statistic::kAverage, 60s, now + 20s), 4.5 + 0 * 1);
  EXPECT_FALSE(w.statistic(Statistic::kAverage, 10s, now + 20s).has_value());
}

TEST(MetricWindow, TheRingForgetsAfterTenMinutes) {
  MetricWindow w;
  w.record(kStart, 100);
  w.record(kStart + 601s, 1);  // lands on the slot after the first one's
  w.record(kStart + 600s, 2);  // the first one's slot: replaced
  EXPECT_EQ(w.count(600s, kStart + 601s), 2u);
  EXPECT_DOUBLE_EQ(*w.statistic(Statistic::kMaximum, 600s, kStart + 601s), 2);
}

TEST(MetricWindow, ASecondRecordedTwiceKeepsTheLastValue) {
  MetricWindow w;
  w.record(kStart, 1);
  w.record(kStart + 500ms, 3);
  EXPECT_EQ(w.count(10s, kStart + 500ms), 1u);
  EXPECT_DOUBLE_EQ(*w.statistic(Statistic::kAverage, 10s, kStart + 900ms), 3);
}

TEST(HistogramQuantile, InterpolatesWithinTheBucket) {
  const std::vector<double> bounds = {0.001, 0.01, 0.1, 1};
  // 50 under 1 ms, 40 more under 10 ms, 10 more under 100 ms; total 100.
  const std::vector<uint64_t> counts = {50, 90, 100, 100, 100};
  EXPECT_NEAR(*histogram_quantile(bounds, counts, 0.5), 0.001, 1e-12);
  EXPECT_NEAR(*histogram_quantile(bounds, counts, 0.7), 0.001 + 0.009 * 0.5, 1e-12);
  EXPECT_NEAR(*histogram_quantile(bounds, counts, 0.95), 0.01 + 0.09 * 0.5, 1e-12);
  EXPECT_FALSE(histogram_quantile(bounds, {0, 0, 0, 0, 0}, 0.5).has_value());
  // Beyond the last bound: the last bound.
  EXPECT_DOUBLE_EQ(*histogram_quantile({0.1}, {0, 10}, 0.99), 0.1);
}

PolicySpec tracking(double target, std::chrono::milliseconds stabilization) {
  PolicySpec p;
  p.name = "t";
  p.metric = MetricName{MetricKind::kCpu, {}};
  p.target = target;
  p.window = 15s;
  p.scale_in_stabilization = stabilization;
  return p;
}

TEST(TargetTracker, ScalesOutToKeepTheMetricAtTarget) {
  PolicySpec p = tracking(60, 60s);
  TargetTracker t(p);
  auto r = t.evaluate(87, 2, 2, kStart, kStart + 1s, false);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->desired, 3);  // ceil(2 * 87 / 60)
  EXPECT_EQ(r->reason, "cpu average 87% over 15s > target 60%");
  EXPECT_EQ(t.evaluate(120, 2, 2, kStart, kStart + 2s, false)->desired, 4);
  EXPECT_EQ(t.evaluate(60, 4, 4, kStart, kStart + 3s, false)->desired, 4) << "exactly at target: stay";
  EXPECT_FALSE(t.evaluate(50, 0, 2, kStart, kStart + 4s, false).has_value()) << "nothing counted: no opinion";
}

TEST(TargetTracker, ScalesInOnlyAfterAWholeStabilizationWindowAskedForFewer) {
  PolicySpec p = tracking(60, 10s);
  TargetTracker t(p);
  const TimePoint changed = kStart;
  // Low load from the start, but desired changed at kStart: wait 10 s.
  for (int s = 1; s < 10; ++s)
    EXPECT_EQ(t.evaluate(10, 4, 4, changed, kStart + std::chrono::seconds(s), false)->desired, 4);
  auto r = t.evaluate(10, 4, 4, changed, kStart + 10s, false);
  EXPECT_EQ(r->desired, 1);
  EXPECT_EQ(r->reason, "cpu average 10% over 15s < target 60% for 10s");

  // One high evaluation within the window holds the capacity at the largest recommendation.
  TargetTracker u(p);
  for (int s = 1; s <= 20; ++s) {
    const double value = s == 15 ? 45 : 10;  // ceil(4 * 45 / 60) = 3
    auto q = u.evaluate(value, 4, 4, changed, kStart + std::chrono::seconds(s), false);
    if (s < 15) {
      EXPECT_EQ(q->desired, s >= 10 ? 1 : 4) << s;
    } else {
      EXPECT_EQ(q->desired, 3) << s;
    }
  }
}

TEST(TargetTracker, CustomMetricsCanAskForCapacityWithNothingInService) {
  PolicySpec p = tracking(10, 60s);
  p.metric = MetricName{MetricKind::kCustom, "queue_depth"};
  TargetTracker t(p);
  EXPECT_EQ(t.evaluate(40, 0, 0, kStart, kStart + 1s, false)->desired, 4);
}

TEST(StepPolicy, FirstMatchingRowWinsLowerInclusiveUpperExclusive) {
  PolicySpec p;
  p.type = PolicyType::kStep;
  p.metric = MetricName{MetricKind::kLatencyP99, {}};
  p.statistic = Statistic::kMaximum;
  p.window = 10s;
  p.steps = {{0.5, 1.0, 1, false},
             {1.0, std::nullopt, 3, false},
             {std::nullopt, 0.05, -1, false},
             {0.2, 0.5, 50, true}};
  EXPECT_EQ(evaluate_steps(p, 0.5, 4, false)->desired, 5);
  EXPECT_EQ(evaluate_steps(p, 0.99, 4, false)->desired, 5);
  EXPECT_EQ(evaluate_steps(p, 1.0, 4, false)->desired, 7);
  EXPECT_EQ(evaluate_steps(p, 0.01, 4, false)->desired, 3);
  EXPECT_EQ(evaluate_steps(p, 0.3, 3, false)->desired, 5) << "+50% of 3 is 1.5, rounded up";
  EXPECT_FALSE(evaluate_steps(p, 0.1, 4, false).has_value());
  EXPECT_EQ(evaluate_steps(p, 1.5, 4, false)->reason, "latency_p99 maximum 1.5s over 10s >= 1s: step +3");
  EXPECT_EQ(evaluate_steps(p, 0.7, 4, false)->reason,
            "latency_p99 maximum 0.7s over 10s in [0.5s, 1s): step +1");
}

TEST(Placement, FewestFirstSkippingUnavailableZones) {
  std::vector<std::string> zones = {"a", "b", "c"};
  EXPECT_EQ(choose_launch_zone(zones, {{"a", 1}, {"b", 0}, {"c", 0}}, {}), "b");
  EXPECT_EQ(choose_launch_zone(zones, {{"a", 1}, {"b", 1}, {"c", 1}}, {}), "a");
  EXPECT_EQ(choose_launch_zone(zones, {{"a", 0}, {"b", 2}, {"c", 3}}, {"a"}), "b");
  EXPECT_EQ(choose_launch_zone(zones, {}, {"a", "b", "c"}), "a") << "no zone available: any zone";
  EXPECT_TRUE(imbalanced(zones, {{"a", 0}, {"b", 2}, {"c", 1}}, {}));
  EXPECT_FALSE(imbalanced(zones, {{"a", 0}, {"b", 2}, {"c", 1}}, {"a"}));
  EXPECT_FALSE(imbalanced(zones, {{"a", 1}, {"b", 2}, {"c", 1}}, {}));
}

TEST(Placement, TerminatesFromTheFullestZoneThenTheOldest) {
  const std::vector<TerminationCandidate> c = {
      {"a", kStart + 1s}, {"b", kStart + 2s}, {"b", kStart}, {"a", kStart - 5s}};
  EXPECT_EQ(choose_victim(c, {{"a", 2}, {"b", 3}}), 2u);
  EXPECT_EQ(choose_victim(c, {{"a", 2}, {"b", 2}}), 3u);
}

}  // namespace
}  // namespace cumulo::scaling::internal

namespace cumulo::scaling::internal {
namespace {

TEST(TargetTrackerEarly, RecentSecondsAskForMoreBeforeTheWindowDoes) {
  PolicySpec spec;
  spec.name = "cpu60";
  spec.type = PolicyType::kTargetTracking;
  spec.metric = MetricName{MetricKind::kCpu, ""};
  spec.target = 60;
  spec.window = std::chrono::seconds(10);
  TargetTracker t(spec);
  auto early = t.scale_out_early(100, std::chrono::seconds(3), 2, 2, false);
  ASSERT_TRUE(early.has_value());
  EXPECT_EQ(early->desired, 4);
  EXPECT_NE(early->reason.find("over the last 3s > target 60%"), std::string::npos) << early->reason;
  EXPECT_FALSE(t.scale_out_early(50, std::chrono::seconds(3), 2, 2, false).has_value()) << "never scales in";
  EXPECT_FALSE(t.scale_out_early(100, std::chrono::seconds(3), 0, 2, false).has_value()) << "nothing counted";
}

}  // namespace
}  // namespace cumulo::scaling::internal
