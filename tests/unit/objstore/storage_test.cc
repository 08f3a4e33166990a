// The storage engine on a temporary directory: round trips, ranges, listing, multipart, overwrites,
// persistence, and that tampering is detected and no plaintext reaches the disk.
#include "objstore/internal/storage.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>

#include "objstore/wire/sigv4.h"
#include "unit/objstore/damaged_index.h"

namespace cumulo::objstore {
namespace {

namespace fs = std::filesystem;

class StorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cumulo-objstore-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    for (size_t i = 0; i < options_.master_key.size(); ++i)
      options_.master_key[i] = static_cast<uint8_t>(i * 7);
    options_.data_dir = dir_;
    open();
  }
  void TearDown() override {
    storage_.reset();
    fs::remove_all(dir_);
  }
  void open() {
    storage_.reset();
    storage_ = Storage::open(options_);
  }

  ObjectInfo put(const std::string& bucket, const std::string& key, std::string_view data) {
    auto w = storage_->begin_write().value();
    EXPECT_TRUE(w);
    // Several writes of odd sizes, so frame boundaries fall inside writes.
    for (size_t off = 0; off < data.size(); off += 7777)
      EXPECT_EQ(w->write(data.substr(off, 7777)), S3Error::kNone);
    ObjectInfo info;
    info.bucket = bucket;
    info.key = key;
    info.content_type = "text/plain";
    info.headers = {{"cache-control", "max-age=60"}, {"x-amz-meta-a", "b"}};
    EXPECT_EQ(storage_->commit_object(std::move(w), info), S3Error::kNone);
    return info;
  }

  std::string get(const std::string& bucket, const std::string& key, uint64_t off = 0,
                  uint64_t len = UINT64_MAX, ssize_t* status = nullptr) {
    auto info = storage_->head(bucket, key).value();
    if (!info) return "<missing>";
    auto r = storage_->reader(*info);
    len = std::min(len, info->size - std::min(off, info->size));
    std::string out(len, '\0');
    ssize_t n = len ? r->read(off, out.data(), len) : (r->verify_all() ? 0 : kSealedCorrupt);
    if (status) *status = n;
    if (n < 0) return "<corrupt>";
    out.resize(static_cast<size_t>(n));
    return out;
  }

  static std::string pattern(size_t n, char seed = 0) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 31 + static_cast<size_t>(seed)) % 251);
    return s;
  }

  std::string dir_;
  StorageOptions options_;
  std::unique_ptr<Storage> storage_;
};

TEST_F(StorageTest, RoundTripsAtFrameBoundaries) {
  ASSERT_EQ(storage_->create_bucket("b1", "alice"), S3Error::kNone);
  for (size_t n :
       {size_t{0}, size_t{1}, kFrameBytes - 1, kFrameBytes, kFrameBytes + 1, 3 * kFrameBytes + 17}) {
    std::string key = "k" + std::to_string(n);
    std::string data = pattern(n, static_cast<char>(n));
    ObjectInfo info = put("b1", key, data);
    EXPECT_EQ(info.size, n);
    uint8_t md5[16];
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), md5, &len, EVP_md5(), nullptr);
    EXPECT_EQ(info.etag, hex_encode(md5, 16));
    EXPECT_EQ(get("b1", key), data) << n;
    auto head = storage_->head("b1", key).value();
    ASSERT_TRUE(head);
    EXPECT_EQ(head->content_type, "text/plain");
    ASSERT_EQ(head->headers.size(), 2u);
    EXPECT_EQ(head->headers[1].second, "b");
  }
}

TEST_F(StorageTest, Ranges) {
  storage_->create_bucket("b1", "alice");
  std::string data = pattern(5 * kFrameBytes + 100);
  put("b1", "k", data);
  for (auto [off, len] : std::vector<std::pair<uint64_t, uint64_t>>{{0, 10},
                                                                    {kFrameBytes - 5, 10},
                                                                    {2 * kFrameBytes, kFrameBytes},
                                                                    {5 * kFrameBytes + 90, 10},
                                                                    {7, 1}}) {
    EXPECT_EQ(get("b1", "k", off, len), data.substr(off, len)) << off;
  }
}

