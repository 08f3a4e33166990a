#include "core/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace cumulo::core {

namespace {

enum FamilyType { kCounterType, kGaugeType, kHistogramType };

constexpr std::string_view kTypeNames[] = {"counter", "gauge", "histogram"};

bool valid_metric_name(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Names starting with "__" are reserved for Prometheus itself.
bool valid_label_name(std::string_view s) {
  if (s.empty() || s.starts_with("__")) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Go's ParseFloat, which Prometheus uses, reads the shortest round-trip form and these spellings of the
// specials.
void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    auto res = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, res.ptr);
  }
}

// Text format 0.0.4: label values escape backslash, double quote and line feed.
void append_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out.push_back(c);
    }
  }
}

// HELP text escapes backslash and line feed only.
void append_help(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
}

// `name{a="x",b="y"` plus an optional extra label (the histogram's le), closed; no braces when there are no
// labels.
void append_series(std::string& out, std::string_view name, std::string_view suffix, const Labels& labels,
                   std::string_view extra_name = {}, std::string_view extra_value = {}) {
  out += name;
  out += suffix;
  if (labels.empty() && extra_name.empty()) return;
  out.push_back('{');
  bool first = true;
  auto one = [&](std::string_view k, std::string_view v) {
    if (!first) out.push_back(',');
    first = false;
    out += k;
    out += "=\"";
    append_label_value(out, v);
    out.push_back('"');
  };
  for (const auto& [k, v] : labels) one(k, v);
  if (!extra_name.empty()) one(extra_name, extra_value);
  out.push_back('}');
}

Labels sorted_labels(const Labels& labels, bool histogram) {
  Labels sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    const std::string& k = sorted[i].first;
    if (!valid_label_name(k)) throw std::invalid_argument("invalid metric label name '" + k + "'");
    if (histogram && k == "le") throw std::invalid_argument("label 'le' is reserved for histogram buckets");
    if (i > 0 && sorted[i - 1].first == k) throw std::invalid_argument("label '" + k + "' given twice");
  }
  return sorted;
}

// Largest |sum * 1e6| kept; beyond it an observation is clamped rather than wrapping the integer sum.
constexpr double kMaxMicros = 9.0e18;

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  // The +Inf bucket is implicit; NaN bounds would break the ordering.
  std::erase_if(bounds_, [](double b) { return std::isnan(b) || std::isinf(b); });
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
  buckets_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
}

void Histogram::observe(double v) {
  if (std::isnan(v)) return;  // a NaN latency is a bug at the caller; it would poison the sum for ever
  size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  double micros = std::clamp(v * 1e6, -kMaxMicros, kMaxMicros);
  // Two's complement wrap-around makes negative observations subtract correctly from the unsigned sum.
  sum_micros_.fetch_add(static_cast<uint64_t>(std::llround(micros)), std::memory_order_relaxed);
}

uint64_t Histogram::count() const {
  return count_.load(std::memory_order_relaxed);
}

double Histogram::sum() const {
  return static_cast<double>(static_cast<int64_t>(sum_micros_.load(std::memory_order_relaxed))) / 1e6;
}

std::vector<uint64_t> Histogram::cumulative_counts() const {
  std::vector<uint64_t> out(bounds_.size());
  uint64_t total = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    out[i] = total;
  }
  return out;
}

double Histogram::quantile(double q) const {
  if (std::isnan(q)) return 0;
  q = std::clamp(q, 0.0, 1.0);
  std::vector<uint64_t> cum = cumulative_counts();
  uint64_t total = (cum.empty() ? 0 : cum.back()) + buckets_[bounds_.size()].load(std::memory_order_relaxed);
  if (total == 0) return 0;
  double rank = q * static_cast<double>(total);
  // The first bucket holding the rank-th observation; skipping empty buckets keeps q=0 away from 0/0.
  size_t b = 0;
  while (b < cum.size() && (static_cast<double>(cum[b]) < rank || cum[b] == 0)) ++b;
  if (b == cum.size())
    return cum.empty() ? 0 : bounds_.back();  // in +Inf: the highest finite bound, as Prometheus
  if (b == 0 && bounds_[0] <= 0) return bounds_[0];
  double start = b == 0 ? 0 : bounds_[b - 1];
  double below = b == 0 ? 0 : static_cast<double>(cum[b - 1]);
  double in_bucket = static_cast<double>(cum[b]) - below;
  return start + (bounds_[b] - start) * ((rank - below) / in_bucket);
}

const std::vector<double>& latency_buckets() {
  static const std::vector<double> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                               0.25,   0.5,   1,      2.5,   5,    10,    30};
  return kBuckets;
}

