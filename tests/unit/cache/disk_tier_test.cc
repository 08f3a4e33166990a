// The cache's disk tier: objects written by the writer thread come back byte for byte after a memory eviction
// and after a restart (a new Store on the same directory); purges reach the disk; its size cap holds.
#include "cache/internal/disk_tier.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "cache/store.h"
#include "cache_test_util.h"

namespace cumulo::cache {
namespace {

class DiskTierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("cumulo-disk-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  size_t files() const {
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) n += e.path().extension() == ".obj";
    return n;
  }
  std::filesystem::path dir_;
};

std::shared_ptr<Object> object(const std::string& key, size_t body_bytes, char fill = 'x') {
  auto o = std::make_shared<Object>();
  o->key = key;
  o->reason = "OK";
  o->headers = "Content-Type: video/mp4\r\nCache-Control: public, max-age=60, stale-if-error=30\r\n";
  o->body.assign(body_bytes, fill);
  o->etag = "\"e1\"";
  o->last_modified = "Sun, 06 Nov 1994 08:49:37 GMT";
  o->tags = {"video", "t2"};
  o->times.response_time = o->times.request_time = o->times.date_value = 1795000000;
  o->times.freshness_lifetime = 60;
  o->slice_first = 1 << 20;
  o->slice_total = 50 << 20;
  return o;
}

TEST(DiskFormat, RoundTripsEveryField) {
  auto o = object("site.test/a", 1000);
  o->vary = "Accept-Encoding";
  o->vary_key = "accept-encoding:br\n";
  o->gzip_body = "gz";
  o->br_body = "br";
  o->compressible = true;
  std::string bytes = serialize_object(*o);
  auto back = deserialize_object(bytes);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->key, o->key);
  EXPECT_EQ(back->vary_key, o->vary_key);
  EXPECT_EQ(back->headers, o->headers);
  EXPECT_EQ(back->body, o->body);
  EXPECT_EQ(back->br_body, "br");
  EXPECT_EQ(back->tags, o->tags);
  EXPECT_EQ(back->slice_total, 50u << 20);
  EXPECT_EQ(back->times.freshness_lifetime, 60);
  EXPECT_EQ(back->cache_control.max_age, 60);  // directives come back from the stored fields
  EXPECT_EQ(back->cache_control.stale_if_error, 30);
  EXPECT_TRUE(back->compressible);
  // Torn or foreign files are refused, whatever is cut.
  for (size_t cut = 0; cut < bytes.size(); cut += 97)
    EXPECT_FALSE(deserialize_object(bytes.substr(0, cut))) << cut;
  EXPECT_FALSE(deserialize_object(bytes + "x"));
  EXPECT_FALSE(deserialize_object("CUMULOC1\xff\xff\xff\xff\xff\xff\xff\xff"));
}

TEST_F(DiskTierTest, EvictedObjectsComeBackFromDiskAndSurviveARestart) {
  const auto req = test::request({});
  {
    Store store(1 << 20, dir_.string(), 64 << 20);  // 1 MiB of memory: a few 200 KiB objects fit
    for (int i = 0; i < 10; ++i) store.insert(object("site.test/" + std::to_string(i), 200 << 10, 'a' + i));
    store.flush_disk();
    EXPECT_LT(store.stats().objects, 10u);
    EXPECT_EQ(store.stats().disk_objects, 10u);
    auto first = store.lookup("site.test/0", req);  // evicted from memory long ago
    ASSERT_TRUE(first);
    EXPECT_EQ(first->body, std::string(200 << 10, 'a'));
    EXPECT_EQ(first->etag, "\"e1\"");
  }
  EXPECT_EQ(files(), 10u);
  Store again(1 << 20, dir_.string(), 64 << 20);
  EXPECT_EQ(again.stats().objects, 0u);
  EXPECT_EQ(again.stats().disk_objects, 10u);
  auto o = again.lookup("site.test/7", req);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->body, std::string(200 << 10, 'h'));
  EXPECT_EQ(again.stats().objects, 1u);  // and kept in memory again
  EXPECT_FALSE(again.lookup("site.test/77", req));
}

TEST_F(DiskTierTest, ReplacingAndPurgingRemoveFiles) {
  const auto req = test::request({});
  Store store(8 << 20, dir_.string(), 64 << 20);
  store.insert(object("site.test/a", 1000, '1'));
  store.insert(object("site.test/a", 1000, '2'));
  store.insert(object(std::string("site.test/a") + kSliceSeparator + "3", 1000));
  store.insert(object("site.test/ab", 1000));
  store.flush_disk();
  EXPECT_EQ(files(), 3u);
  EXPECT_EQ(store.purge("site.test/a", false), 2u);  // the object and its slice, not /ab
  EXPECT_EQ(files(), 1u);
  EXPECT_EQ(store.purge_tag("video"), 1u);
  EXPECT_EQ(files(), 0u);
  EXPECT_FALSE(store.lookup("site.test/ab", req));
}

TEST_F(DiskTierTest, SizeCapEvictsTheLeastRecentlyUsedFiles) {
  const auto req = test::request({});
  Store store(1 << 20, dir_.string(), 4 << 20);
  for (int i = 0; i < 12; ++i) {
    store.insert(object("site.test/" + std::to_string(i), 500 << 10));
    store.flush_disk();
  }
  EXPECT_LE(store.stats().disk_bytes, 4u << 20);
  EXPECT_LE(files(), 8u);
  EXPECT_EQ(files(), store.stats().disk_objects);
  EXPECT_TRUE(store.lookup("site.test/11", req));
  // The oldest are gone from memory and disk alike.
  EXPECT_FALSE(store.lookup("site.test/0", req));
}

TEST_F(DiskTierTest, LeftoversOfACrashAreCleanedAtStart) {
  std::filesystem::create_directories(dir_);
  std::ofstream(dir_ / "00000000000000aa.tmp") << "half";
  std::ofstream(dir_ / "00000000000000ab.obj") << "not an object";
  Store store(1 << 20, dir_.string(), 4 << 20);
  EXPECT_EQ(store.stats().disk_objects, 0u);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "00000000000000aa.tmp"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "00000000000000ab.obj"));
}

}  // namespace
}  // namespace cumulo::cache
