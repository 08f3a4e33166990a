#include "objstore/internal/storage.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "core/log.h"
#include "objstore/internal/object_cache.h"
#include "objstore/wire/sigv4.h"

namespace cumulo::objstore {

namespace {}  // namespace

// Prepared statements of one connection, kept across calls (preparing costs more than a point
// lookup). Keyed by the SQL text's address: every statement is a literal.
struct Storage::StatementCache {
  struct Entry {
    sqlite3_stmt* st = nullptr;
    bool in_use = false;
  };
  std::unordered_map<const char*, Entry> entries;
  ~StatementCache() {
    for (auto& [sql, e] : entries) sqlite3_finalize(e.st);
  }
};

struct Storage::Connection {
  sqlite3* db = nullptr;
  std::unique_ptr<StatementCache> statements;
  std::thread::id thread;
  ~Connection() {
    statements.reset();
    if (db) sqlite3_close_v2(db);
  }
};

namespace {
// The calling thread's connection of the store it used last: a second lookup costs a comparison. Stores are
// told apart by a number that is never reused (a new store may get a freed one's address).
std::atomic<uint64_t> g_next_storage_id{1};
thread_local uint64_t t_storage_id = 0;
thread_local Storage::Connection* t_connection = nullptr;
}  // namespace

namespace {

// A prepared statement, from the cache when one is given (and not already in use), finalized or reset when it
// goes out of scope.
class Stmt {
 public:
  Stmt(Storage::Connection& c, const char* sql) : Stmt(c.db, c.statements.get(), sql) {}
  Stmt(sqlite3* db, Storage::StatementCache* cache, const char* sql) {
    if (cache) {
      auto& e = cache->entries[sql];
      if (!e.in_use) {
        if (!e.st && sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &e.st, nullptr) != SQLITE_OK)
          throw std::runtime_error(std::string("sqlite: ") + sqlite3_errmsg(db) + " in: " + sql);
        e.in_use = true;
        entry_ = &e;
        st_ = e.st;
        return;
      }
    }
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("sqlite: ") + sqlite3_errmsg(db) + " in: " + sql);
  }
  ~Stmt() {
    if (entry_) {
      sqlite3_reset(st_);
      sqlite3_clear_bindings(st_);
      entry_->in_use = false;
    } else {
      sqlite3_finalize(st_);
    }
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& bind(int i, std::string_view s) {
    sqlite3_bind_text(st_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  int step() { return sqlite3_step(st_); }
  void reset() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  std::string text(int col) const {
    const unsigned char* p = sqlite3_column_text(st_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(st_, col)))
             : std::string();
  }
  int64_t integer(int col) const { return sqlite3_column_int64(st_, col); }
  sqlite3_stmt* get() { return st_; }

 private:
  sqlite3_stmt* st_ = nullptr;
  Storage::StatementCache::Entry* entry_ = nullptr;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back when not committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {
    rc_ = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
  }
  ~Transaction() {
    if (rc_ == SQLITE_OK && !done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  bool ok() const { return rc_ == SQLITE_OK; }
  int begin_rc() const { return rc_; }
  int commit() {
    int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) done_ = true;
    return rc;
  }

 private:
  sqlite3* db_;
  int rc_;
  bool done_ = false;
};

std::string random_hex(size_t bytes) {
  uint8_t buf[32];
  RAND_bytes(buf, static_cast<int>(bytes));
  return hex_encode(buf, bytes);
}

std::string headers_json(const MetaHeaders& h) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& [k, v] : h) j.push_back({k, v});
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

MetaHeaders headers_from_json(const std::string& s) {
  MetaHeaders out;
  auto j = nlohmann::json::parse(s, nullptr, false);
  if (!j.is_array()) return out;
  for (const auto& e : j)
    if (e.is_array() && e.size() == 2) out.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
  return out;
}

std::string segments_json(const std::vector<Segment>& segs) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& s : segs) j.push_back({s.file, s.size});
  return j.dump();
}

std::vector<Segment> segments_from_json(const std::string& s) {
  std::vector<Segment> out;
  auto j = nlohmann::json::parse(s, nullptr, false);
  if (!j.is_array()) return out;
  for (const auto& e : j)
    if (e.is_array() && e.size() == 2) out.push_back({e[0].get<std::string>(), e[1].get<uint64_t>()});
  return out;
}

int fsync_dir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int rc = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create directory " + path + ": " + std::strerror(errno));
}

S3Error errno_to_s3(int e) {
  return (e == ENOSPC || e == EDQUOT) ? S3Error::kStorageFull : S3Error::kInternalError;
}

// The smallest string greater than every string starting with p (p ends with a byte below 0xFF: a delimiter).
std::string prefix_successor(std::string p) {
  while (!p.empty() && static_cast<unsigned char>(p.back()) == 0xFF) p.pop_back();
  if (!p.empty()) p.back() = static_cast<char>(static_cast<unsigned char>(p.back()) + 1);
  return p;
}

bool bucket_exists_in(sqlite3* db, std::string_view name) {
  Stmt st(db, nullptr, "SELECT 1 FROM buckets WHERE name = ?1");
  st.bind(1, name);
  return st.step() == SQLITE_ROW;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// DataWriter

DataWriter::~DataWriter() {
  if (md5_) EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(md5_));
  sealed_.reset();
  // Still set: never sealed, so the file goes.
  if (!path_.empty()) ::unlink(path_.c_str());
}

S3Error DataWriter::write(std::string_view data) {
  if (failed_ != S3Error::kNone) return failed_;
  if (size_ + data.size() > max_) return failed_ = S3Error::kEntityTooLarge;
  size_ += data.size();
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(md5_), data.data(), data.size());
  if (int e = sealed_->write(data)) return failed_ = errno_to_s3(e);
  return S3Error::kNone;
}

const std::string& DataWriter::md5() {
  if (digest_.empty()) {
    uint8_t d[16];
    unsigned int n = 0;
    EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(md5_), d, &n);
    digest_.assign(reinterpret_cast<const char*>(d), 16);
  }
  return digest_;
}

// ---------------------------------------------------------------------------------------------------------
// ObjectReader

bool ObjectReader::open_part(Part& p) {
  if (p.reader) return true;
  if (p.open_error != 0) {
    io_error_ = p.open_error == kSealedIoError;
    return false;
  }
  int err = 0;
  bool corrupt = false;
  p.reader = SealedReader::open(*key_, p.path, p.size, &err, &corrupt);
  if (!p.reader && err != 0 && err != ENOENT) io_error_ = true;
  return p.reader != nullptr;
}

bool ObjectReader::open_here() {
  bool all = true;
  for (auto& p : parts_) {
    if (p.reader) continue;
    int err = 0;
    bool corrupt = false;
    p.reader = SealedReader::open(*key_, p.path, p.size, &err, &corrupt, OpenMode::kCachedOnly);
    all = all && p.reader;
  }
  return all;
}

void ObjectReader::open_detached() {
  for (auto& p : parts_) {
    if (p.reader || p.open_error != 0) continue;
    int err = 0;
    bool corrupt = false;
    p.reader = SealedReader::open(*key_, p.path, p.size, &err, &corrupt, OpenMode::kDetached);
    if (p.reader)
      p.detached = true;
    else
      p.open_error = err != 0 && err != ENOENT ? kSealedIoError : kSealedCorrupt;
  }
}

bool ObjectReader::mapped() const {
  for (const auto& p : parts_)
    if (sealed_file_size(p.size) > kMappedFileMaxBytes) return false;
  return true;
}