struct MetricsRegistry::Family {
  // One heap object per series, so references handed out survive rehashing and other series' removal.
  struct Series {
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
    std::function<double()> fn;
  };
  std::string name;
  std::string help;
  int type = kCounterType;
  std::map<Labels, Series> series;  // labels sorted by name, so the map orders the rendered series
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Family& MetricsRegistry::family(std::string_view name, std::string_view help, int type) {
  auto it = families_.find(name);
  if (it != families_.end()) {
    if (it->second->type != type) {
      throw std::invalid_argument("metric '" + std::string(name) + "' is a " +
                                  std::string(kTypeNames[it->second->type]) + ", not a " +
                                  std::string(kTypeNames[type]));
    }
    return *it->second;
  }
  if (!valid_metric_name(name))
    throw std::invalid_argument("invalid metric name '" + std::string(name) + "'");
  auto f = std::make_unique<Family>();
  f->name = std::string(name);
  f->help = std::string(help);
  f->type = type;
  return *families_.emplace(f->name, std::move(f)).first->second;
}

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help, const Labels& labels) {
  Labels key = sorted_labels(labels, false);
  std::lock_guard lock(mu_);
  auto& s = family(name, help, kCounterType).series[std::move(key)];
  if (!s.counter) s.counter = std::make_unique<Counter>();
  return *s.counter;
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  Labels key = sorted_labels(labels, false);
  std::lock_guard lock(mu_);
  auto& s = family(name, help, kGaugeType).series[std::move(key)];
  if (s.fn) throw std::invalid_argument("metric '" + std::string(name) + "' series is already a gauge_fn");
  if (!s.gauge) s.gauge = std::make_unique<Gauge>();
  return *s.gauge;
}

Histogram& MetricsRegistry::histogram(std::string_view name, std::string_view help, const Labels& labels,
                                      const std::vector<double>& upper_bounds) {
  Labels key = sorted_labels(labels, true);
  std::lock_guard lock(mu_);
  auto& s = family(name, help, kHistogramType).series[std::move(key)];
  if (!s.histogram) s.histogram = std::make_unique<Histogram>(upper_bounds);
  return *s.histogram;
}

void MetricsRegistry::gauge_fn(std::string_view name, std::string_view help, const Labels& labels,
                               std::function<double()> fn) {
  Labels key = sorted_labels(labels, false);
  std::lock_guard lock(mu_);
  auto& s = family(name, help, kGaugeType).series[std::move(key)];
  if (s.gauge)
    throw std::invalid_argument("metric '" + std::string(name) + "' series is already a plain gauge");
  s.fn = std::move(fn);
}

void MetricsRegistry::remove_matching(const Labels& match) {
  std::lock_guard lock(mu_);
  for (auto fit = families_.begin(); fit != families_.end();) {
    auto& series = fit->second->series;
    std::erase_if(series, [&](const auto& entry) {
      const Labels& labels = entry.first;
      return std::all_of(match.begin(), match.end(), [&](const auto& want) {
        return std::find(labels.begin(), labels.end(), want) != labels.end();
      });
    });
    // An empty family would still print HELP and TYPE lines for a metric that no longer exists.
    fit = series.empty() ? families_.erase(fit) : std::next(fit);
  }
}

std::string MetricsRegistry::render() const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [name, f] : families_) {
    if (f->series.empty()) continue;
    out += "# HELP ";
    out += name;
    out.push_back(' ');
    append_help(out, f->help);
    out += "\n# TYPE ";
    out += name;
    out.push_back(' ');
    out += kTypeNames[f->type];
    out.push_back('\n');
    for (const auto& [labels, s] : f->series) {
      if (s.counter || s.gauge || s.fn) {
        append_series(out, name, "", labels);
        out.push_back(' ');
        if (s.counter) {
          out += std::to_string(s.counter->value());
        } else if (s.gauge) {
          out += std::to_string(s.gauge->value());
        } else {
          append_double(out, s.fn());
        }
        out.push_back('\n');
        continue;
      }
      if (!s.histogram) continue;
      const Histogram& h = *s.histogram;
      // _count is taken from the same bucket snapshot as +Inf: Prometheus requires them to agree, and a
      // concurrent observe() between two separate reads would break that.
      std::vector<uint64_t> cum = h.cumulative_counts();
      uint64_t total = h.count();
      if (!cum.empty()) total = std::max(total, cum.back());
      char le[32];
      for (size_t i = 0; i < cum.size(); ++i) {
        auto res = std::to_chars(le, le + sizeof le, h.upper_bounds()[i]);
        append_series(out, name, "_bucket", labels, "le",
                      std::string_view(le, static_cast<size_t>(res.ptr - le)));
        out.push_back(' ');
        out += std::to_string(cum[i]);
        out.push_back('\n');
      }
      append_series(out, name, "_bucket", labels, "le", "+Inf");
      out.push_back(' ');
      out += std::to_string(total);
      out.push_back('\n');
      append_series(out, name, "_sum", labels);
      out.push_back(' ');
      append_double(out, h.sum());
      out.push_back('\n');
      append_series(out, name, "_count", labels);
      out.push_back(' ');
      out += std::to_string(total);
      out.push_back('\n');
    }
  }
  return out;
}

MetricsRegistry& MetricsRegistry::global() {
  // Never destroyed: worker threads may still update metrics while static destructors run at exit.
  static MetricsRegistry* const registry = new MetricsRegistry();
  return *registry;
}

}  // namespace cumulo::core
