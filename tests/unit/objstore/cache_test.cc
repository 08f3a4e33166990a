// The GET path's caches: the ObjectCache alone (LRU bounds, versions, fills racing commits), and the storage
// engine's lookups and whole reads through it, which must never answer with a version a commit replaced:
// overwrites (direct and through the commit threads), deletes, multipart completions and a peer's
// replicated writes, deletes and bucket changes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include "objstore/internal/object_cache.h"
#include "objstore/internal/storage.h"

namespace cumulo::objstore {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<const ObjectInfo> info(const std::string& key, const std::string& etag, uint64_t size,
                                       const std::string& file) {
  auto o = std::make_shared<ObjectInfo>();
  o->bucket = "b1";
  o->key = key;
  o->etag = etag;
  o->size = size;
  o->segments = {Segment{file, size}};
  return o;
}

std::shared_ptr<const std::string> bytes(size_t n, char c) {
  return std::make_shared<const std::string>(n, c);
}

TEST(ObjectCache, LookupFillFindAndInvalidate) {
  ObjectCache cache({});
  EXPECT_FALSE(cache.find_object("b1", "k"));
  cache.fill_object(info("k", "e1", 3, "f1"), cache.generation());
  auto hit = cache.find_object("b1", "k");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->etag, "e1");
  EXPECT_FALSE(cache.find_object("b1", "k2"));
  EXPECT_FALSE(cache.find_object("b2", "k"));
  cache.invalidate_object("b1", "k");
  EXPECT_FALSE(cache.find_object("b1", "k"));
  ObjectCacheStats s = cache.stats();
  EXPECT_EQ(s.lookup_hits, 1u);
  EXPECT_EQ(s.lookup_misses, 4u);
}

TEST(ObjectCache, AFillOlderThanAnInvalidationIsDropped) {
  ObjectCache cache({});
  uint64_t before = cache.generation();
  // A commit of any key lands between the index read and the fill: the read may predate it.
  cache.invalidate_object("b1", "other");
  cache.fill_object(info("k", "old", 3, "f1"), before);
  cache.fill_data(*info("k", "old", 3, "f1"), bytes(3, 'o'), before);
  EXPECT_FALSE(cache.find_object("b1", "k"));
  EXPECT_FALSE(cache.find_data(*info("k", "old", 3, "f1")));
  auto b = std::make_shared<const BucketInfo>(BucketInfo{"b1", "alice", 1});
  cache.fill_bucket(b, before);
  EXPECT_FALSE(cache.find_bucket("b1"));
  cache.fill_bucket(b, cache.generation());
  EXPECT_TRUE(cache.find_bucket("b1"));
  cache.invalidate_all();
  EXPECT_FALSE(cache.find_bucket("b1"));
}

TEST(ObjectCache, DataServesOnlyTheVersionItWasFilledFrom) {
  ObjectCache cache({});
  auto v1 = info("k", "e1", 4, "objects/aa/f1");
  cache.fill_data(*v1, bytes(4, '1'), cache.generation());
  ASSERT_TRUE(cache.find_data(*v1));
  EXPECT_EQ(*cache.find_data(*v1), "1111");
  EXPECT_FALSE(cache.find_data(*info("k", "e1", 4, "objects/bb/f2")));  // another file: another version
  EXPECT_FALSE(cache.find_data(*info("k", "e2", 4, "objects/aa/f1")));
  // Bytes that do not match the object's size are never kept.
  cache.fill_data(*info("j", "e", 5, "f"), bytes(4, 'x'), cache.generation());
  EXPECT_FALSE(cache.find_data(*info("j", "e", 5, "f")));
  cache.invalidate_object("b1", "k");
  EXPECT_FALSE(cache.find_data(*v1));
  EXPECT_EQ(cache.stats().read_bytes, 0u);
}

