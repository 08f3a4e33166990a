#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "health/health.h"

namespace cumulo::health {
namespace {

using Ranges = std::vector<std::pair<int, int>>;

TEST(ExpectedCodes, CodesAndRanges) {
  Ranges r;
  ASSERT_TRUE(parse_expected_codes("200", r));
  EXPECT_EQ(r, (Ranges{{200, 200}}));
  ASSERT_TRUE(parse_expected_codes("200-399", r));
  EXPECT_EQ(r, (Ranges{{200, 399}}));
  ASSERT_TRUE(parse_expected_codes(" 200 , 204,300-399 ", r));
  EXPECT_EQ(r, (Ranges{{200, 200}, {204, 204}, {300, 399}}));
  ASSERT_TRUE(parse_expected_codes("200,", r));  // one trailing comma, as configuration files have had
  EXPECT_EQ(r, (Ranges{{200, 200}}));
}

TEST(ExpectedCodes, Refused) {
  Ranges r;
  for (const char* bad : {"", ",", "200,,204", "200, ,204", ",200", "ok", "99", "600", "299-200", "200-",
                          "-200", "200-299-300", "2OO", "200,,"}) {
    EXPECT_FALSE(parse_expected_codes(bad, r)) << bad;
  }
}

}  // namespace
}  // namespace cumulo::health
