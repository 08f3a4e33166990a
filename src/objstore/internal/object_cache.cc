#include "objstore/internal/object_cache.h"

#include <utility>

namespace cumulo::objstore {

std::string ObjectCache::map_key(std::string_view bucket, std::string_view key) {
  // Bucket names never hold a NUL, so the pair maps to one string without ambiguity.
  std::string k;
  k.reserve(bucket.size() + 1 + key.size());
  k.append(bucket).push_back('\0');
  k.append(key);
  return k;
}

bool ObjectCache::DataEntry::same_version(const ObjectInfo& info) const {
  if (size != info.size || etag != info.etag || files.size() != info.segments.size()) return false;
  for (size_t i = 0; i < files.size(); ++i)
    if (files[i] != info.segments[i].file) return false;
  return true;
}

uint64_t ObjectCache::generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return generation_;
}

std::shared_ptr<const ObjectInfo> ObjectCache::find_object(std::string_view bucket, std::string_view key) {
  if (options_.lookup_max_entries == 0) return nullptr;
  std::string k = map_key(bucket, key);
  std::lock_guard<std::mutex> lock(mu_);
  auto* found = lookup_.find(k);
  if (!found) {
    ++stats_.lookup_misses;
    return nullptr;
  }
  ++stats_.lookup_hits;
  return *found;
}

void ObjectCache::fill_object(std::shared_ptr<const ObjectInfo> info, uint64_t generation) {
  if (options_.lookup_max_entries == 0 || !info) return;
  std::string k = map_key(info->bucket, info->key);
  std::lock_guard<std::mutex> lock(mu_);
  if (generation != generation_) return;  // a commit since the index read: it may be older than the commit
  if (auto* found = lookup_.find(k)) {
    *found = std::move(info);
    return;
  }
  lookup_.insert(std::move(k), std::move(info));
  lookup_.evict();
}

std::shared_ptr<const BucketInfo> ObjectCache::find_bucket(std::string_view name) {
  if (options_.lookup_max_entries == 0) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = buckets_.find(std::string(name));
  return it == buckets_.end() ? nullptr : it->second;
}

void ObjectCache::fill_bucket(std::shared_ptr<const BucketInfo> info, uint64_t generation) {
  if (options_.lookup_max_entries == 0 || !info) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (generation != generation_) return;
  // Buckets are few (a user's handful); the bound only guards against a flood of names.
  if (buckets_.size() >= 4096) buckets_.clear();
  buckets_[info->name] = std::move(info);
}

std::shared_ptr<const std::string> ObjectCache::find_data(const ObjectInfo& info) {
  if (!cacheable(info.size)) return nullptr;
  std::string k = map_key(info.bucket, info.key);
  std::lock_guard<std::mutex> lock(mu_);
  auto* found = data_.find(k);
  if (!found || !found->same_version(info)) {
    ++stats_.read_misses;
    return nullptr;
  }
  ++stats_.read_hits;
  return found->data;
}

void ObjectCache::fill_data(const ObjectInfo& info, std::shared_ptr<const std::string> data,
                            uint64_t generation) {
  if (!cacheable(info.size) || !data || data->size() != info.size) return;
  std::string k = map_key(info.bucket, info.key);
  DataEntry entry{info.etag, info.size, {}, std::move(data)};
  for (const auto& s : info.segments) entry.files.push_back(s.file);
  std::lock_guard<std::mutex> lock(mu_);
  if (generation != generation_) return;
  data_.erase(k);
  const uint64_t bytes = entry.data->size();
  data_.insert(std::move(k), std::move(entry), bytes);
  data_.evict();
}

void ObjectCache::invalidate_locked(const std::string& k) {
  ++generation_;
  lookup_.erase(k);
  data_.erase(k);
}

void ObjectCache::invalidate_object(std::string_view bucket, std::string_view key) {
  std::string k = map_key(bucket, key);
  std::lock_guard<std::mutex> lock(mu_);
  invalidate_locked(k);
}

void ObjectCache::invalidate_all() {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  lookup_.clear();
  data_.clear();
  buckets_.clear();
}

ObjectCacheStats ObjectCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  ObjectCacheStats s = stats_;
  s.lookup_entries = lookup_.size();
  s.read_entries = data_.size();
  s.read_bytes = data_.bytes();
  return s;
}

}  // namespace cumulo::objstore
