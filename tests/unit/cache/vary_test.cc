// Secondary cache keys (RFC 9111 section 4.1) and Accept-Encoding reduction (RFC 9110 section 12.5.3).
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "cache/policy.h"
#include "cache_test_util.h"

namespace cumulo::cache {
namespace {

using test::request;

TEST(Vary, NoVaryIsTheEmptyKey) {
  EXPECT_EQ(vary_key("", request({{"Accept-Language", "en"}})), "");
  EXPECT_EQ(vary_key(" , ", request({})), "");
}

TEST(Vary, StarNeverMatches) {
  EXPECT_EQ(vary_key("*", request({})), std::nullopt);
  EXPECT_EQ(vary_key("Accept, *", request({})), std::nullopt);
  // Unreadable: as good as "*".
  EXPECT_EQ(vary_key("Accept Language", request({})), std::nullopt);
  EXPECT_EQ(vary_key("Accept;q=1", request({})), std::nullopt);
}

TEST(Vary, KeyHoldsTheListedFields) {
  EXPECT_EQ(vary_key("Accept-Language", request({{"Accept-Language", "en-US"}, {"Accept", "text/html"}})),
            "accept-language:en-US\n");
  // Absent differs from empty (section 4.1: absent only matches absent).
  EXPECT_EQ(vary_key("Accept-Language", request({})), "accept-language\n");
  EXPECT_EQ(vary_key("Accept-Language", request({{"Accept-Language", ""}})), "accept-language:\n");
  // Values are compared as sent (case matters unless the field says otherwise).
  EXPECT_NE(vary_key("X-Tenant", request({{"X-Tenant", "a"}})),
            vary_key("X-Tenant", request({{"X-Tenant", "A"}})));
}

TEST(Vary, OrderCaseAndDuplicatesOfNamesDoNotMatter) {
  const auto req = request({{"accept-language", "de"}, {"X-Device", "mobile"}});
  const auto key = vary_key("Accept-Language, X-Device", req);
  EXPECT_EQ(key, "accept-language:de\nx-device:mobile\n");
  EXPECT_EQ(vary_key("x-device,ACCEPT-LANGUAGE", req), key);
  EXPECT_EQ(vary_key("X-Device, Accept-Language, x-device", req), key);
}

TEST(Vary, WhitespaceAndFieldLinesAreNormalised) {
  // Section 4.1: adding or removing whitespace where allowed, and combining field lines, still match.
  const auto one = vary_key("Accept", request({{"Accept", "text/html, application/json"}}));
  EXPECT_EQ(one, "accept:text/html,application/json\n");
  EXPECT_EQ(vary_key("Accept", request({{"Accept", "text/html ,\tapplication/json "}})), one);
  EXPECT_EQ(vary_key("Accept", request({{"Accept", "text/html"}, {"Accept", "application/json"}})), one);
  EXPECT_NE(vary_key("Accept", request({{"Accept", "application/json, text/html"}})), one);
}

TEST(Vary, AcceptEncodingIsReducedToTheCodingThatMatters) {
  const auto br = vary_key("Accept-Encoding", request({{"Accept-Encoding", "gzip, deflate, br"}}));
  EXPECT_EQ(br, "accept-encoding:br\n");
  EXPECT_EQ(vary_key("Accept-Encoding", request({{"Accept-Encoding", "br;q=0.9, gzip;q=0.8, zstd"}})), br);
  EXPECT_EQ(vary_key("Accept-Encoding", request({{"Accept-Encoding", "gzip"}})), "accept-encoding:gzip\n");
  // Nothing useful accepted and no Accept-Encoding at all share the identity variant.
  EXPECT_EQ(vary_key("Accept-Encoding", request({{"Accept-Encoding", "deflate"}})), "accept-encoding:\n");
  EXPECT_EQ(vary_key("Accept-Encoding", request({})), "accept-encoding:\n");
  // Several lines are one list.
  EXPECT_EQ(
      vary_key("Accept-Encoding", request({{"Accept-Encoding", "deflate"}, {"Accept-Encoding", "gzip"}})),
      "accept-encoding:gzip\n");
}

TEST(AcceptEncoding, Normalised) {
  EXPECT_EQ(normalized_accept_encoding(""), "");
  EXPECT_EQ(normalized_accept_encoding("identity"), "");
  EXPECT_EQ(normalized_accept_encoding("gzip"), "gzip");
  EXPECT_EQ(normalized_accept_encoding("x-gzip"), "gzip");
  EXPECT_EQ(normalized_accept_encoding("GZIP, BR"), "br");
  EXPECT_EQ(normalized_accept_encoding("gzip, br"), "br");  // a tie goes to br
  EXPECT_EQ(normalized_accept_encoding("gzip;q=1.0, br;q=0.5"), "gzip");
  EXPECT_EQ(normalized_accept_encoding("br;q=0, gzip"), "gzip");
  EXPECT_EQ(normalized_accept_encoding("br ; q=0 , gzip ; q=0"), "");
  EXPECT_EQ(normalized_accept_encoding("*"), "br");
  EXPECT_EQ(normalized_accept_encoding("*;q=0.5, br;q=0"), "gzip");
  EXPECT_EQ(normalized_accept_encoding("gzip;q=0, *"), "br");
  EXPECT_EQ(normalized_accept_encoding("*;q=0"), "");
  // An element with an invalid weight is dropped.
  EXPECT_EQ(normalized_accept_encoding("br;q=2, gzip"), "gzip");
  EXPECT_EQ(normalized_accept_encoding("br;q=0.0001"), "");
  EXPECT_EQ(normalized_accept_encoding("br;level=5;q=0.001"), "br");
  // The first weight of a coding counts.
  EXPECT_EQ(normalized_accept_encoding("br;q=0, br"), "");
}

}  // namespace
}  // namespace cumulo::cache
