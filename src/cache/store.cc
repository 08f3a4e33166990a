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

Store::Store(uint64_t max_bytes) : max_bytes_(max_bytes) {}

Store::Store(uint64_t max_bytes, const std::string& disk_path, uint64_t disk_max_bytes)
    : max_bytes_(max_bytes) {
  if (!disk_path.empty()) disk_ = std::make_unique<DiskTier>(disk_path, disk_max_bytes);
}

void Store::flush_disk() {
  if (disk_) disk_->flush();
}

Store::~Store() = default;

Store::Shard& Store::shard_of(std::string_view key) {
  size_t h = std::hash<std::string_view>{}(key);
  // The high bits too: the shards' hash maps use the low bits of the same hash.
  return shards_[(h ^ (h >> 32)) % kShards];
}

std::shared_ptr<const Object> Store::lookup(std::string_view key, const http::RequestHead& req) {
  const std::string k(key);  // allocated before the lock, if at all
  Shard& s = shard_of(key);
  // Objects with a Vary are matched outside the lock (vary_key builds a string): their references are
  // copied out, into a vector each thread reuses.
  thread_local std::vector<std::shared_ptr<Object>> varied;
  std::shared_ptr<const Object> found;
  {
    std::lock_guard lock(s.mu);
    const std::shared_ptr<Object>* plain = s.objects.find_if(k, [&](const std::shared_ptr<Object>& o) {
      if (o->vary.empty()) return true;
      varied.push_back(o);
      return false;
    });
    if (plain) found = *plain;
  }
  if (!found && !varied.empty()) {
    for (const auto& o : varied) {
      auto vk = vary_key(o->vary, req);
      if (vk && *vk == o->vary_key) {
        found = o;
        break;
      }
    }
    if (found) {
      std::lock_guard lock(s.mu);  // made the most recently used, unless it went meanwhile
      s.objects.find_if(k, [&](const std::shared_ptr<Object>& o) { return o == found; });
    }
  }
  varied.clear();  // outside the lock: the last reference to an object evicted meanwhile may go here
  if (!found && disk_) found = disk_->pending(key, req);
  return found;
}

bool Store::load(std::string_view key, const http::RequestHead& req, core::EventLoop& loop,
                 Loaded on_loaded) {
  const uint64_t id = disk_->find(key, req);
  if (id == 0) return false;
  Shard& s = shard_of(key);
  bool first = false;
  {
    std::lock_guard lock(s.mu);
    auto [it, inserted] = s.loads.try_emplace(id);
    if (inserted) it->second.purges = purges_.load();
    it->second.waiters.push_back(LoadWaiter{&loop, std::move(on_loaded)});
    first = inserted;
  }
  if (first)
    disk_->read_async(id, std::string(key),
                      [this, &s, id](std::shared_ptr<Object> object) { loaded(s, id, std::move(object)); });
  return true;
}

void Store::loaded(Shard& s, uint64_t id, std::shared_ptr<Object> object) {
  uint64_t purges = 0;
  {
    std::lock_guard lock(s.mu);
    auto it = s.loads.find(id);
    if (it == s.loads.end()) return;
    purges = it->second.purges;
  }
  // Into memory before the waiters are taken: a lookup from now on finds it there and starts no second read.
  if (object && purges_.load() == purges) insert_memory(object, /*replace=*/false, purges);
  std::vector<LoadWaiter> waiters;
  {
    std::lock_guard lock(s.mu);
    auto it = s.loads.find(id);
    if (it == s.loads.end()) return;
    if (it->second.purges != purges_.load()) object.reset();  // maybe purged while it was read: a miss
    waiters.swap(it->second.waiters);
    s.loads.erase(it);
  }
  std::shared_ptr<const Object> result = std::move(object);
  for (auto& w : waiters)
    w.loop->post([loaded = std::move(w.loaded), result]() mutable { loaded(std::move(result)); });
}

void Store::insert(std::shared_ptr<Object> object) {
  if (disk_) disk_->write(object);
  insert_memory(std::move(object), /*replace=*/true, 0);
}

