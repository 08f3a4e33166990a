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
//   connect, reset, timeout, bad_response   the transport to etcd (http::Client's kinds); the message
//                                           names the endpoint
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

#include "cluster/wire/types.h"
#include "core/event_loop.h"
#include "core/result.h"

namespace cumulo::cluster {

struct Options {
  // etcd client URLs' host:port, numeric addresses or localhost: "127.0.0.1:2379". At least one.
  std::vector<std::string> endpoints;
  // Each HTTP exchange with one endpoint, connect included (a watch: up to its first answer).
  std::chrono::milliseconds request_timeout{5000};
};

template <typename T>
using Callback = std::function<void(core::Result<T, core::Error>)>;

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
