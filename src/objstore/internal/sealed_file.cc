#include "objstore/internal/sealed_file.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

#include "core/event_loop.h"
#include "core/lru_map.h"
#include "core/text.h"

namespace cumulo::objstore {

namespace {

constexpr char kMagic[8] = {'C', 'U', 'M', 'U', 'L', 'O', 'S', '1'};

void put_u64be(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

// Nonce of frame i: 4 zero bytes and i big-endian. Unique because every file has its own data key.
void frame_nonce(uint64_t index, uint8_t nonce[12]) {
  std::memset(nonce, 0, 4);
  put_u64be(nonce + 4, index);
}

void frame_aad(const std::array<uint8_t, 16>& file_id, uint64_t index, bool final, uint8_t aad[25]) {
  std::memcpy(aad, file_id.data(), 16);
  put_u64be(aad + 16, index);
  aad[24] = final ? 1 : 0;
}

// AES-256-GCM in one call; false on failure (for decryption: the tag did not verify).
bool gcm(EVP_CIPHER_CTX* ctx, bool encrypt, const uint8_t* key, const uint8_t nonce[12], const uint8_t* aad,
         size_t aad_len, const uint8_t* in, size_t len, uint8_t* out, uint8_t tag[16]) {
  int n = 0;
  if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr, encrypt ? 1 : 0) != 1)
    return false;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) != 1) return false;
  if (EVP_CipherInit_ex(ctx, nullptr, nullptr, key, nonce, encrypt ? 1 : 0) != 1) return false;
  if (aad_len && EVP_CipherUpdate(ctx, nullptr, &n, aad, static_cast<int>(aad_len)) != 1) return false;
  if (len && EVP_CipherUpdate(ctx, out, &n, in, static_cast<int>(len)) != 1) return false;
  if (!encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) != 1) return false;
  if (EVP_CipherFinal_ex(ctx, out + len, &n) != 1) return false;
  if (encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1) return false;
  return true;
}

uint64_t frame_count(uint64_t size) {
  return size == 0 ? 1 : (size + kFrameBytes - 1) / kFrameBytes;
}

void header_aad(const uint8_t* header, uint8_t aad[28]) {
  std::memcpy(aad, header, 12);            // magic and frame size
  std::memcpy(aad + 12, header + 16, 16);  // file id
}

// The frame buffers of writers, reused. A writer needs two (plaintext and sealed) whatever the object's size;
// fresh 64 KiB blocks for every small PUT, freed on a seal thread, made malloc grow and trim its heap (and
// the kernel fault the pages in) for each one.
class FrameBuffers {
 public:
  static constexpr size_t kBytes = kFrameBytes + kTagBytes;
  std::unique_ptr<uint8_t[]> take() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        std::unique_ptr<uint8_t[]> b = std::move(free_.back());
        free_.pop_back();
        return b;
      }
    }
    return std::make_unique_for_overwrite<uint8_t[]>(kBytes);
  }
  void give(std::unique_ptr<uint8_t[]> b) {
    if (!b) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < kKept) free_.push_back(std::move(b));
  }

 private:
  static constexpr size_t kKept = 128;  // two per upload in flight, for 64 of them: 8 MiB at most
  std::mutex mu_;
  std::vector<std::unique_ptr<uint8_t[]>> free_;
};

FrameBuffers& frame_buffers() {
  static FrameBuffers* pool = new FrameBuffers();  // never destroyed: writers may outlive static destruction
  return *pool;
}

}  // namespace

MasterKey load_master_key(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read master key file " + path + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  MasterKey key{};
  if (s.size() == 32) {
    std::memcpy(key.data(), s.data(), 32);
  } else {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    bool ok = s.size() == 64;
    for (size_t i = 0; ok && i < 32; ++i) {
      int hi = core::hex_digit_value(s[2 * i]), lo = core::hex_digit_value(s[2 * i + 1]);
      if (hi < 0 || lo < 0)
        ok = false;
      else
        key[i] = static_cast<uint8_t>(hi * 16 + lo);
    }
    if (!ok)
      throw std::runtime_error("master key file " + path +
                               " must hold 32 random bytes or 64 hex digits (make one with "
                               "`openssl rand -hex 32 > FILE`)");
  }
  OPENSSL_cleanse(s.data(), s.size());
  return key;
}

uint64_t sealed_file_size(uint64_t plaintext) {
  return kSealedHeaderBytes + plaintext + frame_count(plaintext) * kTagBytes;
}

// ---------------------------------------------------------------------------------------------------------
// SealedWriter

