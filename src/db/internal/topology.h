// Decisions of the database tier that need no server: GTID sets, which replica may be promoted and what it
// must have applied first, errant transactions, and the replicas that may serve reads. Kept apart from the
// I/O so that unit tests drive them with plain values.
//
// The promise these decisions keep: a commit that was acknowledged to a client is never lost by a failover.
// With semi-synchronous replication (AFTER_SYNC, never falling back), an acknowledged commit reached the
// relay log of at least one replica before the client heard of it. So a failover promotes only a replica
// whose received transactions contain those of every replica that may hold such a commit, and only once that
// replica has applied them (`plan_promotion`).
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cumulo::db {

// A set of MariaDB GTIDs, kept as @@gtid_binlog_state keeps it: per (domain, server id) the highest sequence
// number. With gtid_strict_mode, sequence numbers grow along a domain's history and each server's
// transactions in it are a run of that history, so "holds every transaction of `other`" is: for each (domain,
// server) of `other`, a sequence here at least as high. Two servers whose histories diverged after a failover
// (an old primary's unreplicated tail, an errant write on a replica) then differ in a (domain, server) pair
// that only one of them has, which a per-domain maximum would hide.
//
// Positions that carry one GTID per domain (@@gtid_slave_pos, Gtid_IO_Pos) parse into the same type; see
// `received_set` for how they are widened to everything they imply.
class GtidSet {
 public:
  struct Key {
    uint32_t domain = 0;
    uint32_t server = 0;
    auto operator<=>(const Key&) const = default;
  };

  // "0-1-42,0-2-50,1-3-7" (spaces and newlines around items allowed); "" is the empty set; nullopt on
  // anything else.
  static std::optional<GtidSet> parse(std::string_view text);

  void add(uint32_t domain, uint32_t server, uint64_t seq);  // keeps the higher sequence
  void merge(const GtidSet& other);
  // Every transaction of `other` is here.
  bool contains(const GtidSet& other) const;
  // The GTIDs of this set that `have` lacks (for each such (domain, server), this set's highest sequence).
  GtidSet missing_from(const GtidSet& have) const;
  // The highest sequence of any server in `domain` (0 when the domain is absent).
  uint64_t highest_seq(uint32_t domain) const;

  bool empty() const { return seq_.empty(); }
  const std::map<Key, uint64_t>& entries() const { return seq_; }
  // Every triple, ordered by domain then server: the form @@gtid_binlog_state takes.
  std::string to_string() const;
  // One GTID per domain, the one with the highest sequence: the form of a replication position
  // (MASTER_GTID_WAIT, gtid_slave_pos).
  std::string position() const;

  bool operator==(const GtidSet&) const = default;

 private:
  std::map<Key, uint64_t> seq_;
};

// What a server holds, widened: its binlog state (every transaction it applied, with log_slave_updates), its
// applied position and, for a replica, the position its IO thread received up to. A position "d-s-n" received
// from a primary means the whole of that primary's history in domain d up to n, so every (domain, server)
// entry of `history` (a binlog state of that primary, or of an earlier one of the same line) with a sequence
// up to n in that domain is included too. Without that, a replica that received across a change of server id
// in its relay log would look as if it lacked transactions it has.
GtidSet received_set(const GtidSet& binlog_state, const GtidSet& applied_pos, const GtidSet& io_pos,
                     const GtidSet& history);

// Transactions a replica has that its primary lacks: written on the replica itself, or left from a diverged
// history. Such a replica must be rebuilt, and is never promoted. `primary_state` must be read after
// `replica_set`, so that the primary has had every chance to hold what the replica received.
GtidSet errant_transactions(const GtidSet& replica_set, const GtidSet& primary_state);

// What a failover knows of one replica.
struct ReplicaState {
  std::string name;
  // Its received set is known now (it answers, and its IO thread is stopped or its source is gone).
  bool known = false;
  // May be promoted: not errant, not being rebuilt, not a fenced former primary.
  bool eligible = true;
  GtidSet received;  // when known
  // When not known: everything it can have received from the lost primary lies within this set (it stopped
  // replicating while the primary's binary log stood there). nullopt: nothing is known, so it may hold
  // acknowledged commits that no other replica has. An empty set: it holds nothing (being rebuilt).
  std::optional<GtidSet> bound;
};

struct PromotionPlan {
  std::optional<std::string> candidate;
  GtidSet target;           // what the candidate must have applied before it takes writes
  std::string waiting_for;  // when there is no candidate: why, in words for the log
};

// The replica to promote after the primary was lost, and the target it must reach. `earlier_target` is the
// target of an earlier attempt of the same failover (the relay log of a candidate that failed may be the only
// copy of some commits) and `earlier_candidate` its candidate, which is kept when it still qualifies.
//
// The target is the union of earlier_target and what every known, eligible replica received. A candidate is a
// known, eligible replica that received all of it; every replica that is not known must have a bound that the
// candidate's received set contains. Among candidates: the earlier one, then the first by name. No candidate:
// the plan says what it waits for (a replica to answer, or one that holds everything).
PromotionPlan plan_promotion(const std::vector<ReplicaState>& replicas, const GtidSet& earlier_target,
                             const std::string& earlier_candidate);

// What the monitor last saw of a replica, for the reader endpoint.
struct ReplicaView {
  std::string name;
  bool reachable = false;
  bool io_running = false;
  bool sql_running = false;
  std::optional<int64_t> seconds_behind;  // NULL while the SQL thread is stopped
  bool fenced = false;                    // being rebuilt, repaired or stopped: never a reader
};

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