void Store::insert_memory(std::shared_ptr<Object> object, bool replace, uint64_t purges) {
  const uint64_t charge = object->charge();
  if (charge > max_bytes_ / 4) return;
  std::string key = object->key;
  const Object* added = object.get();
  Shard& s = shard_of(key);
  std::vector<std::shared_ptr<Object>> dropped;  // freed after the lock: large bodies take time to free
  dropped.reserve(4);
  auto drop = [&](core::LruMap<std::string, std::shared_ptr<Object>>::Entry& e) {
    bytes_.fetch_sub(e.charge);
    dropped.push_back(std::move(e.value));
  };
  {
    std::lock_guard lock(s.mu);
    auto same = [&](const std::shared_ptr<Object>& o) { return o->vary_key == added->vary_key; };
    if (!replace) {
      // Checked under the shard's lock, which a purge takes after counting itself: a purge either erases
      // this object after it is added, or was counted before and keeps it out.
      if (purges_.load() != purges) return;
      if (s.objects.find_if(key, same)) return;
    }
    s.objects.erase_first(key, same, drop);
    s.objects.insert(std::move(key), std::move(object), charge);
    bytes_.fetch_add(charge);
    s.evictions += s.objects.evict_while(
        [&](const auto& e) { return bytes_.load() > max_bytes_ && e.value.get() != added; }, drop);
  }
  if (bytes_.load() > max_bytes_) evict_elsewhere(s, dropped);
}

void Store::evict_elsewhere(const Shard& inserted, std::vector<std::shared_ptr<Object>>& dropped) {
  const size_t first = static_cast<size_t>(&inserted - shards_.data());
  for (size_t i = 1; i < kShards && bytes_.load() > max_bytes_; ++i) {
    Shard& s = shards_[(first + i) % kShards];
    std::lock_guard lock(s.mu);
    s.evictions += s.objects.evict_while([&](const auto&) { return bytes_.load() > max_bytes_; },
                                         [&](auto& e) {
                                           bytes_.fetch_sub(e.charge);
                                           dropped.push_back(std::move(e.value));
                                         });
  }
}

size_t Store::purge(std::string_view key, bool prefix) {
  purges_.fetch_add(1);  // before the shards' locks: see insert_memory
  size_t n = 0;
  std::vector<std::shared_ptr<Object>> dropped;
  for (Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    n += s.objects.erase_if(
        [&](const std::string& k, const std::shared_ptr<Object>&) {
          std::string_view head = std::string_view(k).substr(0, key.size());
          return head == key && (prefix || k.size() == key.size() || k[key.size()] == kSliceSeparator);
        },
        [&](auto& e) {
          bytes_.fetch_sub(e.charge);
          dropped.push_back(std::move(e.value));
        });
  }
  return disk_ ? std::max(n, disk_->purge(key, prefix)) : n;
}

size_t Store::purge_tag(std::string_view tag) {
  purges_.fetch_add(1);
  size_t n = 0;
  std::vector<std::shared_ptr<Object>> dropped;
  for (Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    n += s.objects.erase_if(
        [&](const std::string&, const std::shared_ptr<Object>& o) {
          return std::find(o->tags.begin(), o->tags.end(), tag) != o->tags.end();
        },
        [&](auto& e) {
          bytes_.fetch_sub(e.charge);
          dropped.push_back(std::move(e.value));
        });
  }
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
  StoreStats st;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    st.objects += s.objects.size();
    st.bytes += s.objects.bytes();
    st.evictions += s.evictions;
  }
  if (disk_) {
    st.disk_objects = disk_->objects();
    st.disk_bytes = disk_->bytes();
    st.disk_reads = disk_->reads();
  }
  return st;
}

bool Store::begin_fill(const std::string& key) {
  Shard& s = shard_of(key);
  std::lock_guard lock(s.mu);
  return s.fills.try_emplace(key).second;
}

void Store::wait_fill(const std::string& key, core::EventLoop& loop, std::function<void()> wake) {
  Shard& s = shard_of(key);
  {
    std::lock_guard lock(s.mu);
    auto it = s.fills.find(key);
    if (it != s.fills.end()) {
      it->second.push_back({&loop, std::move(wake)});
      return;
    }
  }
  loop.post(std::move(wake));  // the fill ended meanwhile
}

void Store::end_fill(const std::string& key) {
  Shard& s = shard_of(key);
  std::vector<Waiter> waiters;
  {
    std::lock_guard lock(s.mu);
    auto it = s.fills.find(key);
    if (it == s.fills.end()) return;
    waiters.swap(it->second);
    s.fills.erase(it);
  }
  for (auto& w : waiters) w.loop->post(std::move(w.wake));
}

}  // namespace cumulo::cache
