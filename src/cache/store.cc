#include "cache/store.h"

#include <brotli/encode.h>
#include <zlib.h>

#include <algorithm>

#include "cache/internal/disk_tier.h"
#include "core/text.h"

namespace cumulo::cache {

EntryTimes Object::current_times() const {
  EntryTimes t = times;
  if (int64_t r = refreshed_response_time.load(std::memory_order_relaxed)) {
    // A 304 revalidated it (RFC 9111 section 4.3.4): its age starts again from that response.
    int64_t lifetime = t.freshness_lifetime;
    t.request_time = r;
    t.response_time = r;
    t.date_value = refreshed_date.load(std::memory_order_relaxed);
    t.age_value = 0;
    t.freshness_lifetime = lifetime;
  }
  return t;
}

Store::Store(uint64_t max_bytes) : max_bytes_(max_bytes), objects_(core::LruLimits{.max_bytes = max_bytes}) {}

Store::Store(uint64_t max_bytes, const std::string& disk_path, uint64_t disk_max_bytes)
    : max_bytes_(max_bytes), objects_(core::LruLimits{.max_bytes = max_bytes}) {
  if (!disk_path.empty()) disk_ = std::make_unique<DiskTier>(disk_path, disk_max_bytes);
}

void Store::flush_disk() {
  if (disk_) disk_->flush();
}

Store::~Store() = default;

std::shared_ptr<const Object> Store::lookup(std::string_view key, const http::RequestHead& req) {
  {
    std::lock_guard lock(mu_);
    const std::shared_ptr<Object>* found =
        objects_.find_if(std::string(key), [&](const std::shared_ptr<Object>& o) {
          if (o->vary.empty()) return true;
          auto k = vary_key(o->vary, req);
          return k && *k == o->vary_key;
        });
    if (found) return *found;
  }
  if (!disk_) return nullptr;
  if (auto queued = disk_->pending(key, req)) return queued;
  auto object = disk_->read(key, req);
  if (object) insert_memory(object);
  return object;
}

void Store::insert(std::shared_ptr<Object> object) {
  if (disk_) disk_->write(object);
  insert_memory(std::move(object));
}

void Store::insert_memory(std::shared_ptr<Object> object) {
  if (object->charge() > max_bytes_ / 4) return;
  std::lock_guard lock(mu_);
  objects_.erase_first(object->key,
                       [&](const std::shared_ptr<Object>& o) { return o->vary_key == object->vary_key; });
  const uint64_t charge = object->charge();
  std::string key = object->key;
  objects_.insert(std::move(key), std::move(object), charge);
  evictions_ += objects_.evict();
}

size_t Store::purge(std::string_view key, bool prefix) {
  std::lock_guard lock(mu_);
  const size_t n = objects_.erase_if([&](const std::string& k, const std::shared_ptr<Object>&) {
    std::string_view head = std::string_view(k).substr(0, key.size());
    return head == key && (prefix || k.size() == key.size() || k[key.size()] == kSliceSeparator);
  });
  return disk_ ? std::max(n, disk_->purge(key, prefix)) : n;
}

size_t Store::purge_tag(std::string_view tag) {
  std::lock_guard lock(mu_);
  const size_t n = objects_.erase_if([&](const std::string&, const std::shared_ptr<Object>& o) {
    return std::find(o->tags.begin(), o->tags.end(), tag) != o->tags.end();
  });
  return disk_ ? std::max(n, disk_->purge_tag(tag)) : n;
}

bool compressible_type(std::string_view ct) {
  auto semi = ct.find(';');
  if (semi != std::string_view::npos) ct = ct.substr(0, semi);
  while (!ct.empty() && ct.back() == ' ') ct.remove_suffix(1);
  const std::string t = core::to_lower(ct);
  return t.rfind("text/", 0) == 0 || t == "application/json" || t == "application/javascript" ||
         t == "application/xml" || t == "image/svg+xml" || t == "application/wasm" ||
         (t.size() > 5 && (t.ends_with("+json") || t.ends_with("+xml")));
}

bool gzip_compress(std::string_view in, std::string& out) {
  z_stream z{};
  // windowBits 15 + 16: a gzip wrapper (RFC 1952), which is what Content-Encoding: gzip means.
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return false;
  out.resize(deflateBound(&z, in.size()));
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END || out.size() >= in.size()) {
    out.clear();
    return false;
  }
  return true;
}

bool brotli_compress(std::string_view in, std::string& out) {
  // Quality 5 with a 4 MiB window: close to quality 11's ratio on text at a small part of its time, which
  // matters because variants are made on a worker when an object is stored (nginx's brotli and Cloudflare
  // pick similar levels for on-the-fly compression).
  constexpr int kQuality = 5, kWindowBits = 22;
  out.resize(BrotliEncoderMaxCompressedSize(in.size()));
  size_t out_size = out.size();
  if (out_size == 0 ||
      !BrotliEncoderCompress(kQuality, kWindowBits, BROTLI_MODE_TEXT, in.size(),
                             reinterpret_cast<const uint8_t*>(in.data()), &out_size,
                             reinterpret_cast<uint8_t*>(out.data())) ||
      out_size >= in.size()) {
    out.clear();
    return false;
  }
  out.resize(out_size);
  return true;
}

StoreStats Store::stats() const {
  std::lock_guard lock(mu_);
  StoreStats s{objects_.size(), objects_.bytes(), evictions_};
  if (disk_) {
    s.disk_objects = disk_->objects();
    s.disk_bytes = disk_->bytes();
  }
  return s;
}

bool Store::begin_fill(const std::string& key) {
  std::lock_guard lock(mu_);
  return fills_.try_emplace(key).second;
}

void Store::wait_fill(const std::string& key, core::EventLoop& loop, std::function<void()> wake) {
  {
    std::lock_guard lock(mu_);
    auto it = fills_.find(key);
    if (it != fills_.end()) {
      it->second.push_back({&loop, std::move(wake)});
      return;
    }
  }
  loop.post(std::move(wake));  // the fill ended meanwhile
}

void Store::end_fill(const std::string& key) {
  std::vector<Waiter> waiters;
  {
    std::lock_guard lock(mu_);
    auto it = fills_.find(key);
    if (it == fills_.end()) return;
    waiters.swap(it->second);
    fills_.erase(it);
  }
  for (auto& w : waiters) w.loop->post(std::move(w.wake));
}

}  // namespace cumulo::cache
