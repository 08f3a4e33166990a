#include "http/wire/content_range.h"

#include <gtest/gtest.h>

#include <string>

namespace cumulo::http {
namespace {

TEST(ContentRange, RangeRespAndUnsatisfiedRange) {
  EXPECT_EQ(content_range(0, 0, 1), "bytes 0-0/1");
  EXPECT_EQ(content_range(100, 199, 1000), "bytes 100-199/1000");
  EXPECT_EQ(content_range(0, 18446744073709551614u, 18446744073709551615u),
            "bytes 0-18446744073709551614/18446744073709551615");
  EXPECT_EQ(unsatisfied_content_range(0), "bytes */0");
  EXPECT_EQ(unsatisfied_content_range(4096), "bytes */4096");
}

// The appending form adds to what is there and, with room reserved, does not reallocate.
TEST(ContentRange, AppendsInPlace) {
  std::string out = "Content-Range: ";
  out.reserve(128);
  const char* data = out.data();
  append_content_range(out, 0, 18446744073709551614u, 18446744073709551615u);
  EXPECT_EQ(out, "Content-Range: bytes 0-18446744073709551614/18446744073709551615");
  EXPECT_EQ(out.data(), data);
  append_content_range(out, 5, 9, 10);
  EXPECT_EQ(out, "Content-Range: bytes 0-18446744073709551614/18446744073709551615bytes 5-9/10");
}

}  // namespace
}  // namespace cumulo::http
