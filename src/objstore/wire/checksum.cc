#include "objstore/wire/checksum.h"

#include <openssl/evp.h>

#include <array>

#include "core/text.h"

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

// CRC combination (zlib's crc32_combine, generalised to any reflected CRC whose init and final XOR are both
// all ones): crc(A || B) = crc(A) * x^(8 * len(B)) mod P  xor  crc(B). Polynomials are bit-reversed, x^0 in
// the top bit.
template <typename T, T kPoly>
T mult_mod_p(T a, T b) {
  constexpr T kTop = T{1} << (sizeof(T) * 8 - 1);
  if (a == 0) return 0;
  T m = kTop, p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;
  }
  return p;
}

template <typename T, T kPoly>
T crc_combine(T crc1, T crc2, uint64_t len2) {
  constexpr T kTop = T{1} << (sizeof(T) * 8 - 1);
  // power = x^(2^k) mod P, starting at k = 3 (x^8: one byte); result = x^(8 * len2) mod P.
  T power = kTop >> 1;  // x^1
  for (int k = 0; k < 3; ++k) power = mult_mod_p<T, kPoly>(power, power);
  T result = kTop;  // x^0
  for (uint64_t n = len2; n; n >>= 1) {
    if (n & 1) result = mult_mod_p<T, kPoly>(power, result);
    power = mult_mod_p<T, kPoly>(power, power);
  }
  return mult_mod_p<T, kPoly>(result, crc1) ^ crc2;
}

}  // namespace

std::optional<ChecksumAlgorithm> checksum_from_header(std::string_view h) {
  std::string n = core::to_lower(h);
  if (n == "x-amz-checksum-crc32") return ChecksumAlgorithm::kCrc32;
  if (n == "x-amz-checksum-crc32c") return ChecksumAlgorithm::kCrc32c;
  if (n == "x-amz-checksum-crc64nvme") return ChecksumAlgorithm::kCrc64Nvme;
  if (n == "x-amz-checksum-sha1") return ChecksumAlgorithm::kSha1;
  if (n == "x-amz-checksum-sha256") return ChecksumAlgorithm::kSha256;
  return std::nullopt;
}

std::optional<ChecksumAlgorithm> checksum_from_name(std::string_view name) {
  std::string n = "x-amz-checksum-" + core::to_lower(name);
  return checksum_from_header(n);
}

std::string_view checksum_name(ChecksumAlgorithm a) {
  switch (a) {
    case ChecksumAlgorithm::kCrc32:
      return "CRC32";
    case ChecksumAlgorithm::kCrc32c:
      return "CRC32C";
    case ChecksumAlgorithm::kCrc64Nvme:
      return "CRC64NVME";
    case ChecksumAlgorithm::kSha1:
      return "SHA1";
    case ChecksumAlgorithm::kSha256:
      return "SHA256";
  }
  return "";
}

bool is_crc(ChecksumAlgorithm a) {
  return a == ChecksumAlgorithm::kCrc32 || a == ChecksumAlgorithm::kCrc32c ||
         a == ChecksumAlgorithm::kCrc64Nvme;
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

std::optional<std::string> base64_decode(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0) return std::nullopt;
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
              c == '/' || (c == '=' && i + 2 >= in.size() && (i + 1 == in.size() || in[i + 1] == '='));
    if (!ok) return std::nullopt;
  }
  std::string out(in.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  size_t pad = in.back() == '=' ? (in[in.size() - 2] == '=' ? 2 : 1) : 0;
  out.resize(static_cast<size_t>(n) - pad);
  // Canonical only: the bits after the last byte must be zero ("NhCmhgm=" is not another "NhCmhg==").
  if (base64_encode(out) != in) return std::nullopt;
  return out;
}

namespace {

size_t digest_bytes(ChecksumAlgorithm a) {
  switch (a) {
    case ChecksumAlgorithm::kCrc32:
    case ChecksumAlgorithm::kCrc32c:
      return 4;
    case ChecksumAlgorithm::kCrc64Nvme:
      return 8;
    case ChecksumAlgorithm::kSha1:
      return 20;
    case ChecksumAlgorithm::kSha256:
      return 32;
  }
  return 0;
}

uint64_t big_endian(std::string_view raw) {
  uint64_t v = 0;
  for (unsigned char c : raw) v = (v << 8) | c;
  return v;
}

}  // namespace

std::optional<std::string> multipart_checksum(ChecksumAlgorithm a, const std::vector<PartChecksum>& parts,
                                              bool full_object) {
  if (parts.empty()) return std::nullopt;
  std::string raws;
  for (const auto& p : parts) {
    auto raw = base64_decode(p.base64);
    if (!raw || raw->size() != digest_bytes(a)) return std::nullopt;
    raws += *raw;
  }
  if (!full_object) {
    if (a == ChecksumAlgorithm::kCrc64Nvme) return std::nullopt;  // S3 offers CRC64NVME as FULL_OBJECT only
    Checksummer c(a);
    c.update(raws);
    return c.base64() + "-" + std::to_string(parts.size());
  }
  if (!is_crc(a)) return std::nullopt;
  const size_t width = digest_bytes(a);
  uint64_t crc = big_endian(std::string_view(raws).substr(0, width));
  for (size_t i = 1; i < parts.size(); ++i) {
    uint64_t next = big_endian(std::string_view(raws).substr(i * width, width));
    switch (a) {
      case ChecksumAlgorithm::kCrc32:
        crc = crc_combine<uint32_t, 0xEDB88320u>(static_cast<uint32_t>(crc), static_cast<uint32_t>(next),
                                                 parts[i].size);
        break;
      case ChecksumAlgorithm::kCrc32c:
        crc = crc_combine<uint32_t, 0x82F63B78u>(static_cast<uint32_t>(crc), static_cast<uint32_t>(next),
                                                 parts[i].size);
        break;
      default:
        crc = crc_combine<uint64_t, 0x9A6C9329AC4BC9B5ull>(crc, next, parts[i].size);
        break;
    }
  }
  std::string raw;
  for (int i = static_cast<int>(width) - 1; i >= 0; --i) raw += static_cast<char>((crc >> (8 * i)) & 0xFF);
  return base64_encode(raw);
}

}  // namespace cumulo::objstore