TEST_F(StorageTest, NoPlaintextOnDisk) {
  storage_->create_bucket("b1", "alice");
  std::string marker = "PLAINTEXT-MARKER-";
  std::string data;
  for (int i = 0; i < 5000; ++i) data += marker;
  put("b1", "secret", data);
  for (const auto& e : fs::recursive_directory_iterator(dir_)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_EQ(ss.str().find(marker), std::string::npos) << e.path();
  }
}

TEST_F(StorageTest, TamperingIsDetected) {
  storage_->create_bucket("b1", "alice");
  std::string data = pattern(3 * kFrameBytes);
  ObjectInfo info = put("b1", "k", data);
  std::string path = dir_ + "/" + info.segments[0].file;
  // Flip one byte in the second frame: reads touching it fail, others still work.
  {
    int fd = ::open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    off_t at = static_cast<off_t>(kSealedHeaderBytes + kFrameBytes + kTagBytes + 100);
    char c;
    ASSERT_EQ(::pread(fd, &c, 1, at), 1);
    c ^= 1;
    ASSERT_EQ(::pwrite(fd, &c, 1, at), 1);
    ::close(fd);
  }
  EXPECT_EQ(get("b1", "k", 0, 100), data.substr(0, 100));
  ssize_t st = 0;
  EXPECT_EQ(get("b1", "k", kFrameBytes, 10, &st), "<corrupt>");
  EXPECT_EQ(st, kSealedCorrupt);
  EXPECT_EQ(get("b1", "k"), "<corrupt>");
}

TEST_F(StorageTest, TruncationAndWrongKeyAreDetected) {
  storage_->create_bucket("b1", "alice");
  std::string data = pattern(2 * kFrameBytes);
  ObjectInfo info = put("b1", "k", data);
  put("b1", "empty", "");
  std::string path = dir_ + "/" + info.segments[0].file;
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(sealed_file_size(kFrameBytes))), 0);
  EXPECT_EQ(get("b1", "k"), "<corrupt>");
  options_.master_key[0] ^= 1;
  open();
  EXPECT_EQ(get("b1", "empty"), "<corrupt>");
}

TEST_F(StorageTest, OverwriteLastCommitWinsAndOldFileGoes) {
  storage_->create_bucket("b1", "alice");
  auto w1 = storage_->begin_write().value();
  auto w2 = storage_->begin_write().value();
  std::string a(100000, 'a'), b(50000, 'b');
  ASSERT_EQ(w1->write(a), S3Error::kNone);
  ASSERT_EQ(w2->write(b), S3Error::kNone);
  ObjectInfo i2{"b1", "k", 0, "", 0, "", {}, {}};
  ObjectInfo i1 = i2;
  ASSERT_EQ(storage_->commit_object(std::move(w2), i2), S3Error::kNone);
  ASSERT_EQ(storage_->commit_object(std::move(w1), i1), S3Error::kNone);
  EXPECT_EQ(get("b1", "k"), a);
  EXPECT_FALSE(fs::exists(dir_ + "/" + i2.segments[0].file));
  EXPECT_TRUE(fs::exists(dir_ + "/" + i1.segments[0].file));
  EXPECT_TRUE(fs::is_empty(dir_ + "/tmp"));
}

TEST_F(StorageTest, AbandonedWriteLeavesNothing) {
  storage_->create_bucket("b1", "alice");
  auto w = storage_->begin_write().value();
  ASSERT_EQ(w->write("partial"), S3Error::kNone);
  w.reset();
  EXPECT_TRUE(fs::is_empty(dir_ + "/tmp"));
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir_ + "/objects")) files += e.is_regular_file();
  EXPECT_EQ(files, 0u);
  EXPECT_FALSE(storage_->head("b1", "k").value());
}