void ObjectReader::adopt_here() {
  for (auto& p : parts_)
    if (p.reader && p.detached) {
      p.reader->adopt_here(p.path);
      p.detached = false;
    }
}

ssize_t ObjectReader::read(uint64_t offset, char* out, size_t len) {
  if (offset >= size_) return 0;
  len = static_cast<size_t>(std::min<uint64_t>(len, size_ - offset));
  size_t done = 0;
  for (auto& p : parts_) {
    if (done == len) break;
    uint64_t pos = offset + done;
    if (pos >= p.start + p.size) continue;
    if (!open_part(p)) return io_error_ ? kSealedIoError : kSealedCorrupt;
    size_t want = static_cast<size_t>(std::min<uint64_t>(len - done, p.start + p.size - pos));
    ssize_t n = p.reader->read(pos - p.start, out + done, want);
    if (n < 0) return n;
    if (static_cast<size_t>(n) != want) return kSealedCorrupt;
    done += want;
  }
  return static_cast<ssize_t>(done);
}

bool ObjectReader::verify_all() {
  for (auto& p : parts_)
    if (!open_part(p) || !p.reader->verify_all()) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// Storage

int64_t Storage::now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<Storage> Storage::open(const StorageOptions& options) {
  std::unique_ptr<Storage> s(new Storage());
  s->options_ = options;
  s->dir_ = options.data_dir;
  while (s->dir_.size() > 1 && s->dir_.back() == '/') s->dir_.pop_back();
  make_dir(s->dir_);
  make_dir(s->dir_ + "/tmp");
  make_dir(s->dir_ + "/objects");
  for (int i = 0; i < 256; ++i) {
    char sub[8];
    std::snprintf(sub, sizeof sub, "/%02x", i);
    make_dir(s->dir_ + "/objects" + sub);
  }
  // Leftovers of uploads a crash interrupted: never visible, so they just go.
  if (DIR* d = ::opendir((s->dir_ + "/tmp").c_str())) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ::unlink((s->dir_ + "/tmp/" + e->d_name).c_str());
    ::closedir(d);
  }
  s->id_ = g_next_storage_id.fetch_add(1);
  s->object_cache_ = std::make_unique<ObjectCache>(ObjectCacheOptions{
      options.lookup_cache_entries, options.read_cache_max_bytes, options.read_cache_max_object_bytes});
  s->exec(
      "CREATE TABLE IF NOT EXISTS buckets(name TEXT PRIMARY KEY, owner TEXT NOT NULL, created_ms INTEGER NOT "
      "NULL) WITHOUT ROWID");
  s->exec(
      "CREATE TABLE IF NOT EXISTS objects(bucket TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL, "
      "etag TEXT NOT NULL, mtime_ms INTEGER NOT NULL, content_type TEXT NOT NULL, headers TEXT NOT NULL, "
      "segments TEXT NOT NULL, PRIMARY KEY(bucket, key)) WITHOUT ROWID");
  s->exec(
      "CREATE TABLE IF NOT EXISTS uploads(upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT "
      "NULL, "
      "initiated_ms INTEGER NOT NULL, content_type TEXT NOT NULL, headers TEXT NOT NULL) WITHOUT ROWID");
  s->exec("CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads(bucket, key)");
  s->exec(
      "CREATE TABLE IF NOT EXISTS parts(upload_id TEXT NOT NULL, number INTEGER NOT NULL, size INTEGER NOT "
      "NULL, etag TEXT NOT NULL, mtime_ms INTEGER NOT NULL, file TEXT NOT NULL, PRIMARY KEY(upload_id, "
      "number)) "
      "WITHOUT ROWID");
  // Replication: the change feed (one row per bucket and key, the bucket itself under ""), the feed's
  // counter, and how far the feed of each peer has been applied here.
  s->exec(
      "CREATE TABLE IF NOT EXISTS changes(bucket TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL "
      "UNIQUE, version_ms INTEGER NOT NULL, origin TEXT NOT NULL, deleted INTEGER NOT NULL, PRIMARY "
      "KEY(bucket, key)) WITHOUT ROWID");
  s->exec(
      "CREATE TABLE IF NOT EXISTS repl_state(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID");
  s->exec("INSERT OR IGNORE INTO repl_state(name, value) VALUES('seq', 0)");
  s->exec(
      "CREATE TABLE IF NOT EXISTS peer_cursors(zone TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID");
  s->migrate_schema();
  {
    Stmt st(s->here().db, nullptr, "SELECT value FROM repl_state WHERE name = 'seq'");
    if (st.step() == SQLITE_ROW) s->last_seq_ = static_cast<uint64_t>(st.integer(0));
  }
  return s;
}

void Storage::migrate_schema() {
  // Part checksums (x-amz-checksum-* on UploadPart): two columns of parts, empty for the parts of uploads
  // begun before them. ALTER TABLE ... ADD COLUMN rewrites nothing; it runs once per store.
  bool has_checksum = false;
  {
    Stmt st(here().db, nullptr, "SELECT name FROM pragma_table_info('parts')");
    while (st.step() == SQLITE_ROW)
      if (st.text(0) == "checksum") has_checksum = true;
  }
  if (!has_checksum) {
    exec("ALTER TABLE parts ADD COLUMN checksum_algorithm TEXT NOT NULL DEFAULT ''");
    exec("ALTER TABLE parts ADD COLUMN checksum TEXT NOT NULL DEFAULT ''");
  }
}

sqlite3* Storage::open_db() {
  std::string db_path = dir_ + "/index.sqlite";
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string why = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    throw std::runtime_error("cannot open " + db_path + ": " + why);
  }
  sqlite3_busy_timeout(db, 10000);
  for (const char* pragma : {"PRAGMA journal_mode=WAL",
                             // FULL: a committed transaction is on disk before COMMIT returns, which is
                             // when a PUT is acknowledged.
                             "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=OFF"}) {
    if (sqlite3_exec(db, pragma, nullptr, nullptr, nullptr) != SQLITE_OK) {
      std::string why = sqlite3_errmsg(db);
      sqlite3_close_v2(db);
      throw std::runtime_error("cannot set up " + db_path + ": " + why);
    }
  }
  return db;
}

Storage::~Storage() {
  stop_commit_threads();
  commit_cache_.reset();
  if (commit_db_) sqlite3_close_v2(commit_db_);
  connections_.clear();
}

Storage::Connection& Storage::here() {
  if (t_storage_id == id_) return *t_connection;
  std::lock_guard<std::mutex> lock(connections_mu_);
  const auto me = std::this_thread::get_id();
  Connection* found = nullptr;
  for (auto& c : connections_)
    if (c->thread == me) found = c.get();
  if (!found) {
    auto c = std::make_unique<Connection>();
    c->db = open_db();
    c->statements = std::make_unique<StatementCache>();
    c->thread = me;
    found = connections_.emplace_back(std::move(c)).get();
  }
  t_storage_id = id_;
  t_connection = found;
  return *found;
}

Storage::StatementCache* Storage::statements(sqlite3* db) {
  if (db == commit_db_) return commit_cache_.get();
  Connection& c = here();
  return c.db == db ? c.statements.get() : nullptr;
}

// Seal threads: each spends most of its time in fsync (the file, then its directory), so more of them than
// cores keeps more fsyncs in flight, which the file system's journal commits together. As many as the PUTs
// that are commonly in flight at once: with 8, 16 concurrent PUTs queued behind 8 fsyncs and reached
// 0.46x-1.01x of a raw loop with 16 writers (bench/objstore.sh, medians of 5 rounds); with 32, 1.07x-1.33x.
// An idle one costs a stack and nothing else.
constexpr int kSealThreads = 32;

