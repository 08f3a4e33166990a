// Scaling policies as pure functions of a metric value and the group's capacity.
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <utility>

#include "scaling/scaling.h"

namespace cumulo::scaling::internal {

struct Proposal {
  int desired = 0;
  std::string reason;  // "cpu average 87% over 15s > target 60%"
};

// "87%", "0.62s", "123 req/s": a metric value in its unit, for event messages.
std::string format_value(const MetricName& metric, double value, bool memory_is_percent);

// Target tracking: desired = ceil(counted * value / target). Scale-out at once; scale-in only when every
// evaluation during scale_in_stabilization (since desired last changed) asked for fewer, and then to the
// largest of them (Kubernetes' HPA stabilization).
class TargetTracker {
 public:
  explicit TargetTracker(const PolicySpec& spec) : spec_(spec) {}
  // `counted`: in-service instances whose metrics counted; `desired_since`: when desired last changed.
  std::optional<Proposal> evaluate(double value, int counted, int desired, TimePoint desired_since,
                                   TimePoint now, bool memory_is_percent);
  // Scale-out only, from a short recent window: a load step is acted on within seconds instead of waiting
  // until it dominates the whole window. nullopt unless it asks for more than `desired`.
  std::optional<Proposal> scale_out_early(double recent_value, Millis recent, int counted, int desired,
                                          bool memory_is_percent) const;

 private:
  const PolicySpec& spec_;
  std::deque<std::pair<TimePoint, int>> history_;
};

// Step scaling: the first row whose [lower, upper) holds the value changes the desired capacity.
std::optional<Proposal> evaluate_steps(const PolicySpec& spec, double value, int desired,
                                       bool memory_is_percent);

}  // namespace cumulo::scaling::internal
