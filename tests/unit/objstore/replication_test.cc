// The change feed and the apply side of replication, on two storage engines (zones a and b) in temporary
// directories: one row per key in seq order, tombstones, idempotent apply, last writer wins.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <string>

#include "objstore/internal/storage.h"
#include "unit/objstore/damaged_index.h"

namespace cumulo::objstore {
namespace {

namespace fs = std::filesystem;

class ReplicationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto* z : {&a_, &b_}) {
      char tmpl[] = "/tmp/cumulo-repl-XXXXXX";
      ASSERT_NE(::mkdtemp(tmpl), nullptr);
      z->dir = tmpl;
      StorageOptions o;
      for (size_t i = 0; i < o.master_key.size(); ++i) o.master_key[i] = static_cast<uint8_t>(i + (z == &a_));
      o.data_dir = z->dir;
      o.zone = z == &a_ ? "a" : "b";
      z->storage = Storage::open(o);
    }
  }
  void TearDown() override {
    for (auto* z : {&a_, &b_}) {
      z->storage.reset();
      fs::remove_all(z->dir);
    }
  }

  struct Zone {
    std::string dir;
    std::unique_ptr<Storage> storage;
  };

  static ObjectInfo put(Storage& s, const std::string& bucket, const std::string& key,
                        std::string_view data) {
    auto w = s.begin_write().value();
    EXPECT_EQ(w->write(data), S3Error::kNone);
    ObjectInfo info;
    info.bucket = bucket;
    info.key = key;
    info.content_type = "text/plain";
    EXPECT_EQ(s.commit_object(std::move(w), info), S3Error::kNone);
    return info;
  }

  // Applies a peer's object through the commit threads, as the endpoint does; waits for the outcome.
  static S3Error apply_put(Storage& s, const std::string& key, std::string_view data, const std::string& etag,
                           RemoteChange rc) {
    auto w = s.begin_write().value();
    EXPECT_EQ(w->write(data), S3Error::kNone);
    ObjectInfo info;
    info.bucket = "site";
    info.key = key;
    info.size = data.size();
    info.etag = etag;
    std::promise<S3Error> done;
    s.apply_object_async(std::move(w), info, std::move(rc),
                         [&done](S3Error e, const ObjectInfo&) { done.set_value(e); });
    return done.get_future().get();
  }

  static std::string read(Storage& s, const std::string& key) {
    auto o = s.head("site", key).value();
    if (!o) return "<absent>";
    std::string out(o->size, '\0');
    EXPECT_EQ(s.reader(*o)->read(0, out.data(), out.size()), static_cast<ssize_t>(out.size()));
    return out;
  }

  static RemoteChange from_a(uint64_t seq, int64_t ms) { return RemoteChange{"a", seq, {ms, "a"}, "admin"}; }

  Zone a_, b_;
};

TEST_F(ReplicationTest, FeedHoldsTheLastChangeOfEachKeyInOrder) {
  Storage& s = *a_.storage;
  EXPECT_EQ(s.last_change_seq(), 0u);
  ASSERT_EQ(s.create_bucket("site", "admin"), S3Error::kNone);        // seq 1
  ObjectInfo first = put(s, "site", "k1", "one");                     // seq 2
  put(s, "site", "k2", "two");                                        // seq 3
  ObjectInfo again = put(s, "site", "k1", "one again");               // seq 4
  ASSERT_EQ(s.delete_object("site", "k2"), S3Error::kNone);           // seq 5
  ASSERT_EQ(s.delete_object("site", "never-there"), S3Error::kNone);  // seq 6: a tombstone all the same
  EXPECT_EQ(s.last_change_seq(), 6u);
  EXPECT_GT(again.mtime_ms, first.mtime_ms);  // a key's versions only go up

  auto feed = s.open_feed();
  auto rows = feed->after(0, 100).value();
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].seq, 1u);
  EXPECT_EQ(rows[0].key, "");
  EXPECT_EQ(rows[0].owner, "admin");
  EXPECT_EQ(rows[1].seq, 4u);
  EXPECT_EQ(rows[1].key, "k1");
  ASSERT_TRUE(rows[1].object);
  EXPECT_EQ(rows[1].object->size, 9u);
  EXPECT_EQ(rows[1].version.ms, again.mtime_ms);
  EXPECT_EQ(rows[1].version.origin, "a");
  EXPECT_EQ(rows[2].key, "k2");
  EXPECT_TRUE(rows[2].deleted);
  EXPECT_FALSE(rows[2].object);
  EXPECT_EQ(rows[3].key, "never-there");
  EXPECT_EQ(feed->after(4, 100).value().size(), 2u);
  EXPECT_EQ(feed->count_after(1), 3u);
  EXPECT_EQ(feed->after(6, 100).value().size(), 0u);

  // The counter survives a restart (a peer's cursor refers to it).
  a_.storage.reset();
  StorageOptions o;
  for (size_t i = 0; i < o.master_key.size(); ++i) o.master_key[i] = static_cast<uint8_t>(i + 1);
  o.data_dir = a_.dir;
  o.zone = "a";
  a_.storage = Storage::open(o);
  EXPECT_EQ(a_.storage->last_change_seq(), 6u);
  put(*a_.storage, "site", "k3", "three");
  EXPECT_EQ(a_.storage->last_change_seq(), 7u);
}