std::unique_ptr<SealedWriter> SealedWriter::create(const MasterKey& master, const std::string& path,
                                                   int* err) {
  std::unique_ptr<SealedWriter> w(new SealedWriter());
  w->ctx_ = EVP_CIPHER_CTX_new();
  w->plain_ = frame_buffers().take();
  w->sealed_ = frame_buffers().take();
  uint8_t header[kSealedHeaderBytes] = {};
  uint8_t wrap_nonce[12];
  if (RAND_bytes(w->data_key_.data(), 32) != 1 || RAND_bytes(w->file_id_.data(), 16) != 1 ||
      RAND_bytes(wrap_nonce, 12) != 1) {
    *err = EIO;
    return nullptr;
  }
  std::memcpy(header, kMagic, 8);
  uint32_t fb = kFrameBytes;
  for (int i = 0; i < 4; ++i) header[8 + i] = static_cast<uint8_t>(fb >> (8 * i));
  std::memcpy(header + 16, w->file_id_.data(), 16);
  std::memcpy(header + 32, wrap_nonce, 12);
  uint8_t aad[28];
  header_aad(header, aad);
  if (!gcm(static_cast<EVP_CIPHER_CTX*>(w->ctx_), true, master.data(), wrap_nonce, aad, sizeof aad,
           w->data_key_.data(), 32, header + 44, header + 76)) {
    *err = EIO;
    return nullptr;
  }
  w->fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (w->fd_ < 0) {
    *err = errno;
    return nullptr;
  }
  if (int e = w->write_all(header, sizeof header)) {
    *err = e;
    return nullptr;
  }
  return w;
}

SealedWriter::~SealedWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (ctx_) EVP_CIPHER_CTX_free(static_cast<EVP_CIPHER_CTX*>(ctx_));
  OPENSSL_cleanse(data_key_.data(), data_key_.size());
  // Only what held plaintext; the sealed buffer holds ciphertext.
  if (plain_) OPENSSL_cleanse(plain_.get(), plain_used_);
  frame_buffers().give(std::move(plain_));
  frame_buffers().give(std::move(sealed_));
}

int SealedWriter::write_all(const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return 0;
}

int SealedWriter::seal_frame(bool final) {
  uint8_t nonce[12], aad[25];
  frame_nonce(frame_index_, nonce);
  frame_aad(file_id_, frame_index_, final, aad);
  if (!gcm(static_cast<EVP_CIPHER_CTX*>(ctx_), true, data_key_.data(), nonce, aad, sizeof aad, plain_.get(),
           filled_, sealed_.get(), sealed_.get() + filled_))
    return EIO;
  int e = write_all(sealed_.get(), filled_ + kTagBytes);
  filled_ = 0;
  ++frame_index_;
  return e;
}

int SealedWriter::write(std::string_view data) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(data.data());
  size_t n = data.size();
  total_ += n;
  while (n > 0) {
    // A full frame is sealed only once more data arrives: until then it may be the final one.
    if (filled_ == kFrameBytes) {
      if (int e = seal_frame(false)) return e;
    }
    size_t take = std::min(n, kFrameBytes - filled_);
    std::memcpy(plain_.get() + filled_, p, take);
    filled_ += take;
    plain_used_ = std::max(plain_used_, filled_);
    p += take;
    n -= take;
  }
  return 0;
}

int SealedWriter::finish() {
  if (int e = seal_frame(true)) return e;
  if (::fsync(fd_) != 0) return errno;
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return errno;
  return 0;
}

// ---------------------------------------------------------------------------------------------------------
// SealedReader

struct OpenSealedFile {
  int fd = -1;
  uint64_t file_bytes = 0;
  // Files up to kMappedFileMaxBytes are mapped (populated at once): a frame then decrypts straight from the
  // page cache, without a pread and its copy. The files are never truncated or rewritten, so a mapping cannot
  // fault.
  const uint8_t* map = nullptr;
  MasterKey master{};  // the key that unwrapped data_key (a test may open one path under two master keys)
  std::array<uint8_t, 16> file_id{};
  EVP_CIPHER_CTX* ctx =
      nullptr;  // AES-256-GCM decryption with the data key expanded; set the nonce per frame
  core::TimePoint used{};
  ~OpenSealedFile() {
    if (map) ::munmap(const_cast<uint8_t*>(map), file_bytes);
    if (fd >= 0) ::close(fd);
    if (ctx) EVP_CIPHER_CTX_free(ctx);
    OPENSSL_cleanse(master.data(), master.size());
  }
};

