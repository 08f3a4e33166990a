#include "scaling/internal/metric_window.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace cumulo::scaling::internal {

int64_t second_of(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

void MetricWindow::record(TimePoint now, double value) {
  const int64_t second = second_of(now);
  Slot& slot = slots_[static_cast<size_t>(second % static_cast<int64_t>(kSeconds))];
  slot.second = second;
  slot.value = value;
}

std::vector<double> MetricWindow::values(Millis window, TimePoint now) const {
  const int64_t last = second_of(now);
  int64_t span = std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(window).count());
  span = std::min<int64_t>(span, kSeconds);
  std::vector<double> out;
  out.reserve(static_cast<size_t>(span));
  for (int64_t s = last - span + 1; s <= last; ++s) {
    if (s < 0) continue;
    const Slot& slot = slots_[static_cast<size_t>(s % static_cast<int64_t>(kSeconds))];
    if (slot.second == s) out.push_back(slot.value);
  }
  return out;
}

size_t MetricWindow::count(Millis window, TimePoint now) const {
  return values(window, now).size();
}

std::optional<double> MetricWindow::statistic(Statistic statistic, Millis window, TimePoint now) const {
  std::vector<double> v = values(window, now);
  if (v.empty()) return std::nullopt;
  switch (statistic) {
    case Statistic::kAverage:
      return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    case Statistic::kMaximum:
      return *std::max_element(v.begin(), v.end());
    case Statistic::kMinimum:
      return *std::min_element(v.begin(), v.end());
    case Statistic::kP50:
      return quantile(v, 0.50);
    case Statistic::kP95:
      return quantile(v, 0.95);
    case Statistic::kP99:
      return quantile(v, 0.99);
  }
  return std::nullopt;
}

double quantile(std::vector<double>& values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = q * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (rank - static_cast<double>(lo));
}

std::optional<double> histogram_quantile(const std::vector<double>& bounds,
                                         const std::vector<uint64_t>& counts, double q) {
  if (counts.empty() || counts.size() < bounds.size()) return std::nullopt;
  const uint64_t total = counts.back();
  if (total == 0) return std::nullopt;
  const double wanted = q * static_cast<double>(total);
  uint64_t below = 0;
  double lower_bound = 0;
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (static_cast<double>(counts[i]) >= wanted && counts[i] > below) {
      const double in_bucket = static_cast<double>(counts[i] - below);
      const double fraction = (wanted - static_cast<double>(below)) / in_bucket;
      return lower_bound + (bounds[i] - lower_bound) * std::clamp(fraction, 0.0, 1.0);
    }
    below = counts[i];
    lower_bound = bounds[i];
  }
  return bounds.empty() ? std::nullopt : std::optional<double>(bounds.back());
}

}  // namespace cumulo::scaling::internal
