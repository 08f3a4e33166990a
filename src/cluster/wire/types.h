// The etcd client's value types: what goes into and comes out of etcd, apart from any I/O so that the wire
// code (cluster/wire/etcd_json.h) and its fuzz target use them without the event loop. cluster/cluster.h is
// the interface that uses them.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace cumulo::cluster {

// The header etcd puts on every answer: the store's revision after the request.
struct ResponseHeader {
  uint64_t cluster_id = 0;
  uint64_t member_id = 0;
  int64_t revision = 0;
  int64_t raft_term = 0;
};

struct KeyValue {
  std::string key;  // bytes
  std::string value;
  int64_t create_revision = 0;  // revision of the put that created the key: a term for an election key
  int64_t mod_revision = 0;
  int64_t version = 0;  // puts since creation, 1 for a new key
  int64_t lease = 0;    // 0: none

  bool operator==(const KeyValue&) const = default;
};

struct GetResult {
  ResponseHeader header;
  std::optional<KeyValue> kv;
};

struct RangeOptions {
  int64_t revision = 0;  // 0: the latest; older ones read the store as it was then (until compacted)
  int64_t limit = 0;     // 0: no limit
  bool keys_only = false;
};

struct RangeResult {
  ResponseHeader header;
  std::vector<KeyValue> kvs;  // in key order
  int64_t count = 0;          // keys in the range, including those past `limit`
  bool more = false;
};

struct PutResult {
  ResponseHeader header;  // header.revision is the put's revision
};

struct DeleteResult {
  ResponseHeader header;
  int64_t deleted = 0;
};

// One comparison of a transaction, against the key's current state (a missing key has version, create and mod
// revision 0, lease 0 and no value: a value comparison with it is false).
struct Compare {
  enum class Target : uint8_t { kValue, kVersion, kCreateRevision, kModRevision, kLease };
  enum class Op : uint8_t { kEqual, kNotEqual, kGreater, kLess };

  Target target = Target::kVersion;
  Op op = Op::kEqual;
  std::string key;
  std::string value;   // kValue
  int64_t number = 0;  // the other targets

  static Compare value_is(std::string key, Op op, std::string value);
  static Compare version_is(std::string key, Op op, int64_t version);
  static Compare create_revision_is(std::string key, Op op, int64_t revision);
  static Compare mod_revision_is(std::string key, Op op, int64_t revision);
  static Compare lease_is(std::string key, Op op, int64_t lease);
  static Compare missing(std::string key) { return create_revision_is(std::move(key), Op::kEqual, 0); }
};

// One operation of a transaction.
struct Operation {
  enum class Kind : uint8_t { kRange, kPut, kDelete };
  Kind kind = Kind::kRange;
  std::string key;
  std::string range_end;  // empty: the key alone
  std::string value;      // kPut
  int64_t lease = 0;      // kPut

  static Operation get(std::string key);
  static Operation range(std::string prefix);
  static Operation put(std::string key, std::string value, int64_t lease = 0);
  static Operation del(std::string key);
  static Operation del_prefix(std::string prefix);
};

struct OperationResult {
  Operation::Kind kind = Operation::Kind::kRange;
  std::vector<KeyValue> kvs;  // kRange
  int64_t count = 0;          // kRange
  int64_t deleted = 0;        // kDelete
};

struct TxnRequest {
  std::vector<Compare> compare;  // all must hold for `success` to run, else `failure` runs
  std::vector<Operation> success;
  std::vector<Operation> failure;
};

struct TxnResult {
  ResponseHeader header;  // header.revision: the store's revision after the transaction
  bool succeeded = false;
  std::vector<OperationResult> responses;  // one per operation of the branch that ran
};

struct Lease {
  int64_t id = 0;
  int64_t ttl_s = 0;  // seconds left; 0 or less: the lease is gone
};

struct LeaseTimeToLive {
  int64_t id = 0;
  int64_t ttl_s = -1;  // -1: expired or revoked
  int64_t granted_ttl_s = 0;
  std::vector<std::string> keys;  // when asked for
};

// The key range that holds every key starting with `prefix` ("\0" when the prefix is empty: every key).
std::string prefix_end(std::string_view prefix);

struct WatchRequest {
  std::string key;
  bool prefix = false;         // every key starting with `key`
  int64_t start_revision = 0;  // 0: from now on
  bool prev_kv = false;        // events carry the key's previous value
  // Ask etcd for empty progress answers now and then (its --experimental-watch-progress-notify-interval,
  // 10 minutes by default); with idle_timeout above that interval, a silent connection is known dead.
  bool progress_notify = false;
  // No byte for this long: the connection is taken for dead and the watch reconnects. 0: never.
  std::chrono::milliseconds idle_timeout{0};
};

struct WatchEvent {
  enum class Type : uint8_t { kPut, kDelete };
  Type type = Type::kPut;
  KeyValue kv;  // a delete: the key and mod_revision (the delete's revision) only
  std::optional<KeyValue> prev_kv;
};

struct WatchResponse {
  ResponseHeader header;
  std::vector<WatchEvent> events;  // in revision order; never empty when passed to on_events
};

struct WatchError {
  core::Error error;
  // kind "compacted": the oldest revision still there. The events between start and this are lost: read the
  // current state (range) and watch again from that read's revision + 1.
  int64_t compact_revision = 0;
};

}  // namespace cumulo::cluster