TEST(ObjectCache, BoundsAreKept) {
  ObjectCacheOptions o;
  o.lookup_max_entries = 2;
  o.read_max_bytes = 100;
  o.read_max_object_bytes = 40;
  ObjectCache cache(o);
  EXPECT_TRUE(cache.cacheable(40));
  EXPECT_FALSE(cache.cacheable(41));
  for (const char* k : {"a", "b"}) cache.fill_object(info(k, "e", 1, k), cache.generation());
  ASSERT_TRUE(cache.find_object("b1", "a"));  // "a" becomes the most recent
  cache.fill_object(info("c", "e", 1, "c"), cache.generation());
  EXPECT_TRUE(cache.find_object("b1", "a"));
  EXPECT_FALSE(cache.find_object("b1", "b"));
  EXPECT_TRUE(cache.find_object("b1", "c"));

  for (const char* k : {"d1", "d2", "d3"})
    cache.fill_data(*info(k, "e", 40, k), bytes(40, 'd'), cache.generation());
  // 120 bytes over a 100-byte bound: the least recently used went.
  EXPECT_FALSE(cache.find_data(*info("d1", "e", 40, "d1")));
  EXPECT_TRUE(cache.find_data(*info("d2", "e", 40, "d2")));
  EXPECT_TRUE(cache.find_data(*info("d3", "e", 40, "d3")));
  EXPECT_EQ(cache.stats().read_bytes, 80u);
  cache.fill_data(*info("big", "e", 41, "big"), bytes(41, 'b'), cache.generation());
  EXPECT_FALSE(cache.find_data(*info("big", "e", 41, "big")));

  ObjectCacheOptions off;
  off.lookup_max_entries = 0;
  off.read_max_bytes = 0;
  ObjectCache none(off);
  none.fill_object(info("a", "e", 1, "a"), none.generation());
  EXPECT_FALSE(none.find_object("b1", "a"));
  EXPECT_FALSE(none.cacheable(1));
}

// ---------------------------------------------------------------------------------------------------------

class CachedStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto* d : {&dir_, &peer_dir_}) {
      char tmpl[] = "/tmp/cumulo-objcache-XXXXXX";
      ASSERT_NE(::mkdtemp(tmpl), nullptr);
      *d = tmpl;
    }
    for (size_t i = 0; i < options_.master_key.size(); ++i) options_.master_key[i] = static_cast<uint8_t>(i);
    options_.data_dir = dir_;
    options_.zone = "a";
    storage_ = Storage::open(options_);
    ASSERT_EQ(storage_->create_bucket("b1", "alice"), S3Error::kNone);
  }
  void TearDown() override {
    storage_.reset();
    fs::remove_all(dir_);
    fs::remove_all(peer_dir_);
  }

  ObjectInfo put(const std::string& key, std::string_view data) {
    auto w = storage_->begin_write().value();
    EXPECT_EQ(w->write(data), S3Error::kNone);
    ObjectInfo o;
    o.bucket = "b1";
    o.key = key;
    EXPECT_EQ(storage_->commit_object(std::move(w), o), S3Error::kNone);
    return o;
  }

  ObjectInfo put_async(const std::string& key, std::string_view data) {
    auto w = storage_->begin_write().value();
    EXPECT_EQ(w->write(data), S3Error::kNone);
    ObjectInfo o;
    o.bucket = "b1";
    o.key = key;
    std::promise<ObjectInfo> done;
    storage_->commit_object_async(std::move(w), o, [&done](S3Error e, const ObjectInfo& got) {
      EXPECT_EQ(e, S3Error::kNone);
      done.set_value(got);
    });
    return done.get_future().get();
  }

  // What a GET answers: the metadata through the lookup cache, the bytes through the read cache.
  std::string get(const std::string& key) {
    auto o = storage_->lookup("b1", key).value();
    if (!o) return "<absent>";
    EXPECT_TRUE(storage_->read_cacheable(o->size));
    auto data = storage_->read_whole(*o);
    if (!data) return "<error " + std::to_string(static_cast<int>(data.error())) + ">";
    return **data;
  }

  static RemoteChange from_b(uint64_t seq, int64_t ms) { return RemoteChange{"b", seq, {ms, "b"}, "alice"}; }

  std::string dir_, peer_dir_;
  StorageOptions options_;
  std::unique_ptr<Storage> storage_;
};

TEST_F(CachedStorageTest, RepeatedGetsAreServedFromTheCaches) {
  put("k", "hello");
  EXPECT_EQ(get("k"), "hello");
  ObjectCacheStats first = storage_->cache_stats();
  EXPECT_EQ(get("k"), "hello");
  EXPECT_EQ(get("k"), "hello");
  ObjectCacheStats s = storage_->cache_stats();
  EXPECT_EQ(s.lookup_hits, first.lookup_hits + 2);
  EXPECT_EQ(s.read_hits, first.read_hits + 2);
  EXPECT_EQ(s.lookup_misses, first.lookup_misses);
  EXPECT_EQ(s.read_misses, first.read_misses);
  EXPECT_EQ(s.read_bytes, 5u);
  // A hit does not touch the file: even with the file gone, the verified bytes are served.
  auto o = storage_->lookup("b1", "k").value();
  fs::remove(dir_ + "/" + o->segments[0].file);
  EXPECT_EQ(get("k"), "hello");
}

