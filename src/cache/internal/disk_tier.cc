#include "cache/internal/disk_tier.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "http/wire/field_lists.h"

namespace cumulo::cache {
namespace {

constexpr std::string_view kMagic = "CUMULOC1";
// The index is rebuilt from this much of each file: enough for any key, Vary and tags the gateway accepts.
constexpr size_t kIndexPrefix = 256 * 1024;

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_str(std::string& out, std::string_view s) {
  put_u64(out, s.size());
  out.append(s);
}

// Bounds-checked reader: the first failure makes every later read fail too (checked once at the end).
struct Reader {
  std::string_view in;
  bool ok = true;
  uint64_t u64() {
    if (!ok || in.size() < 8) {
      ok = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
    in.remove_prefix(8);
    return v;
  }
  std::string_view str() {
    uint64_t n = u64();
    if (!ok || n > in.size()) {
      ok = false;
      return {};
    }
    std::string_view s = in.substr(0, n);
    in.remove_prefix(n);
    return s;
  }
};

// The head of a file: what the index keeps.
bool read_index_fields(Reader& r, std::string& key, std::string& vary, std::string& vary_key,
                       std::vector<std::string>& tags) {
  if (r.in.substr(0, kMagic.size()) != kMagic) return false;
  r.in.remove_prefix(kMagic.size());
  key = r.str();
  vary = r.str();
  vary_key = r.str();
  uint64_t n = r.u64();
  if (n > 4096) return false;
  tags.clear();
  for (uint64_t i = 0; i < n && r.ok; ++i) tags.emplace_back(r.str());
  return r.ok;
}

bool read_file(const std::string& path, std::string& out, size_t limit) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return false;
  }
  size_t want = std::min<size_t>(static_cast<size_t>(st.st_size), limit);
  out.resize(want);
  size_t got = 0;
  while (got < want) {
    ssize_t n = ::pread(fd, out.data() + got, want - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(got);
  return got == want;
}

}  // namespace

std::string serialize_object(const Object& o) {
  std::string out;
  out.reserve(o.charge() + 256);
  out.append(kMagic);
  put_str(out, o.key);
  put_str(out, o.vary);
  put_str(out, o.vary_key);
  put_u64(out, o.tags.size());
  for (const auto& t : o.tags) put_str(out, t);
  put_u64(out, static_cast<uint64_t>(o.status));
  put_str(out, o.reason);
  put_str(out, o.headers);
  put_str(out, o.etag);
  put_str(out, o.last_modified);
  EntryTimes t = o.current_times();
  for (int64_t v :
       {t.request_time, t.response_time, t.date_value, t.age_value, t.freshness_lifetime, t.expires})
    put_u64(out, static_cast<uint64_t>(v));
  put_u64(out, o.compressible ? 1 : 0);
  put_u64(out, o.slice_first);
  put_u64(out, o.slice_total);
  put_str(out, o.body);
  put_str(out, o.gzip_body);
  put_str(out, o.br_body);
  return out;
}

std::shared_ptr<Object> deserialize_object(std::string_view bytes) {
  auto o = std::make_shared<Object>();
  Reader r{bytes};
  if (!read_index_fields(r, o->key, o->vary, o->vary_key, o->tags)) return nullptr;
  uint64_t status = r.u64();
  o->reason = r.str();
  o->headers = r.str();
  o->etag = r.str();
  o->last_modified = r.str();
  int64_t* times[] = {&o->times.request_time, &o->times.response_time,      &o->times.date_value,
                      &o->times.age_value,    &o->times.freshness_lifetime, &o->times.expires};
  for (int64_t* v : times) *v = static_cast<int64_t>(r.u64());
  o->compressible = r.u64() != 0;
  o->slice_first = r.u64();
  o->slice_total = r.u64();
  o->body = r.str();
  o->gzip_body = r.str();
  o->br_body = r.str();
  if (!r.ok || !r.in.empty() || status < 100 || status > 999) return nullptr;
  o->status = static_cast<int>(status);
  // The Cache-Control lines of the stored fields are the object's directives (as build_cache_object read
  // them).
  http::for_each_field_line(o->headers, [&](std::string_view name, std::string_view value, std::string_view) {
    if (http::iequals(name, "cache-control")) merge_cache_control(value, o->cache_control);
    return true;
  });
  return o;
}

DiskTier::DiskTier(std::string dir, uint64_t max_bytes)
    : dir_(std::move(dir)),
      max_bytes_(max_bytes),
      entries_(core::LruLimits{.max_bytes = max_bytes, .min_entries = 1}) {
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("cache disk path " + dir_ + ": " + std::strerror(errno));
  DIR* d = ::opendir(dir_.c_str());
  if (!d) throw std::runtime_error("cache disk path " + dir_ + ": " + std::strerror(errno));
  std::lock_guard lock(mu_);
  while (dirent* de = ::readdir(d)) {
    std::string_view name = de->d_name;
    std::string path = dir_ + "/" + std::string(name);
    if (name.ends_with(".tmp")) {
      ::unlink(path.c_str());  // a write cut by a crash
      continue;
    }
    if (!name.ends_with(".obj") || name.size() != 20) continue;
    uint64_t id = std::strtoull(std::string(name.substr(0, 16)).c_str(), nullptr, 16);
    struct stat st {};
    std::string head, key;
    Entry e;
    Reader r{};
    if (id == 0 || ::stat(path.c_str(), &st) != 0 || !read_file(path, head, kIndexPrefix) ||
        !(r.in = head, read_index_fields(r, key, e.vary, e.vary_key, e.tags))) {
      ::unlink(path.c_str());
      continue;
    }
    e.id = id;
    next_id_ = std::max(next_id_, id + 1);
    add_locked(std::move(key), std::move(e), static_cast<uint64_t>(st.st_size));
  }
  ::closedir(d);
  writer_ = std::thread([this] { run(); });
  reader_ = std::thread([this] { run_reads(); });
}

DiskTier::~DiskTier() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  read_cv_.notify_all();
  writer_.join();
  reader_.join();
}

std::string DiskTier::path_of(uint64_t id) const {
  char name[24];
  std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(id));
  return dir_ + "/" + name + ".obj";
}

