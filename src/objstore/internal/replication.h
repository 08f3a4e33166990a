// Replication across zones (docs/objstore.md#replication-across-zones).
//
// Every node keeps a change feed in its index (storage.h: one row per bucket and key, ordered by a sequence
// number). For each peer a sender thread asks the peer how far it has applied this node's feed, then pushes
// the rows above that, in order, one request each over a kept-alive connection to the peer's S3 listener
// (SigV4-signed as replication.user); an object's plaintext streams from its sealed files and the peer seals
// it under its own master key. The peer applies a row at most once (its cursor for this node advances in the
// same transaction) and only when it is newer than what it holds (version: milliseconds, then origin zone).
// A peer that was down is simply further behind: the rows wait in the feed.
//
// With ack: all, a write's reply waits (on the loop, no thread blocked) until every peer in sync has
// confirmed the feed up to the write's row; on_peer_down decides what a peer that is down or too slow costs.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/event_loop.h"
#include "http/server.h"
#include "objstore/internal/s3_config.h"
#include "objstore/internal/storage.h"

namespace cumulo::objstore {

class Replicator {
 public:
  // `loop` is the store's main loop, where waits resolve and the status is read; the endpoint runs on any
  // worker.
  Replicator(const S3Config& config, Storage& storage, core::EventLoop& loop);
  ~Replicator();  // stops the senders
  Replicator(const Replicator&) = delete;
  Replicator& operator=(const Replicator&) = delete;

  void start();
  void stop();

  // Any worker loop; `done` runs on the caller's loop. Calls done(true) once the feed up to `seq` is
  // confirmed by the peers that must confirm it (ack: all), at once with ack: one; done(false) when a peer
  // did not confirm within ack_timeout and on_peer_down is fail.
  void when_replicated(uint64_t seq, std::function<void(bool ok)> done);
  // on_peer_down: fail and a peer known down: writes are refused before anything is stored. Any thread.
  bool refusing_writes() const;
  // {"zone":..., "last_seq":N, "peers":[{"zone","url","state","acked_seq","behind","lag_ms","last_error"}]}
  std::string status_json();

  // The endpoint under /_cumulo/replication/ (status, cursor, apply) on the S3 listener.
  static bool is_endpoint(const http::Request& head);
  std::unique_ptr<http::BodySink> begin(const http::Request& head, int64_t now_s);
  // False when the request's sink is not one of the endpoint's.
  bool handle(http::Request& request, http::Responder& respond);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cumulo::objstore