TEST_F(StorageTest, ListingWithPrefixDelimiterAndPages) {
  storage_->create_bucket("b1", "alice");
  for (const char* k : {"a.txt", "dir/x", "dir/y", "dir/sub/z", "dir2/q", "e", "photos/2024/a.jpg",
                        "photos/2024/b.jpg", "photos/2025/c.jpg"})
    put("b1", k, k);
  ListResult all = storage_->list("b1", "", "", "", 1000).value();
  EXPECT_EQ(all.objects.size(), 9u);
  EXPECT_FALSE(all.truncated);

  ListResult top = storage_->list("b1", "", "/", "", 1000).value();
  std::vector<std::string> keys, prefixes = top.prefixes;
  for (auto& o : top.objects) keys.push_back(o.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"a.txt", "e"}));
  EXPECT_EQ(prefixes, (std::vector<std::string>{"dir/", "dir2/", "photos/"}));

  ListResult dir = storage_->list("b1", "dir/", "/", "", 1000).value();
  ASSERT_EQ(dir.objects.size(), 2u);
  EXPECT_EQ(dir.prefixes, std::vector<std::string>{"dir/sub/"});

  // Pages of two, continuing from the last key or prefix, visit everything exactly once.
  std::vector<std::string> seen;
  std::string after;
  for (int page = 0; page < 10; ++page) {
    ListResult r = storage_->list("b1", "", "/", after, 2).value();
    for (auto& o : r.objects) seen.push_back(o.key);
    for (auto& p : r.prefixes) seen.push_back(p);
    if (!r.truncated) break;
    after = r.last;
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"a.txt", "dir/", "dir2/", "e", "photos/"}));

  ListResult photos = storage_->list("b1", "photos/", "/", "", 1).value();
  EXPECT_TRUE(photos.truncated);
  EXPECT_EQ(photos.prefixes, std::vector<std::string>{"photos/2024/"});
  ListResult next = storage_->list("b1", "photos/", "/", photos.last, 5).value();
  EXPECT_EQ(next.prefixes, std::vector<std::string>{"photos/2025/"});
  EXPECT_FALSE(next.truncated);
}

TEST_F(StorageTest, BucketsAndPersistence) {
  EXPECT_EQ(storage_->create_bucket("b1", "alice"), S3Error::kNone);
  EXPECT_EQ(storage_->create_bucket("b1", "alice"), S3Error::kBucketAlreadyOwnedByYou);
  EXPECT_EQ(storage_->create_bucket("b1", "bob"), S3Error::kBucketAlreadyExists);
  put("b1", "k", "hello");
  EXPECT_EQ(storage_->delete_bucket("b1"), S3Error::kBucketNotEmpty);
  EXPECT_EQ(storage_->delete_bucket("nope"), S3Error::kNoSuchBucket);
  open();
  EXPECT_EQ(get("b1", "k"), "hello");
  EXPECT_EQ(storage_->delete_object("b1", "k"), S3Error::kNone);
  EXPECT_EQ(storage_->delete_object("b1", "k"), S3Error::kNone);
  EXPECT_EQ(storage_->delete_bucket("b1"), S3Error::kNone);
  EXPECT_TRUE(storage_->buckets().value().empty());
}

