// Where a new instance goes and which instance goes first: zone balance, then age.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "scaling/scaling.h"

namespace cumulo::scaling::internal {

// The zone with the fewest instances among those available (in zone order on ties). When no zone is
// available, every zone is: capacity must go somewhere.
std::string choose_launch_zone(const std::vector<std::string>& zones,
                               const std::map<std::string, int>& counts,
                               const std::set<std::string>& unavailable);

struct TerminationCandidate {
  std::string zone;
  TimePoint launched_at;
};

// Index of the instance to terminate: from the zone with the most instances (counts), then the oldest.
size_t choose_victim(const std::vector<TerminationCandidate>& candidates,
                     const std::map<std::string, int>& counts);

// True when the available zones differ by more than one instance.
bool imbalanced(const std::vector<std::string>& zones, const std::map<std::string, int>& counts,
                const std::set<std::string>& unavailable);

}  // namespace cumulo::scaling::internal
