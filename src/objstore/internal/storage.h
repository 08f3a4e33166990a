// The storage engine: object data in sealed (encrypted, framed, authenticated) files, metadata in SQLite as
// an ordered index, so that listing a prefix is an index range scan and never walks directories.
//
// Durability order of every write (an object, a part): the data file is created in objects/XX/ under a new
// random name, written and fsynced, and that directory fsynced; only then does the SQLite transaction that
// makes it visible commit (WAL, synchronous=FULL). The index row, not a rename, is what publishes an object,
// so the file needs no temporary name. A crash before the commit leaves at most an unreferenced (possibly
// partial) file, which the start-up sweep removes, never a visible partial object;
// after the commit the object survives kill -9 and power loss. Concurrent PUTs of one key each write their
// own file; the last commit wins whole and the loser's file is removed.
//
// Thread-safe: the store's workers (one event loop each) call it at once. Every thread has its own SQLite
// connection (opened on its first call, with its prepared statements): WAL gives each read a snapshot of the
// last commit before it began, so a read that starts after a write was answered sees that write, whichever
// thread wrote it; writers of different threads queue on SQLite's write lock (busy timeout 10 s).
// commit_object_async() hands the durable part of a PUT to commit threads: several seal files (fsync the
// file, then its directory) in parallel and one writes the index rows of every PUT that is ready in one
// transaction (group commit: one WAL fsync for many PUTs).
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/result.h"
#include "objstore/internal/sealed_file.h"
#include "objstore/wire/s3_errors.h"

namespace cumulo::objstore {

class ObjectCache;
struct ObjectCacheStats;

using MetaHeaders = std::vector<std::pair<std::string, std::string>>;

struct Segment {
  std::string file;  // relative to the data directory: "objects/ab/abcdef..."
  uint64_t size = 0;
};

struct ObjectInfo {
  std::string bucket;
  std::string key;
  uint64_t size = 0;
  std::string etag;  // without quotes: "md5hex" or "md5hex-N"
  int64_t mtime_ms = 0;
  std::string content_type;
  // Cache-Control, Content-Disposition, Content-Encoding, Content-Language, Expires and x-amz-meta-*, as
  // given.
  MetaHeaders headers;
  std::vector<Segment> segments;
};

struct BucketInfo {
  std::string name;
  std::string owner;
  int64_t created_ms = 0;
};

struct ListEntry {
  std::string key;
  uint64_t size = 0;
  std::string etag;
  int64_t mtime_ms = 0;
};

struct ListResult {
  std::vector<ListEntry> objects;
  std::vector<std::string> prefixes;  // common prefixes, when a delimiter was given
  bool truncated = false;
  std::string last;  // the last key or prefix returned (the next marker when truncated)
};

struct UploadInfo {
  std::string upload_id;
  std::string bucket;
  std::string key;
  int64_t initiated_ms = 0;
  std::string content_type;
  MetaHeaders headers;
};

struct PartInfo {
  int number = 0;
  uint64_t size = 0;
  std::string etag;  // without quotes
  int64_t mtime_ms = 0;
  std::string file;
  // The part's flexible checksum (x-amz-checksum-* of its UploadPart), when it had one: the algorithm's name
  // ("CRC32") and the base64 value. commit_part() stores what the caller puts here.
  std::string checksum_algorithm;
  std::string checksum;
};

// One page of a listing of parts or uploads: truncated when more follow.
struct PartList {
  std::vector<PartInfo> parts;
  bool truncated = false;
};
struct UploadList {
  std::vector<UploadInfo> uploads;
  bool truncated = false;
};

// What a read of the index answers: every row asked for, or the S3 error (db_error(): kInternalError) when a
// SQLite step failed part way; a scan that stopped early is never handed out as a shorter answer.
template <typename T>
using StorageResult = core::Result<T, S3Error>;

struct StorageOptions {
  std::string data_dir;
  MasterKey master_key{};
  uint64_t max_object_bytes = 5ull << 40;  // S3's limit: 5 TiB
  // Replication: this node's zone. When set, every change (object written or deleted, bucket created or
  // deleted) is also recorded in the change feed, in the same transaction; empty: no feed (a single node).
  std::string zone;
  // The caches of the GET path (object_cache.h): 0 disables each.
  size_t lookup_cache_entries = 65536;
  uint64_t read_cache_max_bytes = 64ull << 20;
  uint64_t read_cache_max_object_bytes = 1ull << 20;
};

// Replication (docs/objstore.md#replication-across-zones). The change feed holds one row per bucket and key
// (the bucket itself under the key ""): the last change to it, with this node's sequence number for it (the
// feed's order) and its version (milliseconds, origin zone) that decides between concurrent writes of two
// zones (the greater wins; deletes stay as tombstones). A peer that has applied the feed up to seq N needs
// exactly the rows above N.
struct ChangeVersion {
  int64_t ms = 0;
  std::string origin;  // zone
  bool operator<(const ChangeVersion& o) const { return ms != o.ms ? ms < o.ms : origin < o.origin; }
};

struct Change {
  uint64_t seq = 0;
  std::string bucket;
  std::string key;  // empty: the bucket itself
  ChangeVersion version;
  bool deleted = false;
  std::string owner;                 // the bucket's owner (empty when the bucket is gone)
  std::optional<ObjectInfo> object;  // a live object: its metadata as of the feed read
};

// A change received from a peer: `from_zone` sent it as its feed's row `from_seq`.
struct RemoteChange {
  std::string from_zone;
  uint64_t from_seq = 0;
  ChangeVersion version;
  std::string owner;
};

// Reads the change feed on its own SQLite connection, for a thread of its own (a peer's sender).
class ChangeFeed {
 public:
  ~ChangeFeed();
  // Rows with seq > after, in seq order, at most max; each row and its object read in one snapshot. An
  // error (source storage, retry safe) when SQLite failed mid-scan: never a shorter batch.
  core::Result<std::vector<Change>, core::Error> after(uint64_t after, size_t max);
  uint64_t last_seq();
  uint64_t count_after(uint64_t after);

