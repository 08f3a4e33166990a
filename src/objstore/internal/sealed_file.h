// Encrypted object files ("sealed" files): AES-256-GCM in 64 KiB frames, each with its own tag, under a
// per-file data key that is itself wrapped (AES-256-GCM) by the store's master key. A frame's nonce is its
// index and its additional data binds the file id, the index and whether it is the last frame, so frames can
// be neither altered, reordered, moved between files nor cut off without the read failing. Ranges decrypt
// only the frames they touch; no file holds plaintext.
//
// Layout: a 96-byte header, then frames of min(64 KiB, rest) ciphertext bytes plus a 16-byte tag. An empty
// file still has one (empty, final) frame, so even it is authenticated.
//   header: "CUMULOS1" | frame_bytes u32le | 0 u32 | file_id[16] | wrap_nonce[12] | wrapped_key[32] |
//           wrap_tag[16] | 0[4]
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace cumulo::objstore {

using MasterKey = std::array<uint8_t, 32>;

// Reads a master key file: 32 raw bytes, or 64 hex digits (with an optional trailing newline). Throws
// std::runtime_error naming the file and what is wrong with it.
MasterKey load_master_key(const std::string& path);

inline constexpr size_t kFrameBytes = 64 * 1024;
inline constexpr size_t kSealedHeaderBytes = 96;
inline constexpr size_t kTagBytes = 16;

// Size on disk of a sealed file holding `plaintext` bytes.
uint64_t sealed_file_size(uint64_t plaintext);

// Files up to this size on disk are mapped when opened, and populated at once: reading one that is open then
// waits on no disk. Larger ones are read with pread.
inline constexpr uint64_t kMappedFileMaxBytes = 4 << 20;

class SealedWriter {
 public:
  // Creates (O_EXCL) the file at path. On failure returns nullptr and sets *err to errno.
  static std::unique_ptr<SealedWriter> create(const MasterKey& master, const std::string& path, int* err);
  ~SealedWriter();
  SealedWriter(const SealedWriter&) = delete;
  SealedWriter& operator=(const SealedWriter&) = delete;

  // 0, or the errno of the failed write (ENOSPC, EIO...).
  [[nodiscard]] int write(std::string_view data);
  // Seals the last frame, fsyncs and closes the file. 0 or an errno.
  [[nodiscard]] int finish();
  uint64_t plaintext_bytes() const { return total_; }

 private:
  SealedWriter() = default;
  int seal_frame(bool final);
  int write_all(const uint8_t* p, size_t n);

  int fd_ = -1;
  std::array<uint8_t, 32> data_key_{};
  std::array<uint8_t, 16> file_id_{};
  // kFrameBytes + tag each, from a pool of such buffers shared by every writer.
  std::unique_ptr<uint8_t[]> plain_;
  std::unique_ptr<uint8_t[]> sealed_;
  size_t filled_ = 0;
  size_t plain_used_ = 0;  // the most of plain_ ever filled: what the destructor wipes
  uint64_t frame_index_ = 0;
  uint64_t total_ = 0;
  void* ctx_ = nullptr;  // EVP_CIPHER_CTX
};

// Read results besides a byte count.
inline constexpr ssize_t kSealedCorrupt = -1;  // a tag did not verify, or the file is shorter than it must be
inline constexpr ssize_t kSealedIoError = -2;

// An open sealed file whose header verified: its descriptor, its id and its data key, already expanded for
// decryption. Kept per thread by SealedReader::open (the object store's open-file cache, as nginx's
// open_file_cache keeps plain files open): a read of a hot object is then one pread and one decryption, with
// no open, no header read, no key unwrap and no close. Files are never rewritten (a new version is a new
// file), so a cached descriptor reads exactly what its path named; a replaced file's blocks are freed when
// its entry leaves the cache (least recently used beyond the limit, or idle for kOpenFileIdle).
struct OpenSealedFile;

inline constexpr size_t kOpenFilesPerThread = 1024;

// How SealedReader::open uses this thread's open-file cache. An event loop takes only what its cache holds
// (kCachedOnly: no system call at all) and leaves the rest to an I/O thread, which opens without the cache
// (kDetached: that thread's cache would never serve the loop) and hands the reader back for adopt_here().
enum class OpenMode : uint8_t {
  kCached,      // from the cache, else opened and added to it
  kCachedOnly,  // from the cache, else nullptr with neither *err nor *corrupt set
  kDetached,    // opened, the cache neither read nor filled
};

class SealedReader {
 public:
  // Opens the file (or takes it from this thread's open-file cache) and unwraps its data key. nullptr with
  // *corrupt set when the header does not verify, or with *err set to errno when the file cannot be opened.
  static std::unique_ptr<SealedReader> open(const MasterKey& master, const std::string& path,
                                            uint64_t plaintext_size, int* err, bool* corrupt,
                                            OpenMode mode = OpenMode::kCached);
  // Puts the open file of a reader opened kDetached (on another thread) into this thread's open-file cache,
  // so the next read of it on this thread is a hit. The reader is this thread's from now on.
  void adopt_here(const std::string& path);
  ~SealedReader();
  SealedReader(const SealedReader&) = delete;
  SealedReader& operator=(const SealedReader&) = delete;

  // Plaintext bytes [offset, offset + len) into out (clamped to the size); returns the count, or
  // kSealedCorrupt / kSealedIoError. Sequential reads decrypt each frame once.
  [[nodiscard]] ssize_t read(uint64_t offset, char* out, size_t len);
  // Verifies every frame (for a full check before answering).
  [[nodiscard]] bool verify_all();
  uint64_t size() const { return size_; }

 private:
  SealedReader() = default;
  bool load_frame(uint64_t index);
  // Reads and authenticates frame `index` into dest (room for its plaintext); the plaintext length, or -1
  // (and dest holds nothing of it).
  ssize_t decrypt_frame(uint64_t index, uint8_t* dest);

  // Shared with this thread's open-file cache and the other readers of the file on this thread (which use it
  // one call at a time: a read never yields in the middle).
  std::shared_ptr<OpenSealedFile> file_;
  uint64_t size_ = 0;
  uint64_t frames_ = 1;
  std::unique_ptr<uint8_t[]> plain_;  // the frame cache, for reads that take part of a frame
  uint64_t cached_frame_ = UINT64_MAX;
  size_t cached_len_ = 0;
  bool io_error_ = false;
};

}  // namespace cumulo::objstore
