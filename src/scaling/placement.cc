#include "scaling/internal/placement.h"

#include <algorithm>
#include <climits>

namespace cumulo::scaling::internal {

namespace {

int count_of(const std::map<std::string, int>& counts, const std::string& zone) {
  auto it = counts.find(zone);
  return it == counts.end() ? 0 : it->second;
}

}  // namespace

std::string choose_launch_zone(const std::vector<std::string>& zones,
                               const std::map<std::string, int>& counts,
                               const std::set<std::string>& unavailable) {
  const bool none_available =
      std::all_of(zones.begin(), zones.end(), [&](const std::string& z) { return unavailable.count(z) > 0; });
  std::string best;
  int fewest = INT_MAX;
  for (const std::string& zone : zones) {
    if (!none_available && unavailable.count(zone)) continue;
    const int n = count_of(counts, zone);
    if (n < fewest) {
      fewest = n;
      best = zone;
    }
  }
  return best;
}

size_t choose_victim(const std::vector<TerminationCandidate>& candidates,
                     const std::map<std::string, int>& counts) {
  size_t best = 0;
  for (size_t i = 1; i < candidates.size(); ++i) {
    const int n = count_of(counts, candidates[i].zone), best_n = count_of(counts, candidates[best].zone);
    if (n > best_n || (n == best_n && candidates[i].launched_at < candidates[best].launched_at)) best = i;
  }
  return best;
}

bool imbalanced(const std::vector<std::string>& zones, const std::map<std::string, int>& counts,
                const std::set<std::string>& unavailable) {
  int lo = INT_MAX, hi = INT_MIN;
  for (const std::string& zone : zones) {
    if (unavailable.count(zone)) continue;
    lo = std::min(lo, count_of(counts, zone));
    hi = std::max(hi, count_of(counts, zone));
  }
  return lo != INT_MAX && hi - lo > 1;
}

}  // namespace cumulo::scaling::internal
