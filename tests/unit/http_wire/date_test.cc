#include "http/wire/date.h"

#include <gtest/gtest.h>

#include <string>

namespace cumulo::http {
namespace {

TEST(HttpDate, FormatsImfFixdate) {
  EXPECT_EQ(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");  // RFC 9110 section 5.6.7
  EXPECT_EQ(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(http_date(-5), "Thu, 01 Jan 1970 00:00:00 GMT");  // clamped
}

// The name tables the cache's parser reads with are the ones the formatter writes from.
TEST(HttpDate, NameTablesFollowTheCalendar) {
  constexpr int64_t kSunday = 784080000;  // Sun, 06 Nov 1994 00:00:00 GMT
  for (size_t d = 0; d < kDayNames.size(); ++d) {
    const std::string date = http_date(kSunday + static_cast<int64_t>(d) * 86400);
    EXPECT_EQ(date.substr(0, 3), kDayNames[d]) << date;
    EXPECT_TRUE(kLongDayNames[d].starts_with(kDayNames[d]));
  }
  constexpr int64_t kJan15 = 1736899200;  // Wed, 15 Jan 2025 00:00:00 GMT
  for (size_t m = 0; m < kMonthNames.size(); ++m) {
    const std::string date = http_date(kJan15 + static_cast<int64_t>(m) * 30 * 86400);
    EXPECT_EQ(date.substr(8, 3), kMonthNames[m]) << date;
  }
}

}  // namespace
}  // namespace cumulo::http
