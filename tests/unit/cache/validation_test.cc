// Conditional requests answered from storage (RFC 9111 sections 4.3.2 and 4.3.4, RFC 9110 sections 8.8.3
// and 13.1) and If-Range (RFC 9110 section 13.1.5).
#include <gtest/gtest.h>

#include "cache/policy.h"
#include "cache_test_util.h"

namespace cumulo::cache {
namespace {

using test::request;

#define DATE "Sun, 06 Nov 1994 08:49:37 GMT"
constexpr int64_t kDate = 784111777;

TEST(EntityTags, WeakAndStrongComparison) {
  // The table of RFC 9110 section 8.8.3.2.
  EXPECT_FALSE(etag_strong_match("W/\"1\"", "W/\"1\""));
  EXPECT_TRUE(etag_weak_match("W/\"1\"", "W/\"1\""));
  EXPECT_FALSE(etag_strong_match("W/\"1\"", "W/\"2\""));
  EXPECT_FALSE(etag_weak_match("W/\"1\"", "W/\"2\""));
  EXPECT_FALSE(etag_strong_match("W/\"1\"", "\"1\""));
  EXPECT_TRUE(etag_weak_match("W/\"1\"", "\"1\""));
  EXPECT_TRUE(etag_strong_match("\"1\"", "\"1\""));
  EXPECT_TRUE(etag_weak_match("\"1\"", "\"1\""));
  // Malformed tags match nothing.
  EXPECT_FALSE(etag_weak_match("1", "1"));
  EXPECT_FALSE(etag_weak_match("w/\"1\"", "\"1\""));
  EXPECT_FALSE(etag_weak_match("\"1", "\"1"));
  EXPECT_FALSE(etag_weak_match("\"a b\"", "\"a b\""));
  EXPECT_TRUE(etag_strong_match("\"\"", "\"\""));
}

TEST(NotModified, IfNoneMatchUsesWeakComparison) {
  EXPECT_TRUE(answer_not_modified(request({{"If-None-Match", "\"abc\""}}), "W/\"abc\"", "", kDate));
  EXPECT_TRUE(answer_not_modified(request({{"If-None-Match", "W/\"abc\""}}), "\"abc\"", "", kDate));
  EXPECT_TRUE(answer_not_modified(request({{"If-None-Match", "\"x\", W/\"abc\""}}), "\"abc\"", "", kDate));
  EXPECT_TRUE(answer_not_modified(request({{"If-None-Match", "\"x\""}, {"If-None-Match", "\"abc\""}}),
                                  "\"abc\"", "", kDate));
  EXPECT_FALSE(answer_not_modified(request({{"If-None-Match", "\"abd\""}}), "\"abc\"", "", kDate));
  // An entity-tag may hold a comma.
  EXPECT_TRUE(answer_not_modified(request({{"If-None-Match", "\"a,b\""}}), "\"a,b\"", "", kDate));
  EXPECT_FALSE(answer_not_modified(request({{"If-None-Match", "\"a,b\""}}), "\"a\"", "", kDate));
}

TEST(NotModified, StarMatchesAnyStoredResponse) {
  EXPECT_TRUE(answer_not_modified(request({{"If-None-Match", "*"}}), "\"abc\"", "", kDate));
  EXPECT_TRUE(answer_not_modified(request({{"If-None-Match", "*"}}), "", "", kDate));
}

TEST(NotModified, NoStoredETagNeverMatchesATag) {
  EXPECT_FALSE(answer_not_modified(request({{"If-None-Match", "\"abc\""}}), "", DATE, kDate));
}

TEST(NotModified, IfNoneMatchTakesPrecedenceOverIfModifiedSince) {
  // RFC 9110 section 13.2.2: If-Modified-Since is not even looked at.
  const auto req = request({{"If-None-Match", "\"other\""}, {"If-Modified-Since", DATE}});
  EXPECT_FALSE(answer_not_modified(req, "\"abc\"", DATE, kDate));
}

TEST(NotModified, MalformedIfNoneMatchGivesNo304) {
  for (const char* v : {"abc", "\"abc\" x", "\"abc", "W/abc", "\"abc\";", ""}) {
    EXPECT_FALSE(answer_not_modified(request({{"If-None-Match", v}}), "\"abc\"", DATE, kDate)) << v;
  }
}

TEST(NotModified, IfModifiedSince) {
  const char* lm = "Sat, 05 Nov 1994 08:49:37 GMT";
  EXPECT_TRUE(answer_not_modified(request({{"If-Modified-Since", lm}}), "", lm, kDate));
  EXPECT_TRUE(answer_not_modified(request({{"If-Modified-Since", DATE}}), "\"abc\"", lm, kDate));
  EXPECT_FALSE(
      answer_not_modified(request({{"If-Modified-Since", "Fri, 04 Nov 1994 08:49:37 GMT"}}), "", lm, kDate));
  // Any of the three date formats.
  EXPECT_TRUE(
      answer_not_modified(request({{"If-Modified-Since", "Sat Nov  5 08:49:37 1994"}}), "", lm, kDate));
  // Without Last-Modified, the stored response's Date (section 4.3.2).
  EXPECT_TRUE(answer_not_modified(request({{"If-Modified-Since", DATE}}), "", "", kDate));
  EXPECT_FALSE(answer_not_modified(request({{"If-Modified-Since", lm}}), "", "", kDate));
  // Invalid or repeated: ignored (RFC 9110 section 13.1.3).
  EXPECT_FALSE(answer_not_modified(request({{"If-Modified-Since", "yesterday"}}), "", lm, kDate));
  EXPECT_FALSE(answer_not_modified(request({{"If-Modified-Since", DATE}, {"If-Modified-Since", DATE}}), "",
                                   lm, kDate));
}

TEST(NotModified, OnlyForGetAndHead) {
  EXPECT_TRUE(
      answer_not_modified(request({{"If-None-Match", "*"}}, http::Method::kHead), "\"a\"", "", kDate));
  EXPECT_FALSE(
      answer_not_modified(request({{"If-None-Match", "*"}}, http::Method::kPost), "\"a\"", "", kDate));
  EXPECT_FALSE(answer_not_modified(request({}), "\"a\"", DATE, kDate));
}

TEST(UpdateFrom304, WhichFieldsAreReplaced) {
  for (const char* name : {"Cache-Control", "ETag", "Expires", "Date", "Last-Modified", "Content-Type",
                           "X-Custom", "content-location", "Surrogate-Key"}) {
    EXPECT_TRUE(header_updatable_from_304(name)) << name;
  }
  for (const char* name :
       {"Content-Length", "content-encoding", "Content-Range", "Transfer-Encoding", "Connection",
        "Keep-Alive", "TE", "Trailer", "Upgrade", "Proxy-Connection", "Vary", "Age", "Set-Cookie",
        "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Authentication-Info", ""}) {
    EXPECT_FALSE(header_updatable_from_304(name)) << name;
  }
}

TEST(IfRange, EntityTagNeedsAStrongMatch) {
  EXPECT_TRUE(if_range_allows("\"v1\"", "\"v1\"", ""));
  EXPECT_FALSE(if_range_allows("\"v1\"", "\"v2\"", ""));
  EXPECT_FALSE(if_range_allows("W/\"v1\"", "W/\"v1\"", ""));
  EXPECT_FALSE(if_range_allows("\"v1\"", "W/\"v1\"", ""));
  EXPECT_FALSE(if_range_allows("\"v1\"", "", DATE));
}

TEST(IfRange, DateMustEqualAStrongLastModified) {
  const char* lm = "Sat, 05 Nov 1994 08:49:37 GMT";
  EXPECT_TRUE(if_range_allows(lm, "\"v1\"", lm));
  EXPECT_TRUE(if_range_allows("Saturday, 05-Nov-94 08:49:37 GMT", "", lm));
  EXPECT_FALSE(if_range_allows(DATE, "", lm));
  EXPECT_FALSE(if_range_allows(lm, "", ""));
  // Section 8.8.2.2: a Last-Modified less than 60 s before Date is weak.
  EXPECT_TRUE(if_range_allows(lm, "", lm, kDate));
  EXPECT_FALSE(if_range_allows(DATE, "", DATE, kDate + 59));
  EXPECT_TRUE(if_range_allows(DATE, "", DATE, kDate + 60));
}

TEST(IfRange, GarbageNeverAllows) {
  for (const char* v : {"", " ", "v1", "\"v1", "0", "W/"}) {
    EXPECT_FALSE(if_range_allows(v, "\"v1\"", DATE)) << v;
  }
}

}  // namespace
}  // namespace cumulo::cache