void DiskTier::unlink_file(const Index::Entry& e) const {
  ::unlink(path_of(e.value.id).c_str());
}

void DiskTier::add_locked(std::string key, Entry e, uint64_t size) {
  // The same key and Vary key replaces what was there (its file goes).
  auto unlink = [this](const Index::Entry& old) { unlink_file(old); };
  entries_.erase_first(
      key, [&](const Entry& old) { return old.vary_key == e.vary_key; }, unlink);
  entries_.insert(std::move(key), std::move(e), size);
  entries_.evict(unlink);
}

void DiskTier::write(std::shared_ptr<const Object> object) {
  {
    std::lock_guard lock(mu_);
    if (object->charge() > max_bytes_ / 4) return;
    queue_.push_back(std::move(object));
  }
  cv_.notify_all();
}

void DiskTier::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything queued is written
    std::shared_ptr<const Object> o = std::move(queue_.front());
    queue_.pop_front();
    writing_ = o;
    uint64_t id = next_id_++;
    uint64_t purges = purges_;
    lock.unlock();
    std::string bytes = serialize_object(*o);
    std::string path = path_of(id), tmp = path.substr(0, path.size() - 4) + ".tmp";
    bool ok = false;
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
      size_t done = 0;
      while (done < bytes.size()) {
        ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += static_cast<size_t>(n);
      }
      ok = ::close(fd) == 0 && done == bytes.size() && ::rename(tmp.c_str(), path.c_str()) == 0;
    }
    if (!ok) ::unlink(tmp.c_str());  // a full disk: the object stays in memory only
    lock.lock();
    if (ok && purges != purges_) {
      ::unlink(path.c_str());
      ok = false;
    }
    if (ok) add_locked(o->key, Entry{o->vary, o->vary_key, o->tags, id}, bytes.size());
    writing_.reset();
    cv_.notify_all();
  }
}