TEST_F(StorageTest, Multipart) {
  storage_->create_bucket("b1", "alice");
  UploadInfo u;
  u.bucket = "b1";
  u.key = "big";
  u.content_type = "video/mp4";
  std::string id = storage_->create_upload(u).value();
  ASSERT_FALSE(id.empty());
  std::string p1 = pattern(5 * 1024 * 1024, 1), p2 = pattern(1000, 2), p3 = pattern(10, 3);
  std::vector<std::pair<int, std::string>> list;
  for (auto [n, data] : std::vector<std::pair<int, std::string*>>{{1, &p1}, {2, &p2}, {3, &p3}}) {
    auto w = storage_->begin_write().value();
    ASSERT_EQ(w->write(*data), S3Error::kNone);
    PartInfo part;
    ASSERT_EQ(storage_->commit_part(std::move(w), id, n, part), S3Error::kNone);
    list.emplace_back(n, part.etag);
  }
  PartList two = storage_->parts(id, 0, 2).value();
  EXPECT_EQ(two.parts.size(), 2u);
  EXPECT_TRUE(two.truncated);
  UploadList ups = storage_->uploads("b1", "", 10).value();
  EXPECT_EQ(ups.uploads.size(), 1u);
  EXPECT_FALSE(ups.truncated);

  ObjectInfo out;
  auto bad_order = list;
  std::swap(bad_order[0], bad_order[1]);
  EXPECT_EQ(storage_->complete_upload(id, bad_order, out), S3Error::kInvalidPartOrder);
  auto bad_etag = list;
  bad_etag[1].second = std::string(32, '0');
  EXPECT_EQ(storage_->complete_upload(id, bad_etag, out), S3Error::kInvalidPart);
  // Part 2 is under 5 MiB and not the last one.
  EXPECT_EQ(storage_->complete_upload(id, list, out), S3Error::kEntityTooSmall);
  std::vector<std::pair<int, std::string>> ok = {list[0], list[2]};
  ASSERT_EQ(storage_->complete_upload(id, ok, out), S3Error::kNone);
  EXPECT_EQ(out.etag.substr(out.etag.size() - 2), "-2");
  EXPECT_EQ(out.content_type, "video/mp4");
  EXPECT_EQ(get("b1", "big"), p1 + p3);
  EXPECT_EQ(get("b1", "big", p1.size() - 3, 6), p1.substr(p1.size() - 3) + p3.substr(0, 3));
  EXPECT_FALSE(storage_->upload(id).value());
  EXPECT_EQ(storage_->abort_upload(id), S3Error::kNoSuchUpload);
  // The unused part's file went with the completion; only the object's two segments remain.
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir_ + "/objects")) files += e.is_regular_file();
  EXPECT_EQ(files, 2u);
}

// A store whose index predates part checksums: its parts table gains the columns at start-up, the parts
// already there keep working (no checksum), and new parts store theirs.
TEST_F(StorageTest, PartChecksumColumnsAreAddedToAnOlderIndex) {
  storage_.reset();
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/index.sqlite").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db,
                   "CREATE TABLE parts(upload_id TEXT NOT NULL, number INTEGER NOT NULL, size INTEGER NOT "
                   "NULL, etag TEXT NOT NULL, mtime_ms INTEGER NOT NULL, file TEXT NOT NULL, PRIMARY "
                   "KEY(upload_id, number)) WITHOUT ROWID;"
                   "INSERT INTO parts VALUES('old-upload', 1, 3, 'abc', 1, 'objects/00/x');",
                   nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  open();
  auto old = storage_->parts("old-upload", 0, 10).value().parts;
  ASSERT_EQ(old.size(), 1u);
  EXPECT_EQ(old[0].etag, "abc");
  EXPECT_EQ(old[0].checksum, "");
  storage_->create_bucket("b1", "alice");
  UploadInfo u;
  u.bucket = "b1";
  u.key = "k";
  std::string id = storage_->create_upload(u).value();
  auto w = storage_->begin_write().value();
  ASSERT_EQ(w->write("hello"), S3Error::kNone);
  PartInfo part;
  part.checksum_algorithm = "CRC32";
  part.checksum = "NhCmhg==";
  ASSERT_EQ(storage_->commit_part(std::move(w), id, 1, part), S3Error::kNone);
  open();  // a second start finds the columns there
  auto now = storage_->parts(id, 0, 10).value().parts;
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].checksum_algorithm, "CRC32");
  EXPECT_EQ(now[0].checksum, "NhCmhg==");
}

