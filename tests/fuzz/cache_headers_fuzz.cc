// libFuzzer target for the cache policy parsers (src/cache/policy.h): Cache-Control, HTTP-dates, Range (and
// the multipart/byteranges built from a range set), Content-Range, Vary, Accept-Encoding, entity-tags,
// If-Range. No crash, overread or overflow on any input, and every answer keeps the promises of policy.h. The
// input is lines: each line is offered to every parser, and the lines also fill the fields of a request and a
// response (see kRequestFields and kResponseFields).
#include <array>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/policy.h"
#include "http/wire/h1.h"

namespace {

namespace cache = cumulo::cache;
namespace http = cumulo::http;

void check(bool ok) {
  if (!ok) std::abort();
}

constexpr size_t kLines = 8;
constexpr int64_t kLastDate = 253402300799;  // 9999-12-31T23:59:59Z
constexpr int64_t kNow = 1795000000;

// Which line fills which field.
constexpr std::array<std::pair<std::string_view, size_t>, 9> kRequestFields = {{
    {"Cache-Control", 0},
    {"Range", 1},
    {"If-Modified-Since", 2},
    {"Accept-Encoding", 4},
    {"If-None-Match", 5},
    {"If-Range", 6},
    {"Accept-Language", 7},
    {"accept-encoding", 7},
    {"Authorization", 3},
}};
constexpr std::array<std::pair<std::string_view, size_t>, 8> kResponseFields = {{
    {"Cache-Control", 0},
    {"Date", 2},
    {"Vary", 3},
    {"Age", 4},
    {"ETag", 5},
    {"Last-Modified", 6},
    {"Expires", 7},
    {"cache-control", 1},
}};

void check_number(int64_t v, bool any_allowed = false) {
  check(v == -1 || (any_allowed && v == cache::kMaxStaleAny) || (v >= 0 && v <= cache::kDeltaSecondsMax));
}

void check_cache_control(const cache::CacheControl& cc) {
  check_number(cc.max_age);
  check_number(cc.s_maxage);
  check_number(cc.max_stale, true);
  check_number(cc.min_fresh);
  check_number(cc.stale_while_revalidate);
  check_number(cc.stale_if_error);
}

void check_date(std::string_view s) {
  for (int64_t now :
       {int64_t{0}, kNow, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}) {
    const std::optional<int64_t> t = cache::parse_http_date(s, now);
    if (!t) continue;
    check(*t >= -62167219200 && *t <= kLastDate + 1);  // 0000-01-01 to 9999-12-31 23:59:60
    char buf[30];
    check(cache::format_http_date(*t, buf) == 29 && buf[29] == '\0');
    if (*t >= 0 && *t <= kLastDate) check(cache::parse_http_date(std::string_view(buf, 29), now) == t);
  }
}

void check_range(std::string_view s, uint64_t length) {
  std::vector<cache::ByteRange> out{{7, 3}};
  const cache::RangeKind kind = cache::parse_range(s, length, out);
  if (kind != cache::RangeKind::kRanges) {
    check(out.empty());
    return;
  }
  check(!out.empty() && out.size() <= cache::kMaxRanges);
  for (size_t i = 0; i < out.size(); ++i) {
    check(out[i].first <= out[i].last && out[i].last < length);
    // Served ranges neither overlap nor touch: those were coalesced.
    for (size_t j = 0; j < i; ++j) {
      check(out[i].last + 1 < out[j].first || out[j].last + 1 < out[i].first);
    }
  }
  // Several ranges of a small representation: the multipart/byteranges body holds every part's bytes once.
  if (out.size() > 1 && length <= 4096) {
    static const std::string body(4096, 'b');
    const std::string m =
        cache::multipart_byteranges(std::string_view(body).substr(0, length), out, "t/x", "B");
    uint64_t bytes = 0;
    for (const auto& r : out) bytes += r.last - r.first + 1;
    check(m.size() > bytes && m.ends_with("\r\n--B--\r\n"));
  }
}

void check_content_range(std::string_view s) {
  const std::optional<cache::ContentRange> cr = cache::parse_content_range(s);
  if (!cr) return;
  check(cr->first <= cr->last);
  if (cr->complete_length) check(cr->last < *cr->complete_length);
}

void check_line(std::string_view s, uint64_t length) {
  check_cache_control(cache::parse_cache_control(s));
  check_date(s);
  check_content_range(s);
  for (uint64_t len :
       {uint64_t{0}, uint64_t{1}, uint64_t{10000}, length, std::numeric_limits<uint64_t>::max()}) {
    check_range(s, len);
  }
  const std::string_view ae = cache::normalized_accept_encoding(s);
  check(ae.empty() || ae == "br" || ae == "gzip");
  const bool updatable = cache::header_updatable_from_304(s);
  check(!updatable || !http::is_hop_by_hop(s));
}

void check_etags(std::string_view a, std::string_view b) {
  const bool weak = cache::etag_weak_match(a, b);
  const bool strong = cache::etag_strong_match(a, b);
  check(weak == cache::etag_weak_match(b, a));
  check(strong == cache::etag_strong_match(b, a));
  check(!strong || weak);
  // If-Range with an entity-tag is the strong comparison.
  if (!a.empty() && a.front() == '"') check(cache::if_range_allows(a, b, "") == strong);
}

void check_policy(const http::RequestHead& req, const http::ResponseHead& resp,
                  const std::array<std::string_view, kLines>& lines) {
  const cache::CacheControl stored = cache::parse_cache_control(resp);
  const cache::CacheControl asked = cache::parse_cache_control(req);
  check_cache_control(stored);
  check_cache_control(asked);

  const std::optional<std::string> key = cache::vary_key(lines[3], req);
  check(key == cache::vary_key(lines[3], req));

  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const std::array<cache::RoutePolicy, 3> policies = {
      cache::RoutePolicy{},
      cache::RoutePolicy{.default_ttl = 60, .max_ttl = 3600},
      cache::RoutePolicy{.default_ttl = kMax, .ignore_origin_cache_control = true, .cache_authorized = true},
  };
  for (const cache::RoutePolicy& policy : policies) {
    const cache::Storable s = cache::storable(req, resp, policy);
    check(s.reason != nullptr && s.ok == (s.reason[0] == '\0'));
    for (auto [request_time, response_time] : {std::pair{kNow - 1, kNow}, std::pair{kMin, kMax},
                                               std::pair{kMax, kMin}, std::pair{int64_t{0}, int64_t{0}}}) {
      const cache::EntryTimes t = cache::entry_times(resp, request_time, response_time, policy);
      check(t.freshness_lifetime >= 0 && t.age_value >= 0 && t.age_value <= cache::kDeltaSecondsMax);
      if (policy.max_ttl >= 0) check(t.freshness_lifetime <= policy.max_ttl);
      for (int64_t now : {kNow, kMin, kMax, response_time}) {
        check(cache::current_age(t, now) >= 0);
        const cache::Freshness f = cache::freshness(t, stored, asked, now);
        const bool on_error = cache::stale_if_error_allows(t, stored, asked, now);
        // Section 4.2.4: what must be revalidated is not served stale, in the background or on an error.
        if (stored.must_revalidate || stored.no_cache) check(f != cache::Freshness::kStaleWhileRevalidate);
        if (stored.no_cache) check(!on_error && f == cache::Freshness::kStale);
      }
    }
  }
  for (int64_t date_value : {kNow, kMin, kMax}) {
    const bool not_modified = cache::answer_not_modified(req, lines[5], lines[6], date_value);
    check(!not_modified || req.method == http::Method::kGet || req.method == http::Method::kHead);
  }
  cache::if_range_allows(lines[6], lines[5], lines[2]);
  cache::if_range_allows(lines[6], lines[5], lines[2], kMin);
  cache::if_range_allows(lines[6], lines[5], lines[2], kMax);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::array<std::string_view, kLines> lines{};
  size_t pos = 0;
  for (size_t i = 0; i < kLines && pos <= in.size(); ++i) {
    const size_t end = std::min(in.find('\n', pos), in.size());
    lines[i] = in.substr(pos, end - pos);
    pos = end + 1;
  }

  // A length for ranges derived from the input, so that boundaries near it get explored.
  uint64_t length = 0;
  for (char c : lines[7]) length = length * 31 + static_cast<unsigned char>(c);
  for (std::string_view line : lines) check_line(line, length);
  // The whole input too: commas, quotes and dates may span what would be lines.
  check_cache_control(cache::parse_cache_control(in));
  check_date(in);
  check_range(in, length);
  check_etags(lines[5], lines[6]);
  check_etags(lines[0], lines[1]);

  static auto* req = new http::RequestHead;
  static auto* resp = new http::ResponseHead;
  req->header_count = 0;
  resp->header_count = 0;
  const uint8_t selector = size > 0 ? data[0] : 0;
  req->method = selector & 1 ? http::Method::kGet : selector & 2 ? http::Method::kHead : http::Method::kPost;
  for (auto [name, line] : kRequestFields) {
    if (!lines[line].empty() || (selector & 4)) req->headers[req->header_count++] = {name, lines[line]};
  }
  static constexpr std::array<int, 12> kStatuses = {200, 203, 204, 206, 301, 302,
                                                    304, 404, 500, 103, 299, 999};
  resp->status = kStatuses[(selector >> 3) % kStatuses.size()];
  for (auto [name, line] : kResponseFields) {
    if (!lines[line].empty() || (selector & 4)) resp->headers[resp->header_count++] = {name, lines[line]};
  }
  check_policy(*req, *resp, lines);
  return 0;
}
