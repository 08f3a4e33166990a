// The gateway's HTTP cache storage: objects in memory under a size cap with LRU eviction, shared by every
// worker, with request coalescing (one origin fetch per key; other requests wait for it). Freshness and the
// other RFC 9111 rules live in policy.h; this file only keeps and finds objects.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cache/policy.h"
#include "core/event_loop.h"
#include "core/lru_map.h"

namespace cumulo::cache {

// A stored response. Immutable once published, except its times (refreshed by a 304), which are atomics.
struct Object {
  std::string key;       // primary key: host + request target
  std::string vary;      // the response's Vary value ("" when none)
  std::string vary_key;  // the request's values of the fields Vary names
  int status = 200;
  std::string reason;
  std::string headers;  // "Name: value\r\n" lines to send with it (no hop-by-hop, Age, Via, X-Cache)
  std::string body;
  std::string gzip_body;          // the body gzip-compressed, when worth it and the origin did not compress
  std::string br_body;            // the body brotli-compressed (RFC 7932), likewise
  bool compressible = false;      // a 200 of a compressible type that the origin sent uncompressed
  std::vector<std::string> tags;  // from Surrogate-Key (space separated) and Cache-Tag (comma separated)
  // A slice of a larger representation (routes with cache.slice): `body` holds its bytes from slice_first on,
  // of slice_total in all. For whole objects slice_first is 0 and slice_total 0.
  uint64_t slice_first = 0;
  uint64_t slice_total = 0;
  std::string etag;
  std::string last_modified;
  CacheControl cache_control;
  EntryTimes times;
  mutable std::atomic<int64_t> refreshed_response_time{0};  // a 304 moved the response time here (0: not yet)
  mutable std::atomic<int64_t> refreshed_date{0};

  EntryTimes current_times() const;
  size_t charge() const {
    return key.size() + vary_key.size() + headers.size() + body.size() + gzip_body.size() + br_body.size() +
           256;
  }
};

// Compressible content (text, JSON, JavaScript, XML, SVG) of at least 1 KiB without a Content-Encoding gets a
// gzip and a brotli variant; each returns false (and leaves `out` empty) when compression does not pay (the
// result is not smaller).
bool gzip_compress(std::string_view in, std::string& out);
bool brotli_compress(std::string_view in, std::string& out);
bool compressible_type(std::string_view content_type);

struct StoreStats {
  uint64_t objects = 0;
  uint64_t bytes = 0;
  uint64_t evictions = 0;
  uint64_t disk_objects = 0;
  uint64_t disk_bytes = 0;
  uint64_t disk_reads = 0;  // files read back on a memory miss (one per file however many requests waited)
};

class DiskTier;

// Slices of the object under `key` are stored under key + kSliceSeparator + the slice's index: a byte no
// request target can hold, so no URL's key collides with a slice's.
inline constexpr char kSliceSeparator = '\x1f';

// Thread safety: every member may be called from any thread. The store is split into kShards shards by a
// hash of the primary key, each with its own mutex, LRU list, fill table and disk reads under way, so that
// workers looking up different keys do not wait for each other; a shard's mutex is held for map work only
// (Vary matching, copies of keys and the freeing of evicted objects happen outside it), and no two shard
// mutexes are ever held at once. The byte cap is global (one atomic sum): the shard that inserts evicts
// from its own LRU first and then from the others in turn, so that the cap and the quarter-of-the-cap rule
// mean what they say whatever the shard count; the order of eviction is least recently used per shard, not
// across the whole store.
class Store {
 public:
  static constexpr size_t kShards = 16;

  explicit Store(uint64_t max_bytes);
  // With a disk tier in `disk_path` (created when missing; objects already there are found again), of at most
  // `disk_max_bytes`: every object inserted is also written there by a writer thread, and a memory miss is
  // read back by a reader thread (see the lookup with a loop). Throws std::runtime_error when the directory
  // is unusable.
  Store(uint64_t max_bytes, const std::string& disk_path, uint64_t disk_max_bytes);
  ~Store();  // disk reads still queued are dropped, their callbacks not run

  // The object for this key whose Vary matches the request, from memory or from the disk tier's queue of
  // writes, or nullptr. Never reads a file.
  std::shared_ptr<const Object> lookup(std::string_view key, const http::RequestHead& req);