// A SQLite step that fails part way through a listing (a damaged page of the index: SQLITE_CORRUPT) is an
// error, not the rows before the damage handed out as the whole bucket.
TEST_F(StorageTest, AFailedIndexReadIsAnErrorNotAShortListing) {
  storage_->create_bucket("b1", "alice");
  UploadInfo u;
  u.bucket = "b1";
  u.key = "k";
  std::string upload_id = storage_->create_upload(u).value();
  storage_.reset();
  constexpr int kRows = 3000;
  std::string db_path = dir_ + "/index.sqlite";
  ASSERT_EQ(index_faults::add_index_rows(db_path, "b1", kRows), "");
  open();
  ASSERT_EQ(storage_->list("b1", "", "", "", kRows + 1).value().objects.size(), size_t{kRows});
  storage_.reset();
  ASSERT_TRUE(index_faults::damage_index_page(db_path));
  open();
  StorageResult<ListResult> listed = storage_->list("b1", "", "", "", kRows + 1);
  ASSERT_FALSE(listed.ok()) << "a listing of " << listed->objects.size() << " of " << kRows << " keys";
  EXPECT_EQ(listed.error(), S3Error::kInternalError);
  // Tables on undamaged pages still read.
  EXPECT_TRUE(storage_->buckets().ok());
  EXPECT_TRUE(storage_->parts(upload_id, 0, 10).ok());
}

// A point read that fails (the key's row is on the damaged page) is an error, never "no such object": a GET
// would otherwise answer 404 for an object that exists, and a delete would forget the files of the row.
TEST_F(StorageTest, AFailedPointReadIsAnErrorNotAMissingObject) {
  storage_->create_bucket("b1", "alice");
  storage_.reset();
  constexpr int kRows = 3000;
  const std::string db_path = dir_ + "/index.sqlite";
  ASSERT_EQ(index_faults::add_index_rows(db_path, "b1", kRows), "");
  ASSERT_TRUE(index_faults::damage_index_page(db_path));
  open();
  int failed = 0;
  for (int i = 0; i < kRows; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "key-%05d", i);
    StorageResult<std::optional<ObjectInfo>> o = storage_->head("b1", key);
    StorageResult<std::shared_ptr<const ObjectInfo>> cached = storage_->lookup("b1", key);
    EXPECT_EQ(o.ok(), cached.ok()) << key;
    if (!o.ok()) {
      EXPECT_EQ(o.error(), S3Error::kInternalError);
      ++failed;
      continue;
    }
    EXPECT_TRUE(o->has_value()) << key << " read as missing";
    EXPECT_TRUE(cached.ok() && *cached) << key << " read as missing";
  }
  EXPECT_GT(failed, 0) << "no key was on the damaged page";
}

// The start-up sweep removes data files no row refers to: when it cannot read every row it must remove
// nothing, or the files of the rows it missed go as orphans.
TEST_F(StorageTest, SweepRemovesNothingWhenTheIndexCannotBeReadToTheEnd) {
  storage_->create_bucket("b1", "alice");
  ObjectInfo live = put("b1", "zz-live", "still here");  // sorts after every key-NNNNN row
  storage_.reset();
  const std::string db_path = dir_ + "/index.sqlite";
  ASSERT_EQ(index_faults::add_index_rows(db_path, "b1", 3000), "");
  ASSERT_TRUE(index_faults::damage_index_page(db_path));
  std::ofstream(dir_ + "/objects/00/orphan") << "left by a crash";
  open();
  EXPECT_EQ(storage_->sweep_orphans(), 0u);
  EXPECT_TRUE(fs::exists(dir_ + "/" + live.segments.at(0).file));
  EXPECT_TRUE(fs::exists(dir_ + "/objects/00/orphan"));
}