 private:
  friend class Storage;
  ChangeFeed() = default;
  sqlite3* db_ = nullptr;
};

// One upload of data on its way into the store: a PUT body or a part. Computes the MD5 (the ETag) as it goes.
class DataWriter {
 public:
  ~DataWriter();
  DataWriter(const DataWriter&) = delete;
  DataWriter& operator=(const DataWriter&) = delete;
  [[nodiscard]] S3Error write(std::string_view data);  // kStorageFull, kEntityTooLarge, kInternalError
  uint64_t size() const { return size_; }
  // MD5 of everything written, raw 16 bytes; valid after the first call to it (which ends the hash).
  const std::string& md5();

 private:
  friend class Storage;
  DataWriter() = default;
  std::unique_ptr<SealedWriter> sealed_;
  std::string path_;  // the file, in objects/XX/; unlinked unless committed
  std::string file_;  // the same, relative to the data directory
  uint64_t size_ = 0;
  uint64_t max_ = 0;
  void* md5_ = nullptr;  // EVP_MD_CTX
  std::string digest_;
  S3Error failed_ = S3Error::kNone;
};

// Reads an object's plaintext across its segments. Its files open when first read, through the thread's
// open-file cache; an event loop opens them ahead instead, without waiting on the disk: open_here() takes
// what the loop's cache holds, and when that is not everything, an I/O thread runs open_detached() and the
// loop adopt_here()s the result (sealed_file.h, OpenMode). A reader is used by one thread at a time.
class ObjectReader {
 public:
  // Plaintext [offset, offset + len); the count, kSealedCorrupt or kSealedIoError.
  [[nodiscard]] ssize_t read(uint64_t offset, char* out, size_t len);
  bool verify_all();
  uint64_t size() const { return size_; }

  // Opens every file this thread's open-file cache holds (no system call); whether all are open now.
  bool open_here();
  // Opens every file not open yet, outside any cache (for an I/O thread). A file that fails keeps its
  // error for the read that reaches it.
  void open_detached();
  // Puts the files open_detached() opened into this thread's open-file cache.
  void adopt_here();
  // Whether every file of the object is mapped once open (kMappedFileMaxBytes): reading it then waits on no
  // disk, so an event loop may.
  bool mapped() const;

 private:
  friend class Storage;
  struct Part {
    std::string path;
    uint64_t start = 0;
    uint64_t size = 0;
    std::unique_ptr<SealedReader> reader;
    ssize_t open_error = 0;  // kSealedCorrupt or kSealedIoError from open_detached()
    bool detached = false;
  };
  bool open_part(Part& p);
  const MasterKey* key_ = nullptr;
  std::vector<Part> parts_;
  uint64_t size_ = 0;
  bool io_error_ = false;
};

class Storage {
 public:
  // Opens or creates the data directory and its index. Throws std::runtime_error naming what failed.
  static std::unique_ptr<Storage> open(const StorageOptions& options);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  // Buckets.
  S3Error create_bucket(std::string_view name, std::string_view owner);
  S3Error delete_bucket(std::string_view name);
  // nullopt: no such bucket; an error when the index could not be read (never "no such bucket" for that).
  StorageResult<std::optional<BucketInfo>> bucket(std::string_view name);
  StorageResult<std::vector<BucketInfo>> buckets();