TEST_F(CachedStorageTest, OverwritesAndDeletesInvalidate) {
  put("k", "one");
  EXPECT_EQ(get("k"), "one");
  put("k", "two");  // committed on this thread
  EXPECT_EQ(get("k"), "two");
  EXPECT_EQ(storage_->lookup("b1", "k").value()->size, 3u);
  put_async("k", "three!");  // committed by the commit threads
  EXPECT_EQ(get("k"), "three!");
  EXPECT_EQ(storage_->lookup("b1", "k").value()->size, 6u);
  ASSERT_EQ(storage_->delete_object("b1", "k"), S3Error::kNone);
  EXPECT_EQ(get("k"), "<absent>");
  put_async("k", "back");
  EXPECT_EQ(get("k"), "back");
}

TEST_F(CachedStorageTest, MultipartCompletionInvalidates) {
  put("m", "small");
  EXPECT_EQ(get("m"), "small");
  UploadInfo u;
  u.bucket = "b1";
  u.key = "m";
  std::string id = storage_->create_upload(u).value();
  auto w = storage_->begin_write().value();
  ASSERT_EQ(w->write("from parts"), S3Error::kNone);
  PartInfo part;
  ASSERT_EQ(storage_->commit_part(std::move(w), id, 1, part), S3Error::kNone);
  ObjectInfo out;
  ASSERT_EQ(storage_->complete_upload(id, {{1, part.etag}}, out), S3Error::kNone);
  EXPECT_EQ(get("m"), "from parts");
  EXPECT_EQ(
      storage_->lookup("b1", "m").value()->etag.substr(storage_->lookup("b1", "m").value()->etag.size() - 2),
      "-1");
}

TEST_F(CachedStorageTest, ReplicatedChangesInvalidate) {
  put("r", "local");
  EXPECT_EQ(get("r"), "local");
  // A newer write of the key from zone b, applied through the commit threads as the endpoint does.
  auto w = storage_->begin_write().value();
  ASSERT_EQ(w->write("from b"), S3Error::kNone);
  ObjectInfo o;
  o.bucket = "b1";
  o.key = "r";
  o.size = 6;
  o.etag = "e-from-b";
  std::promise<S3Error> done;
  storage_->apply_object_async(std::move(w), o, from_b(1, Storage::now_ms() + 60'000),
                               [&done](S3Error e, const ObjectInfo&) { done.set_value(e); });
  ASSERT_EQ(done.get_future().get(), S3Error::kNone);
  EXPECT_EQ(get("r"), "from b");
  EXPECT_EQ(storage_->lookup("b1", "r").value()->etag, "e-from-b");
  // A newer delete from zone b.
  ASSERT_EQ(storage_->apply_delete("b1", "r", from_b(2, Storage::now_ms() + 120'000)), S3Error::kNone);
  EXPECT_EQ(get("r"), "<absent>");
  // A bucket deleted in zone b (empty here too): the bucket cache forgets it.
  ASSERT_TRUE(storage_->bucket("b1").value());
  ASSERT_EQ(storage_->apply_bucket("b1", true, from_b(3, Storage::now_ms() + 180'000)), S3Error::kNone);
  EXPECT_FALSE(storage_->bucket("b1").value());
}

TEST_F(CachedStorageTest, BucketLookupsFollowCreationAndDeletion) {
  EXPECT_FALSE(storage_->bucket("b2").value());
  ASSERT_EQ(storage_->create_bucket("b2", "bob"), S3Error::kNone);
  ASSERT_TRUE(storage_->bucket("b2").value());
  EXPECT_EQ(storage_->bucket("b2").value()->owner, "bob");
  ASSERT_EQ(storage_->delete_bucket("b2"), S3Error::kNone);
  EXPECT_FALSE(storage_->bucket("b2").value());
}

TEST_F(CachedStorageTest, ADamagedFileIsNeverCachedNorServed) {
  put("d", std::string(1000, 'x'));
  auto o = storage_->lookup("b1", "d").value();
  ASSERT_TRUE(o);
  {
    std::fstream f(dir_ + "/" + o->segments[0].file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.put('\x5a');
  }
  StorageResult<std::shared_ptr<const std::string>> whole = storage_->read_whole(*o);
  ASSERT_FALSE(whole);
  EXPECT_EQ(whole.error(), S3Error::kCorruptObject);
  EXPECT_EQ(storage_->cache_stats().read_entries, 0u);
  EXPECT_FALSE(storage_->read_whole(*o));  // checked again on every read, not remembered as good
}

TEST_F(CachedStorageTest, CachesCanBeTurnedOff) {
  storage_.reset();
  options_.lookup_cache_entries = 0;
  options_.read_cache_max_bytes = 0;
  storage_ = Storage::open(options_);
  put("k", "v");
  ASSERT_TRUE(storage_->lookup("b1", "k").value());
  EXPECT_FALSE(storage_->read_cacheable(1));
  EXPECT_EQ(storage_->cache_stats().lookup_entries, 0u);
}

}  // namespace
}  // namespace cumulo::objstore