void Storage::start_commit_threads() {
  // On the first asynchronous commit, which several workers may make at once.
  std::call_once(commit_threads_started_, [this] {
    commit_db_ = open_db();
    commit_cache_ = std::make_unique<StatementCache>();
    // Each sealer holds one upload's final frame at a time.
    for (int i = 0; i < kSealThreads; ++i) sealers_.emplace_back([this] { seal_loop(); });
    indexer_ = std::thread([this] { index_loop(); });
  });
}

void Storage::stop_commit_threads() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  seal_cv_.notify_all();
  index_cv_.notify_all();
  for (auto& t : sealers_) t.join();
  sealers_.clear();
  if (indexer_.joinable()) indexer_.join();
  // What the index thread's last batches replaced after the seal threads had gone.
  std::vector<std::string> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(to_remove_);
  }
  remove_files(left);
}

void Storage::commit_object_async(std::unique_ptr<DataWriter> writer, ObjectInfo info, CommitDone done) {
  queue_commit(std::move(writer), std::move(info), std::nullopt, std::move(done));
}

void Storage::queue_commit(std::unique_ptr<DataWriter> writer, ObjectInfo info,
                           std::optional<RemoteChange> remote, CommitDone done) {
  start_commit_threads();
  auto job = std::make_unique<PendingCommit>();
  job->writer = std::move(writer);
  job->info = std::move(info);
  job->remote = std::move(remote);
  job->done = std::move(done);
  {
    std::lock_guard<std::mutex> lock(mu_);
    to_seal_.push_back(std::move(job));
  }
  seal_cv_.notify_one();
}

void Storage::seal_loop() {
  for (;;) {
    std::unique_ptr<PendingCommit> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      seal_cv_.wait(lock, [this] { return stopping_ || !to_seal_.empty() || !to_remove_.empty(); });
      if (to_seal_.empty()) {
        if (to_remove_.empty()) return;  // stopping, and nothing left
        std::vector<std::string> files;
        files.swap(to_remove_);
        lock.unlock();
        remove_files(files);
        continue;
      }
      job = std::move(to_seal_.front());
      to_seal_.pop_front();
      ++sealing_;
    }
    std::string file;
    job->error = seal(*job->writer, file);
    if (job->error == S3Error::kNone) {
      ObjectInfo& info = job->info;
      info.size = job->writer->size();
      // A peer's object keeps its origin's ETag (checked against the data: "-N" for a multipart upload).
      if (!job->remote)
        info.etag = hex_encode(reinterpret_cast<const uint8_t*>(job->writer->md5().data()), 16);
      info.segments = {Segment{file, info.size}};
    }
    job->writer.reset();
    std::vector<std::string> files;
    {
      std::lock_guard<std::mutex> lock(mu_);
      to_index_.push_back(std::move(job));
      --sealing_;
      // Awake anyway: the replaced files waiting go now, without waking another thread for them.
      files.swap(to_remove_);
    }
    index_cv_.notify_one();
    remove_files(files);
  }
}

void Storage::index_loop() {
  for (;;) {
    std::deque<std::unique_ptr<PendingCommit>> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      index_cv_.wait(
          lock, [this] { return !to_index_.empty() || (stopping_ && to_seal_.empty() && sealing_ == 0); });
      if (to_index_.empty()) return;
      batch.swap(to_index_);
    }
    // Group commit: every PUT that is sealed by now becomes visible in one transaction, one WAL fsync.
    std::vector<std::string> old_files;
    uint64_t batch_seq = 0;
    int rc = sqlite3_exec(commit_db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) {
      int64_t now = now_ms();
      for (auto& job : batch) {
        if (job->error != S3Error::kNone) continue;
        const RemoteChange* remote = job->remote ? &*job->remote : nullptr;
        if (remote && !remote_is_newer(commit_db_, job->info.bucket, job->info.key, *remote)) {
          // Already here, or older than what is here: only the peer's cursor moves.
          for (auto& seg : job->info.segments) old_files.push_back(seg.file);
          job->info.segments.clear();
          if (int arc = advance_cursor(commit_db_, *remote); arc != SQLITE_DONE) {
            rc = arc;
            break;
          }
          continue;
        }
        if (!remote) job->info.mtime_ms = now;
        uint64_t seq = 0;
        if (int irc = insert_object(commit_db_, job->info, old_files, remote, &seq); irc != SQLITE_DONE) {
          rc = irc;
          break;
        }
        batch_seq = std::max(batch_seq, seq);
      }
      if (rc == SQLITE_OK) rc = sqlite3_exec(commit_db_, "COMMIT", nullptr, nullptr, nullptr);
      if (rc != SQLITE_OK) sqlite3_exec(commit_db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    if (rc == SQLITE_OK) {
      for (auto& job : batch)
        if (job->error == S3Error::kNone) invalidate(job->info.bucket, job->info.key);
      if (!old_files.empty()) {
        bool wake;
        {
          std::lock_guard<std::mutex> lock(mu_);
          to_remove_.insert(to_remove_.end(), std::make_move_iterator(old_files.begin()),
                            std::make_move_iterator(old_files.end()));
          // A seal thread that is busy takes them when it is done; only an idle one needs waking.
          wake = sealing_ == 0 && to_seal_.empty();
        }
        if (wake) seal_cv_.notify_one();
      }
      changed(batch_seq);
    } else {
      S3Error e = db_error(rc);
      for (auto& job : batch) {
        if (job->error != S3Error::kNone) continue;
        job->error = e;
        for (auto& seg : job->info.segments) remove_files({seg.file});
      }
    }
    for (auto& job : batch) job->done(job->error, job->info);
  }
}

void Storage::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(here().db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw std::runtime_error("sqlite: " + msg + " in: " + sql);
  }
}

S3Error Storage::db_error(int rc) {
  // SQLite reports a full disk as SQLITE_FULL, or as an I/O error with errno left at ENOSPC.
  if (rc == SQLITE_FULL || ((rc & 0xff) == SQLITE_IOERR && errno == ENOSPC)) return S3Error::kStorageFull;
  return S3Error::kInternalError;
}

S3Error Storage::create_bucket(std::string_view name, std::string_view owner) {
  StorageResult<std::optional<BucketInfo>> b = bucket(name);
  if (!b) return b.error();
  if (*b) return (*b)->owner == owner ? S3Error::kBucketAlreadyOwnedByYou : S3Error::kBucketAlreadyExists;
  Transaction tx(here().db);
  if (!tx.ok()) return db_error(tx.begin_rc());
  Stmt st(here(), "INSERT INTO buckets(name, owner, created_ms) VALUES(?1, ?2, ?3)");
  st.bind(1, name).bind(2, owner).bind(3, now_ms());
  int rc = st.step();
  if (rc != SQLITE_DONE) return db_error(rc);
  Recorded r;
  if (replicated() && (r = record_change(here().db, name, "", false, nullptr, now_ms())).rc != SQLITE_DONE)
    return db_error(r.rc);
  if ((rc = tx.commit()) != SQLITE_OK) return db_error(rc);
  invalidate_buckets();
  changed(r.seq);
  return S3Error::kNone;
}

