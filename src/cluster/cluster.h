// The etcd client: key-value reads and writes, transactions, leases, watches, and the election and fencing
// helpers built on them (docs/internals/cluster.md; the "Fencing" rule of docs: every write of a role holder
// is conditional on its lease).
//
// Why etcd's v3 JSON gateway (HTTP/1.1 + JSON at /v3/...) over our own http::Client, not gRPC:
// - Debian packages no C++ etcd client library, and grpc++ would need generated code from etcd's protocol
//   files (golang-etcd-server-dev) plus protobuf and grpc++ as build dependencies: a second HTTP stack
//   (HTTP/2) beside ours, for a control plane that sends a few requests a second.
// - The gateway is part of every etcd 3.4 server (no extra process) and covers all we use: /v3/kv/range, put,
//   deleterange, txn, compaction; /v3/lease/grant, keepalive (one request, one answer), revoke, timetolive;
//   /v3/watch as one long chunked response of JSON objects.
// - Its cost: keys and values travel base64 (done here, callers see bytes), 64-bit numbers travel as JSON
//   strings (etcd writes them so; we send them so, lease IDs are over 2^53), and one watch is one HTTP
//   connection (gRPC would multiplex watches on one stream). A watch cannot be cancelled by a message: it
//   ends when its connection closes.
//
// Everything runs on one event loop: callbacks run on its thread, never inside the call that started them,
// and never after the object that would run them (Client, Watch, LeaseKeeper, Campaign) is destroyed.
// Watches, keepers and campaigns are destroyed before the Client they use.
//
// Errors are core::Error, with kind one of:
//   connect, reset, timeout, bad_response   the transport to etcd (http::Client's kinds); the message names
//   the
//                                           endpoint
//   unavailable        etcd answered but cannot serve now (no leader, stopping: gRPC UNAVAILABLE)
//   etcd_timeout       etcd took the request but did not finish it in time (DEADLINE_EXCEEDED): it may still
//                      take effect
//   compacted          a read or watch asked for a revision that compaction removed (OUT_OF_RANGE)
//   lease_not_found    the lease expired or was revoked (NOT_FOUND)
//   invalid_argument   etcd refused the request (INVALID_ARGUMENT, FAILED_PRECONDITION: a key under a lease
//                      that is gone, a range_end before the key, ...)
//   etcd_error         any other error etcd answered with; the message has its words and code
//   closed             the client was destroyed before the answer (internal)
//
// Retries and endpoints: a request goes to the endpoint that answered last; on a failure of the transport it
// goes to the next endpoint, each endpoint tried at most once per request. Which failures are retried:
//   - connect (the connection could not be made, nothing was sent): every request, put and txn included.
//   - reset, timeout, bad_response, unavailable: only requests that are safe to repeat (range, keep_alive,
//     revoke, time_to_live, compaction), because a put, delete or txn may have reached etcd and taken effect;
//     the caller of those gets the error and decides (a guarded txn is safe to re-send after reading).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/event_loop.h"
#include "core/result.h"

namespace cumulo::cluster {

struct Options {
  // etcd client URLs' host:port, numeric addresses or localhost: "127.0.0.1:2379". At least one.
  std::vector<std::string> endpoints;
  // Each HTTP exchange with one endpoint, connect included (a watch: up to its first answer).
  std::chrono::milliseconds request_timeout{5000};
};

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

template <typename T>
using Callback = std::function<void(core::Result<T, core::Error>)>;

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

// A watch that is running; destroying it cancels it (its connection is closed, no callback runs after).
class Watch {
 public:
  virtual ~Watch() = default;
  // The revision the watch would resume from: one past the last event delivered (or past the revision etcd
  // reported when the watch started).
  virtual int64_t next_revision() const = 0;
  // Connections made so far, the first one included (for tests and logs).
  virtual int connections() const = 0;
};

class Client {
 public:
  Client(core::EventLoop& loop, Options options);  // throws std::invalid_argument for a bad endpoint
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  core::EventLoop& loop() const;

  void get(std::string key, Callback<GetResult> done, int64_t revision = 0);
  void range(std::string prefix, RangeOptions options, Callback<RangeResult> done);
  void put(std::string key, std::string value, Callback<PutResult> done, int64_t lease = 0);
  void del(std::string key, Callback<DeleteResult> done);
  void del_prefix(std::string prefix, Callback<DeleteResult> done);
  void txn(TxnRequest request, Callback<TxnResult> done);
  // Drops the history before `revision` (reads and watches of older revisions fail as compacted).
  void compact(int64_t revision, Callback<ResponseHeader> done);

