// Leases: who holds each elastic IP, under which term, until when; and the decision the keeper takes from
// them and the gateways' health. Pure code apart from the state file.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace cumulo::eip::internal {

struct Lease {
  std::string holder;  // empty: nobody holds the address
  uint64_t term = 0;   // raised by every change of holder, never reused
  // "held", or "moving" between the durable record of a new holder and the address being in place there (a
  // keeper that finds "moving" finishes the move).
  std::string state = "held";
  std::string from;           // the previous holder, while moving
  int64_t renewed_at_ms = 0;  // wall clock
  int64_t expires_at_ms = 0;  // wall clock: renewed_at + the lease time
  bool operator==(const Lease&) const = default;
};

using Leases = std::map<std::string, Lease>;  // by elastic IP name

// The state file: JSON, written aside, synced and renamed, so that a crash leaves the old or the new file.
core::Result<Leases, core::Error> load_leases(const std::string& path);  // a missing file: no leases
core::Result<void, core::Error> save_leases(const std::string& path, const Leases& leases);

enum class GatewayHealth { kUnknown, kHealthy, kUnhealthy };

struct Candidate {
  std::string id;
  GatewayHealth health = GatewayHealth::kUnknown;
  std::string why;  // the last failed check, for the reason of a move
};

struct Decision {
  enum class Kind { kNothing, kRenew, kMove } kind = Kind::kNothing;
  std::string to;      // kMove
  std::string reason;  // kMove, and kNothing when something is wrong (no healthy gateway)
};

// One elastic IP: the holder keeps it while healthy (no move back to a preferred gateway that recovers: every
// move costs established connections); an unhealthy holder, or none, gives it to the first healthy candidate
// in order of preference; without one, nothing changes and the reason says so. A holder that is no longer a
// candidate (the stack file changed) loses it the same way. A holder still being checked for the first time
// keeps it.
Decision decide(const Lease& lease, const std::vector<Candidate>& candidates);

}  // namespace cumulo::eip::internal