  // Objects.
  // A writer into a new file under tmp/; kStorageFull or kInternalError when the file cannot be created.
  StorageResult<std::unique_ptr<DataWriter>> begin_write();
  // Makes the written data the object `info.key` (size, etag, segments are filled in). On error the data is
  // discarded.
  S3Error commit_object(std::unique_ptr<DataWriter> writer, ObjectInfo& info);
  // The same, on the commit threads; `done` runs on the index thread once the object is durable and visible
  // (or failed), so the caller posts its reply to its own loop from there.
  using CommitDone = std::function<void(S3Error, const ObjectInfo&)>;
  void commit_object_async(std::unique_ptr<DataWriter> writer, ObjectInfo info, CommitDone done);
  // Finishes every pending asynchronous commit and stops the commit threads (also done by the destructor).
  void stop_commit_threads();
  // nullopt: no such object; an error when the index could not be read.
  StorageResult<std::optional<ObjectInfo>> head(std::string_view bucket, std::string_view key);
  // The same through the lookup cache (the GET path): no index read when the object was looked up before
  // and has not changed since. nullptr: no such object.
  StorageResult<std::shared_ptr<const ObjectInfo>> lookup(std::string_view bucket, std::string_view key);
  // Whether the whole plaintext of an object of this size is kept in the read cache.
  bool read_cacheable(uint64_t size) const;
  // The whole plaintext of a read-cacheable object, from the read cache or read from its files (every frame
  // verified) and put there; kCorruptObject or kInternalError when a file fails. `reader`: the object's
  // reader when the caller has opened one (ObjectReader::open_here, open_detached).
  StorageResult<std::shared_ptr<const std::string>> read_whole(const ObjectInfo& info,
                                                               ObjectReader* reader = nullptr);
  // The read cache's copy of the object's plaintext, or nullptr: never a file read.
  std::shared_ptr<const std::string> cached_whole(const ObjectInfo& info);
  ObjectCacheStats cache_stats() const;
  S3Error delete_object(std::string_view bucket, std::string_view key);  // kNone also when absent (S3)
  std::unique_ptr<ObjectReader> reader(const ObjectInfo& info);
  // Keys > after (when set) that start with prefix, in byte order; with a delimiter, keys that have it after
  // the prefix roll up into common prefixes (each counted once against max_keys). kInternalError when the
  // index scan failed part way (a listing is whole or an error, never silently short).
  StorageResult<ListResult> list(std::string_view bucket, std::string_view prefix, std::string_view delimiter,
                                 std::string_view after, size_t max_keys);
  StorageResult<bool> bucket_empty(std::string_view bucket);

  // Multipart uploads.
  StorageResult<std::string> create_upload(const UploadInfo& info);  // the upload id
  // nullopt: no such upload (or no longer); an error when the index could not be read.
  StorageResult<std::optional<UploadInfo>> upload(std::string_view upload_id);
  S3Error commit_part(std::unique_ptr<DataWriter> writer, std::string_view upload_id, int number,
                      PartInfo& out);
  // Parts numbered above `after`, in order, at most max.
  StorageResult<PartList> parts(std::string_view upload_id, int after, size_t max);
  // Uploads of keys starting with prefix, by key then initiation time, at most max.
  StorageResult<UploadList> uploads(std::string_view bucket, std::string_view prefix, size_t max);
  // parts: (number, etag without quotes) as the client listed them. headers: the object's headers when given
  // (the upload's with the multipart checksum added), else the upload's.
  S3Error complete_upload(std::string_view upload_id, const std::vector<std::pair<int, std::string>>& parts,
                          ObjectInfo& out, const MetaHeaders* headers = nullptr);
  S3Error abort_upload(std::string_view upload_id);

  // Removes data files that no object or part refers to: what a crash between a file's rename and its commit
  // leaves. Reads every row's file names and every objects/ directory, so it runs once at start-up, before
  // any upload. Returns how many files went.
  size_t sweep_orphans();

  // Replication (only with options.zone set).
  std::unique_ptr<ChangeFeed> open_feed();
  // The feed's last sequence number; any thread.
  uint64_t last_change_seq() const { return last_seq_.load(std::memory_order_acquire); }
  // Called after every commit that added to the feed, on the committing thread (loop or index thread).
  void set_change_listener(std::function<void(uint64_t seq)> fn) { on_change_ = std::move(fn); }
  // Applying a peer's change: skipped (kNone) when this node already has it (from_seq at or below the
  // peer's cursor) or holds a newer version of the key; the peer's cursor advances in the same transaction.
  void apply_object_async(std::unique_ptr<DataWriter> writer, ObjectInfo info, RemoteChange change,
                          CommitDone done);
  S3Error apply_delete(std::string_view bucket, std::string_view key, const RemoteChange& change);
  S3Error apply_bucket(std::string_view bucket, bool deleted, const RemoteChange& change);
  // How far this node has applied the feed of the peer of that zone.
  uint64_t peer_cursor(std::string_view zone);

