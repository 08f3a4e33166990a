// Prometheus metrics. Counters, gauges and histograms are updated lock-free on the request path (relaxed
// atomics); the registry's lock is taken only to create or remove a series and to render.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cumulo::core {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void set(int64_t v) { v_.store(v, std::memory_order_relaxed); }
  void add(int64_t d) { v_.fetch_add(d, std::memory_order_relaxed); }
  int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

// Cumulative buckets with fixed upper bounds (seconds for latencies).
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  uint64_t count() const;
  double sum() const;
  // Cumulative count of observations <= upper_bounds()[i]; the last (implicit) bucket is +Inf == count().
  std::vector<uint64_t> cumulative_counts() const;
  const std::vector<double>& upper_bounds() const { return bounds_; }
  // Linear interpolation inside the bucket, as Prometheus' histogram_quantile does; 0 when empty.
  double quantile(double q) const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // per bucket (not cumulative), bounds_.size() + 1
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};  // sum * 1e6, so it fits an atomic integer
};

// Default latency buckets in seconds: 0.5 ms .. 30 s.
const std::vector<double>& latency_buckets();

class MetricsRegistry {
 public:
  // Out of line: Family is complete only in metrics.cc.
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // The same name and labels return the same object; references stay valid until remove_matching()
  // removes that series.
  // Names must match [a-zA-Z_:][a-zA-Z0-9_:]* and label names [a-zA-Z_][a-zA-Z0-9_]*; label values are
  // escaped on render. A bad name, or a name already registered with another type, is a programmer error:
  // std::invalid_argument. A histogram requested again keeps its first bucket bounds.
  Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram& histogram(std::string_view name, std::string_view help, const Labels& labels = {},
                       const std::vector<double>& upper_bounds = latency_buckets());
  // A gauge computed when rendering (for values owned elsewhere, such as a queue's length). fn runs under the
  // registry's lock, so after remove_matching() returns it is never called again; it must not use the
  // registry. Registering the same series again replaces fn.
  void gauge_fn(std::string_view name, std::string_view help, const Labels& labels,
                std::function<double()> fn);
  // Removes every series of every family whose labels include all of `match` (e.g. a deregistered target).
  // References to removed series dangle afterwards. An empty `match` removes everything.
  void remove_matching(const Labels& match);

  // Text exposition format 0.0.4: one "# HELP" and "# TYPE" per family, series sorted by labels.
  std::string render() const;

  static MetricsRegistry& global();

 private:
  struct Family;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;
  Family& family(std::string_view name, std::string_view help, int type);
};

}  // namespace cumulo::core
