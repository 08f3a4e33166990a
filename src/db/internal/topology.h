// Decisions of the database tier that need no server: GTID positions, the choice of a promotion candidate and
// of the replicas that may serve reads. Kept apart from the I/O so that unit tests drive them with plain
// values.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cumulo::db {

// A MariaDB GTID position: "0-1-42,1-2-7": per replication domain, the last sequence number.
struct GtidPosition {
  std::map<uint32_t, uint64_t> seq_by_domain;

  static std::optional<GtidPosition> parse(std::string_view text);  // "" is the empty position
  // True when this position holds every transaction of `other` (in every domain, at least its sequence).
  bool contains(const GtidPosition& other) const;
  uint64_t total() const;  // sum of sequence numbers: a tie-breaker across domains
};

// What the monitor last saw of a replica.
struct ReplicaView {
  std::string name;
  bool reachable = false;
  bool io_running = false;
  bool sql_running = false;
  std::optional<int64_t> seconds_behind;  // NULL while the SQL thread is stopped
  std::string gtid_io_pos;                // received (Gtid_IO_Pos of SHOW SLAVE STATUS)
  std::string gtid_slave_pos;             // applied
  bool fenced = false;                    // being rebuilt or stopped: never a candidate nor a reader
};

// The replica to promote: among the reachable ones, the one that received the most (its received position
// contains every other's; else the greatest total), ties broken by name order. Empty when none is reachable.
std::optional<std::string> choose_promotion_candidate(const std::vector<ReplicaView>& replicas);

// Replicas fit to serve reads: reachable, both replication threads running, lag known and within the limit.
std::vector<std::string> readers_within_lag(const std::vector<ReplicaView>& replicas,
                                            std::chrono::milliseconds lag_limit);

// Round-robin over the readers, falling back to the primary when there is none. Cheap to copy into a loop.
class ReaderRoute {
 public:
  ReaderRoute() = default;
  ReaderRoute(std::vector<std::string> readers, std::string primary)
      : readers_(std::move(readers)), primary_(std::move(primary)) {}
  // The next backend; empty when there is neither a reader nor a primary.
  const std::string& next();
  const std::vector<std::string>& readers() const { return readers_; }
  const std::string& primary() const { return primary_; }

 private:
  std::vector<std::string> readers_;
  std::string primary_;
  size_t next_ = 0;
};

}  // namespace cumulo::db
