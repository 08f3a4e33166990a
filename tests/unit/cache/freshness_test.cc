// Freshness lifetime, age and serving stale (RFC 9111 sections 4.2.1 to 4.2.4, RFC 5861).
#include <gtest/gtest.h>

#include "cache/policy.h"
#include "cache_test_util.h"

namespace cumulo::cache {
namespace {

using test::response;

constexpr int64_t kDate = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT
#define DATE "Sun, 06 Nov 1994 08:49:37 GMT"

int64_t lifetime(const http::ResponseHead& resp, const RoutePolicy& policy = {}) {
  return entry_times(resp, kDate, kDate, policy).freshness_lifetime;
}

// ---- section 4.2.1: calculating freshness lifetime ----

TEST(FreshnessLifetime, SMaxAgeBeatsMaxAgeBeatsExpires) {
  EXPECT_EQ(lifetime(response(200, {{"Date", DATE},
                                    {"Cache-Control", "max-age=60, s-maxage=120"},
                                    {"Expires", "Sun, 06 Nov 1994 09:49:37 GMT"}})),
            120);
  EXPECT_EQ(lifetime(response(200, {{"Date", DATE},
                                    {"Cache-Control", "max-age=60"},
                                    {"Expires", "Sun, 06 Nov 1994 09:49:37 GMT"}})),
            60);
  EXPECT_EQ(lifetime(response(200, {{"Date", DATE}, {"Expires", "Sun, 06 Nov 1994 09:49:37 GMT"}})), 3600);
  // max-age=0 is an explicit lifetime too: no fallback to Expires.
  EXPECT_EQ(lifetime(response(200, {{"Date", DATE},
                                    {"Cache-Control", "max-age=0"},
                                    {"Expires", "Sun, 06 Nov 1994 09:49:37 GMT"}})),
            0);
}

TEST(FreshnessLifetime, ExpiresIsRelativeToDate) {
  // The origin's clock decides: Expires - Date, whatever our clock says.
  const auto resp = response(200, {{"Date", DATE}, {"Expires", "Sun, 06 Nov 1994 08:59:37 GMT"}});
  EXPECT_EQ(entry_times(resp, kDate + 5000, kDate + 5000, {}).freshness_lifetime, 600);
  // Without Date, the time the response was received stands for it (RFC 9110 section 6.6.1).
  const auto undated = response(200, {{"Expires", "Sun, 06 Nov 1994 08:59:37 GMT"}});
  EXPECT_EQ(entry_times(undated, kDate - 10, kDate, {}).freshness_lifetime, 600);
  EXPECT_EQ(entry_times(undated, kDate - 10, kDate, {}).date_value, kDate);
}

TEST(FreshnessLifetime, InvalidOrPastExpiresIsStale) {
  // Section 5.3: an invalid date, "0" especially, is in the past.
  EXPECT_EQ(lifetime(response(200, {{"Date", DATE}, {"Expires", "0"}})), 0);
  EXPECT_EQ(lifetime(response(200, {{"Date", DATE}, {"Expires", "tomorrow"}}), {.default_ttl = 300}), 0);
  EXPECT_EQ(lifetime(response(200, {{"Date", DATE}, {"Expires", "Sat, 05 Nov 1994 08:49:37 GMT"}})), 0);
  // The first of several Expires is used (section 4.2.1).
  EXPECT_EQ(lifetime(response(200, {{"Date", DATE},
                                    {"Expires", "Sun, 06 Nov 1994 08:50:37 GMT"},
                                    {"Expires", "Sun, 06 Nov 1994 09:49:37 GMT"}})),
            60);
}

// ---- section 4.2.2: heuristic freshness ----

TEST(FreshnessLifetime, HeuristicIsTenPercentOfLastModifiedAge) {
  // Modified 5 hours before Date: 30 minutes.
  EXPECT_EQ(lifetime(response(200, {{"Date", DATE}, {"Last-Modified", "Sun, 06 Nov 1994 03:49:37 GMT"}})),
            1800);
  // Modified a year ago: capped at a day.
  EXPECT_EQ(lifetime(response(200, {{"Date", DATE}, {"Last-Modified", "Sat, 06 Nov 1993 08:49:37 GMT"}})),
            kMaxHeuristicLifetime);
  // For every heuristically cacheable status (RFC 9110 section 15.1).
  for (int status : {200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501}) {
    EXPECT_EQ(
        lifetime(response(status, {{"Date", DATE}, {"Last-Modified", "Sun, 06 Nov 1994 03:49:37 GMT"}})),
        1800)
        << status;
  }
}

TEST(FreshnessLifetime, NoHeuristicForOtherStatusCodesUnlessPublic) {
  for (int status : {302, 303, 307, 400, 403, 500, 502, 503}) {
    EXPECT_EQ(lifetime(response(status, {{"Date", DATE}, {"Last-Modified", "Sun, 06 Nov 1994 03:49:37 GMT"}}),
                       {.default_ttl = 300}),
              0)
        << status;
  }
  // A public response may get a heuristic lifetime (section 4.2.2).
  EXPECT_EQ(lifetime(response(302, {{"Date", DATE},
                                    {"Cache-Control", "public"},
                                    {"Last-Modified", "Sun, 06 Nov 1994 03:49:37 GMT"}})),
            1800);
}

TEST(FreshnessLifetime, NoHeuristicWhenExplicit) {
  EXPECT_EQ(lifetime(response(200, {{"Date", DATE},
                                    {"Cache-Control", "max-age=5"},
                                    {"Last-Modified", "Sat, 06 Nov 1993 08:49:37 GMT"}})),
            5);
}

TEST(FreshnessLifetime, RouteDefaultWhenNoHeuristicApplies) {
  EXPECT_EQ(lifetime(response(200, {{"Date", DATE}}), {.default_ttl = 300}), 300);
  EXPECT_EQ(lifetime(response(200, {{"Date", DATE}})), 0);
  // Last-Modified in the future of Date gives no heuristic.
  EXPECT_EQ(lifetime(response(200, {{"Date", DATE}, {"Last-Modified", "Mon, 07 Nov 1994 08:49:37 GMT"}}),
                     {.default_ttl = 300}),
            300);
  // The origin's explicit lifetime wins over the route default.
  EXPECT_EQ(lifetime(response(200, {{"Date", DATE}, {"Cache-Control", "max-age=5"}}), {.default_ttl = 300}),
            5);
}

TEST(FreshnessLifetime, RouteOverrides) {
  const auto resp = response(200, {{"Date", DATE}, {"Cache-Control", "max-age=86400, no-cache"}});
  EXPECT_EQ(lifetime(resp, {.max_ttl = 600}), 600);
  EXPECT_EQ(lifetime(resp, {.default_ttl = 30, .ignore_origin_cache_control = true}), 30);
  EXPECT_EQ(lifetime(resp, {.default_ttl = 30, .ignore_origin_cache_control = true, .max_ttl = 10}), 10);
  EXPECT_EQ(lifetime(response(200, {{"Date", DATE}, {"Cache-Control", "max-age=86400"}}), {.max_ttl = 0}), 0);
}

// ---- section 4.2.3: calculating age ----

TEST(Age, WorkedThrough) {
  // Request sent at 1000, response received at 1002 (response_delay 2). The origin dated it 995 (our clocks
  // differ: apparent_age = 1002 - 995 = 7) and an upstream cache said Age: 3 (corrected_age_value =
  // 3 + 2 = 5). corrected_initial_age = max(7, 5) = 7; at 1100 it has been resident 98 s: age 105.
  http::ResponseHead resp = response(
      200, {{"Date", "Thu, 01 Jan 1970 00:16:35 GMT"}, {"Age", "3"}, {"Cache-Control", "max-age=60"}});
  const EntryTimes t = entry_times(resp, 1000, 1002, {});
  EXPECT_EQ(t.request_time, 1000);
  EXPECT_EQ(t.response_time, 1002);
  EXPECT_EQ(t.date_value, 995);
  EXPECT_EQ(t.age_value, 3);
  EXPECT_EQ(t.freshness_lifetime, 60);
  EXPECT_EQ(current_age(t, 1002), 7);
  EXPECT_EQ(current_age(t, 1100), 105);
  // Stale when the age reaches 60: at 1002 - 7 + 60.
  EXPECT_EQ(t.expires, 1055);

  // Now the Age from upstream dominates: Age: 30 with the same delay gives 32 > apparent 7.
  resp = response(200, {{"Date", "Thu, 01 Jan 1970 00:16:35 GMT"}, {"Age", "30"}});
  EXPECT_EQ(current_age(entry_times(resp, 1000, 1002, {}), 1002), 32);
}

TEST(Age, OriginClockAheadGivesNoNegativeAge) {
  // Date after our response_time: apparent_age is 0, not negative.
  const auto resp = response(200, {{"Date", "Thu, 01 Jan 1970 01:00:00 GMT"}});
  const EntryTimes t = entry_times(resp, 1000, 1000, {});
  EXPECT_EQ(current_age(t, 1000), 0);
  EXPECT_EQ(current_age(t, 1010), 10);
  // Our clock going backwards does not make it younger than when stored.
  EXPECT_EQ(current_age(t, 900), 0);
}

TEST(Age, InvalidAgeIsIgnored) {
  // Section 5.1.
  for (const char* v : {"-5", "abc", "1, 2", "", "1.5"}) {
    EXPECT_EQ(entry_times(response(200, {{"Age", v}}), 10, 10, {}).age_value, 0) << v;
  }
  EXPECT_EQ(entry_times(response(200, {{"Age", "99999999999999999999"}}), 10, 10, {}).age_value,
            kDeltaSecondsMax);
}

TEST(Age, ExtremeTimesSaturate) {
  const auto resp = response(200, {{"Age", "99999999999"}, {"Cache-Control", "max-age=99999999999"}});
  const EntryTimes t = entry_times(resp, INT64_MIN, INT64_MAX, {});
  EXPECT_EQ(current_age(t, INT64_MAX), INT64_MAX);
  EXPECT_EQ(freshness(t, {}, {}, INT64_MAX), Freshness::kStale);
}

// ---- section 4.2 / 4.2.4: fresh, stale, serving stale ----

EntryTimes times(int64_t lifetime) {
  EntryTimes t;
  t.request_time = t.response_time = t.date_value = 1000;
  t.freshness_lifetime = lifetime;
  t.expires = 1000 + lifetime;
  return t;
}

TEST(Freshness, FreshUntilTheAgeReachesTheLifetime) {
  const EntryTimes t = times(60);
  EXPECT_EQ(freshness(t, {}, {}, 1000), Freshness::kFresh);
  EXPECT_EQ(freshness(t, {}, {}, 1059), Freshness::kFresh);
  EXPECT_EQ(freshness(t, {}, {}, 1060), Freshness::kStale);
  EXPECT_EQ(freshness(times(0), {}, {}, 1000), Freshness::kStale);
}

TEST(Freshness, StoredNoCacheAlwaysRevalidates) {
  EXPECT_EQ(freshness(times(60), parse_cache_control("no-cache, max-age=60"), {}, 1000), Freshness::kStale);
}

TEST(Freshness, RequestDirectives) {
  const EntryTimes t = times(60);
  // Section 5.2.1.4.
  EXPECT_EQ(freshness(t, {}, parse_cache_control("no-cache"), 1000), Freshness::kStale);
  // Section 5.2.1.1: max-age limits the age, fresh or not.
  EXPECT_EQ(freshness(t, {}, parse_cache_control("max-age=10"), 1010), Freshness::kFresh);
  EXPECT_EQ(freshness(t, {}, parse_cache_control("max-age=10"), 1011), Freshness::kStale);
  EXPECT_EQ(freshness(t, {}, parse_cache_control("max-age=0"), 1000), Freshness::kFresh);
  EXPECT_EQ(freshness(t, {}, parse_cache_control("max-age=0"), 1001), Freshness::kStale);
  // Section 5.2.1.3: min-fresh wants that much freshness left.
  EXPECT_EQ(freshness(t, {}, parse_cache_control("min-fresh=20"), 1040), Freshness::kFresh);
  EXPECT_EQ(freshness(t, {}, parse_cache_control("min-fresh=20"), 1041), Freshness::kStale);
  // Section 5.2.1.2: max-stale accepts that much staleness, or any without a value.
  EXPECT_EQ(freshness(t, {}, parse_cache_control("max-stale=30"), 1090), Freshness::kFresh);
  EXPECT_EQ(freshness(t, {}, parse_cache_control("max-stale=30"), 1091), Freshness::kStale);
  EXPECT_EQ(freshness(t, {}, parse_cache_control("max-stale"), 1000000), Freshness::kFresh);
}

TEST(Freshness, MustRevalidateForbidsServingStale) {
  const EntryTimes t = times(60);
  const CacheControl max_stale = parse_cache_control("max-stale");
  for (const char* stored : {"max-age=60, must-revalidate", "max-age=60, proxy-revalidate", "s-maxage=60",
                             "max-age=60, must-revalidate, stale-while-revalidate=100"}) {
    const CacheControl cc = parse_cache_control(stored);
    EXPECT_EQ(freshness(t, cc, {}, 1030), Freshness::kFresh) << stored;
    EXPECT_EQ(freshness(t, cc, max_stale, 1061), Freshness::kStale) << stored;
    EXPECT_EQ(freshness(t, cc, {}, 1061), Freshness::kStale) << stored;
  }
}

TEST(Freshness, StaleWhileRevalidateWindow) {
  const EntryTimes t = times(60);
  const CacheControl cc = parse_cache_control("max-age=60, stale-while-revalidate=30");
  EXPECT_EQ(freshness(t, cc, {}, 1059), Freshness::kFresh);
  EXPECT_EQ(freshness(t, cc, {}, 1060), Freshness::kStaleWhileRevalidate);
  EXPECT_EQ(freshness(t, cc, {}, 1090), Freshness::kStaleWhileRevalidate);
  EXPECT_EQ(freshness(t, cc, {}, 1091), Freshness::kStale);
  // The client's own wishes come first.
  EXPECT_EQ(freshness(t, cc, parse_cache_control("no-cache"), 1070), Freshness::kStale);
  EXPECT_EQ(freshness(t, cc, parse_cache_control("max-age=65"), 1070), Freshness::kStale);
  EXPECT_EQ(freshness(t, cc, parse_cache_control("max-stale=15"), 1070), Freshness::kFresh);
}

TEST(StaleIfError, Window) {
  const EntryTimes t = times(60);
  const CacheControl cc = parse_cache_control("max-age=60, stale-if-error=600");
  EXPECT_TRUE(stale_if_error_allows(t, cc, {}, 1030));  // still fresh
  EXPECT_TRUE(stale_if_error_allows(t, cc, {}, 1660));
  EXPECT_FALSE(stale_if_error_allows(t, cc, {}, 1661));
  EXPECT_FALSE(stale_if_error_allows(t, parse_cache_control("max-age=60"), {}, 1061));
  // The request's stale-if-error decides when present (RFC 5861 section 4).
  EXPECT_TRUE(stale_if_error_allows(t, parse_cache_control("max-age=60"),
                                    parse_cache_control("stale-if-error=5"), 1065));
  EXPECT_FALSE(stale_if_error_allows(t, cc, parse_cache_control("stale-if-error=5"), 1066));
}

TEST(StaleIfError, ForbiddenByRevalidationDirectives) {
  const EntryTimes t = times(60);
  for (const char* stored :
       {"max-age=60, stale-if-error=600, must-revalidate", "max-age=60, stale-if-error=600, proxy-revalidate",
        "s-maxage=60, stale-if-error=600"}) {
    EXPECT_FALSE(stale_if_error_allows(t, parse_cache_control(stored), {}, 1100)) << stored;
  }
  EXPECT_FALSE(stale_if_error_allows(t, parse_cache_control("no-cache, stale-if-error=600"), {}, 1000));
}

}  // namespace
}  // namespace cumulo::cache