S3Error Storage::delete_bucket(std::string_view name) {
  StorageResult<std::optional<BucketInfo>> found = bucket(name);
  if (!found) return found.error();
  if (!*found) return S3Error::kNoSuchBucket;
  // An index that cannot say whether objects remain is an error, never an empty bucket to delete.
  StorageResult<bool> empty = bucket_empty(name);
  if (!empty) return empty.error();
  if (!*empty) return S3Error::kBucketNotEmpty;
  // Unfinished multipart uploads go with the bucket, as in S3.
  std::vector<std::string> files;
  {
    Stmt st(here(),
            "SELECT p.file FROM parts p JOIN uploads u ON p.upload_id = u.upload_id WHERE u.bucket = ?1");
    st.bind(1, name);
    int rc;
    while ((rc = st.step()) == SQLITE_ROW) files.push_back(st.text(0));
    if (rc != SQLITE_DONE) return db_error(rc);  // the files missed would stay on disk
  }
  Transaction tx(here().db);
  if (!tx.ok()) return db_error(tx.begin_rc());
  Stmt a(here(), "DELETE FROM parts WHERE upload_id IN (SELECT upload_id FROM uploads WHERE bucket = ?1)");
  a.bind(1, name);
  Stmt b(here(), "DELETE FROM uploads WHERE bucket = ?1");
  b.bind(1, name);
  Stmt c(here(), "DELETE FROM buckets WHERE name = ?1");
  c.bind(1, name);
  if (a.step() != SQLITE_DONE || b.step() != SQLITE_DONE || c.step() != SQLITE_DONE)
    return S3Error::kInternalError;
  Recorded r;
  if (replicated() && (r = record_change(here().db, name, "", true, nullptr, now_ms())).rc != SQLITE_DONE)
    return db_error(r.rc);
  if (int rc = tx.commit(); rc != SQLITE_OK) return db_error(rc);
  invalidate_buckets();
  remove_files(files);
  changed(r.seq);
  return S3Error::kNone;
}

StorageResult<std::optional<BucketInfo>> Storage::bucket(std::string_view name) {
  if (auto cached = object_cache_->find_bucket(name)) return std::optional<BucketInfo>(*cached);
  uint64_t generation = object_cache_->generation();
  Stmt st(here(), "SELECT name, owner, created_ms FROM buckets WHERE name = ?1");
  st.bind(1, name);
  int rc = st.step();
  if (rc == SQLITE_DONE) return std::optional<BucketInfo>();
  if (rc != SQLITE_ROW) return core::Err(db_error(rc));
  auto b = std::make_shared<const BucketInfo>(BucketInfo{st.text(0), st.text(1), st.integer(2)});
  object_cache_->fill_bucket(b, generation);
  return std::optional<BucketInfo>(*b);
}

StorageResult<std::vector<BucketInfo>> Storage::buckets() {
  std::vector<BucketInfo> out;
  Stmt st(here(), "SELECT name, owner, created_ms FROM buckets ORDER BY name");
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) out.push_back({st.text(0), st.text(1), st.integer(2)});
  if (rc != SQLITE_DONE) return core::Err(db_error(rc));
  return out;
}

StorageResult<bool> Storage::bucket_empty(std::string_view name) {
  Stmt st(here(), "SELECT 1 FROM objects WHERE bucket = ?1 LIMIT 1");
  st.bind(1, name);
  int rc = st.step();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return core::Err(db_error(rc));
  return rc == SQLITE_DONE;
}

StorageResult<std::unique_ptr<DataWriter>> Storage::begin_write() {
  std::unique_ptr<DataWriter> w(new DataWriter());
  uint8_t id[16];
  RAND_bytes(id, sizeof id);
  w->file_ = "objects/" + hex_encode(id, 1) + "/" + hex_encode(id, sizeof id);
  w->max_ = options_.max_object_bytes;
  // Created in its final place: no row names it until it is sealed and committed, and the start-up sweep
  // removes it if a crash comes first.
  std::string path = dir_ + "/" + w->file_;
  int e = 0;
  w->sealed_ = SealedWriter::create(options_.master_key, path, &e);
  if (!w->sealed_) {
    ::unlink(path.c_str());
    return core::Err(errno_to_s3(e));
  }
  w->path_ = path;
  w->md5_ = EVP_MD_CTX_new();
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(w->md5_), EVP_md5(), nullptr);
  return w;
}

S3Error Storage::seal(DataWriter& w, std::string& file) {
  if (w.failed_ != S3Error::kNone) return w.failed_;
  if (int e = w.sealed_->finish()) return errno_to_s3(e);
  w.sealed_.reset();
  // The file's entry is durable only once its directory is. On failure the writer unlinks the file.
  if (int e = fsync_dir(dir_ + "/" + w.file_.substr(0, std::strlen("objects/xx")))) return errno_to_s3(e);
  w.path_.clear();
  file = w.file_;
  return S3Error::kNone;
}

void Storage::remove_files(const std::vector<std::string>& files) {
  for (const auto& f : files) ::unlink((dir_ + "/" + f).c_str());
}

S3Error Storage::commit_object(std::unique_ptr<DataWriter> writer, ObjectInfo& info) {
  std::string file;
  if (S3Error e = seal(*writer, file); e != S3Error::kNone) return e;
  info.size = writer->size();
  info.etag = hex_encode(reinterpret_cast<const uint8_t*>(writer->md5().data()), 16);
  info.mtime_ms = now_ms();
  info.segments = {Segment{file, info.size}};
  std::vector<std::string> old_files;
  Transaction tx(here().db);
  if (!tx.ok()) {
    remove_files({file});
    return db_error(tx.begin_rc());
  }
  uint64_t seq = 0;
  int rc = insert_object(here().db, info, old_files, nullptr, &seq);
  if (rc != SQLITE_DONE || (rc = tx.commit()) != SQLITE_OK) {
    remove_files({file});
    return db_error(rc);
  }
  invalidate(info.bucket, info.key);
  remove_files(old_files);
  changed(seq);
  return S3Error::kNone;
}

int Storage::insert_object(sqlite3* db, ObjectInfo& info, std::vector<std::string>& old_files,
                           const RemoteChange* remote, uint64_t* seq) {
  if (replicated()) {
    Recorded r = record_change(db, info.bucket, info.key, false, remote, info.mtime_ms);
    if (r.rc != SQLITE_DONE) return r.rc;
    info.mtime_ms = r.version_ms;
    if (seq) *seq = r.seq;
    if (remote) {
      // A peer's object may arrive before (or without) its bucket's creation.
      if (!bucket_exists_in(db, info.bucket)) {
        Stmt b(db, nullptr, "INSERT OR IGNORE INTO buckets(name, owner, created_ms) VALUES(?1, ?2, ?3)");
        b.bind(1, info.bucket).bind(2, remote->owner).bind(3, info.mtime_ms);
        if (int brc = b.step(); brc != SQLITE_DONE) return brc;
      }
      if (int arc = advance_cursor(db, *remote); arc != SQLITE_DONE) return arc;
    }
  }
  // The replaced object's files are removed after the commit; a row that cannot be read would leave them
  // behind unreferenced, so it fails the commit instead.
  core::Result<std::optional<ObjectInfo>, int> old = head_in(db, info.bucket, info.key);
  if (!old) return old.error();
  if (*old)
    for (auto& s : (*old)->segments) old_files.push_back(s.file);
  Stmt st(
      db, statements(db),
      "INSERT OR REPLACE INTO objects(bucket, key, size, etag, mtime_ms, content_type, headers, segments) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  st.bind(1, info.bucket).bind(2, info.key).bind(3, static_cast<int64_t>(info.size)).bind(4, info.etag);
  st.bind(5, info.mtime_ms).bind(6, info.content_type).bind(7, headers_json(info.headers));
  st.bind(8, segments_json(info.segments));
  return st.step();
}

std::optional<ObjectInfo> Storage::row_to_object(sqlite3_stmt* raw) {
  auto text = [raw](int col) {
    const unsigned char* p = sqlite3_column_text(raw, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(raw, col)))
             : std::string();
  };
  ObjectInfo o;
  o.bucket = text(0);
  o.key = text(1);
  o.size = static_cast<uint64_t>(sqlite3_column_int64(raw, 2));
  o.etag = text(3);
  o.mtime_ms = sqlite3_column_int64(raw, 4);
  o.content_type = text(5);
  o.headers = headers_from_json(text(6));
  o.segments = segments_from_json(text(7));
  return o;
}

