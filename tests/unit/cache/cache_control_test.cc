// Cache-Control parsing (RFC 9111 section 5.2).
#include <gtest/gtest.h>

#include "cache/policy.h"
#include "cache_test_util.h"

namespace cumulo::cache {
namespace {

TEST(CacheControl, EmptyMeansNothing) {
  const CacheControl cc = parse_cache_control("");
  EXPECT_FALSE(cc.no_store || cc.no_cache || cc.private_ || cc.public_ || cc.must_revalidate ||
               cc.proxy_revalidate || cc.must_understand || cc.immutable || cc.no_transform ||
               cc.only_if_cached);
  EXPECT_EQ(cc.max_age, -1);
  EXPECT_EQ(cc.s_maxage, -1);
  EXPECT_EQ(cc.max_stale, -1);
  EXPECT_EQ(cc.min_fresh, -1);
  EXPECT_EQ(cc.stale_while_revalidate, -1);
  EXPECT_EQ(cc.stale_if_error, -1);
}

TEST(CacheControl, EveryDirective) {
  const CacheControl cc = parse_cache_control(
      "no-store, no-cache, private, public, must-revalidate, proxy-revalidate, must-understand, immutable, "
      "no-transform, only-if-cached, max-age=1, s-maxage=2, max-stale=3, min-fresh=4, "
      "stale-while-revalidate=5, stale-if-error=6");
  EXPECT_TRUE(cc.no_store && cc.no_cache && cc.private_ && cc.public_ && cc.must_revalidate &&
              cc.proxy_revalidate && cc.must_understand && cc.immutable && cc.no_transform &&
              cc.only_if_cached);
  EXPECT_EQ(cc.max_age, 1);
  EXPECT_EQ(cc.s_maxage, 2);
  EXPECT_EQ(cc.max_stale, 3);
  EXPECT_EQ(cc.min_fresh, 4);
  EXPECT_EQ(cc.stale_while_revalidate, 5);
  EXPECT_EQ(cc.stale_if_error, 6);
}

TEST(CacheControl, NamesAreCaseInsensitive) {
  const CacheControl cc = parse_cache_control("MAX-AGE=60, No-Store, S-MaxAge=5, PUBLIC");
  EXPECT_EQ(cc.max_age, 60);
  EXPECT_EQ(cc.s_maxage, 5);
  EXPECT_TRUE(cc.no_store);
  EXPECT_TRUE(cc.public_);
}

TEST(CacheControl, QuotedArgumentsAreAccepted) {
  // Section 5.2: recipients accept the quoted-string form even where the token form is required.
  EXPECT_EQ(parse_cache_control("max-age=\"60\"").max_age, 60);
  EXPECT_EQ(parse_cache_control("s-maxage=\"7\", max-age=1").s_maxage, 7);
  // A quoted-pair cannot be part of delta-seconds.
  EXPECT_EQ(parse_cache_control("max-age=\"6\\0\"").max_age, 0);
}

TEST(CacheControl, CommasInsideQuotesDoNotSplit) {
  CacheControl cc = parse_cache_control("private=\"Set-Cookie, X-Max-Age\", max-age=5");
  EXPECT_TRUE(cc.private_);  // the qualified form counts as the unqualified one
  EXPECT_EQ(cc.max_age, 5);
  cc = parse_cache_control("no-cache=\"a,b\", s-maxage=10");
  EXPECT_TRUE(cc.no_cache);
  EXPECT_EQ(cc.s_maxage, 10);
  // An extension whose quoted argument looks like directives is one unknown directive.
  cc = parse_cache_control("community=\"UCI, max-age=1, no-store\", max-age=7");
  EXPECT_EQ(cc.max_age, 7);
  EXPECT_FALSE(cc.no_store);
  cc = parse_cache_control("ext=\"a \\\", no-store\", public");
  EXPECT_FALSE(cc.no_store);
  EXPECT_TRUE(cc.public_);
}

TEST(CacheControl, FirstDuplicateWins) {
  EXPECT_EQ(parse_cache_control("max-age=10, max-age=20").max_age, 10);
  EXPECT_EQ(parse_cache_control("max-age=abc, max-age=20").max_age, 0);
  EXPECT_EQ(parse_cache_control("min-fresh=1, min-fresh=2").min_fresh, 1);
  // All field lines form one list (RFC 9110 section 5.3).
  const http::ResponseHead resp = test::response(200, {{"Cache-Control", "max-age=30"},
                                                       {"Content-Type", "text/plain"},
                                                       {"cache-control", "max-age=60, public"}});
  const CacheControl cc = parse_cache_control(resp);
  EXPECT_EQ(cc.max_age, 30);
  EXPECT_TRUE(cc.public_);
}

TEST(CacheControl, MergeKeepsWhatIsSet) {
  CacheControl cc = parse_cache_control("max-age=5");
  merge_cache_control("max-age=50, s-maxage=9, no-cache", cc);
  EXPECT_EQ(cc.max_age, 5);
  EXPECT_EQ(cc.s_maxage, 9);
  EXPECT_TRUE(cc.no_cache);
}

TEST(CacheControl, InvalidFreshnessIsStaleOtherNumbersAbsent) {
  // Section 4.2.1: invalid max-age / s-maxage make the response stale.
  for (std::string_view v : {"max-age", "max-age=", "max-age=abc", "max-age=-1", "max-age=1.5", "max-age=5 6",
                             "max-age=\"5", "max-age==5", "max-age=0x10"}) {
    EXPECT_EQ(parse_cache_control(v).max_age, 0) << v;
  }
  EXPECT_EQ(parse_cache_control("s-maxage=never").s_maxage, 0);
  EXPECT_EQ(parse_cache_control("min-fresh=x").min_fresh, -1);
  EXPECT_EQ(parse_cache_control("min-fresh").min_fresh, -1);
  EXPECT_EQ(parse_cache_control("stale-while-revalidate=-5").stale_while_revalidate, -1);
  EXPECT_EQ(parse_cache_control("stale-if-error").stale_if_error, -1);
  EXPECT_EQ(parse_cache_control("max-stale=soon").max_stale, -1);
}

TEST(CacheControl, MaxStaleWithoutValueMeansAny) {
  EXPECT_EQ(parse_cache_control("max-stale").max_stale, kMaxStaleAny);
  EXPECT_EQ(parse_cache_control("max-stale, max-stale=5").max_stale, kMaxStaleAny);
  EXPECT_EQ(parse_cache_control("max-stale=5").max_stale, 5);
}

TEST(CacheControl, HugeNumbersAreTwoToTheThirtyFirst) {
  // Section 1.2.2.
  EXPECT_EQ(parse_cache_control("max-age=99999999999999999999999999").max_age, kDeltaSecondsMax);
  EXPECT_EQ(parse_cache_control("max-age=2147483649").max_age, kDeltaSecondsMax);
  EXPECT_EQ(parse_cache_control("max-age=2147483647").max_age, 2147483647);
  EXPECT_EQ(parse_cache_control("max-age=007").max_age, 7);
}

TEST(CacheControl, WhitespaceAndEmptyElements) {
  CacheControl cc = parse_cache_control(" ,, no-store ,\t,max-age = 9 ,");
  EXPECT_TRUE(cc.no_store);
  EXPECT_EQ(cc.max_age, 9);
  // A malformed element still names its directive, but its argument is not read.
  cc = parse_cache_control("no-store;x, max-age=5;y, public");
  EXPECT_TRUE(cc.no_store);
  EXPECT_EQ(cc.max_age, 0);
  EXPECT_TRUE(cc.public_);
}

TEST(CacheControl, GarbageDoesNotLeak) {
  EXPECT_EQ(parse_cache_control("\"max-age=5").max_age, -1);
  EXPECT_FALSE(parse_cache_control("=no-store").no_store);
  EXPECT_FALSE(parse_cache_control("x=\"unterminated, no-store").no_store);
  EXPECT_TRUE(parse_cache_control("@@, no-store").no_store);
  EXPECT_FALSE(parse_cache_control("no-stores, xno-store, no-store-x").no_store);
}

}  // namespace
}  // namespace cumulo::cache