namespace {

constexpr std::chrono::seconds kOpenFileIdle{10};

// This thread's open sealed files.
class OpenFiles {
 public:
  OpenFiles() : files_(limits()) {}
  std::shared_ptr<OpenSealedFile> find(const std::string& path, const MasterKey& master,
                                       core::TimePoint now) {
    files_.evict_while([now](const auto& e) { return now - e.value->used > kOpenFileIdle; });
    auto* found =
        files_.find_if(path, [&](const std::shared_ptr<OpenSealedFile>& f) { return f->master == master; });
    if (!found) return nullptr;
    (*found)->used = now;
    return *found;
  }
  void add(const std::string& path, std::shared_ptr<OpenSealedFile> f) {
    files_.erase(path);
    files_.insert(path, std::move(f));
    files_.evict();
  }

 private:
  static core::LruLimits limits() {
    core::LruLimits l;
    l.max_entries = kOpenFilesPerThread;
    return l;
  }
  core::LruMap<std::string, std::shared_ptr<OpenSealedFile>> files_;
};

thread_local OpenFiles t_open_files;

// One frame's ciphertext and tag, and a byte more to see that the final frame ends the file: reused by every
// read of this thread (a read decrypts before it returns).
uint8_t* sealed_scratch() {
  thread_local std::unique_ptr<uint8_t[]> buf =
      std::make_unique_for_overwrite<uint8_t[]>(kFrameBytes + kTagBytes + 1);
  return buf.get();
}

std::shared_ptr<OpenSealedFile> open_sealed(const MasterKey& master, const std::string& path, int* err,
                                            bool* corrupt) {
  auto f = std::make_shared<OpenSealedFile>();
  f->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f->fd < 0) {
    *err = errno;
    return nullptr;
  }
  uint8_t header[kSealedHeaderBytes];
  ssize_t n = ::pread(f->fd, header, sizeof header, 0);
  if (n < 0) {
    *err = errno;
    return nullptr;
  }
  uint32_t fb = 0;
  for (int i = 0; i < 4; ++i) fb |= static_cast<uint32_t>(header[8 + i]) << (8 * i);
  if (n != static_cast<ssize_t>(sizeof header) || std::memcmp(header, kMagic, 8) != 0 || fb != kFrameBytes) {
    *corrupt = true;
    return nullptr;
  }
  f->ctx = EVP_CIPHER_CTX_new();
  uint8_t aad[28];
  header_aad(header, aad);
  std::array<uint8_t, 32> data_key{};
  bool unwrapped = gcm(f->ctx, false, master.data(), header + 32, aad, sizeof aad, header + 44, 32,
                       data_key.data(), header + 76);
  // The data key expanded once; each frame then sets only its nonce.
  bool ready = unwrapped && EVP_CipherInit_ex(f->ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr, 0) == 1 &&
               EVP_CIPHER_CTX_ctrl(f->ctx, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) == 1 &&
               EVP_CipherInit_ex(f->ctx, nullptr, nullptr, data_key.data(), nullptr, 0) == 1;
  OPENSSL_cleanse(data_key.data(), data_key.size());
  if (!ready) {
    *corrupt = true;
    return nullptr;
  }
  std::memcpy(f->file_id.data(), header + 16, 16);
  f->master = master;
  struct stat st {};
  if (::fstat(f->fd, &st) != 0) {
    *err = errno;
    return nullptr;
  }
  f->file_bytes = static_cast<uint64_t>(st.st_size);
  if (f->file_bytes <= kMappedFileMaxBytes) {
    void* m = ::mmap(nullptr, f->file_bytes, PROT_READ, MAP_SHARED | MAP_POPULATE, f->fd, 0);
    if (m != MAP_FAILED) f->map = static_cast<const uint8_t*>(m);  // else pread, as for larger files
  }
  return f;
}

// Decrypts one frame with the file's expanded key; false when the tag does not verify.
bool open_frame(EVP_CIPHER_CTX* ctx, const uint8_t nonce[12], const uint8_t* aad, size_t aad_len,
                const uint8_t* in, size_t len, uint8_t* out, const uint8_t tag[16]) {
  int n = 0;
  if (EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, nonce, 0) != 1) return false;
  if (EVP_CipherUpdate(ctx, nullptr, &n, aad, static_cast<int>(aad_len)) != 1) return false;
  if (len && EVP_CipherUpdate(ctx, out, &n, in, static_cast<int>(len)) != 1) return false;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, const_cast<uint8_t*>(tag)) != 1) return false;
  return EVP_CipherFinal_ex(ctx, out + len, &n) == 1;
}

}  // namespace