void DiskTier::flush() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return queue_.empty() && !writing_ && reads_.empty() && reading_ == 0; });
}

std::shared_ptr<const Object> DiskTier::pending(std::string_view key, const http::RequestHead& req) const {
  auto matches = [&](const Object& o) {
    if (o.key != key) return false;
    if (o.vary.empty()) return true;
    auto k = vary_key(o.vary, req);
    return k && *k == o.vary_key;
  };
  std::lock_guard lock(mu_);
  for (auto it = queue_.rbegin(); it != queue_.rend(); ++it)  // the latest first: it replaces earlier ones
    if (matches(**it)) return *it;
  if (writing_ && matches(*writing_)) return writing_;
  return nullptr;
}

uint64_t DiskTier::find(std::string_view key, const http::RequestHead& req) {
  std::lock_guard lock(mu_);
  const Entry* e = entries_.find_if(std::string(key), [&](const Entry& candidate) {
    if (candidate.vary.empty()) return true;
    auto k = vary_key(candidate.vary, req);
    return k && *k == candidate.vary_key;
  });
  return e ? e->id : 0;
}

void DiskTier::read_async(uint64_t id, std::string key, std::function<void(std::shared_ptr<Object>)> done) {
  {
    std::lock_guard lock(mu_);
    reads_.push_back(Read{id, std::move(key), std::move(done)});
  }
  read_cv_.notify_one();
}

void DiskTier::run_reads() {
  std::unique_lock lock(mu_);
  for (;;) {
    read_cv_.wait(lock, [this] { return stop_ || !reads_.empty(); });
    if (stop_) return;  // what is still queued is dropped: no one is left to serve it
    {
      Read r = std::move(reads_.front());
      reads_.pop_front();
      ++reading_;
      lock.unlock();
      std::string bytes;
      std::shared_ptr<Object> o;
      if (read_file(path_of(r.id), bytes, SIZE_MAX)) o = deserialize_object(bytes);
      if (o && o->key != r.key) o.reset();
      lock.lock();
      ++reads_done_;
      auto same_file = [&](const Entry& e) { return e.id == r.id; };
      if (!entries_.find_if(r.key, same_file)) {
        o.reset();  // purged or replaced while it was read
      } else if (!o) {
        entries_.erase_first(r.key, same_file, [this](const Index::Entry& e) { unlink_file(e); });
      }
      lock.unlock();
      r.done(std::move(o));
    }  // r (its callback and what that holds) goes before the lock is taken again
    lock.lock();
    --reading_;
    cv_.notify_all();
  }
}

namespace {
bool key_matches(std::string_view k, std::string_view key, bool prefix) {
  return k.substr(0, key.size()) == key &&
         (prefix || k.size() == key.size() || k[key.size()] == kSliceSeparator);
}
bool has_tag(const std::vector<std::string>& tags, std::string_view tag) {
  for (const auto& t : tags)
    if (t == tag) return true;
  return false;
}
}  // namespace

size_t DiskTier::purge(std::string_view key, bool prefix) {
  std::lock_guard lock(mu_);
  ++purges_;
  std::erase_if(queue_, [&](const auto& o) { return key_matches(o->key, key, prefix); });
  return entries_.erase_if([&](const std::string& k, const Entry&) { return key_matches(k, key, prefix); },
                           [this](const Index::Entry& e) { unlink_file(e); });
}

size_t DiskTier::purge_tag(std::string_view tag) {
  std::lock_guard lock(mu_);
  ++purges_;
  std::erase_if(queue_, [&](const auto& o) { return has_tag(o->tags, tag); });
  return entries_.erase_if([&](const std::string&, const Entry& e) { return has_tag(e.tags, tag); },
                           [this](const Index::Entry& e) { unlink_file(e); });
}

uint64_t DiskTier::objects() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

uint64_t DiskTier::reads() const {
  std::lock_guard lock(mu_);
  return reads_done_;
}

uint64_t DiskTier::bytes() const {
  std::lock_guard lock(mu_);
  return entries_.bytes();
}

}  // namespace cumulo::cache
