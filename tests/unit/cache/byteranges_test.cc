// multipart/byteranges bodies (RFC 9110 section 14.6) and Content-Range of 206 responses (section 14.4).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cache/policy.h"

namespace cumulo::cache {
namespace {

TEST(Multipart, ExampleOfRfc9110) {
  // Section 14.6's example, for a 1741-byte representation (parts ascending after coalescing).
  std::string body(1741, 'x');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  const std::string got = multipart_byteranges(body, {{500, 999}, {7000 % 1741, 7999 % 1741}}, "text/html",
                                               "THIS_STRING_SEPARATES");
  // 7000 % 1741 = 36, 7999 % 1741 = 1035: the second part starts inside the representation too.
  const std::string want =
      "\r\n--THIS_STRING_SEPARATES\r\nContent-Type: text/html\r\nContent-Range: bytes 500-999/1741"
      "\r\n\r\n" +
      body.substr(500, 500) +
      "\r\n--THIS_STRING_SEPARATES\r\nContent-Type: text/html\r\nContent-Range: bytes "
      "36-1035/1741\r\n\r\n" +
      body.substr(36, 1000) + "\r\n--THIS_STRING_SEPARATES--\r\n";
  EXPECT_EQ(got, want);
}

TEST(Multipart, WithoutContentTypeAndOneBytePartsInRequestOrder) {
  const std::string got = multipart_byteranges("0123456789", {{9, 9}, {0, 0}}, "", "b");
  EXPECT_EQ(got,
            "\r\n--b\r\nContent-Range: bytes 9-9/10\r\n\r\n9"
            "\r\n--b\r\nContent-Range: bytes 0-0/10\r\n\r\n0"
            "\r\n--b--\r\n");
}

TEST(Multipart, FromParsedRanges) {
  // What the cache does with "bytes=0-0,-1" of section 14.1.2: the first and the last byte.
  std::vector<ByteRange> r;
  ASSERT_EQ(parse_range("bytes=0-0,-1", 4, r), RangeKind::kRanges);
  EXPECT_EQ(multipart_byteranges("abcd", r, "text/plain", "z"),
            "\r\n--z\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-0/4\r\n\r\na"
            "\r\n--z\r\nContent-Type: text/plain\r\nContent-Range: bytes 3-3/4\r\n\r\nd\r\n--z--\r\n");
}

TEST(ContentRange, Valid) {
  auto cr = parse_content_range("bytes 0-1048575/52428800");
  ASSERT_TRUE(cr);
  EXPECT_EQ(cr->first, 0u);
  EXPECT_EQ(cr->last, 1048575u);
  EXPECT_EQ(cr->complete_length, 52428800u);
  cr = parse_content_range(" Bytes 42-42/*");
  ASSERT_TRUE(cr);
  EXPECT_EQ(cr->first, 42u);
  EXPECT_FALSE(cr->complete_length);
  cr = parse_content_range("bytes 0-18446744073709551614/18446744073709551615");
  ASSERT_TRUE(cr);
  EXPECT_EQ(cr->last, UINT64_MAX - 1);
}

TEST(ContentRange, Invalid) {
  for (const char* v : {"", "bytes", "bytes */100", "bytes 5-4/10", "bytes 0-10/10", "bytes 0-1/",
                        "bytes 0-/10", "bytes -1/10", "items 0-1/10", "bytes  0-1/10", "bytes 0-1",
                        "bytes 0-1/1x", "bytes 0-99999999999999999999/*", "bytes 1/2-3", "bytes=0-1/10"}) {
    EXPECT_FALSE(parse_content_range(v)) << v;
  }
}

}  // namespace
}  // namespace cumulo::cache
