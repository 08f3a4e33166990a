#include "scaling/internal/policy.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/config.h"

namespace cumulo::scaling::internal {

namespace {

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace

std::string format_value(const MetricName& metric, double value, bool memory_is_percent) {
  switch (metric.kind) {
    case MetricKind::kCpu:
      return number(value) + "%";
    case MetricKind::kMemory:
      return number(value) + (memory_is_percent ? "%" : " MiB");
    case MetricKind::kRequestRate:
      return number(value) + " req/s";
    case MetricKind::kLatencyP50:
    case MetricKind::kLatencyP95:
    case MetricKind::kLatencyP99:
      return number(value) + "s";
    case MetricKind::kNetworkIn:
    case MetricKind::kNetworkOut:
      return number(value) + " B/s";
    case MetricKind::kCustom:
      return number(value);
  }
  return number(value);
}

std::optional<Proposal> TargetTracker::evaluate(double value, int counted, int desired,
                                                TimePoint desired_since, TimePoint now,
                                                bool memory_is_percent) {
  if (spec_.target <= 0) return std::nullopt;
  // A pushed metric can ask for capacity when nothing runs yet; an instance metric cannot.
  if (counted == 0 && spec_.metric.kind == MetricKind::kCustom) counted = 1;
  if (counted == 0) return std::nullopt;
  // The small epsilon keeps 60.0000001% of a 60% target from asking for one more instance.
  const double exact = static_cast<double>(counted) * value / spec_.target;
  const int wanted = std::max(0, static_cast<int>(std::ceil(exact - 1e-9)));
  history_.emplace_back(now, wanted);
  while (!history_.empty() && now - history_.front().first > spec_.scale_in_stabilization)
    history_.pop_front();

  const std::string what = spec_.metric.text() + " " + to_string(spec_.statistic) + " " +
                           format_value(spec_.metric, value, memory_is_percent) + " over " +
                           core::format_duration(spec_.window);
  const std::string target = format_value(spec_.metric, spec_.target, memory_is_percent);
  if (wanted > desired) return Proposal{wanted, what + " > target " + target};
  if (wanted == desired) return Proposal{desired, what + " near target " + target};
  // Fewer: only once the whole stabilization window since the last change asked for fewer.
  if (now - desired_since < spec_.scale_in_stabilization) return Proposal{desired, what + " (stabilizing)"};
  int most = 0;
  for (const auto& [when, n] : history_) {
    if (when >= now - spec_.scale_in_stabilization) most = std::max(most, n);
  }
  if (most >= desired) return Proposal{desired, what + " (stabilizing)"};
  return Proposal{
      most, what + " < target " + target + " for " + core::format_duration(spec_.scale_in_stabilization)};
}

std::optional<Proposal> TargetTracker::scale_out_early(double recent_value, Millis recent, int counted,
                                                       int desired, bool memory_is_percent) const {
  if (spec_.target <= 0 || counted == 0) return std::nullopt;
  const int wanted = std::max(
      0, static_cast<int>(std::ceil(static_cast<double>(counted) * recent_value / spec_.target - 1e-9)));
  if (wanted <= desired) return std::nullopt;
  return Proposal{wanted, spec_.metric.text() + " " + to_string(spec_.statistic) + " " +
                              format_value(spec_.metric, recent_value, memory_is_percent) +
                              " over the last " + core::format_duration(recent) + " > target " +
                              format_value(spec_.metric, spec_.target, memory_is_percent)};
}

std::optional<Proposal> evaluate_steps(const PolicySpec& spec, double value, int desired,
                                       bool memory_is_percent) {
  for (const StepAdjustment& row : spec.steps) {
    if (row.lower && value < *row.lower) continue;
    if (row.upper && value >= *row.upper) continue;
    int change = row.change;
    if (row.percent) {
      const double exact = static_cast<double>(desired) * std::abs(row.change) / 100.0;
      const int n = std::max(1, static_cast<int>(std::ceil(exact - 1e-9)));
      change = row.change < 0 ? -n : n;
    }
    std::string range;
    if (row.lower && row.upper) {
      range = "in [" + format_value(spec.metric, *row.lower, memory_is_percent) + ", " +
              format_value(spec.metric, *row.upper, memory_is_percent) + ")";
    } else if (row.lower) {
      range = ">= " + format_value(spec.metric, *row.lower, memory_is_percent);
    } else if (row.upper) {
      range = "< " + format_value(spec.metric, *row.upper, memory_is_percent);
    } else {
      range = "(any value)";
    }
    std::string step = (row.change >= 0 ? "+" : "") + std::to_string(row.change) + (row.percent ? "%" : "");
    return Proposal{std::max(0, desired + change),
                    spec.metric.text() + " " + to_string(spec.statistic) + " " +
                        format_value(spec.metric, value, memory_is_percent) + " over " +
                        core::format_duration(spec.window) + " " + range + ": step " + step};
  }
  return std::nullopt;
}

}  // namespace cumulo::scaling::internal
