// HTTP-date parsing and formatting (RFC 9110 section 5.6.7).
#include <gtest/gtest.h>

#include <string_view>

#include "cache/policy.h"

namespace cumulo::cache {
namespace {

constexpr int64_t kSunday1994 = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT
constexpr int64_t kNow2026 = 1795000000;    // Nov 2026

TEST(HttpDate, TheThreeFormatsOfRfc9110) {
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), kSunday1994);
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", kNow2026), kSunday1994);
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), kSunday1994);
  EXPECT_EQ(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
  EXPECT_EQ(parse_http_date("Wed Dec 31 23:59:59 1969"), -1);
}

TEST(HttpDate, AsctimeWithTwoDigitDay) {
  EXPECT_EQ(parse_http_date("Thu Nov 16 08:49:37 1994"), kSunday1994 + 10 * 86400);
}

TEST(HttpDate, Rfc850YearMoreThanFiftyYearsAheadIsInThePast) {
  // Seen in 2026: "94" would be 2094, more than 50 years ahead, so 1994; "30" is 2030; "76" is 2076.
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", kNow2026), kSunday1994);
  EXPECT_EQ(parse_http_date("Wednesday, 01-Jan-30 00:00:00 GMT", kNow2026), 1893456000);
  const auto y2077 = parse_http_date("Friday, 01-Jan-77 00:00:00 GMT", kNow2026);
  ASSERT_TRUE(y2077.has_value());
  EXPECT_EQ(*y2077, 220924800);  // 1977: 2077 is 51 years ahead
  EXPECT_EQ(parse_http_date("Friday, 01-Jan-76 00:00:00 GMT", kNow2026), 3345062400);  // 2076
}

TEST(HttpDate, CalendarChecks) {
  EXPECT_TRUE(parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT").has_value());
  EXPECT_FALSE(parse_http_date("Thu, 29 Feb 1900 00:00:00 GMT").has_value());
  EXPECT_FALSE(parse_http_date("Sun, 31 Nov 1994 08:49:37 GMT").has_value());
  EXPECT_FALSE(parse_http_date("Sun, 00 Nov 1994 08:49:37 GMT").has_value());
  EXPECT_FALSE(parse_http_date("Sun, 06 Nov 1994 24:00:00 GMT").has_value());
  EXPECT_FALSE(parse_http_date("Sun, 06 Nov 1994 08:60:00 GMT").has_value());
  // A leap second is accepted and is the next minute's second 0.
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:60 GMT"), kSunday1994 + 23);
}

TEST(HttpDate, MalformedIsRejected) {
  for (std::string_view bad : {
           "",
           "0",
           "-1",
           "Sun",
           "Sun, 06 Nov 1994 08:49:37",
           "Sun, 06 Nov 1994 08:49:37 UTC",
           "Sun, 06 Nov 1994 08:49:37 GMT ",
           " Sun, 06 Nov 1994 08:49:37 GMT",
           "sun, 06 Nov 1994 08:49:37 GMT",
           "Sun, 06 nov 1994 08:49:37 GMT",
           "Sun, 6 Nov 1994 08:49:37 GMT",
           "Sun, 06 Nov 94 08:49:37 GMT",
           "Sun, 06 Nov 1994 8:49:37 GMT",
           "Sun, 06 Nov 1994 08:49:37 GMTX",
           "Sun,06 Nov 1994 08:49:37 GMT",
           "Sunday, 06-Nov-1994 08:49:37 GMT",
           "Sunday, 06 Nov 94 08:49:37 GMT",
           "Sun Nov 6 08:49:37 1994",
           "Sun Nov  6 08:49:37 94",
           "Sun Nov  6 08:49:37 1994 ",
           "Xyz, 06 Nov 1994 08:49:37 GMT",
           "Sun, 06 Nov 1994 08:49:3",
           "Sun, 06 Nov 1994 08:49:37 GM",
       }) {
    EXPECT_FALSE(parse_http_date(bad, kNow2026).has_value()) << bad;
  }
}

TEST(HttpDate, FormatsImfFixdate) {
  char buf[30];
  ASSERT_EQ(format_http_date(kSunday1994, buf), 29u);
  EXPECT_EQ(std::string_view(buf), "Sun, 06 Nov 1994 08:49:37 GMT");
  ASSERT_EQ(format_http_date(0, buf), 29u);
  EXPECT_EQ(std::string_view(buf), "Thu, 01 Jan 1970 00:00:00 GMT");
  ASSERT_EQ(format_http_date(951782400, buf), 29u);
  EXPECT_EQ(std::string_view(buf), "Tue, 29 Feb 2000 00:00:00 GMT");
  // Out of the four-digit-year span: clamped.
  format_http_date(-5, buf);
  EXPECT_EQ(std::string_view(buf), "Thu, 01 Jan 1970 00:00:00 GMT");
  format_http_date(INT64_MAX, buf);
  EXPECT_EQ(std::string_view(buf), "Fri, 31 Dec 9999 23:59:59 GMT");
}

TEST(HttpDate, RoundTrips) {
  char buf[30];
  for (int64_t t : {int64_t{0}, int64_t{1}, kSunday1994, int64_t{951868799}, int64_t{4102444800},
                    int64_t{253402300799}}) {
    format_http_date(t, buf);
    EXPECT_EQ(parse_http_date(buf), t) << buf;
  }
  for (int64_t t = 0; t < int64_t{4102444800}; t += 7777777) {
    format_http_date(t, buf);
    ASSERT_EQ(parse_http_date(buf), t) << buf;
  }
}

}  // namespace
}  // namespace cumulo::cache
