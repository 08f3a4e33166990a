// The cache's optional disk tier: every object stored in memory is also written to a file of its own by a
// writer thread, indexed in memory (key, Vary key, size, LRU) and found again on a memory miss, after an
// eviction or a restart, by a reader thread: no file is read or written on the caller's thread (a worker's
// event loop). Thread-safe: the index and both queues are under mu_, held for map and queue work only.
// Used by cache::Store only.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cache/store.h"
#include "core/lru_map.h"

namespace cumulo::cache {

// One object as a file: a magic, then length-prefixed fields with key, Vary and Vary key first, so that the
// index is rebuilt at start from each file's first bytes. nullopt-like nullptr for anything malformed: the
// files are the cache's own, but a torn or foreign file must not crash the gateway.
std::string serialize_object(const Object& o);
std::shared_ptr<Object> deserialize_object(std::string_view bytes);

class DiskTier {
 public:
  // Creates `dir` when missing and indexes the object files already in it (throws std::runtime_error when the
  // directory cannot be created or read).
  DiskTier(std::string dir, uint64_t max_bytes);
  ~DiskTier();  // writes what is queued, then stops the writer

  void write(std::shared_ptr<const Object> object);  // queued; replaces the file of the same key and Vary key
  // The id of the file holding the object for `key` whose Vary matches `req` (made the most recently used),
  // or 0.
  uint64_t find(std::string_view key, const http::RequestHead& req);
  // Queues a read of file `id` (found for `key`) for the reader thread, which calls done(object) on its own
  // thread; nullptr when the file was purged or replaced meanwhile (no longer indexed) or could not be read
  // (then it is dropped from the index, so that no later lookup tries it again). Reads still queued when the
  // tier is destroyed are dropped without their done.
  void read_async(uint64_t id, std::string key, std::function<void(std::shared_ptr<Object>)> done);
  // The object for `key` matching `req` that is queued or being written, or nullptr: found before its file
  // is.
  std::shared_ptr<const Object> pending(std::string_view key, const http::RequestHead& req) const;
  size_t purge(std::string_view key, bool prefix);
  size_t purge_tag(std::string_view tag);
  void flush();  // waits until every queued write and read is done
  uint64_t objects() const;
  uint64_t bytes() const;
  uint64_t reads() const;  // files read by the reader thread

 private:
  // One file, indexed by its object's primary key; charged its size.
  struct Entry {
    std::string vary, vary_key;
    std::vector<std::string> tags;
    uint64_t id = 0;
  };
  using Index = core::LruMap<std::string, Entry>;
  std::string path_of(uint64_t id) const;
  void add_locked(std::string key, Entry e, uint64_t size);
  void unlink_file(const Index::Entry& e) const;
  void run();
  void run_reads();
  struct Read {
    uint64_t id;
    std::string key;
    std::function<void(std::shared_ptr<Object>)> done;
  };

  const std::string dir_;
  const uint64_t max_bytes_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Index entries_;  // never evicted below one entry, however large
  uint64_t next_id_ = 1;
  uint64_t purges_ =
      0;  // a write that was under way during a purge is dropped (it may be of a purged object)
  std::deque<std::shared_ptr<const Object>> queue_;
  std::shared_ptr<const Object> writing_;  // taken off the queue, its file not yet indexed
  std::deque<Read> reads_;
  size_t reading_ = 0;  // reads taken off reads_ whose done has not returned yet
  uint64_t reads_done_ = 0;
  std::condition_variable read_cv_;
  bool stop_ = false;
  std::thread writer_;
  std::thread reader_;  // one: reads are of whole files, mostly from the page cache, and a disk has one queue
};

}  // namespace cumulo::cache
