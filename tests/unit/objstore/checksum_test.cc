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

// Multipart checksums; the expected values come from Python's zlib.crc32 and hashlib, independently.
TEST(Checksum, MultipartCompositeAndFullObject) {
  std::vector<PartChecksum> crc_parts = {{"7YH59g==", 6}, {"OncRQw==", 5}};  // "hello ", "world"
  EXPECT_EQ(multipart_checksum(ChecksumAlgorithm::kCrc32, crc_parts, false), "1Fu2mQ==-2");
  EXPECT_EQ(multipart_checksum(ChecksumAlgorithm::kCrc32, crc_parts, true), "DUoRhQ==");
  std::vector<PartChecksum> sha_parts = {{"XjI1qDRuWkWF+MWFYvUFK4/iajuxIuHpbHZ4SWTfxGE=", 6},
                                         {"SG6kYiTRu0+2gPNPfJrZao8k7Ii+c+qOWmxlJg6cuKc=", 5}};
  EXPECT_EQ(multipart_checksum(ChecksumAlgorithm::kSha256, sha_parts, false),
            "Zhie15keHg/OBlOZxcoF/BXCgYZaeimRvdZnwUZqkaQ=-2");
  EXPECT_FALSE(multipart_checksum(ChecksumAlgorithm::kSha256, sha_parts, true));     // no FULL_OBJECT SHA
  EXPECT_FALSE(multipart_checksum(ChecksumAlgorithm::kCrc64Nvme, crc_parts, true));  // 4 bytes, not 8
  EXPECT_FALSE(multipart_checksum(ChecksumAlgorithm::kCrc32, {{"not base64", 1}}, true));
  EXPECT_FALSE(multipart_checksum(ChecksumAlgorithm::kCrc32, {}, true));
}

// FULL_OBJECT combines the parts' CRCs: it must equal the CRC of the whole, for every split, empty parts and
// large parts included (the combination's x^(8n) over many bits of n).
TEST(Checksum, CrcCombineEqualsTheWholeObjectsCrc) {
  std::string data;
  for (size_t i = 0; i < 300000; ++i) data += static_cast<char>((i * 131 + i / 7) % 256);
  for (auto alg : {ChecksumAlgorithm::kCrc32, ChecksumAlgorithm::kCrc32c, ChecksumAlgorithm::kCrc64Nvme}) {
    std::string whole = digest(alg, data);
    for (std::vector<size_t> cuts : std::vector<std::vector<size_t>>{
             {}, {1}, {0, 5}, {299999}, {65536, 65536 + 1, 200000}, {100, 100, 100}, {300000}}) {
      std::vector<PartChecksum> parts;
      size_t start = 0;
      cuts.push_back(data.size());
      for (size_t cut : cuts) {
        parts.push_back({digest(alg, std::string_view(data).substr(start, cut - start)), cut - start});
        start = cut;
      }
      EXPECT_EQ(multipart_checksum(alg, parts, true), whole)
          << checksum_name(alg) << " in " << parts.size() << " parts";
    }
  }
  EXPECT_FALSE(multipart_checksum(ChecksumAlgorithm::kCrc64Nvme,
                                  {{digest(ChecksumAlgorithm::kCrc64Nvme, "x"), 1}},
                                  false));  // CRC64NVME: FULL_OBJECT only
}

TEST(Checksum, Base64IsStrict) {
  EXPECT_EQ(base64_decode("aGVsbG8="), "hello");
  EXPECT_EQ(base64_decode("aGk="), "hi");
  EXPECT_EQ(base64_decode("YWJj"), "abc");
  for (std::string_view bad :
       {"", "aGVsbG8", "aGVs bG8=", "a=GV", "aGVsbG8=====", "=AAA", "AA=A", "NhCmhgm="})
    EXPECT_FALSE(base64_decode(bad)) << bad;
}

}  // namespace
}  // namespace cumulo::objstore
