// The cache's disk tier: objects written by the writer thread come back byte for byte after a memory eviction
// and after a restart (a new Store on the same directory), read by the reader thread and delivered on the
// loop that asked, one read for all the requests waiting for a file; purges reach the disk; its size cap
// holds.
#include "cache/internal/disk_tier.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "cache/store.h"
#include "cache_test_util.h"
#include "core/event_loop.h"

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

// A lookup as a worker makes it: memory first, else a disk read whose result is delivered on a loop, run
// here until it comes (10 s at most).
std::shared_ptr<const Object> lookup(Store& store, const std::string& key, const http::RequestHead& req) {
  core::EventLoop loop;
  std::shared_ptr<const Object> got;
  bool delivered = false;
  auto found = store.lookup(key, req, loop, [&](std::shared_ptr<const Object> o) {
    got = std::move(o);
    delivered = true;
    loop.stop();
  });
  if (!found.loading) return found.object;
  EXPECT_FALSE(found.object);
  core::Timer limit(loop, [&] { loop.stop(); });
  limit.arm(std::chrono::seconds(10));
  loop.run();
  EXPECT_TRUE(delivered);
  return got;
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
    auto first = lookup(store, "site.test/0", req);  // evicted from memory long ago
    ASSERT_TRUE(first);
    EXPECT_EQ(first->body, std::string(200 << 10, 'a'));
    EXPECT_EQ(first->etag, "\"e1\"");
  }
  EXPECT_EQ(files(), 10u);
  Store again(1 << 20, dir_.string(), 64 << 20);
  EXPECT_EQ(again.stats().objects, 0u);
  EXPECT_EQ(again.stats().disk_objects, 10u);
  auto o = lookup(again, "site.test/7", req);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->body, std::string(200 << 10, 'h'));
  EXPECT_EQ(again.stats().objects, 1u);  // and kept in memory again
  EXPECT_FALSE(lookup(again, "site.test/77", req));
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
  EXPECT_FALSE(lookup(store, "site.test/ab", req));
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
  EXPECT_TRUE(lookup(store, "site.test/11", req));
  // The oldest are gone from memory and disk alike.
  EXPECT_FALSE(lookup(store, "site.test/0", req));
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

TEST_F(DiskTierTest, AMemoryMissIsReadOffTheCallersThreadAndDeliveredOnItsLoop) {
  const auto req = test::request({});
  {
    Store first(1 << 20, dir_.string(), 64 << 20);
    first.insert(object("site.test/a", 1000, 'a'));
  }
  Store store(1 << 20, dir_.string(), 64 << 20);
  EXPECT_FALSE(store.lookup("site.test/a", req));  // memory alone: never a file
  core::EventLoop loop;
  std::thread::id delivered_on;
  std::shared_ptr<const Object> got;
  int calls = 0;
  auto found = store.lookup("site.test/a", req, loop, [&](std::shared_ptr<const Object> o) {
    delivered_on = std::this_thread::get_id();
    got = std::move(o);
    ++calls;
  });
  EXPECT_TRUE(found.loading);
  EXPECT_FALSE(found.object);
  store.flush_disk();  // the read is done and its result posted, but nothing runs it until the loop does
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(store.stats().disk_reads, 1u);
  loop.post([&] { loop.stop(); });
  loop.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(delivered_on, std::this_thread::get_id());
  ASSERT_TRUE(got);
  EXPECT_EQ(got->body, std::string(1000, 'a'));
  // Kept in memory again: the next lookup is a hit and reads nothing.
  auto again = store.lookup("site.test/a", req, loop, [](std::shared_ptr<const Object>) { FAIL(); });
  EXPECT_FALSE(again.loading);
  EXPECT_EQ(again.object, got);
  EXPECT_EQ(store.stats().disk_reads, 1u);
  // A key the disk does not have is a plain miss.
  auto none = store.lookup("site.test/b", req, loop, [](std::shared_ptr<const Object>) { FAIL(); });
  EXPECT_FALSE(none.loading);
  EXPECT_FALSE(none.object);
}

TEST_F(DiskTierTest, RequestsWaitingForTheSameFileShareOneRead) {
  const auto req = test::request({});
  // 2 MiB: more than a quarter of the memory, so never kept there and read from disk on every miss.
  Store store(1 << 20, dir_.string(), 64 << 20);
  store.insert(object("site.test/big", 2 << 20, 'b'));
  store.flush_disk();
  EXPECT_EQ(store.stats().objects, 0u);
  core::EventLoop loop_a, loop_b;
  std::vector<std::shared_ptr<const Object>> got_a, got_b;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(store
                    .lookup("site.test/big", req, loop_a,
                            [&](std::shared_ptr<const Object> o) { got_a.push_back(std::move(o)); })
                    .loading);
    EXPECT_TRUE(store
                    .lookup("site.test/big", req, loop_b,
                            [&](std::shared_ptr<const Object> o) { got_b.push_back(std::move(o)); })
                    .loading);
  }
  store.flush_disk();
  EXPECT_EQ(store.stats().disk_reads, 1u);
  for (core::EventLoop* l : {&loop_a, &loop_b}) {
    l->post([l] { l->stop(); });
    l->run();
  }
  ASSERT_EQ(got_a.size(), 3u);
  ASSERT_EQ(got_b.size(), 3u);
  ASSERT_TRUE(got_a[0]);
  EXPECT_EQ(got_a[0]->body.size(), 2u << 20);
  for (const auto& o : got_a) EXPECT_EQ(o, got_a[0]);  // the very same object: one read
  for (const auto& o : got_b) EXPECT_EQ(o, got_a[0]);
  EXPECT_EQ(store.stats().objects, 0u);
  // Every later miss reads it again (objects too large for memory are served from disk each time).
  EXPECT_TRUE(lookup(store, "site.test/big", req));
  EXPECT_EQ(store.stats().disk_reads, 2u);
}

TEST_F(DiskTierTest, AReadOfAPurgedOrBrokenFileDeliversAMissAndIsNotKept) {
  const auto req = test::request({});
  {
    Store first(1 << 20, dir_.string(), 256 << 20);
    first.insert(object("site.test/slow", 40 << 20));
    first.insert(object("site.test/a", 1000));
    first.insert(object("site.test/b", 1000));
  }
  Store store(1 << 20, dir_.string(), 256 << 20);
  core::EventLoop loop;
  // The reader thread reads 40 MiB first, so the purge below comes while the read of /a is queued.
  auto slow = store.lookup("site.test/slow", req, loop, [](std::shared_ptr<const Object>) {});
  ASSERT_TRUE(slow.loading);
  std::shared_ptr<const Object> got = std::make_shared<Object>();
  auto found = store.lookup("site.test/a", req, loop, [&](std::shared_ptr<const Object> o) { got = o; });
  ASSERT_TRUE(found.loading);
  store.purge("site.test/a", false);
  store.flush_disk();
  loop.post([&] { loop.stop(); });
  loop.run();
  EXPECT_FALSE(got);
  EXPECT_EQ(store.stats().objects, 0u);  // not put back in memory after its purge
  // A file that cannot be read any more is a miss, and leaves the index.
  for (const auto& e : std::filesystem::directory_iterator(dir_)) std::filesystem::resize_file(e.path(), 10);
  EXPECT_EQ(store.stats().disk_objects, 2u);
  EXPECT_FALSE(lookup(store, "site.test/b", req));
  EXPECT_EQ(store.stats().disk_objects, 1u);
  auto after = store.lookup("site.test/b", req, loop, [](std::shared_ptr<const Object>) {});
  EXPECT_FALSE(after.loading);
}

}  // namespace
}  // namespace cumulo::cache
