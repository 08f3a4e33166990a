// Whether a shared cache may store a response (RFC 9111 section 3).
#include <gtest/gtest.h>

#include <string_view>

#include "cache/policy.h"
#include "cache_test_util.h"

namespace cumulo::cache {
namespace {

using test::request;
using test::response;

#define DATE "Sun, 06 Nov 1994 08:49:37 GMT"

std::string_view why(const http::RequestHead& req, const http::ResponseHead& resp,
                     const RoutePolicy& policy = {}) {
  const Storable s = storable(req, resp, policy);
  EXPECT_EQ(s.ok, std::string_view(s.reason).empty());
  return s.ok ? "ok" : s.reason;
}

TEST(Storable, ExplicitFreshness) {
  EXPECT_EQ(why(request({}), response(200, {{"Cache-Control", "max-age=60"}})), "ok");
  EXPECT_EQ(why(request({}, http::Method::kHead), response(200, {{"Cache-Control", "max-age=60"}})), "ok");
  EXPECT_EQ(why(request({}), response(200, {{"Date", DATE}, {"Expires", "Sun, 06 Nov 1994 09:49:37 GMT"}})),
            "ok");
  EXPECT_EQ(why(request({}), response(404, {{"Cache-Control", "s-maxage=60"}})), "ok");
}

TEST(Storable, MethodAndStatus) {
  const auto fresh = response(200, {{"Cache-Control", "max-age=60"}});
  EXPECT_EQ(why(request({}, http::Method::kPost), fresh), "method");
  EXPECT_EQ(why(request({}), response(103, {{"Cache-Control", "max-age=60"}})), "status not final");
  EXPECT_EQ(why(request({}), response(206, {{"Cache-Control", "max-age=60"}})), "status 206");
  EXPECT_EQ(why(request({}), response(304, {{"Cache-Control", "max-age=60"}})), "status 304");
}

TEST(Storable, NoStoreAndPrivate) {
  EXPECT_EQ(why(request({}), response(200, {{"Cache-Control", "max-age=60, no-store"}})), "no-store");
  EXPECT_EQ(why(request({{"Cache-Control", "no-store"}}), response(200, {{"Cache-Control", "max-age=60"}})),
            "request no-store");
  EXPECT_EQ(why(request({}), response(200, {{"Cache-Control", "private, max-age=60"}})), "private");
  EXPECT_EQ(why(request({}), response(200, {{"Cache-Control", "private=\"X-User\", max-age=60"}})),
            "private");
  // no-cache responses are stored (and revalidated each time, section 5.2.2.4).
  EXPECT_EQ(why(request({}), response(200, {{"Cache-Control", "no-cache"}, {"ETag", "\"v1\""}})), "ok");
}

TEST(Storable, MustUnderstand) {
  // Section 5.2.2.3: a cache that understands the status code ignores no-store next to must-understand.
  EXPECT_EQ(why(request({}), response(200, {{"Cache-Control", "must-understand, no-store, max-age=60"}})),
            "ok");
  EXPECT_EQ(why(request({}), response(299, {{"Cache-Control", "must-understand, no-store, max-age=60"}})),
            "status not understood");
}

TEST(Storable, Authorization) {
  // Section 3.5: only with a directive that allows shared caching explicitly.
  const auto req = request({{"Authorization", "Bearer abc"}});
  EXPECT_EQ(why(req, response(200, {{"Cache-Control", "max-age=60"}})),
            "Authorization without public/s-maxage/must-revalidate");
  EXPECT_EQ(why(req, response(200, {{"Cache-Control", "max-age=60, public"}})), "ok");
  EXPECT_EQ(why(req, response(200, {{"Cache-Control", "s-maxage=60"}})), "ok");
  EXPECT_EQ(why(req, response(200, {{"Cache-Control", "max-age=60, must-revalidate"}})), "ok");
  EXPECT_EQ(why(req, response(200, {{"Cache-Control", "max-age=60"}}), {.cache_authorized = true}), "ok");
  // Ignoring the origin's headers does not make authorized responses shareable.
  EXPECT_EQ(why(req, response(200, {{"Cache-Control", "public"}}),
                {.default_ttl = 60, .ignore_origin_cache_control = true}),
            "Authorization without public/s-maxage/must-revalidate");
  // An empty Authorization is still one.
  EXPECT_EQ(why(request({{"authorization", ""}}), response(200, {{"Cache-Control", "max-age=60"}})),
            "Authorization without public/s-maxage/must-revalidate");
}

TEST(Storable, SetCookieIsNeverShared) {
  EXPECT_EQ(why(request({}), response(200, {{"Cache-Control", "public, max-age=60"}, {"Set-Cookie", "s=1"}})),
            "Set-Cookie");
  EXPECT_EQ(why(request({}), response(200, {{"set-cookie", "s=1"}}),
                {.default_ttl = 60, .ignore_origin_cache_control = true}),
            "Set-Cookie");
}

TEST(Storable, VaryStar) {
  EXPECT_EQ(why(request({}), response(200, {{"Cache-Control", "max-age=60"}, {"Vary", "*"}})), "Vary: *");
  EXPECT_EQ(
      why(request({}), response(200, {{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Encoding, *"}})),
      "Vary: *");
  EXPECT_EQ(
      why(request({}), response(200, {{"Cache-Control", "max-age=60"}, {"Vary", "Accept"}, {"Vary", "*"}})),
      "Vary: *");
  EXPECT_EQ(why(request({}), response(200, {{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Encoding"}})),
            "ok");
}

TEST(Storable, NeedsExplicitFreshnessOrAHeuristicallyCacheableStatus) {
  EXPECT_EQ(why(request({}), response(500, {{"Last-Modified", DATE}})),
            "status not cacheable without explicit freshness");
  EXPECT_EQ(why(request({}), response(302, {{"ETag", "\"a\""}}), {.default_ttl = 60}),
            "status not cacheable without explicit freshness");
  EXPECT_EQ(why(request({}), response(500, {{"Cache-Control", "max-age=5"}})), "ok");
  EXPECT_EQ(why(request({}), response(302, {{"Cache-Control", "public"}, {"ETag", "\"a\""}})), "ok");
  EXPECT_EQ(
      why(request({}), response(404, {{"Date", DATE}, {"Last-Modified", "Sat, 05 Nov 1994 08:49:37 GMT"}})),
      "ok");
}

TEST(Storable, UselessWithoutValidatorOrFreshness) {
  EXPECT_EQ(why(request({}), response(200, {})), "no validator and no freshness");
  EXPECT_EQ(why(request({}), response(200, {{"Cache-Control", "max-age=0"}})),
            "no validator and no freshness");
  EXPECT_EQ(why(request({}), response(200, {{"Cache-Control", "no-cache, max-age=60"}})),
            "no validator and no freshness");
  EXPECT_EQ(why(request({}), response(200, {{"Date", DATE}, {"Expires", "0"}})),
            "no validator and no freshness");
  EXPECT_EQ(why(request({}), response(200, {{"ETag", "\"a\""}})), "ok");
  EXPECT_EQ(why(request({}), response(200, {{"Cache-Control", "max-age=0"}, {"Last-Modified", DATE}})), "ok");
  EXPECT_EQ(why(request({}), response(200, {}), {.default_ttl = 60}), "ok");
  // An Expires without a Date cannot be judged before it is stored.
  EXPECT_EQ(why(request({}), response(200, {{"Expires", "Sun, 06 Nov 1994 09:49:37 GMT"}})), "ok");
}

TEST(Storable, IgnoringTheOrigin) {
  const RoutePolicy policy{.default_ttl = 60, .ignore_origin_cache_control = true};
  EXPECT_EQ(why(request({}), response(200, {{"Cache-Control", "no-store, private, max-age=0"}}), policy),
            "ok");
  // but not the request's no-store, nor Vary: *.
  EXPECT_EQ(why(request({{"Cache-Control", "no-store"}}), response(200, {}), policy), "request no-store");
  EXPECT_EQ(why(request({}), response(200, {{"Vary", "*"}}), policy), "Vary: *");
  EXPECT_EQ(why(request({}), response(200, {}), {.ignore_origin_cache_control = true}),
            "no validator and no freshness");
}

}  // namespace
}  // namespace cumulo::cache