TEST_F(StorageTest, AsyncCommitsGroupAndOneKeyEndsWhole) {
  storage_->create_bucket("b1", "alice");
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  std::vector<std::string> acked_same_key;
  const int kObjects = 60;
  for (int i = 0; i < kObjects; ++i) {
    auto w = storage_->begin_write().value();
    std::string data = pattern(1000 + static_cast<size_t>(i) * 3000, static_cast<char>(i));
    ASSERT_EQ(w->write(data), S3Error::kNone);
    ObjectInfo info;
    info.bucket = "b1";
    info.key = i % 2 ? "same" : "k" + std::to_string(i);
    storage_->commit_object_async(std::move(w), info, [&, data](S3Error e, const ObjectInfo& o) {
      EXPECT_EQ(e, S3Error::kNone);
      std::lock_guard<std::mutex> lock(mu);
      if (o.key == "same") acked_same_key.push_back(data);
      ++done;
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return done == kObjects; }));
  }
  // The winner is one of the acknowledged versions, whole; every other key reads back exactly.
  std::string same = get("b1", "same");
  // Replies come in commit order, so the last one acknowledged is the one that won.
  ASSERT_FALSE(acked_same_key.empty());
  EXPECT_EQ(same, acked_same_key.back());
  for (int i = 0; i < kObjects; i += 2)
    EXPECT_EQ(get("b1", "k" + std::to_string(i)),
              pattern(1000 + static_cast<size_t>(i) * 3000, static_cast<char>(i)));
  storage_->stop_commit_threads();
  // Only the winner's file of "same" is left, plus one per other key.
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir_ + "/objects")) files += e.is_regular_file();
  EXPECT_EQ(files, static_cast<size_t>(kObjects / 2 + 1));
  EXPECT_TRUE(fs::is_empty(dir_ + "/tmp"));
}

TEST_F(StorageTest, SweepRemovesOnlyUnreferencedFiles) {
  storage_->create_bucket("b1", "alice");
  put("b1", "kept", "data");
  UploadInfo u;
  u.bucket = "b1";
  u.key = "mp";
  std::string id = storage_->create_upload(u).value();
  auto w = storage_->begin_write().value();
  ASSERT_EQ(w->write("part"), S3Error::kNone);
  PartInfo part;
  ASSERT_EQ(storage_->commit_part(std::move(w), id, 1, part), S3Error::kNone);
  // What a crash before the commit leaves behind.
  std::string stray = dir_ + "/objects/ab/0123456789abcdef";
  { std::ofstream(stray) << "orphan"; }
  open();
  EXPECT_EQ(storage_->sweep_orphans(), 1u);
  EXPECT_FALSE(fs::exists(stray));
  EXPECT_EQ(get("b1", "kept"), "data");
  EXPECT_TRUE(fs::exists(dir_ + "/" + part.file));
  EXPECT_EQ(storage_->sweep_orphans(), 0u);
}

TEST_F(StorageTest, SizeLimit) {
  options_.max_object_bytes = 1000;
  open();
  auto w = storage_->begin_write().value();
  EXPECT_EQ(w->write(std::string(600, 'x')), S3Error::kNone);
  EXPECT_EQ(w->write(std::string(600, 'x')), S3Error::kEntityTooLarge);
}

TEST(MasterKey, LoadsHexAndRaw) {
  char tmpl[] = "/tmp/cumulo-key-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  std::string hex(64, 'a');
  hex += "\n";
  ASSERT_EQ(::write(fd, hex.data(), hex.size()), static_cast<ssize_t>(hex.size()));
  ::close(fd);
  MasterKey k = load_master_key(tmpl);
  EXPECT_EQ(k[0], 0xaa);
  { std::ofstream(tmpl, std::ios::trunc) << "short"; }
  EXPECT_THROW(load_master_key(tmpl), std::runtime_error);
  ::unlink(tmpl);
  EXPECT_THROW(load_master_key("/nonexistent/key"), std::runtime_error);
}

}  // namespace
}  // namespace cumulo::objstore