StorageResult<std::optional<ObjectInfo>> Storage::head(std::string_view bucket, std::string_view key) {
  core::Result<std::optional<ObjectInfo>, int> o = head_in(here().db, bucket, key);
  if (!o) return core::Err(db_error(o.error()));
  return std::move(o).value();
}

StorageResult<std::shared_ptr<const ObjectInfo>> Storage::lookup(std::string_view bucket,
                                                                 std::string_view key) {
  if (auto cached = object_cache_->find_object(bucket, key)) return cached;
  // Taken before the index read: a commit after it makes the fill below a no-op.
  uint64_t generation = object_cache_->generation();
  core::Result<std::optional<ObjectInfo>, int> o = head_in(here().db, bucket, key);
  if (!o) return core::Err(db_error(o.error()));
  if (!*o) return std::shared_ptr<const ObjectInfo>();
  auto info = std::make_shared<const ObjectInfo>(std::move(**o));
  object_cache_->fill_object(info, generation);
  return std::shared_ptr<const ObjectInfo>(std::move(info));
}

bool Storage::read_cacheable(uint64_t size) const {
  return object_cache_->cacheable(size);
}

StorageResult<std::shared_ptr<const std::string>> Storage::read_whole(const ObjectInfo& info,
                                                                      ObjectReader* opened) {
  if (auto cached = object_cache_->find_data(info)) return cached;
  uint64_t generation = object_cache_->generation();
  std::unique_ptr<ObjectReader> own;
  if (!opened) own = reader(info);
  ObjectReader* r = opened ? opened : own.get();
  auto data = std::make_shared<std::string>();
  data->resize(info.size);
  // Every frame's tag is checked on this read (an empty object still has one authenticated frame): the
  // cache only ever holds verified bytes.
  ssize_t n = info.size > 0 ? r->read(0, data->data(), info.size) : (r->verify_all() ? 0 : kSealedCorrupt);
  if (n < 0 || static_cast<uint64_t>(n) != info.size)
    return core::Err(n == kSealedIoError ? S3Error::kInternalError : S3Error::kCorruptObject);
  std::shared_ptr<const std::string> out = std::move(data);
  object_cache_->fill_data(info, out, generation);
  return out;
}

std::shared_ptr<const std::string> Storage::cached_whole(const ObjectInfo& info) {
  return object_cache_->find_data(info);
}

ObjectCacheStats Storage::cache_stats() const {
  return object_cache_->stats();
}

void Storage::invalidate(std::string_view bucket, std::string_view key) {
  object_cache_->invalidate_object(bucket, key);
}

void Storage::invalidate_buckets() {
  object_cache_->invalidate_all();
}

core::Result<std::optional<ObjectInfo>, int> Storage::head_in(sqlite3* db, std::string_view bucket,
                                                              std::string_view key) {
  Stmt st(
      db, statements(db),
      "SELECT bucket, key, size, etag, mtime_ms, content_type, headers, segments FROM objects WHERE bucket "
      "= ?1 AND key = ?2");
  st.bind(1, bucket).bind(2, key);
  int rc = st.step();
  if (rc == SQLITE_DONE) return std::optional<ObjectInfo>();
  if (rc != SQLITE_ROW) return core::Err(rc);
  return row_to_object(st.get());
}

S3Error Storage::delete_object(std::string_view bucket, std::string_view key) {
  if (replicated()) {
    // A tombstone even for a key that is not here: a peer's older write of it, still on its way, must not
    // bring it back.
    Transaction tx(here().db);
    if (!tx.ok()) return db_error(tx.begin_rc());
    // The deleted object's files go after the commit: a row that cannot be read fails the delete rather
    // than leave them behind.
    StorageResult<std::optional<ObjectInfo>> old = head(bucket, key);
    if (!old) return old.error();
    Stmt st(here(), "DELETE FROM objects WHERE bucket = ?1 AND key = ?2");
    st.bind(1, bucket).bind(2, key);
    int rc = st.step();
    if (rc != SQLITE_DONE) return db_error(rc);
    Recorded r = record_change(here().db, bucket, key, true, nullptr, now_ms());
    if (r.rc != SQLITE_DONE) return db_error(r.rc);
    if ((rc = tx.commit()) != SQLITE_OK) return db_error(rc);
    invalidate(bucket, key);
    if (*old)
      for (auto& seg : (*old)->segments) remove_files({seg.file});
    changed(r.seq);
    return S3Error::kNone;
  }
  StorageResult<std::optional<ObjectInfo>> old = head(bucket, key);
  if (!old) return old.error();
  if (!*old) return S3Error::kNone;
  Stmt st(here(), "DELETE FROM objects WHERE bucket = ?1 AND key = ?2");
  st.bind(1, bucket).bind(2, key);
  int rc = st.step();
  if (rc != SQLITE_DONE) return db_error(rc);
  invalidate(bucket, key);
  std::vector<std::string> files;
  for (auto& s : (*old)->segments) files.push_back(s.file);
  remove_files(files);
  return S3Error::kNone;
}

std::unique_ptr<ObjectReader> Storage::reader(const ObjectInfo& info) {
  std::unique_ptr<ObjectReader> r(new ObjectReader());
  r->key_ = &options_.master_key;
  uint64_t start = 0;
  for (const auto& s : info.segments) {
    ObjectReader::Part p;
    p.path = dir_ + "/" + s.file;
    p.start = start;
    p.size = s.size;
    start += s.size;
    r->parts_.push_back(std::move(p));
  }
  r->size_ = start;
  if (start != info.size) r->parts_.clear();  // metadata that does not add up reads as corrupt
  return r;
}

StorageResult<ListResult> Storage::list(std::string_view bucket, std::string_view prefix,
                                        std::string_view delimiter, std::string_view after, size_t max_keys) {
  ListResult out;
  if (max_keys == 0) return out;
  // Lower bound (inclusive) of the next scan.
  std::string lower(prefix);
  bool skip_equal = false;
  if (!after.empty() && after >= lower) {
    lower.assign(after);
    skip_equal = true;
    // A marker inside a rolled-up prefix continues after the whole prefix.
    if (!delimiter.empty() && after.substr(0, prefix.size()) == prefix) {
      size_t d = after.find(delimiter, prefix.size());
      if (d != std::string_view::npos) {
        lower = prefix_successor(std::string(after.substr(0, d + delimiter.size())));
        skip_equal = false;
      }
    }
  }
  Stmt st(here(),
          "SELECT key, size, etag, mtime_ms FROM objects WHERE bucket = ?1 AND key >= ?2 ORDER BY key");
  size_t count = 0;
  for (;;) {
    st.reset();
    st.bind(1, bucket).bind(2, lower);
    bool reseek = false;
    int rc;
    while ((rc = st.step()) == SQLITE_ROW) {
      std::string key = st.text(0);
      if (skip_equal && key == after) continue;
      if (key.compare(0, prefix.size(), prefix) != 0) return out;  // past the prefix: done
      if (count == max_keys) {
        out.truncated = true;
        return out;
      }
      if (!delimiter.empty()) {
        size_t d = key.find(delimiter, prefix.size());
        if (d != std::string::npos) {
          std::string cp = key.substr(0, d + delimiter.size());
          out.prefixes.push_back(cp);
          out.last = cp;
          ++count;
          lower = prefix_successor(cp);
          skip_equal = false;
          reseek = true;
          break;
        }
      }
      out.objects.push_back({key, static_cast<uint64_t>(st.integer(1)), st.text(2), st.integer(3)});
      out.last = std::move(key);
      ++count;
    }
    // Anything but the end of the rows (or the break of a reseek) is a failed scan: SQLITE_BUSY, IOERR,
    // CORRUPT. What was read so far must not reach the client as the whole listing.
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return core::Err(db_error(rc));
    if (!reseek) return out;
  }
}