TEST_F(ReplicationTest, ApplyIsIdempotentAndTheLastWriterWins) {
  Storage& b = *b_.storage;
  ASSERT_EQ(b.apply_bucket("site", false, from_a(1, 1000)), S3Error::kNone);
  ASSERT_TRUE(b.bucket("site").value());
  EXPECT_EQ(b.bucket("site").value()->owner, "admin");
  ASSERT_EQ(apply_put(b, "k", "v1", "etag1", from_a(2, 2000)), S3Error::kNone);
  EXPECT_EQ(read(b, "k"), "v1");
  EXPECT_EQ(b.head("site", "k").value()->mtime_ms, 2000);  // the origin's Last-Modified
  EXPECT_EQ(b.head("site", "k").value()->etag, "etag1");
  EXPECT_EQ(b.peer_cursor("a"), 2u);

  // The same row again (a sender that lost the reply): nothing changes.
  ASSERT_EQ(apply_put(b, "k", "other", "etag2", from_a(2, 2500)), S3Error::kNone);
  EXPECT_EQ(read(b, "k"), "v1");
  // A later row holding an older version (a write of zone a that lost to one made here): not applied.
  put(b, "site", "k", "made in b");
  int64_t here = b.head("site", "k").value()->mtime_ms;
  ASSERT_EQ(apply_put(b, "k", "older", "etag3", from_a(3, here - 1)), S3Error::kNone);
  EXPECT_EQ(read(b, "k"), "made in b");
  EXPECT_EQ(b.peer_cursor("a"), 3u);
  // Equal milliseconds: the origin zone's name decides, the same way on both sides ("a" < "b").
  ASSERT_EQ(apply_put(b, "k", "tie", "etag4", from_a(4, here)), S3Error::kNone);
  EXPECT_EQ(read(b, "k"), "made in b");

  // A newer delete wins; an older write that arrives after it does not bring the key back.
  ASSERT_EQ(b.apply_delete("site", "k", from_a(5, here + 10)), S3Error::kNone);
  EXPECT_EQ(read(b, "k"), "<absent>");
  ASSERT_EQ(apply_put(b, "k", "stale", "etag5", from_a(6, here + 5)), S3Error::kNone);
  EXPECT_EQ(read(b, "k"), "<absent>");
  EXPECT_EQ(b.peer_cursor("a"), 6u);
  // A write here after a peer's version from a clock ahead still comes out newer.
  ASSERT_EQ(apply_put(b, "f", "future", "etag6", from_a(7, Storage::now_ms() + 3'600'000)), S3Error::kNone);
  ObjectInfo local = put(b, "site", "f", "local");
  EXPECT_GT(local.mtime_ms, Storage::now_ms() + 3'000'000);

  // A bucket delete of a bucket that still holds objects here is not applied (they travel to the peer).
  ASSERT_EQ(b.apply_bucket("site", true, from_a(8, Storage::now_ms() + 7'200'000)), S3Error::kNone);
  EXPECT_TRUE(b.bucket("site").value());
  ASSERT_EQ(b.delete_object("site", "f"), S3Error::kNone);
  ASSERT_EQ(b.apply_bucket("site", true, from_a(9, Storage::now_ms() + 9'000'000)), S3Error::kNone);
  EXPECT_FALSE(b.bucket("site").value());
  EXPECT_EQ(b.peer_cursor("a"), 9u);
  // Changes applied from a peer are in this node's feed with their origin (not sent back to it).
  auto rows = b.open_feed()->after(0, 100).value();
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows.back().key, "");
  EXPECT_EQ(rows.back().version.origin, "a");
}

// A feed read that fails part way (a damaged page of the changes table) is an error the sender logs and
// retries: neither a short batch nor an empty one, which would read as "the peer is in sync".
TEST_F(ReplicationTest, AFailedFeedReadIsAnError) {
  StorageOptions o;
  for (size_t i = 0; i < o.master_key.size(); ++i) o.master_key[i] = static_cast<uint8_t>(i + 1);
  o.data_dir = a_.dir;
  o.zone = "a";
  const std::string db_path = a_.dir + "/index.sqlite";
  a_.storage.reset();
  ASSERT_EQ(index_faults::add_change_rows(db_path, "site", 3000), "");
  a_.storage = Storage::open(o);
  ASSERT_EQ(a_.storage->open_feed()->after(0, 3001).value().size(), 3000u);
  a_.storage.reset();
  ASSERT_TRUE(index_faults::damage_index_page(db_path));
  a_.storage = Storage::open(o);
  auto rows = a_.storage->open_feed()->after(0, 3001);
  ASSERT_FALSE(rows.ok()) << "a batch of " << rows->size() << " of 3000 rows";
  EXPECT_EQ(rows.error().source, core::ErrorSource::kStorage);
  EXPECT_TRUE(rows.error().retry_safe());
  EXPECT_NE(rows.error().message.find("change feed"), std::string::npos) << rows.error().message;
}

TEST_F(ReplicationTest, NoFeedWithoutAZone) {
  fs::path dir = fs::path(a_.dir) / "single";
  StorageOptions o;
  o.data_dir = dir.string();
  auto s = Storage::open(o);
  ASSERT_EQ(s->create_bucket("site", "admin"), S3Error::kNone);
  put(*s, "site", "k", "v");
  ASSERT_EQ(s->delete_object("site", "k"), S3Error::kNone);
  EXPECT_EQ(s->last_change_seq(), 0u);
  EXPECT_TRUE(s->open_feed()->after(0, 10).value().empty());
}

}  // namespace
}  // namespace cumulo::objstore