std::unique_ptr<SealedReader> SealedReader::open(const MasterKey& master, const std::string& path,
                                                 uint64_t plaintext_size, int* err, bool* corrupt,
                                                 OpenMode mode) {
  *err = 0;
  *corrupt = false;
  const core::TimePoint now = core::Clock::now();
  std::shared_ptr<OpenSealedFile> f;
  if (mode != OpenMode::kDetached) f = t_open_files.find(path, master, now);
  if (!f) {
    if (mode == OpenMode::kCachedOnly) return nullptr;
    f = open_sealed(master, path, err, corrupt);
    if (!f) return nullptr;
    f->used = now;
    if (mode == OpenMode::kCached) t_open_files.add(path, f);
  }
  // A file of another length than its metadata implies is not the one the metadata describes.
  if (f->file_bytes != sealed_file_size(plaintext_size)) {
    *corrupt = true;
    return nullptr;
  }
  std::unique_ptr<SealedReader> r(new SealedReader());
  r->file_ = std::move(f);
  r->size_ = plaintext_size;
  r->frames_ = frame_count(plaintext_size);
  return r;
}

void SealedReader::adopt_here(const std::string& path) {
  file_->used = core::Clock::now();
  t_open_files.add(path, file_);
}

SealedReader::~SealedReader() {
  if (plain_ && cached_frame_ != UINT64_MAX) OPENSSL_cleanse(plain_.get(), cached_len_);
}

bool SealedReader::load_frame(uint64_t index) {
  if (cached_frame_ == index) return true;
  cached_frame_ = UINT64_MAX;
  // Small objects need less than a whole frame; not zeroed (every byte used is written first).
  if (!plain_) plain_ = std::make_unique_for_overwrite<uint8_t[]>(std::min<uint64_t>(kFrameBytes, size_) + 1);
  ssize_t n = decrypt_frame(index, plain_.get());
  if (n < 0) return false;
  cached_frame_ = index;
  cached_len_ = static_cast<size_t>(n);
  return true;
}

ssize_t SealedReader::decrypt_frame(uint64_t index, uint8_t* dest) {
  bool final = index + 1 == frames_;
  size_t len = final ? static_cast<size_t>(size_ - index * kFrameBytes) : kFrameBytes;
  uint64_t off = kSealedHeaderBytes + index * (kFrameBytes + kTagBytes);
  size_t want = len + kTagBytes, got = 0;
  // The final frame asks for one byte more: bytes after it mean the file is not the one the metadata
  // describes. A regular file reads short only at its end, so a short read ends the loop.
  const size_t ask = final ? want + 1 : want;
  const uint8_t* sealed = file_->map ? file_->map + off : sealed_scratch();
  if (file_->map) got = want;  // the length was checked against the metadata when the file was opened
  while (got < ask && !file_->map) {
    ssize_t n =
        ::pread(file_->fd, const_cast<uint8_t*>(sealed) + got, ask - got, static_cast<off_t>(off + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      io_error_ = true;
      return -1;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
    if (final && got < ask) break;
  }
  if (got != want) return -1;  // shorter than the metadata says, or longer: corrupt
  uint8_t nonce[12], aad[25];
  frame_nonce(index, nonce);
  frame_aad(file_->file_id, index, final, aad);
  if (!open_frame(file_->ctx, nonce, aad, sizeof aad, sealed, len, dest, sealed + len)) {
    OPENSSL_cleanse(dest, len);  // GCM decrypts before it checks the tag: drop what it produced
    return -1;
  }
  return static_cast<ssize_t>(len);
}

ssize_t SealedReader::read(uint64_t offset, char* out, size_t len) {
  if (offset >= size_) return 0;
  len = static_cast<size_t>(std::min<uint64_t>(len, size_ - offset));
  size_t done = 0;
  while (done < len) {
    uint64_t pos = offset + done;
    uint64_t index = pos / kFrameBytes;
    size_t in_frame = static_cast<size_t>(pos - index * kFrameBytes);
    size_t frame_len = index + 1 == frames_ ? static_cast<size_t>(size_ - index * kFrameBytes) : kFrameBytes;
    if (in_frame == 0 && len - done >= frame_len && cached_frame_ != index) {
      // The caller wants the whole frame: decrypted straight into its buffer (the response's, or the read
      // cache's), without passing through the frame cache.
      ssize_t n = decrypt_frame(index, reinterpret_cast<uint8_t*>(out + done));
      if (n < 0) return io_error_ ? kSealedIoError : kSealedCorrupt;
      done += static_cast<size_t>(n);
      continue;
    }
    if (!load_frame(index)) return io_error_ ? kSealedIoError : kSealedCorrupt;
    size_t take = std::min(len - done, cached_len_ - in_frame);
    std::memcpy(out + done, plain_.get() + in_frame, take);
    done += take;
  }
  return static_cast<ssize_t>(done);
}

bool SealedReader::verify_all() {
  for (uint64_t i = 0; i < frames_; ++i)
    if (!load_frame(i)) return false;
  return true;
}

}  // namespace cumulo::objstore