  void grant(int64_t ttl_s, Callback<Lease> done);
  // One renewal. ttl_s <= 0 in the answer: the lease is gone (etcd answers so rather than with an error).
  void keep_alive(int64_t lease_id, Callback<Lease> done);
  void revoke(int64_t lease_id, Callback<ResponseHeader> done);  // keys under it are deleted
  void time_to_live(int64_t lease_id, bool with_keys, Callback<LeaseTimeToLive> done);

  // Watches a key or prefix. on_events runs for each answer that has events; the watch survives connection
  // failures by itself (it reconnects to the next endpoint from next_revision(), with a growing pause of
  // 50 ms to 2 s, so no event is lost or repeated). on_error runs once, when the watch has ended and cannot
  // go on: compacted (see WatchError), or etcd refused or cancelled it; the Watch may be destroyed inside
  // either callback.
  std::unique_ptr<Watch> watch(WatchRequest request, std::function<void(WatchResponse)> on_events,
                               std::function<void(WatchError)> on_error);

  struct Impl;  // defined in client.cc; public only so that the watch code there can name it

 private:
  std::unique_ptr<Impl> impl_;
};

// Keeps one lease alive: a renewal every ttl/3; a renewal that fails is tried again at the next tick. on_lost
// runs once, and renewals stop, when etcd says the lease is gone (ttl <= 0, or not found) or when no renewal
// succeeded for a whole ttl (the lease has expired at etcd as far as this process can tell: from the time the
// last successful renewal was sent). A holder of a role stops acting for it then.
class LeaseKeeper {
 public:
  LeaseKeeper(core::EventLoop& loop, Client& client, Lease lease, std::function<void(core::Error)> on_lost);
  ~LeaseKeeper();  // stops renewing; does not revoke
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  int64_t id() const;
  bool lost() const;
  // When the lease expires at the latest unless renewed: the send time of the last successful renewal (or of
  // the keeper's start) plus the ttl then granted.
  core::TimePoint expires_at() const;
  int renewals() const;  // successful ones

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Election and fencing (docs/internals/cluster.md "Election"). A role is one key; its holder is whoever
// created it, under its lease; the key's create_revision is the holder's term, larger for every new holder. A
// holder makes each write conditional on the key still having its lease and term (guarded_txn), so a deposed
// holder's writes fail even when it does not know yet that it was deposed.
struct Leadership {
  std::string key;
  std::string value;
  int64_t lease = 0;
  int64_t term = 0;  // the election key's create_revision
};

struct CampaignResult {
  bool won = false;
  Leadership leader;  // the holder now: this campaigner when won, the incumbent otherwise
  ResponseHeader header;
};

// One attempt: creates `key` with `value` under `lease` if no one holds it (a transaction
// "create_revision(key) == 0 → put"), else reads who does.
void campaign(Client& client, std::string key, std::string value, int64_t lease,
              Callback<CampaignResult> done);
// Who holds the role now; nullopt when no one does.
void leader(Client& client, std::string key, Callback<std::optional<Leadership>> done);
// Gives the role up if `me` still holds it (deletes the key in a guarded transaction); true when it did.
void resign(Client& client, const Leadership& me, Callback<bool> done);

struct GuardedResult {
  bool succeeded = false;     // the guard and the caller's own compares held, the success branch ran
  bool still_leader = false;  // the guard held (false: `me` is deposed and must stop acting)
  TxnResult txn;
};
// `request` with the guard added: the election key exists with `me`'s lease and term. On failure the failure
// branch runs with a read of the election key appended, which says whether the guard held.
void guarded_txn(Client& client, const Leadership& me, TxnRequest request, Callback<GuardedResult> done);
void guarded_put(Client& client, const Leadership& me, std::string key, std::string value,
                 Callback<GuardedResult> done, int64_t lease = 0);

// Campaigns until it wins: after a lost attempt it watches the election key and tries again when the key is
// deleted (resigned, revoked or expired lease). Failures of the transport are tried again after a pause.
// on_elected runs once: with the leadership won, or with an error trying again cannot fix (the lease is gone,
// etcd refused the request). The Campaign may be destroyed at any time, which stops it (it does not resign).
class Campaign {
 public:
  Campaign(Client& client, std::string key, std::string value, int64_t lease,
           std::function<void(core::Result<Leadership, core::Error>)> on_elected);
  ~Campaign();
  Campaign(const Campaign&) = delete;
  Campaign& operator=(const Campaign&) = delete;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cumulo::cluster
