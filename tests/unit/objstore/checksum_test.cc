// The flexible checksums against the standard check values ("123456789") of each CRC and known digests.
#include "objstore/wire/checksum.h"

#include <gtest/gtest.h>

namespace cumulo::objstore {
namespace {

std::string digest(ChecksumAlgorithm a, std::string_view data, size_t step = 1000) {
  Checksummer c(a);
  for (size_t i = 0; i < data.size(); i += step) c.update(data.substr(i, step));
  return c.base64();
}

TEST(Checksum, CheckValues) {
  // CRC-32 0xCBF43926, CRC-32C 0xE3069283, CRC-64/NVME 0xAE8B14860A799888, as big-endian bytes in base64.
  EXPECT_EQ(digest(ChecksumAlgorithm::kCrc32, "123456789"), base64_encode("\xCB\xF4\x39\x26"));
  EXPECT_EQ(digest(ChecksumAlgorithm::kCrc32c, "123456789"), base64_encode("\xE3\x06\x92\x83"));
  EXPECT_EQ(digest(ChecksumAlgorithm::kCrc64Nvme, "123456789"),
            base64_encode(std::string_view("\xAE\x8B\x14\x86\x0A\x79\x98\x88", 8)));
  EXPECT_EQ(digest(ChecksumAlgorithm::kCrc32, "hello"), "NhCmhg==");
  EXPECT_EQ(digest(ChecksumAlgorithm::kSha256, ""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
  EXPECT_EQ(digest(ChecksumAlgorithm::kSha1, "abc"), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
  std::string big(100000, 'z');
  EXPECT_EQ(digest(ChecksumAlgorithm::kCrc32c, big, 1), digest(ChecksumAlgorithm::kCrc32c, big, 99999));
}

TEST(Checksum, Names) {
  EXPECT_EQ(checksum_from_header("X-Amz-Checksum-CRC32C"), ChecksumAlgorithm::kCrc32c);
  EXPECT_EQ(checksum_from_name("CRC64NVME"), ChecksumAlgorithm::kCrc64Nvme);
  EXPECT_FALSE(checksum_from_header("x-amz-checksum-mode"));
  EXPECT_EQ(checksum_header(ChecksumAlgorithm::kSha256), "x-amz-checksum-sha256");
}

}  // namespace
}  // namespace cumulo::objstore
