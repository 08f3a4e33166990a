#include "objstore/wire/checksum.h"

#include <openssl/evp.h>

#include <array>

namespace cumulo::objstore {

namespace {

// Reflected table-driven CRCs; polynomials from the S3 documentation of each algorithm: CRC-32 (ISO-HDLC),
// CRC-32C (Castagnoli), CRC-64/NVME.
template <typename T, T kPoly>
constexpr std::array<T, 256> crc_table() {
  std::array<T, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    T c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[i] = c;
  }
  return t;
}

constexpr auto kCrc32Table = crc_table<uint32_t, 0xEDB88320u>();
constexpr auto kCrc32cTable = crc_table<uint32_t, 0x82F63B78u>();
constexpr auto kCrc64Table = crc_table<uint64_t, 0x9A6C9329AC4BC9B5ull>();

template <typename T, size_t N>
T crc_update(const std::array<T, N>& table, T crc, std::string_view data) {
  for (unsigned char c : data) crc = table[(crc ^ c) & 0xFF] ^ (crc >> 8);
  return crc;
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

}  // namespace

std::optional<ChecksumAlgorithm> checksum_from_header(std::string_view h) {
  std::string n = lowered(h);
  if (n == "x-amz-checksum-crc32") return ChecksumAlgorithm::kCrc32;
  if (n == "x-amz-checksum-crc32c") return ChecksumAlgorithm::kCrc32c;
  if (n == "x-amz-checksum-crc64nvme") return ChecksumAlgorithm::kCrc64Nvme;
  if (n == "x-amz-checksum-sha1") return ChecksumAlgorithm::kSha1;
  if (n == "x-amz-checksum-sha256") return ChecksumAlgorithm::kSha256;
  return std::nullopt;
}

std::optional<ChecksumAlgorithm> checksum_from_name(std::string_view name) {
  std::string n = "x-amz-checksum-" + lowered(name);
  return checksum_from_header(n);
}

std::string_view checksum_header(ChecksumAlgorithm a) {
  switch (a) {
    case ChecksumAlgorithm::kCrc32:
      return "x-amz-checksum-crc32";
    case ChecksumAlgorithm::kCrc32c:
      return "x-amz-checksum-crc32c";
    case ChecksumAlgorithm::kCrc64Nvme:
      return "x-amz-checksum-crc64nvme";
    case ChecksumAlgorithm::kSha1:
      return "x-amz-checksum-sha1";
    case ChecksumAlgorithm::kSha256:
      return "x-amz-checksum-sha256";
  }
  return "";
}

Checksummer::Checksummer(ChecksumAlgorithm a) : alg_(a) {
  if (a == ChecksumAlgorithm::kSha1 || a == ChecksumAlgorithm::kSha256) {
    auto* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, a == ChecksumAlgorithm::kSha1 ? EVP_sha1() : EVP_sha256(), nullptr);
    md_ = ctx;
  } else {
    crc_ = a == ChecksumAlgorithm::kCrc64Nvme ? ~uint64_t{0} : 0xFFFFFFFFu;
  }
}

Checksummer::~Checksummer() {
  if (md_) EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(md_));
}

void Checksummer::update(std::string_view data) {
  switch (alg_) {
    case ChecksumAlgorithm::kCrc32:
      crc_ = crc_update(kCrc32Table, static_cast<uint32_t>(crc_), data);
      break;
    case ChecksumAlgorithm::kCrc32c:
      crc_ = crc_update(kCrc32cTable, static_cast<uint32_t>(crc_), data);
      break;
    case ChecksumAlgorithm::kCrc64Nvme:
      crc_ = crc_update(kCrc64Table, crc_, data);
      break;
    case ChecksumAlgorithm::kSha1:
    case ChecksumAlgorithm::kSha256:
      EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(md_), data.data(), data.size());
      break;
  }
}

std::string Checksummer::base64() {
  std::string raw;
  if (md_) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(md_), d, &n);
    raw.assign(reinterpret_cast<const char*>(d), n);
  } else {
    int bytes = alg_ == ChecksumAlgorithm::kCrc64Nvme ? 8 : 4;
    uint64_t v = alg_ == ChecksumAlgorithm::kCrc64Nvme ? ~crc_ : (~crc_ & 0xFFFFFFFFu);
    for (int i = bytes - 1; i >= 0; --i) raw += static_cast<char>((v >> (8 * i)) & 0xFF);
  }
  return base64_encode(raw);
}

std::string base64_encode(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace cumulo::objstore