  // What the lookup with a loop found: the object, or that it is on disk and being read (`loading`), or
  // neither (a miss).
  struct Lookup {
    std::shared_ptr<const Object> object;
    bool loading = false;
  };
  // Called on the loop that asked, with the object read from disk (kept in memory again when it fits), or
  // with nullptr when it was purged, replaced or unreadable meanwhile (a miss, then: the caller goes on as
  // after one and need not look again). It may run after the caller is gone: capture a core::WeakOwner.
  using Loaded = std::function<void(std::shared_ptr<const Object>)>;
  // As lookup(key, req), and when memory misses and the disk tier has a matching file, a read of it on the
  // tier's reader thread (one read per file, however many requests wait for it) whose result goes to
  // on_loaded on `loop`; the caller's thread never waits for the disk.
  template <typename OnLoaded>
  Lookup lookup(std::string_view key, const http::RequestHead& req, core::EventLoop& loop,
                OnLoaded&& on_loaded) {
    Lookup found;
    found.object = lookup(key, req);
    // The callback is made only on this path: a hit allocates nothing for it.
    if (!found.object && disk_)
      found.loading = load(key, req, loop, Loaded(std::forward<OnLoaded>(on_loaded)));
    return found;
  }

  // Adds or replaces (same key and vary_key); evicts least recently used objects beyond the cap. An object
  // larger than a quarter of the cap is not kept.
  void insert(std::shared_ptr<Object> object);
  // Removes objects whose key equals `key` (or starts with it, when prefix), slices of it included, from
  // memory and disk; returns how many (those of the tier that held more).
  size_t purge(std::string_view key, bool prefix);
  // Removes objects carrying this tag (surrogate key); returns how many.
  size_t purge_tag(std::string_view tag);
  StoreStats stats() const;  // summed over the shards, each read under its own lock
  uint64_t max_bytes() const { return max_bytes_; }
  // Waits for queued disk writes and for the disk reads queued or under way (tests, and shutdown: once the
  // workers' loops have stopped, no read posts to them after this returns).
  void flush_disk();

  // Coalescing. The first request for a missing key becomes its filler (returns true); others register a
  // waiter, run on their own loop once the filler finishes (or gives up), and look the key up again.
  bool begin_fill(const std::string& key);
  void wait_fill(const std::string& key, core::EventLoop& loop, std::function<void()> wake);
  void end_fill(const std::string& key);  // wakes every waiter of the key

 private:
  struct Waiter {
    core::EventLoop* loop;
    std::function<void()> wake;
  };
  struct LoadWaiter {
    core::EventLoop* loop;
    Loaded loaded;
  };
  // A file being read for the requests in `waiters`; `purges` is the store's purge count when it started.
  struct Load {
    uint64_t purges = 0;
    std::vector<LoadWaiter> waiters;
  };
  struct alignas(64) Shard {  // a cache line of its own: workers on different shards share none
    mutable std::mutex mu;
    // By primary key, one entry per Vary key; charged Object::charge() bytes. No limits of its own: the
    // store's cap is global (bytes_).
    core::LruMap<std::string, std::shared_ptr<Object>> objects;
    std::unordered_map<std::string, std::vector<Waiter>> fills;
    std::unordered_map<uint64_t, Load> loads;  // by disk file id
    uint64_t evictions = 0;
  };
  Shard& shard_of(std::string_view key);
  bool load(std::string_view key, const http::RequestHead& req, core::EventLoop& loop, Loaded on_loaded);
  void loaded(Shard& shard, uint64_t id, std::shared_ptr<Object> object);  // on the reader thread
  // replace: false for an object read from disk, which must not displace one stored since (it is newer);
  // then `purges` is the purge count when the read started, and a purge since keeps it out.
  void insert_memory(std::shared_ptr<Object> object, bool replace, uint64_t purges);
  // While over the cap, evicts from the other shards in turn (one shard's mutex at a time).
  void evict_elsewhere(const Shard& inserted, std::vector<std::shared_ptr<Object>>& dropped);

  const uint64_t max_bytes_;
  std::atomic<uint64_t> bytes_{0};   // the sum of the charges in every shard
  std::atomic<uint64_t> purges_{0};  // purges begun, so that a disk read racing one is not kept
  std::array<Shard, kShards> shards_;
  std::unique_ptr<DiskTier> disk_;  // last: destroyed first, its threads stopped while the shards exist
};

}  // namespace cumulo::cache
