// The storage engine's memory caches on the GET path (docs/objstore.md#caches):
//
//  - the lookup cache: (bucket, key) -> the object's metadata, so that a GET does not open an SQLite read
//    transaction; and bucket name -> bucket, for the authorization of every request;
//  - the read cache: (bucket, key) -> the decrypted bytes of a small object, read and verified (every frame's
//    AES-GCM tag) once when it is filled, so that a GET of a hot small object neither opens a file, unwraps a
//    data key nor decrypts.
//
// Both are invalidated by the storage engine after every commit that changes an object or a bucket (PUT,
// copy, multipart completion, delete, a peer's replicated change), before the files of a replaced object are
// removed and before the write is answered: a GET that starts after a write's reply never sees the old
// version. A fill races with a concurrent commit: each fill carries the generation it read at the start of
// its index read, and is dropped when any invalidation happened since (the index read may be older than the
// commit). A read cache entry also names the object's data file and ETag, and only serves the metadata it
// was filled from, so even a stale entry could not answer for another version.
//
// Thread-safe: the store's workers read, fill and (after their own commits) invalidate, the index thread
// invalidates after its group commits; one mutex, held for map operations only (never across I/O).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/lru_map.h"
#include "objstore/internal/storage.h"

namespace cumulo::objstore {

struct ObjectCacheOptions {
  size_t lookup_max_entries = 65536;      // 0: no lookup cache
  uint64_t read_max_bytes = 64ull << 20;  // 0: no read cache
  uint64_t read_max_object_bytes = 1 << 20;
};

struct ObjectCacheStats {
  uint64_t lookup_hits = 0;
  uint64_t lookup_misses = 0;
  uint64_t read_hits = 0;
  uint64_t read_misses = 0;
  size_t lookup_entries = 0;
  size_t read_entries = 0;
  uint64_t read_bytes = 0;
};

class ObjectCache {
 public:
  explicit ObjectCache(ObjectCacheOptions options)
      : options_(options),
        lookup_(limits(options.lookup_max_entries, UINT64_MAX)),
        data_(limits(SIZE_MAX, options.read_max_bytes)) {}
  ObjectCache(const ObjectCache&) = delete;
  ObjectCache& operator=(const ObjectCache&) = delete;

  // Taken before the index read whose result is offered to a fill.
  uint64_t generation() const;

  std::shared_ptr<const ObjectInfo> find_object(std::string_view bucket, std::string_view key);
  void fill_object(std::shared_ptr<const ObjectInfo> info, uint64_t generation);
  std::shared_ptr<const BucketInfo> find_bucket(std::string_view name);
  void fill_bucket(std::shared_ptr<const BucketInfo> info, uint64_t generation);

  // Whether an object of this size goes to the read cache.
  bool cacheable(uint64_t size) const {
    return options_.read_max_bytes > 0 && size <= options_.read_max_object_bytes &&
           size <= options_.read_max_bytes;
  }
  // The plaintext of exactly this version of the object (same data files, size and ETag), or nullptr.
  std::shared_ptr<const std::string> find_data(const ObjectInfo& info);
  void fill_data(const ObjectInfo& info, std::shared_ptr<const std::string> data, uint64_t generation);

  // After a commit that changed (bucket, key).
  void invalidate_object(std::string_view bucket, std::string_view key);
  // After a commit that changed a bucket (created, deleted, owner): drops everything.
  void invalidate_all();

  ObjectCacheStats stats() const;

 private:
  static std::string map_key(std::string_view bucket, std::string_view key);
  static core::LruLimits limits(size_t max_entries, uint64_t max_bytes) {
    core::LruLimits l;
    l.max_entries = max_entries;
    l.max_bytes = max_bytes;
    return l;
  }
  void invalidate_locked(const std::string& k);

  // Data files are never rewritten in place (every write gets a new file id), so the files, the size and the
  // ETag name one version of an object.
  struct DataEntry {
    std::string etag;
    uint64_t size = 0;
    std::vector<std::string> files;
    std::shared_ptr<const std::string> data;
    bool same_version(const ObjectInfo& info) const;
  };

  const ObjectCacheOptions options_;
  mutable std::mutex mu_;
  uint64_t generation_ = 0;
  core::LruMap<std::string, std::shared_ptr<const ObjectInfo>> lookup_;  // by map_key
  core::LruMap<std::string, DataEntry> data_;                            // by map_key, charged its bytes
  std::unordered_map<std::string, std::shared_ptr<const BucketInfo>> buckets_;
  ObjectCacheStats stats_;
};

}  // namespace cumulo::objstore
