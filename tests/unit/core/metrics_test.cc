#include "core/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>
#include <thread>
#include <vector>

namespace cumulo::core {
namespace {

TEST(Metrics, RendersTextFormatExactly) {
  MetricsRegistry r;
  r.counter("http_requests_total", "Requests served.", {{"method", "GET"}, {"code", "200"}}).inc(3);
  r.counter("http_requests_total", "Requests served.", {{"code", "500"}, {"method", "GET"}}).inc();
  r.gauge("connections", "Open connections.").set(-2);
  Histogram& h = r.histogram("latency_seconds", "Latency.", {{"route", "a\"b\\c\nd"}}, {0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(2);
  r.gauge_fn("queue_length", "Queue\nlength \\ help.", {}, [] { return 1.5; });

  EXPECT_EQ(r.render(),
            "# HELP connections Open connections.\n"
            "# TYPE connections gauge\n"
            "connections -2\n"
            "# HELP http_requests_total Requests served.\n"
            "# TYPE http_requests_total counter\n"
            "http_requests_total{code=\"200\",method=\"GET\"} 3\n"
            "http_requests_total{code=\"500\",method=\"GET\"} 1\n"
            "# HELP latency_seconds Latency.\n"
            "# TYPE latency_seconds histogram\n"
            "latency_seconds_bucket{route=\"a\\\"b\\\\c\\nd\",le=\"0.1\"} 1\n"
            "latency_seconds_bucket{route=\"a\\\"b\\\\c\\nd\",le=\"1\"} 2\n"
            "latency_seconds_bucket{route=\"a\\\"b\\\\c\\nd\",le=\"+Inf\"} 3\n"
            "latency_seconds_sum{route=\"a\\\"b\\\\c\\nd\"} 2.55\n"
            "latency_seconds_count{route=\"a\\\"b\\\\c\\nd\"} 3\n"
            "# HELP queue_length Queue\\nlength \\\\ help.\n"
            "# TYPE queue_length gauge\n"
            "queue_length 1.5\n");
}

TEST(Metrics, SpecialGaugeValuesUsePrometheusSpelling) {
  MetricsRegistry r;
  r.gauge_fn("g", "h", {{"k", "nan"}}, [] { return std::nan(""); });
  r.gauge_fn("g", "h", {{"k", "pinf"}}, [] { return HUGE_VAL; });
  r.gauge_fn("g", "h", {{"k", "ninf"}}, [] { return -HUGE_VAL; });
  EXPECT_EQ(r.render(),
            "# HELP g h\n# TYPE g gauge\n"
            "g{k=\"nan\"} NaN\n"
            "g{k=\"ninf\"} -Inf\n"
            "g{k=\"pinf\"} +Inf\n");
}

TEST(Metrics, SameNameAndLabelsGiveTheSameSeries) {
  MetricsRegistry r;
  Counter& a = r.counter("c_total", "h", {{"x", "1"}, {"y", "2"}});
  Counter& b = r.counter("c_total", "h", {{"y", "2"}, {"x", "1"}});
  Counter& other = r.counter("c_total", "h", {{"x", "1"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &other);
  // Creating many more series must not move the ones handed out.
  for (int i = 0; i < 1000; ++i) r.counter("c_total", "h", {{"i", std::to_string(i)}}).inc();
  a.inc(5);
  EXPECT_EQ(r.counter("c_total", "h", {{"x", "1"}, {"y", "2"}}).value(), 5u);
  EXPECT_EQ(&r.gauge("g", "h"), &r.gauge("g", "h"));
  EXPECT_EQ(&r.histogram("hist", "h"), &r.histogram("hist", "h"));
}

TEST(Metrics, ProgrammerErrorsThrow) {
  MetricsRegistry r;
  r.counter("requests_total", "h");
  EXPECT_THROW(r.gauge("requests_total", "h"), std::invalid_argument);
  EXPECT_THROW(r.histogram("requests_total", "h"), std::invalid_argument);
  EXPECT_THROW(r.counter("1bad", "h"), std::invalid_argument);
  EXPECT_THROW(r.counter("bad-name", "h"), std::invalid_argument);
  EXPECT_THROW(r.counter("", "h"), std::invalid_argument);
  EXPECT_THROW(r.counter("ok", "h", {{"bad-label", "v"}}), std::invalid_argument);
  EXPECT_THROW(r.counter("ok", "h", {{"__reserved", "v"}}), std::invalid_argument);
  EXPECT_THROW(r.counter("ok", "h", {{"a", "1"}, {"a", "2"}}), std::invalid_argument);
  EXPECT_THROW(r.histogram("hist", "h", {{"le", "1"}}), std::invalid_argument);
  EXPECT_NO_THROW(r.counter("ns:sub_name_total", "h", {{"_x9", "any \"value\""}}));
  r.gauge("both", "h", {{"k", "1"}});
  EXPECT_THROW(r.gauge_fn("both", "h", {{"k", "1"}}, [] { return 0.0; }), std::invalid_argument);
  r.gauge_fn("fn", "h", {}, [] { return 1.0; });
  EXPECT_THROW(r.gauge("fn", "h"), std::invalid_argument);
}

TEST(Metrics, GaugeFnCanBeReplaced) {
  MetricsRegistry r;
  r.gauge_fn("q", "h", {}, [] { return 1.0; });
  r.gauge_fn("q", "h", {}, [] { return 2.0; });
  EXPECT_EQ(r.render(), "# HELP q h\n# TYPE q gauge\nq 2\n");
}

TEST(Histogram, BucketsAreCumulativeAndInclusive) {
  Histogram h({0.1, 1, 10});
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.sum(), 0.0);
  EXPECT_EQ(h.quantile(0.5), 0.0);  // empty
  h.observe(0.1);                   // on a bound: counts in that bucket (le = less or equal)
  h.observe(0.05);
  h.observe(1);
  h.observe(5);
  h.observe(100);
  EXPECT_EQ(h.cumulative_counts(), (std::vector<uint64_t>{2, 3, 4}));
  EXPECT_EQ(h.count(), 5u);
  EXPECT_DOUBLE_EQ(h.sum(), 106.15);
}

TEST(Histogram, BoundsAreSortedAndInfIsImplicit) {
  Histogram h({5, 1, 1, INFINITY, 2});
  EXPECT_EQ(h.upper_bounds(), (std::vector<double>{1, 2, 5}));
  h.observe(INFINITY);
  h.observe(std::nan(""));  // dropped: it would poison the sum
  EXPECT_EQ(h.count(), 1u);
  EXPECT_EQ(h.cumulative_counts(), (std::vector<uint64_t>{0, 0, 0}));
}

TEST(Histogram, NegativeObservationsSubtractFromTheSum) {
  Histogram h({0});
  h.observe(-1.5);
  h.observe(0.25);
  EXPECT_DOUBLE_EQ(h.sum(), -1.25);
  EXPECT_EQ(h.cumulative_counts(), (std::vector<uint64_t>{1}));
}

TEST(Histogram, QuantileInterpolatesLikeHistogramQuantile) {
  Histogram h({1, 2, 4});
  for (int i = 0; i < 5; ++i) h.observe(0.5);  // (0, 1]
  for (int i = 0; i < 5; ++i) h.observe(1.5);  // (1, 2]
  EXPECT_DOUBLE_EQ(h.quantile(0.5), 1.0);      // rank 5 ends the first bucket
  EXPECT_DOUBLE_EQ(h.quantile(0.25), 0.5);     // rank 2.5 in [0, 1]
  EXPECT_DOUBLE_EQ(h.quantile(0.75), 1.5);     // rank 7.5: halfway through (1, 2]
  EXPECT_DOUBLE_EQ(h.quantile(1.0), 2.0);
  EXPECT_DOUBLE_EQ(h.quantile(0.0), 0.0);
  EXPECT_DOUBLE_EQ(h.quantile(2.0), 2.0);  // clamped to 1

  Histogram tail({1, 2});
  tail.observe(0.5);
  tail.observe(50);
  tail.observe(60);
  // Ranks in the +Inf bucket answer the highest finite bound, as Prometheus does.
  EXPECT_DOUBLE_EQ(tail.quantile(0.99), 2.0);

  Histogram skip({1, 2, 3});
  skip.observe(2.5);
  skip.observe(2.5);
  EXPECT_DOUBLE_EQ(skip.quantile(0.0), 2.0);  // lower edge of the first non-empty bucket, not 0/0
  EXPECT_DOUBLE_EQ(skip.quantile(0.5), 2.5);
}

TEST(Histogram, DefaultLatencyBuckets) {
  const auto& b = latency_buckets();
  ASSERT_FALSE(b.empty());
  EXPECT_DOUBLE_EQ(b.front(), 0.0005);
  EXPECT_DOUBLE_EQ(b.back(), 30);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
}

TEST(Metrics, ConcurrentUpdatesSumExactly) {
  MetricsRegistry r;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      // Half the threads look the series up themselves, racing on its creation.
      Counter& c = r.counter("hits_total", "h", {{"k", "v"}});
      Gauge& g = r.gauge("level", "h");
      Histogram& h = r.histogram("lat", "h", {}, {0.5});
      for (int i = 0; i < kPerThread; ++i) {
        c.inc();
        g.add(i % 2 == 0 ? 3 : -1);
        h.observe(0.25);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(r.counter("hits_total", "h", {{"k", "v"}}).value(), uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(r.gauge("level", "h").value(), int64_t{kThreads} * kPerThread);
  Histogram& h = r.histogram("lat", "h");
  EXPECT_EQ(h.count(), uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(h.cumulative_counts()[0], uint64_t{kThreads} * kPerThread);
  EXPECT_DOUBLE_EQ(h.sum(), 0.25 * kThreads * kPerThread);
}

TEST(Metrics, RenderWhileUpdatingAndCreating) {
  MetricsRegistry r;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < 2000; ++i) {
      r.counter("c_total", "h", {{"i", std::to_string(i % 50)}}).inc();
      r.histogram("h", "h", {{"i", std::to_string(i % 7)}}).observe(0.01 * (i % 30));
    }
    done = true;
  });
  size_t renders = 0;
  while (!done) renders += r.render().empty() ? 0 : 1;
  writer.join();
  EXPECT_NE(r.render().find("c_total{i=\"49\"} 40\n"), std::string::npos);
}

TEST(Metrics, RemoveMatching) {
  MetricsRegistry r;
  r.counter("requests_total", "h", {{"target", "a"}, {"code", "200"}}).inc();
  r.counter("requests_total", "h", {{"target", "b"}, {"code", "200"}}).inc(2);
  r.gauge("up", "h", {{"target", "a"}}).set(1);
  Gauge& b_up = r.gauge("up", "h", {{"target", "b"}});
  r.histogram("lat", "h", {{"target", "a"}}, {1}).observe(0.5);
  r.gauge_fn("queued", "h", {{"target", "a"}, {"group", "g"}}, [] { return 3.0; });

  r.remove_matching({{"target", "a"}, {"code", "500"}});  // no series has both
  EXPECT_NE(r.render().find("target=\"a\""), std::string::npos);

  r.remove_matching({{"target", "a"}});
  b_up.set(7);  // references to other series stay valid
  EXPECT_EQ(r.render(),
            "# HELP requests_total h\n# TYPE requests_total counter\n"
            "requests_total{code=\"200\",target=\"b\"} 2\n"
            "# HELP up h\n# TYPE up gauge\n"
            "up{target=\"b\"} 7\n");
  // A removed series starts again from zero.
  EXPECT_EQ(r.counter("requests_total", "h", {{"target", "a"}, {"code", "200"}}).value(), 0u);
  // Families left empty are gone, so their names can be reused with another type.
  EXPECT_NO_THROW(r.counter("lat", "h"));

  r.remove_matching({});
  EXPECT_EQ(r.render(), "");
}

TEST(Metrics, GlobalIsOneInstance) {
  EXPECT_EQ(&MetricsRegistry::global(), &MetricsRegistry::global());
  Counter& c = MetricsRegistry::global().counter("cumulo_metrics_test_total", "h", {{"test", "global"}});
  c.inc();
  EXPECT_NE(MetricsRegistry::global().render().find("cumulo_metrics_test_total{test=\"global\"} 1\n"),
            std::string::npos);
  MetricsRegistry::global().remove_matching({{"test", "global"}});
}

}  // namespace
}  // namespace cumulo::core
