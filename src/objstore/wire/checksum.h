// The flexible checksums S3 clients send with uploads (x-amz-checksum-crc32, -crc32c, -crc64nvme, -sha1,
// -sha256: the big-endian digest, base64-encoded), computed incrementally as a body streams.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cumulo::objstore {

enum class ChecksumAlgorithm : uint8_t { kCrc32, kCrc32c, kCrc64Nvme, kSha1, kSha256 };

// "x-amz-checksum-crc32" (any case) -> kCrc32; nullopt for other names.
std::optional<ChecksumAlgorithm> checksum_from_header(std::string_view header_name);
// "CRC32", "crc32c", "CRC64NVME", "SHA1", "SHA256" (x-amz-sdk-checksum-algorithm) -> the algorithm.
std::optional<ChecksumAlgorithm> checksum_from_name(std::string_view name);
std::string_view checksum_header(ChecksumAlgorithm a);  // "x-amz-checksum-crc32"
std::string_view checksum_name(ChecksumAlgorithm a);    // "CRC32" (XML elements: "Checksum" + name)
bool is_crc(ChecksumAlgorithm a);

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
// Strict: padded, a multiple of 4 characters; nullopt for anything else.
std::optional<std::string> base64_decode(std::string_view text);

// Multipart checksums (S3 user guide, "Checking object integrity": "Using part-level checksums for multipart
// uploads"). COMPOSITE: the algorithm over the concatenated raw part checksums, "-N" appended (every
// algorithm but CRC64NVME). FULL_OBJECT: the checksum of the whole object's bytes, combined from the parts'
// CRCs and sizes without reading the data (CRC32, CRC32C, CRC64NVME only). nullopt when a part's checksum is
// not a valid value of the algorithm, or the algorithm does not support the type.
struct PartChecksum {
  std::string base64;
  uint64_t size = 0;
};
std::optional<std::string> multipart_checksum(ChecksumAlgorithm a, const std::vector<PartChecksum>& parts,
                                              bool full_object);

}  // namespace cumulo::objstore
