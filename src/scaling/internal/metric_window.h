// Per-second metric series over the last ten minutes, and the statistics policies read from them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "scaling/scaling.h"

namespace cumulo::scaling::internal {

// A ring of one value per second. Seconds without a value (no instance counted, no request) hold none, and
// statistics are over the seconds that have one, as CloudWatch treats missing data points.
class MetricWindow {
 public:
  static constexpr size_t kSeconds = 600;

  // Records the value of the second `now` falls in (a second value in the same second replaces the first).
  void record(TimePoint now, double value);
  // Over the seconds in (now - window, now]; nullopt when none has a value.
  std::optional<double> statistic(Statistic statistic, Millis window, TimePoint now) const;
  size_t count(Millis window, TimePoint now) const;

 private:
  std::vector<double> values(Millis window, TimePoint now) const;
  struct Slot {
    int64_t second = -1;
    double value = 0;
  };
  std::array<Slot, kSeconds> slots_{};
};

int64_t second_of(TimePoint t);

// The q-quantile (0..1) of values, linearly interpolated between closest ranks; values get sorted.
double quantile(std::vector<double>& values, double q);

// The q-quantile of a latency histogram with cumulative counts per upper bound and the total last;
// interpolated within the bucket; nullopt when it counts nothing. Beyond the last bound it says the last
// bound.
std::optional<double> histogram_quantile(const std::vector<double>& bounds,
                                         const std::vector<uint64_t>& counts, double q);

}  // namespace cumulo::scaling::internal
