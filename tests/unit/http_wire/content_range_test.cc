#include "http/wire/content_range.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace cumulo::http