size_t Storage::sweep_orphans() {
  std::unordered_set<std::string> referenced;
  int rc;
  {
    Stmt st(here().db, nullptr, "SELECT segments FROM objects");  // uncached: once per start
    while ((rc = st.step()) == SQLITE_ROW)
      for (auto& seg : segments_from_json(st.text(0))) referenced.insert(std::move(seg.file));
  }
  if (rc == SQLITE_DONE) {
    Stmt st(here().db, nullptr, "SELECT file FROM parts");
    while ((rc = st.step()) == SQLITE_ROW) referenced.insert(st.text(0));
  }
  if (rc != SQLITE_DONE) {
    // A file missed by a scan cut short would look unreferenced and go with the orphans: live data lost.
    core::log_warn("objstore", "cannot read the whole index: no unreferenced data files removed",
                   {{"data_dir", dir_}, {"error", sqlite3_errstr(rc)}});
    return 0;
  }
  size_t removed = 0;
  for (int i = 0; i < 256; ++i) {
    char sub[16];
    std::snprintf(sub, sizeof sub, "objects/%02x", i);
    DIR* d = ::opendir((dir_ + "/" + sub).c_str());
    if (!d) continue;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::string rel = std::string(sub) + "/" + e->d_name;
      if (referenced.count(rel)) continue;
      if (::unlink((dir_ + "/" + rel).c_str()) == 0) ++removed;
    }
    ::closedir(d);
  }
  return removed;
}

StorageResult<std::string> Storage::create_upload(const UploadInfo& info) {
  std::string id = random_hex(24);
  Stmt st(
      here(),
      "INSERT INTO uploads(upload_id, bucket, key, initiated_ms, content_type, headers) VALUES(?1, ?2, ?3, "
      "?4, ?5, ?6)");
  st.bind(1, id).bind(2, info.bucket).bind(3, info.key).bind(4, now_ms()).bind(5, info.content_type);
  st.bind(6, headers_json(info.headers));
  if (int rc = st.step(); rc != SQLITE_DONE) return core::Err(db_error(rc));
  return id;
}

StorageResult<std::optional<UploadInfo>> Storage::upload(std::string_view upload_id) {
  Stmt st(
      here(),
      "SELECT upload_id, bucket, key, initiated_ms, content_type, headers FROM uploads WHERE upload_id = ?1");
  st.bind(1, upload_id);
  int rc = st.step();
  if (rc == SQLITE_DONE) return std::optional<UploadInfo>();
  if (rc != SQLITE_ROW) return core::Err(db_error(rc));
  return std::optional<UploadInfo>(UploadInfo{st.text(0), st.text(1), st.text(2), st.integer(3), st.text(4),
                                              headers_from_json(st.text(5))});
}