  const std::string& data_dir() const { return dir_; }
  static int64_t now_ms();
  struct StatementCache;
  struct Connection;

 private:
  Storage() = default;
  void exec(const char* sql);
  void migrate_schema();  // adds what later versions added to the tables of an existing store
  S3Error seal(DataWriter& w, std::string& file);  // finish and fsync the file, fsync its directory
  void remove_files(const std::vector<std::string>& files);
  std::optional<ObjectInfo> row_to_object(sqlite3_stmt* st);
  // The object's row, nullopt when there is none, or the SQLite error.
  core::Result<std::optional<ObjectInfo>, int> head_in(sqlite3* db, std::string_view bucket,
                                                       std::string_view key);
  // Inserts (or replaces) the object's row in an open transaction; the replaced object's files go to
  // old_files.
  // With replication, also records the change (info.mtime_ms becomes its version) and returns its seq in
  // *seq.
  int insert_object(sqlite3* db, ObjectInfo& info, std::vector<std::string>& old_files,
                    const RemoteChange* remote = nullptr, uint64_t* seq = nullptr);
  S3Error db_error(int rc);
  sqlite3* open_db();

  struct PendingCommit {
    std::unique_ptr<DataWriter> writer;
    ObjectInfo info;
    CommitDone done;
    S3Error error = S3Error::kNone;
    std::optional<RemoteChange> remote;  // a peer's change being applied
  };
  // Change feed: records the change of (bucket, key) in the open transaction, with a new seq. Local changes
  // (remote == nullptr) get a version above the key's previous one (its ms is the object's mtime_ms).
  struct Recorded {
    int rc = SQLITE_DONE;  // SQLITE_DONE, or the SQLite error
    uint64_t seq = 0;
    int64_t version_ms = 0;
  };
  Recorded record_change(sqlite3* db, std::string_view bucket, std::string_view key, bool deleted,
                         const RemoteChange* remote, int64_t now_ms);
  // For a peer's change: whether it is new here (above the peer's cursor and newer than the key's version).
  bool remote_is_newer(sqlite3* db, std::string_view bucket, std::string_view key, const RemoteChange& c);
  int advance_cursor(sqlite3* db, const RemoteChange& c);
  void changed(uint64_t seq);
  bool replicated() const { return !options_.zone.empty(); }
  std::atomic<uint64_t> last_seq_{0};
  std::function<void(uint64_t)> on_change_;
  void start_commit_threads();
  // Hands a PUT (or a peer's object, with `remote`) to the seal threads.
  void queue_commit(std::unique_ptr<DataWriter> writer, ObjectInfo info, std::optional<RemoteChange> remote,
                    CommitDone done);
  void seal_loop();
  void index_loop();

  std::string dir_;
  StorageOptions options_;
  // The calling thread's connection, opened on its first call.
  Connection& here();
  uint64_t id_ = 0;  // tells this store's connections from another's in a thread's cache
  std::mutex connections_mu_;
  std::vector<std::unique_ptr<Connection>> connections_;
  sqlite3* commit_db_ = nullptr;                  // the index thread's connection
  std::unique_ptr<StatementCache> commit_cache_;  // commit_db_'s, prepared once
  // The prepared statements of `db` when it is the calling thread's connection or the index thread's.
  StatementCache* statements(sqlite3* db);
  // Lookup and read caches; invalidated after every commit that changes an object or a bucket, before the
  // replaced files go and before the write is answered.
  std::unique_ptr<ObjectCache> object_cache_;
  void invalidate(std::string_view bucket, std::string_view key);
  void invalidate_buckets();
  std::mutex mu_;
  std::condition_variable seal_cv_;
  std::condition_variable index_cv_;
  std::deque<std::unique_ptr<PendingCommit>> to_seal_;
  std::deque<std::unique_ptr<PendingCommit>> to_index_;
  // Files of objects replaced by the index thread's commits: unlinked by a seal thread after its seal, or by
  // an idle one woken for them, so that the unlinks (slow while fsyncs run) keep off the index thread, and
  // off the replies.
  std::vector<std::string> to_remove_;
  size_t sealing_ = 0;  // jobs taken by seal threads and not yet queued for the index
  bool stopping_ = false;
  std::once_flag commit_threads_started_;
  std::vector<std::thread> sealers_;
  std::thread indexer_;
};

}  // namespace cumulo::objstore
