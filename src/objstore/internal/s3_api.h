// The S3 REST API on http::Server: routing (path-style and virtual-host-style), authentication and
// authorization, and one handler per operation. Object bodies stream in through a BodySink straight into the
// storage engine (never gathered), and out through a body producer that decrypts frame by frame.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "http/server.h"
#include "objstore/internal/s3_config.h"
#include "objstore/internal/storage.h"

namespace cumulo::core {
class BlockingPool;
}

namespace cumulo::objstore {

class Replicator;

// One per worker loop (its state is the loop's); the Storage, the Replicator and the I/O pool are shared.
//
// What runs where (docs/objstore.md, "Threads"): the loop parses, authenticates, streams request bodies into
// files and answers GETs whose bytes are at hand (the read cache, or data files this loop's open-file cache
// holds); work that waits on the disk or on SQLite's write lock goes to the I/O pool `io` and its answer
// comes back to the loop: listings, every synchronous commit (deletes, buckets, multipart, copies) and the
// first open of a data file this loop has not open. PUT bodies commit on the storage's commit threads.
class S3Api {
 public:
  // `worker`: the index of the loop it serves, the first four hex digits of its request ids. `io`: where
  // blocking work runs; nullptr runs it on the loop (a test of the handlers alone).
  S3Api(const S3Config& config, Storage& storage, unsigned worker = 0, core::BlockingPool* io = nullptr);
  ~S3Api();
  S3Api(const S3Api&) = delete;
  S3Api& operator=(const S3Api&) = delete;

  // For http::ServerOptions::body_sink_for: every request gets a sink that carries its parsed route and
  // authentication to the handler (and takes the body, when there is one).
  std::unique_ptr<http::BodySink> begin(const http::Request& head);
  // For http::Server's handler.
  void handle(http::Request& request, http::Responder respond);

  // Seconds since the epoch; replaced by tests.
  std::function<int64_t()> clock;

  // Replication across zones: its endpoint is served here and writes wait for it (ack: all).
  void set_replicator(Replicator* replicator) { replicator_ = replicator; }

 private:
  Replicator* replicator_ = nullptr;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cumulo::objstore