S3Error Storage::commit_part(std::unique_ptr<DataWriter> writer, std::string_view upload_id, int number,
                             PartInfo& out) {
  std::string file;
  if (S3Error e = seal(*writer, file); e != S3Error::kNone) return e;
  out.number = number;
  out.size = writer->size();
  out.etag = hex_encode(reinterpret_cast<const uint8_t*>(writer->md5().data()), 16);
  out.mtime_ms = now_ms();
  out.file = file;
  Transaction tx(here().db);
  if (!tx.ok()) {
    remove_files({file});
    return db_error(tx.begin_rc());
  }
  // The upload may have been completed or aborted while this part streamed in.
  if (StorageResult<std::optional<UploadInfo>> up = upload(upload_id); !up || !*up) {
    remove_files({file});
    return up ? S3Error::kNoSuchUpload : up.error();
  }
  std::vector<std::string> old;
  {
    Stmt q(here(), "SELECT file FROM parts WHERE upload_id = ?1 AND number = ?2");
    q.bind(1, upload_id).bind(2, int64_t{number});
    int rc = q.step();
    if (rc == SQLITE_ROW) {
      old.push_back(q.text(0));
    } else if (rc != SQLITE_DONE) {
      remove_files({file});  // the replaced part's file would stay behind unreferenced
      return db_error(rc);
    }
  }
  Stmt st(here(),
          "INSERT OR REPLACE INTO parts(upload_id, number, size, etag, mtime_ms, file, checksum_algorithm, "
          "checksum) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  st.bind(1, upload_id).bind(2, int64_t{number}).bind(3, static_cast<int64_t>(out.size)).bind(4, out.etag);
  st.bind(5, out.mtime_ms).bind(6, file).bind(7, out.checksum_algorithm).bind(8, out.checksum);
  int rc = st.step();
  if (rc != SQLITE_DONE || (rc = tx.commit()) != SQLITE_OK) {
    remove_files({file});
    return db_error(rc);
  }
  remove_files(old);
  return S3Error::kNone;
}

StorageResult<PartList> Storage::parts(std::string_view upload_id, int after, size_t max) {
  PartList out;
  Stmt st(
      here(),
      "SELECT number, size, etag, mtime_ms, file, checksum_algorithm, checksum FROM parts WHERE upload_id = "
      "?1 AND number > ?2 ORDER BY number");
  st.bind(1, upload_id).bind(2, int64_t{after});
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    if (out.parts.size() == max) {
      out.truncated = true;
      break;
    }
    out.parts.push_back({static_cast<int>(st.integer(0)), static_cast<uint64_t>(st.integer(1)), st.text(2),
                         st.integer(3), st.text(4), st.text(5), st.text(6)});
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return core::Err(db_error(rc));
  return out;
}

StorageResult<UploadList> Storage::uploads(std::string_view bucket, std::string_view prefix, size_t max) {
  UploadList out;
  Stmt st(
      here(),
      "SELECT upload_id, bucket, key, initiated_ms, content_type, headers FROM uploads WHERE bucket = ?1 AND "
      "key >= ?2 ORDER BY key, initiated_ms");
  st.bind(1, bucket).bind(2, prefix);
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    std::string key = st.text(2);
    if (key.compare(0, prefix.size(), prefix) != 0) break;
    if (out.uploads.size() == max) {
      out.truncated = true;
      break;
    }
    out.uploads.push_back(
        {st.text(0), st.text(1), key, st.integer(3), st.text(4), headers_from_json(st.text(5))});
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return core::Err(db_error(rc));
  return out;
}

S3Error Storage::complete_upload(std::string_view upload_id,
                                 const std::vector<std::pair<int, std::string>>& list, ObjectInfo& out,
                                 const MetaHeaders* headers) {
  StorageResult<std::optional<UploadInfo>> found = upload(upload_id);
  if (!found) return found.error();
  if (!*found) return S3Error::kNoSuchUpload;
  const std::optional<UploadInfo>& up = *found;
  if (list.empty()) return S3Error::kMalformedXML;
  StorageResult<PartList> listed = parts(upload_id, 0, 10001);
  if (!listed) return listed.error();
  const std::vector<PartInfo>& have = listed->parts;
  std::vector<Segment> segments;
  std::string md5s;
  uint64_t total = 0;
  int previous = 0;
  std::vector<const PartInfo*> used;
  for (const auto& [number, etag] : list) {
    if (number <= previous) return S3Error::kInvalidPartOrder;
    previous = number;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& [number, etag] = list[i];
    const PartInfo* found = nullptr;
    for (const auto& p : have)
      if (p.number == number) found = &p;
    if (!found || found->etag != etag) return S3Error::kInvalidPart;
    // Every part but the last must be at least 5 MiB (S3 multipart limits).
    if (i + 1 < list.size() && found->size < 5 * 1024 * 1024) return S3Error::kEntityTooSmall;
    used.push_back(found);
    segments.push_back({found->file, found->size});
    total += found->size;
    uint8_t raw[16];
    for (size_t k = 0; k < 16; ++k) {
      auto hv = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
      raw[k] = static_cast<uint8_t>(hv(found->etag[2 * k]) * 16 + hv(found->etag[2 * k + 1]));
    }
    md5s.append(reinterpret_cast<const char*>(raw), 16);
  }
  if (total > options_.max_object_bytes) return S3Error::kEntityTooLarge;
  uint8_t digest[16];
  unsigned int n = 0;
  EVP_Digest(md5s.data(), md5s.size(), digest, &n, EVP_md5(), nullptr);
  out.bucket = up->bucket;
  out.key = up->key;
  out.size = total;
  out.etag = hex_encode(digest, 16) + "-" + std::to_string(list.size());
  out.mtime_ms = now_ms();
  out.content_type = up->content_type;
  out.headers = headers ? *headers : up->headers;
  out.segments = segments;

  std::vector<std::string> unused, old_files;
  for (const auto& p : have) {
    bool is_used = false;
    for (const auto* u : used) is_used = is_used || u == &p;
    if (!is_used) unused.push_back(p.file);
  }
  Transaction tx(here().db);
  if (!tx.ok()) return db_error(tx.begin_rc());
  StorageResult<std::optional<ObjectInfo>> old = head(out.bucket, out.key);
  if (!old) return old.error();  // the replaced object's files would stay behind unreferenced
  if (*old)
    for (auto& s : (*old)->segments) old_files.push_back(s.file);
  Recorded recorded;
  if (replicated()) {
    recorded = record_change(here().db, out.bucket, out.key, false, nullptr, out.mtime_ms);
    if (recorded.rc != SQLITE_DONE) return db_error(recorded.rc);
    out.mtime_ms = recorded.version_ms;
  }
  Stmt ins(
      here(),
      "INSERT OR REPLACE INTO objects(bucket, key, size, etag, mtime_ms, content_type, headers, segments) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  ins.bind(1, out.bucket).bind(2, out.key).bind(3, static_cast<int64_t>(out.size)).bind(4, out.etag);
  ins.bind(5, out.mtime_ms).bind(6, out.content_type).bind(7, headers_json(out.headers));
  ins.bind(8, segments_json(out.segments));
  Stmt del_parts(here(), "DELETE FROM parts WHERE upload_id = ?1");
  del_parts.bind(1, upload_id);
  Stmt del_upload(here(), "DELETE FROM uploads WHERE upload_id = ?1");
  del_upload.bind(1, upload_id);
  int rc = ins.step();
  if (rc != SQLITE_DONE) return db_error(rc);
  if ((rc = del_parts.step()) != SQLITE_DONE) return db_error(rc);
  if ((rc = del_upload.step()) != SQLITE_DONE) return db_error(rc);
  if ((rc = tx.commit()) != SQLITE_OK) return db_error(rc);
  invalidate(out.bucket, out.key);
  remove_files(unused);
  remove_files(old_files);
  changed(recorded.seq);
  return S3Error::kNone;
}

S3Error Storage::abort_upload(std::string_view upload_id) {
  StorageResult<std::optional<UploadInfo>> up = upload(upload_id);
  if (!up) return up.error();
  if (!*up) return S3Error::kNoSuchUpload;
  // Every part's file, or the upload stays: a file missed here would stay on disk until the next start.
  StorageResult<PartList> listed = parts(upload_id, 0, 10001);
  if (!listed) return listed.error();
  std::vector<std::string> files;
  for (auto& p : listed->parts) files.push_back(p.file);
  Transaction tx(here().db);
  if (!tx.ok()) return db_error(tx.begin_rc());
  Stmt a(here(), "DELETE FROM parts WHERE upload_id = ?1");
  a.bind(1, upload_id);
  Stmt b(here(), "DELETE FROM uploads WHERE upload_id = ?1");
  b.bind(1, upload_id);
  if (a.step() != SQLITE_DONE || b.step() != SQLITE_DONE) return S3Error::kInternalError;
  if (int rc = tx.commit(); rc != SQLITE_OK) return db_error(rc);
  remove_files(files);
  return S3Error::kNone;
}

// ---------------------------------------------------------------------------------------------------------
// Replication

Storage::Recorded Storage::record_change(sqlite3* db, std::string_view bucket, std::string_view key,
                                         bool deleted, const RemoteChange* remote, int64_t now) {
  StatementCache* cache = statements(db);
  Recorded r;
  ChangeVersion v;
  if (remote) {
    v = remote->version;
  } else {
    // Above the key's previous version even when the clock stepped back or two writes share a millisecond,
    // so that the peers take it as the newer one.
    int64_t previous = 0;
    {
      Stmt q(db, cache, "SELECT version_ms FROM changes WHERE bucket = ?1 AND key = ?2");
      q.bind(1, bucket).bind(2, key);
      if (q.step() == SQLITE_ROW) previous = q.integer(0);
    }
    v.ms = std::max(now, previous + 1);
    v.origin = options_.zone;
  }
  {
    Stmt q(db, cache, "UPDATE repl_state SET value = value + 1 WHERE name = 'seq' RETURNING value");
    if ((r.rc = q.step()) != SQLITE_ROW) return r;
    r.seq = static_cast<uint64_t>(q.integer(0));
  }
  Stmt st(
      db, cache,
      "INSERT OR REPLACE INTO changes(bucket, key, seq, version_ms, origin, deleted) VALUES(?1, ?2, ?3, ?4, "
      "?5, ?6)");
  st.bind(1, bucket).bind(2, key).bind(3, static_cast<int64_t>(r.seq)).bind(4, v.ms).bind(5, v.origin);
  st.bind(6, int64_t{deleted ? 1 : 0});
  r.rc = st.step();
  r.version_ms = v.ms;
  return r;
}

bool Storage::remote_is_newer(sqlite3* db, std::string_view bucket, std::string_view key,
                              const RemoteChange& c) {
  StatementCache* cache = statements(db);
  {
    Stmt q(db, cache, "SELECT seq FROM peer_cursors WHERE zone = ?1");
    q.bind(1, c.from_zone);
    if (q.step() == SQLITE_ROW && static_cast<uint64_t>(q.integer(0)) >= c.from_seq) return false;
  }
  Stmt q(db, cache, "SELECT version_ms, origin FROM changes WHERE bucket = ?1 AND key = ?2");
  q.bind(1, bucket).bind(2, key);
  if (q.step() != SQLITE_ROW) return true;
  ChangeVersion here{q.integer(0), q.text(1)};
  return here < c.version;
}

int Storage::advance_cursor(sqlite3* db, const RemoteChange& c) {
  Stmt st(db, statements(db),
          "INSERT INTO peer_cursors(zone, seq) VALUES(?1, ?2) ON CONFLICT(zone) DO UPDATE SET seq = "
          "MAX(seq, excluded.seq)");
  st.bind(1, c.from_zone).bind(2, static_cast<int64_t>(c.from_seq));
  return st.step();
}

void Storage::changed(uint64_t seq) {
  if (seq == 0) return;
  uint64_t cur = last_seq_.load(std::memory_order_relaxed);
  while (cur < seq && !last_seq_.compare_exchange_weak(cur, seq, std::memory_order_release)) {
  }
  if (on_change_) on_change_(seq);
}

uint64_t Storage::peer_cursor(std::string_view zone) {
  Stmt q(here(), "SELECT seq FROM peer_cursors WHERE zone = ?1");
  q.bind(1, zone);
  return q.step() == SQLITE_ROW ? static_cast<uint64_t>(q.integer(0)) : 0;
}

void Storage::apply_object_async(std::unique_ptr<DataWriter> writer, ObjectInfo info, RemoteChange change,
                                 CommitDone done) {
  info.mtime_ms = change.version.ms;
  queue_commit(std::move(writer), std::move(info), std::move(change), std::move(done));
}

S3Error Storage::apply_delete(std::string_view bucket, std::string_view key, const RemoteChange& change) {
  Transaction tx(here().db);
  if (!tx.ok()) return db_error(tx.begin_rc());
  std::optional<ObjectInfo> old;
  Recorded r;
  if (remote_is_newer(here().db, bucket, key, change)) {
    StorageResult<std::optional<ObjectInfo>> found = head(bucket, key);
    if (!found) return found.error();
    old = std::move(found).value();
    Stmt st(here(), "DELETE FROM objects WHERE bucket = ?1 AND key = ?2");
    st.bind(1, bucket).bind(2, key);
    if (int rc = st.step(); rc != SQLITE_DONE) return db_error(rc);
    if ((r = record_change(here().db, bucket, key, true, &change, 0)).rc != SQLITE_DONE)
      return db_error(r.rc);
  }
  if (int rc = advance_cursor(here().db, change); rc != SQLITE_DONE) return db_error(rc);
  if (int rc = tx.commit(); rc != SQLITE_OK) return db_error(rc);
  invalidate(bucket, key);
  if (old)
    for (auto& seg : old->segments) remove_files({seg.file});
  changed(r.seq);
  return S3Error::kNone;
}

S3Error Storage::apply_bucket(std::string_view name, bool deleted, const RemoteChange& change) {
  std::vector<std::string> files;
  Transaction tx(here().db);
  if (!tx.ok()) return db_error(tx.begin_rc());
  Recorded r;
  if (remote_is_newer(here().db, name, "", change)) {
    bool exists = bucket_exists_in(here().db, name);
    bool apply = true;
    if (deleted && exists) {
      StorageResult<bool> empty = bucket_empty(name);
      if (!empty) return empty.error();
      if (!*empty) {
        // Objects written here meanwhile keep the bucket; they travel to the peer, which recreates it.
        apply = false;
      } else {
        Stmt q(here().db, nullptr,
               "SELECT p.file FROM parts p JOIN uploads u ON p.upload_id = u.upload_id WHERE u.bucket = ?1");
        q.bind(1, name);
        int rc;
        while ((rc = q.step()) == SQLITE_ROW) files.push_back(q.text(0));
        if (rc != SQLITE_DONE) return db_error(rc);  // the parts' files missed would stay on disk
        Stmt a(here().db, nullptr,
               "DELETE FROM parts WHERE upload_id IN (SELECT upload_id FROM uploads WHERE bucket = ?1)");
        a.bind(1, name);
        Stmt b(here().db, nullptr, "DELETE FROM uploads WHERE bucket = ?1");
        b.bind(1, name);
        Stmt c(here().db, nullptr, "DELETE FROM buckets WHERE name = ?1");
        c.bind(1, name);
        if (a.step() != SQLITE_DONE || b.step() != SQLITE_DONE || c.step() != SQLITE_DONE)
          return S3Error::kInternalError;
      }
    } else if (!deleted && !exists) {
      Stmt st(here().db, nullptr, "INSERT INTO buckets(name, owner, created_ms) VALUES(?1, ?2, ?3)");
      st.bind(1, name).bind(2, change.owner).bind(3, change.version.ms);
      if (int rc = st.step(); rc != SQLITE_DONE) return db_error(rc);
    }
    if (apply && (r = record_change(here().db, name, "", deleted, &change, 0)).rc != SQLITE_DONE)
      return db_error(r.rc);
  }
  if (int rc = advance_cursor(here().db, change); rc != SQLITE_DONE) return db_error(rc);
  if (int rc = tx.commit(); rc != SQLITE_OK) return db_error(rc);
  invalidate_buckets();
  remove_files(files);
  changed(r.seq);
  return S3Error::kNone;
}

std::unique_ptr<ChangeFeed> Storage::open_feed() {
  std::unique_ptr<ChangeFeed> f(new ChangeFeed());
  f->db_ = open_db();
  return f;
}

ChangeFeed::~ChangeFeed() {
  if (db_) sqlite3_close_v2(db_);
}

core::Result<std::vector<Change>, core::Error> ChangeFeed::after(uint64_t after, size_t max) {
  std::vector<Change> out;
  // One statement: each row and its object come from one snapshot.
  Stmt st(
      db_, nullptr,
      "SELECT c.seq, c.bucket, c.key, c.version_ms, c.origin, c.deleted, b.owner, o.size, o.etag, "
      "o.mtime_ms, o.content_type, o.headers, o.segments FROM changes c LEFT JOIN buckets b ON b.name = "
      "c.bucket LEFT JOIN objects o ON o.bucket = c.bucket AND o.key = c.key AND c.key <> '' WHERE c.seq > "
      "?1 ORDER BY c.seq LIMIT ?2");
  st.bind(1, static_cast<int64_t>(after)).bind(2, static_cast<int64_t>(max));
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    Change c;
    c.seq = static_cast<uint64_t>(st.integer(0));
    c.bucket = st.text(1);
    c.key = st.text(2);
    c.version = {st.integer(3), st.text(4)};
    c.deleted = st.integer(5) != 0;
    c.owner = st.text(6);
    if (!c.deleted && !c.key.empty() && sqlite3_column_type(st.get(), 7) != SQLITE_NULL) {
      ObjectInfo o;
      o.bucket = c.bucket;
      o.key = c.key;
      o.size = static_cast<uint64_t>(st.integer(7));
      o.etag = st.text(8);
      o.mtime_ms = st.integer(9);
      o.content_type = st.text(10);
      o.headers = headers_from_json(st.text(11));
      o.segments = segments_from_json(st.text(12));
      c.object = std::move(o);
    }
    out.push_back(std::move(c));
  }
  // An empty batch tells the sender that its peer is in sync: a failed read must not look like one.
  if (rc != SQLITE_DONE)
    return core::Err(
        core::Error{"sqlite_step",
                    "reading the change feed after seq " + std::to_string(after) + ": " + sqlite3_errmsg(db_),
                    core::ErrorSource::kStorage, core::Retry::kSafe});
  return out;
}

uint64_t ChangeFeed::last_seq() {
  Stmt st(db_, nullptr, "SELECT value FROM repl_state WHERE name = 'seq'");
  return st.step() == SQLITE_ROW ? static_cast<uint64_t>(st.integer(0)) : 0;
}

uint64_t ChangeFeed::count_after(uint64_t after) {
  Stmt st(db_, nullptr, "SELECT count(*) FROM changes WHERE seq > ?1");
  st.bind(1, static_cast<int64_t>(after));
  return st.step() == SQLITE_ROW ? static_cast<uint64_t>(st.integer(0)) : 0;
}

}  // namespace cumulo::objstore
