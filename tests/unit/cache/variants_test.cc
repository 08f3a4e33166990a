// Compressed variants of stored objects: gzip (zlib) and brotli (libbrotli) bodies decode to the identity
// body.
#include <brotli/decode.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <string>

#include "cache/store.h"

namespace cumulo::cache {
namespace {

std::string text(size_t n) {
  std::string s;
  for (size_t i = 0; s.size() < n; ++i)
    s += "<p>line " + std::to_string(i % 97) + " of a compressible page</p>\n";
  s.resize(n);
  return s;
}

std::string brotli_decode(const std::string& in, size_t expected) {
  std::string out(expected + 16, '\0');
  size_t size = out.size();
  if (BrotliDecoderDecompress(in.size(), reinterpret_cast<const uint8_t*>(in.data()), &size,
                              reinterpret_cast<uint8_t*>(out.data())) != BROTLI_DECODER_RESULT_SUCCESS)
    return "<brotli error>";
  out.resize(size);
  return out;
}

std::string gzip_decode(const std::string& in, size_t expected) {
  std::string out(expected + 16, '\0');
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return "<zlib error>";
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = inflate(&z, Z_FINISH);
  out.resize(z.total_out);
  inflateEnd(&z);
  return rc == Z_STREAM_END ? out : "<gzip error>";
}

TEST(Variants, BrotliRoundTripsAndIsSmaller) {
  for (size_t n : {size_t{1024}, size_t{100'000}, size_t{4u << 20}}) {
    const std::string in = text(n);
    std::string br;
    ASSERT_TRUE(brotli_compress(in, br)) << n;
    EXPECT_LT(br.size(), in.size() / 4) << n;
    EXPECT_EQ(brotli_decode(br, in.size()), in) << n;
  }
}

TEST(Variants, GzipRoundTrips) {
  const std::string in = text(50'000);
  std::string gz;
  ASSERT_TRUE(gzip_compress(in, gz));
  EXPECT_EQ(gzip_decode(gz, in.size()), in);
}

TEST(Variants, IncompressibleBodiesGetNone) {
  std::string noise(8192, '\0');
  uint64_t x = 88172645463325252ull;
  for (char& c : noise) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift: bytes no coder can shrink
    c = static_cast<char>(x);
  }
  std::string out = "stale";
  EXPECT_FALSE(brotli_compress(noise, out));
  EXPECT_TRUE(out.empty());
  out = "stale";
  EXPECT_FALSE(gzip_compress(noise, out));
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(brotli_compress("", out));
}

TEST(Variants, CompressibleTypes) {
  EXPECT_TRUE(compressible_type("text/html; charset=utf-8"));
  EXPECT_TRUE(compressible_type("application/manifest+json"));
  EXPECT_FALSE(compressible_type("video/mp4"));
  EXPECT_FALSE(compressible_type("image/png"));
}

}  // namespace
}  // namespace cumulo::cache
