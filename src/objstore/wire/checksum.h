// The flexible checksums S3 clients send with uploads (x-amz-checksum-crc32, -crc32c, -crc64nvme, -sha1,
// -sha256: the big-endian digest, base64-encoded), computed incrementally as a body streams.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace cumulo::objstore {

enum class ChecksumAlgorithm : uint8_t { kCrc32, kCrc32c, kCrc64Nvme, kSha1, kSha256 };

// "x-amz-checksum-crc32" (any case) -> kCrc32; nullopt for other names.
std::optional<ChecksumAlgorithm> checksum_from_header(std::string_view header_name);
// "CRC32", "crc32c", "CRC64NVME", "SHA1", "SHA256" (x-amz-sdk-checksum-algorithm) -> the algorithm.
std::optional<ChecksumAlgorithm> checksum_from_name(std::string_view name);
std::string_view checksum_header(ChecksumAlgorithm a);  // "x-amz-checksum-crc32"

class Checksummer {
 public:
  explicit Checksummer(ChecksumAlgorithm a);
  ~Checksummer();
  Checksummer(const Checksummer&) = delete;
  Checksummer& operator=(const Checksummer&) = delete;
  void update(std::string_view data);
  std::string base64();  // ends the computation
  ChecksumAlgorithm algorithm() const { return alg_; }

 private:
  ChecksumAlgorithm alg_;
  uint64_t crc_ = 0;
  void* md_ = nullptr;  // EVP_MD_CTX for SHA-1 and SHA-256
};

std::string base64_encode(std::string_view raw);

}  // namespace cumulo::objstore
