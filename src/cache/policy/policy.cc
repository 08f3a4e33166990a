// HTTP caching rules (RFC 9111) and the conditional and range rules of RFC 9110 a cache applies. See
// cache/policy.h for the contract. Every parser here walks a string_view with explicit bounds checks, keeps
// no state between calls and allocates nothing, except where a result is itself a string or a vector.
#include "cache/policy.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>
#include <limits>

#include "core/text.h"
#include "http/wire/date.h"
#include "http/wire/field_lists.h"

namespace cumulo::cache {
namespace {

using http::iequals;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();
// 9999-12-31T23:59:59Z: the last time a four-digit HTTP-date year can express.
constexpr int64_t kLastDate = 253402300799;

int64_t sat_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? kInt64Max : kInt64Min;
  return r;
}
int64_t sat_sub(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) return b < 0 ? kInt64Max : kInt64Min;
  return r;
}

using core::is_digit;
using core::is_tchar;
using core::to_lower;
using http::is_ows;
using http::trim_ows;

size_t token_end(std::string_view s, size_t i) {
  while (i < s.size() && is_tchar(s[i])) ++i;
  return i;
}

// Index of the next ',' at or after `i` that is not inside a quoted-string, or s.size().
size_t next_comma(std::string_view s, size_t i) {
  bool quoted = false;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      return i;
    }
  }
  return s.size();
}

// delta-seconds (RFC 9111 section 1.2.2): 1*DIGIT, saturating at 2^31.
std::optional<int64_t> parse_delta_seconds(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    v = std::min<int64_t>(v * 10 + (c - '0'), kDeltaSecondsMax);
  }
  return v;
}

bool has_field(const http::MessageHead& head, std::string_view name) {
  for (size_t i = 0; i < head.header_count; ++i) {
    if (iequals(head.headers[i].name, name)) return true;
  }
  return false;
}

// ---- Cache-Control (RFC 9111 section 5.2) ----

enum SeenBit : uint32_t {
  kSeenMaxAge = 1,
  kSeenSMaxAge = 2,
  kSeenMaxStale = 4,
  kSeenMinFresh = 8,
  kSeenSwr = 16,
  kSeenSie = 32,
};

// One numeric directive: only its first occurrence counts (section 4.2.1).
// `value` is -1 when the argument was missing or invalid (delta-seconds are never negative; -2 is max-stale's
// "any").
void set_number(int64_t& field, uint32_t bit, uint32_t& seen, int64_t value, int64_t if_invalid) {
  if (seen & bit) return;
  seen |= bit;
  field = value != -1 ? value : if_invalid;
}

void apply_directive(std::string_view name, bool has_arg, bool arg_ok, std::string_view arg, CacheControl& cc,
                     uint32_t& seen) {
  int64_t number = -1;  // a plain integer: GCC 12 misjudges an optional here as maybe-uninitialized
  if (has_arg && arg_ok) {
    if (auto v = parse_delta_seconds(arg)) number = *v;
  }
  switch (name.size()) {
    case 6:
      if (iequals(name, "public")) cc.public_ = true;
      return;
    case 7:
      if (iequals(name, "max-age")) {
        set_number(cc.max_age, kSeenMaxAge, seen, number, 0);
      } else if (iequals(name, "private")) {
        cc.private_ = true;
      }
      return;
    case 8:
      if (iequals(name, "no-cache")) {
        cc.no_cache = true;
      } else if (iequals(name, "no-store")) {
        cc.no_store = true;
      } else if (iequals(name, "s-maxage")) {
        set_number(cc.s_maxage, kSeenSMaxAge, seen, number, 0);
      }
      return;
    case 9:
      if (iequals(name, "immutable")) {
        cc.immutable = true;
      } else if (iequals(name, "max-stale")) {
        // Section 5.2.1.2: without a value any staleness is accepted.
        set_number(cc.max_stale, kSeenMaxStale, seen, has_arg ? number : kMaxStaleAny, -1);
      } else if (iequals(name, "min-fresh")) {
        set_number(cc.min_fresh, kSeenMinFresh, seen, number, -1);
      }
      return;
    case 12:
      if (iequals(name, "no-transform")) cc.no_transform = true;
      return;
    case 14:
      if (iequals(name, "only-if-cached")) {
        cc.only_if_cached = true;
      } else if (iequals(name, "stale-if-error")) {
        set_number(cc.stale_if_error, kSeenSie, seen, number, -1);
      }
      return;
    case 15:
      if (iequals(name, "must-revalidate")) {
        cc.must_revalidate = true;
      } else if (iequals(name, "must-understand")) {
        cc.must_understand = true;
      }
      return;
    case 16:
      if (iequals(name, "proxy-revalidate")) cc.proxy_revalidate = true;
      return;
    case 22:
      if (iequals(name, "stale-while-revalidate")) {
        set_number(cc.stale_while_revalidate, kSeenSwr, seen, number, -1);
      }
      return;
    default:
      return;
  }
}

// Cache-Control = #cache-directive; cache-directive = token [ "=" ( token / quoted-string ) ].
// An element that does not start with a token is skipped up to the next comma outside quotes; one with
// bytes after its name or argument (or a malformed argument) names its directive with an invalid argument,
// so that "no-store;x" still forbids storing.
void parse_directives(std::string_view s, CacheControl& cc, uint32_t& seen) {
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (is_ows(s[i]) || s[i] == ',')) ++i;
    if (i == s.size()) break;
    const size_t name_end = token_end(s, i);
    if (name_end == i) {
      i = next_comma(s, i);
      continue;
    }
    const std::string_view name = s.substr(i, name_end - i);
    i = name_end;
    while (i < s.size() && is_ows(s[i])) ++i;
    bool has_arg = false;
    bool arg_ok = true;
    std::string_view arg;
    if (i < s.size() && s[i] == '=') {
      has_arg = true;
      ++i;
      while (i < s.size() && is_ows(s[i])) ++i;
      if (i < s.size() && s[i] == '"') {
        // quoted-string (RFC 9110 section 5.6.4). Numbers inside quotes are accepted (section 5.2); a
        // quoted-pair in one makes it invalid, since delta-seconds has only digits.
        const size_t start = ++i;
        bool closed = false;
        for (; i < s.size(); ++i) {
          if (s[i] == '\\') {
            ++i;
            arg_ok = false;
          } else if (s[i] == '"') {
            closed = true;
            break;
          }
        }
        arg = s.substr(start, std::min(i, s.size()) - start);
        if (closed) {
          ++i;
        } else {
          arg_ok = false;
        }
      } else {
        const size_t end = token_end(s, i);
        arg = s.substr(i, end - i);
        arg_ok = !arg.empty();
        i = end;
      }
      while (i < s.size() && is_ows(s[i])) ++i;
    }
    if (i < s.size() && s[i] != ',') {
      arg_ok = false;  // e.g. "max-age=5 6": the element does not end where it should
      i = next_comma(s, i);
    }
    apply_directive(name, has_arg, arg_ok, arg, cc, seen);
  }
}

uint32_t seen_from(const CacheControl& cc) {
  uint32_t seen = 0;
  if (cc.max_age != -1) seen |= kSeenMaxAge;
  if (cc.s_maxage != -1) seen |= kSeenSMaxAge;
  if (cc.max_stale != -1) seen |= kSeenMaxStale;
  if (cc.min_fresh != -1) seen |= kSeenMinFresh;
  if (cc.stale_while_revalidate != -1) seen |= kSeenSwr;
  if (cc.stale_if_error != -1) seen |= kSeenSie;
  return seen;
}

// ---- HTTP-date (RFC 9110 section 5.6.7) ----

// The names are http/wire/date.h's, beside the formatter.

// Reads fixed-width fields of a date; the first failure makes every later read fail.
struct DateCursor {
  std::string_view s;
  size_t i = 0;
  bool ok = true;

  void lit(std::string_view l) {
    if (ok && s.substr(i, l.size()) == l) {
      i += l.size();
    } else {
      ok = false;
    }
  }
  int digits(size_t n) {
    int v = 0;
    for (size_t k = 0; k < n && ok; ++k) {
      if (i < s.size() && is_digit(s[i])) {
        v = v * 10 + (s[i++] - '0');
      } else {
        ok = false;
      }
    }
    return v;
  }
  int month() {
    for (size_t m = 0; ok && m < http::kMonthNames.size(); ++m) {
      if (s.substr(i, 3) == http::kMonthNames[m]) {
        i += 3;
        return static_cast<int>(m) + 1;
      }
    }
    ok = false;
    return 0;
  }
  template <size_t N>
  void one_of(const std::array<std::string_view, N>& names) {
    for (std::string_view n : names) {
      if (ok && s.substr(i, n.size()) == n) {
        i += n.size();
        return;
      }
    }
    ok = false;
  }
  bool done() const { return ok && i == s.size(); }
};

std::optional<int64_t> to_epoch(int year, int month, int day, int hour, int minute, int second) {
  using namespace std::chrono;
  const year_month_day ymd{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                           std::chrono::day{static_cast<unsigned>(day)}};
  // RFC 9110 section 5.6.7: hour 00-23, minute 00-59, second 00-60 (a leap second is the next minute's 0).
  if (!ymd.ok() || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  const int64_t days = sys_days{ymd}.time_since_epoch().count();
  return days * 86400 + hour * 3600 + minute * 60 + second;
}

// The year of `t`, between 1970 and 9999.
int year_of(int64_t t) {
  using namespace std::chrono;
  t = std::clamp<int64_t>(t, 0, kLastDate);
  return static_cast<int>(year_month_day{sys_days{std::chrono::days{t / 86400}}}.year());
}

// ---- lists of entity-tags (RFC 9110 section 8.8.3) ----

struct EntityTag {
  bool weak = false;
  std::string_view opaque;  // with its quotes
};

// entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text. Reads one at s[i].
std::optional<EntityTag> read_entity_tag(std::string_view s, size_t& i) {
  EntityTag t;
  if (s.substr(i, 2) == "W/") {
    t.weak = true;
    i += 2;
  }
  if (i >= s.size() || s[i] != '"') return std::nullopt;
  const size_t start = i++;
  for (; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"') {
      ++i;
      t.opaque = s.substr(start, i - start);
      return t;
    }
    if (c < 0x21 || c == 0x7f) return std::nullopt;
  }
  return std::nullopt;
}

std::optional<EntityTag> whole_entity_tag(std::string_view s) {
  s = trim_ows(s);
  size_t i = 0;
  auto t = read_entity_tag(s, i);
  if (!t || i != s.size()) return std::nullopt;
  return t;
}

enum class ListMatch { kMatch, kNoMatch, kMalformed };

// If-None-Match = "*" / #entity-tag, weak comparison (RFC 9110 section 13.1.2).
ListMatch none_match_list(std::string_view s, const std::optional<EntityTag>& stored, bool& any_member) {
  size_t i = 0;
  bool matched = false;
  while (i < s.size()) {
    while (i < s.size() && (is_ows(s[i]) || s[i] == ',')) ++i;
    if (i == s.size()) break;
    any_member = true;
    if (s[i] == '*') {
      ++i;
      matched = true;
    } else {
      auto t = read_entity_tag(s, i);
      if (!t) return ListMatch::kMalformed;
      if (stored && t->opaque == stored->opaque) matched = true;
    }
    while (i < s.size() && is_ows(s[i])) ++i;
    if (i < s.size() && s[i] != ',') return ListMatch::kMalformed;
  }
  return matched ? ListMatch::kMatch : ListMatch::kNoMatch;
}

// ---- Vary (RFC 9111 section 4.1) ----

constexpr size_t kMaxVaryFields = 32;

enum class VaryParse { kOk, kStar, kMalformed };

// Field names of a Vary value, sorted case-insensitively and deduplicated.
VaryParse vary_fields(std::string_view vary, std::array<std::string_view, kMaxVaryFields>& names, size_t& n) {
  n = 0;
  size_t i = 0;
  while (i < vary.size()) {
    while (i < vary.size() && (is_ows(vary[i]) || vary[i] == ',')) ++i;
    if (i == vary.size()) break;
    if (vary[i] == '*') return VaryParse::kStar;
    const size_t end = token_end(vary, i);
    if (end == i) return VaryParse::kMalformed;
    const std::string_view name = vary.substr(i, end - i);
    i = end;
    while (i < vary.size() && is_ows(vary[i])) ++i;
    if (i < vary.size() && vary[i] != ',') return VaryParse::kMalformed;
    const auto less = [](std::string_view a, std::string_view b) {
      return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                          [](char x, char y) { return to_lower(x) < to_lower(y); });
    };
    const auto at = std::lower_bound(names.begin(), names.begin() + n, name, less);
    if (at != names.begin() + n && iequals(*at, name)) continue;
    if (n == names.size()) return VaryParse::kMalformed;
    std::move_backward(at, names.begin() + n, names.begin() + n + 1);
    *at = name;
    ++n;
  }
  return VaryParse::kOk;
}

VaryParse vary_of(const http::ResponseHead& resp) {
  std::array<std::string_view, kMaxVaryFields> names;
  size_t n = 0;
  for (size_t i = 0; i < resp.header_count; ++i) {
    if (!iequals(resp.headers[i].name, "vary")) continue;
    const VaryParse p = vary_fields(resp.headers[i].value, names, n);
    if (p != VaryParse::kOk) return p;
  }
  return VaryParse::kOk;
}

// Appends a field value with OWS at its ends and around commas removed.
void append_normalized(std::string& out, std::string_view v) {
  v = trim_ows(v);
  size_t i = 0;
  while (i < v.size()) {
    if (v[i] == ',') {
      while (!out.empty() && is_ows(out.back())) out.pop_back();
      out.push_back(',');
      ++i;
      while (i < v.size() && is_ows(v[i])) ++i;
    } else {
      out.push_back(v[i++]);
    }
  }
}

// qvalue (RFC 9110 section 12.4.2) in thousandths: "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ].
std::optional<int> parse_qvalue(std::string_view s) {
  if (s.empty() || (s[0] != '0' && s[0] != '1')) return std::nullopt;
  int v = (s[0] - '0') * 1000;
  if (s.size() == 1) return v;
  if (s[1] != '.' || s.size() > 5) return std::nullopt;
  int scale = 100;
  for (size_t i = 2; i < s.size(); ++i, scale /= 10) {
    if (!is_digit(s[i])) return std::nullopt;
    v += (s[i] - '0') * scale;
  }
  return v <= 1000 ? std::optional<int>(v) : std::nullopt;
}

// ---- storability and freshness ----

// RFC 9110 section 15.1: status codes that are heuristically cacheable.
bool heuristically_cacheable(int status) {
  static constexpr std::array<int, 12> kCodes = {200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501};
  return std::find(kCodes.begin(), kCodes.end(), status) != kCodes.end();
}

// Status codes whose caching requirements this cache implements (RFC 9111 sections 3 and 5.2.2.3).
bool status_understood(int status) {
  static constexpr std::array<int, 17> kCodes = {200, 203, 204, 206, 300, 301, 302, 303, 304,
                                                 307, 308, 404, 405, 410, 414, 451, 501};
  return std::find(kCodes.begin(), kCodes.end(), status) != kCodes.end();
}

std::optional<int64_t> header_date(const http::MessageHead& head, std::string_view name) {
  for (size_t i = 0; i < head.header_count; ++i) {
    if (iequals(head.headers[i].name, name)) return parse_http_date(head.headers[i].value);
  }
  return std::nullopt;
}

// Section 4.2.1, with the route's overrides. `date_value` is Date or, without one, when it was received.
int64_t lifetime_of(const http::ResponseHead& resp, const CacheControl& cc, int64_t date_value,
                    const RoutePolicy& policy) {
  int64_t lifetime = 0;
  if (policy.ignore_origin_cache_control) {
    lifetime = policy.default_ttl;
  } else if (cc.s_maxage >= 0) {
    lifetime = cc.s_maxage;
  } else if (cc.max_age >= 0) {
    lifetime = cc.max_age;
  } else if (has_field(resp, "expires")) {
    // Section 5.3: an invalid Expires ("0" among them) is a time in the past.
    const std::optional<int64_t> expires = header_date(resp, "expires");
    lifetime = expires ? std::max<int64_t>(0, sat_sub(*expires, date_value)) : 0;
  } else if (heuristically_cacheable(resp.status) || cc.public_) {
    // Section 4.2.2: a fraction of the time since the last modification, when there is one.
    const std::optional<int64_t> last_modified = header_date(resp, "last-modified");
    if (last_modified && *last_modified < date_value) {
      lifetime = std::min(sat_sub(date_value, *last_modified) / 10, kMaxHeuristicLifetime);
    } else {
      lifetime = policy.default_ttl;
    }
  }
  lifetime = std::max<int64_t>(lifetime, 0);
  if (policy.max_ttl >= 0) lifetime = std::min(lifetime, policy.max_ttl);
  return lifetime;
}

int64_t corrected_initial_age(const EntryTimes& t) {
  // Section 4.2.3; a clock that went backwards makes no negative delay.
  const int64_t apparent_age = std::max<int64_t>(0, sat_sub(t.response_time, t.date_value));
  const int64_t response_delay = std::max<int64_t>(0, sat_sub(t.response_time, t.request_time));
  const int64_t corrected_age_value = sat_add(t.age_value, response_delay);
  return std::max(apparent_age, corrected_age_value);
}

// Stale responses may not be served without validation (section 4.2.4, 5.2.2.2, 5.2.2.8, 5.2.2.10).
bool forbids_stale(const CacheControl& stored) {
  return stored.no_cache || stored.must_revalidate || stored.proxy_revalidate || stored.s_maxage >= 0;
}

// ---- ranges (RFC 9110 section 14.1) ----

// 1*DIGIT, saturating at UINT64_MAX; false when not all digits or empty.
bool parse_u64(std::string_view s, uint64_t& v) {
  if (s.empty()) return false;
  v = 0;
  for (char c : s) {
    if (!is_digit(c)) return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    v = v > (std::numeric_limits<uint64_t>::max() - d) / 10 ? std::numeric_limits<uint64_t>::max()
                                                            : v * 10 + d;
  }
  return true;
}

}  // namespace

// ---- Cache-Control ----

void merge_cache_control(std::string_view value, CacheControl& cc) {
  uint32_t seen = seen_from(cc);
  parse_directives(value, cc, seen);
}

CacheControl parse_cache_control(std::string_view value) {
  CacheControl cc;
  uint32_t seen = 0;
  parse_directives(value, cc, seen);
  return cc;
}

CacheControl parse_cache_control(const http::MessageHead& head) {
  CacheControl cc;
  uint32_t seen = 0;
  for (size_t i = 0; i < head.header_count; ++i) {
    if (iequals(head.headers[i].name, "cache-control")) parse_directives(head.headers[i].value, cc, seen);
  }
  return cc;
}

// ---- HTTP-date ----

std::optional<int64_t> parse_http_date(std::string_view s, int64_t now) {
  DateCursor c{s};
  int year = 0;
  int month = 0;
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
  const auto time_of_day = [&] {
    hour = c.digits(2);
    c.lit(":");
    minute = c.digits(2);
    c.lit(":");
    second = c.digits(2);
  };
  if (s.size() > 3 && s[3] == ',') {
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    c.one_of(http::kDayNames);
    c.lit(", ");
    day = c.digits(2);
    c.lit(" ");
    month = c.month();
    c.lit(" ");
    year = c.digits(4);
    c.lit(" ");
    time_of_day();
    c.lit(" GMT");
  } else if (s.size() > 3 && s[3] == ' ') {
    // asctime-date: "Sun Nov  6 08:49:37 1994"
    c.one_of(http::kDayNames);
    c.lit(" ");
    month = c.month();
    c.lit(" ");
    if (c.ok && c.i < s.size() && s[c.i] == ' ') {
      ++c.i;
      day = c.digits(1);
    } else {
      day = c.digits(2);
    }
    c.lit(" ");
    time_of_day();
    c.lit(" ");
    year = c.digits(4);
  } else {
    // rfc850-date: "Sunday, 06-Nov-94 08:49:37 GMT"
    c.one_of(http::kLongDayNames);
    c.lit(", ");
    day = c.digits(2);
    c.lit("-");
    month = c.month();
    c.lit("-");
    const int yy = c.digits(2);
    c.lit(" ");
    time_of_day();
    c.lit(" GMT");
    // A two-digit year more than 50 years ahead is the most recent past year with those digits.
    const int this_year = year_of(now);
    year = this_year - this_year % 100 + yy;
    if (year > this_year + 50) year -= 100;
  }
  if (!c.done()) return std::nullopt;
  return to_epoch(year, month, day, hour, minute, second);
}

std::optional<int64_t> parse_http_date(std::string_view s) {
  return parse_http_date(s, static_cast<int64_t>(std::time(nullptr)));
}

// ---- storability (RFC 9111 section 3) ----

Storable storable(const http::RequestHead& req, const http::ResponseHead& resp, const RoutePolicy& policy) {
  // Section 3: the request method is understood and its responses cacheable (RFC 9110 section 9.2.3).
  if (req.method != http::Method::kGet && req.method != http::Method::kHead) return {false, "method"};
  if (resp.status < 200) return {false, "status not final"};
  // Partial content is not a stored representation here; 304s only update stored ones (section 4.3.4).
  if (resp.status == 206) return {false, "status 206"};
  if (resp.status == 304) return {false, "status 304"};
  // Section 5.2.1.5.
  if (parse_cache_control(req).no_store) return {false, "request no-store"};
  const CacheControl cc = policy.ignore_origin_cache_control ? CacheControl{} : parse_cache_control(resp);
  // Section 5.2.2.3: must-understand limits storing to caches that understand the status code, and
  // overrides no-store in those.
  if (cc.must_understand && !status_understood(resp.status)) return {false, "status not understood"};
  if (cc.no_store && !cc.must_understand) return {false, "no-store"};
  // Section 5.2.2.7 (the qualified form is taken as the unqualified one).
  if (cc.private_) return {false, "private"};
  // Section 3.5.
  if (has_field(req, "authorization") && !policy.cache_authorized && !cc.public_ && cc.s_maxage < 0 &&
      !cc.must_revalidate) {
    return {false, "Authorization without public/s-maxage/must-revalidate"};
  }
  if (has_field(resp, "set-cookie")) return {false, "Set-Cookie"};
  // Section 4.1: a response with Vary: * never matches a later request.
  switch (vary_of(resp)) {
    case VaryParse::kStar:
      return {false, "Vary: *"};
    case VaryParse::kMalformed:
      return {false, "Vary malformed or over 32 fields"};
    case VaryParse::kOk:
      break;
  }
  // Section 3: explicit freshness, public, or a heuristically cacheable status code.
  const bool has_expires = !policy.ignore_origin_cache_control && has_field(resp, "expires");
  if (!heuristically_cacheable(resp.status) && !cc.public_ && cc.max_age < 0 && cc.s_maxage < 0 &&
      !has_expires) {
    return {false, "status not cacheable without explicit freshness"};
  }
  // Storable, but useless when it is stale at once and cannot be revalidated.
  if (!has_field(resp, "etag") && !has_field(resp, "last-modified")) {
    // Without a Date the Expires cannot be judged yet: count it as freshness.
    const std::optional<int64_t> date = header_date(resp, "date");
    const bool fresh = cc.no_cache ? false
                       : date      ? lifetime_of(resp, cc, *date, policy) > 0
                                   : has_expires || lifetime_of(resp, cc, 0, policy) > 0;
    if (!fresh) return {false, "no validator and no freshness"};
  }
  return {true, ""};
}

// ---- freshness (RFC 9111 section 4.2) ----

EntryTimes entry_times(const http::ResponseHead& resp, int64_t request_time, int64_t response_time,
                       const RoutePolicy& policy) {
  EntryTimes t;
  t.request_time = request_time;
  t.response_time = response_time;
  // RFC 9110 section 6.6.1: a response without a (valid) Date is dated when it was received.
  t.date_value = header_date(resp, "date").value_or(response_time);
  // Section 5.1: an invalid Age is ignored.
  for (size_t i = 0; i < resp.header_count; ++i) {
    if (iequals(resp.headers[i].name, "age")) {
      t.age_value = parse_delta_seconds(resp.headers[i].value).value_or(0);
      break;
    }
  }
  const CacheControl cc = policy.ignore_origin_cache_control ? CacheControl{} : parse_cache_control(resp);
  t.freshness_lifetime = lifetime_of(resp, cc, t.date_value, policy);
  t.expires = sat_add(sat_sub(response_time, corrected_initial_age(t)), t.freshness_lifetime);
  return t;
}

int64_t current_age(const EntryTimes& t, int64_t now) {
  const int64_t resident_time = std::max<int64_t>(0, sat_sub(now, t.response_time));
  return sat_add(corrected_initial_age(t), resident_time);
}

Freshness freshness(const EntryTimes& t, const CacheControl& stored, const CacheControl& request,
                    int64_t now) {
  // Sections 5.2.1.4 and 5.2.2.4: no-cache, in either, means validate first.
  if (request.no_cache || stored.no_cache) return Freshness::kStale;
  const int64_t age = current_age(t, now);
  // Section 5.2.1.1: the client wants nothing older, stale or not.
  if (request.max_age >= 0 && age > request.max_age) return Freshness::kStale;
  const int64_t fresh_for = sat_sub(t.freshness_lifetime, age);
  if (fresh_for > 0) {
    // Section 5.2.1.3.
    if (request.min_fresh >= 0 && fresh_for < request.min_fresh) return Freshness::kStale;
    return Freshness::kFresh;
  }
  // Section 4.2.4: stale.
  if (forbids_stale(stored)) return Freshness::kStale;
  const int64_t staleness = sat_sub(age, t.freshness_lifetime);
  // Section 5.2.1.2.
  if (request.max_stale == kMaxStaleAny || (request.max_stale >= 0 && staleness <= request.max_stale)) {
    return Freshness::kFresh;
  }
  // RFC 5861 section 3.
  if (stored.stale_while_revalidate >= 0 && staleness <= stored.stale_while_revalidate) {
    return Freshness::kStaleWhileRevalidate;
  }
  return Freshness::kStale;
}

bool stale_if_error_allows(const EntryTimes& t, const CacheControl& stored, const CacheControl& request,
                           int64_t now) {
  if (stored.no_cache) return false;
  const int64_t age = current_age(t, now);
  if (age < t.freshness_lifetime) return true;
  if (forbids_stale(stored)) return false;
  const int64_t window = request.stale_if_error >= 0 ? request.stale_if_error : stored.stale_if_error;
  return window >= 0 && sat_sub(age, t.freshness_lifetime) <= window;
}

// ---- Vary (RFC 9111 section 4.1) ----

std::string_view normalized_accept_encoding(std::string_view s) {
  int q_br = -1;
  int q_gzip = -1;
  int q_any = -1;
  size_t i = 0;
  while (i < s.size()) {
    const size_t end = next_comma(s, i);
    std::string_view element = s.substr(i, end - i);
    i = end + (end < s.size());
    // codings = content-coding / "identity" / "*"; weight = OWS ";" OWS "q=" qvalue
    const size_t semi = element.find(';');
    const std::string_view coding = trim_ows(element.substr(0, semi));
    int q = 1000;
    if (semi != std::string_view::npos) {
      std::string_view params = element.substr(semi + 1);
      bool valid = true;
      while (valid && !params.empty()) {
        const size_t next = params.find(';');
        const std::string_view param = trim_ows(params.substr(0, next));
        params = next == std::string_view::npos ? std::string_view{} : params.substr(next + 1);
        if (param.size() >= 2 && to_lower(param[0]) == 'q' && param[1] == '=') {
          const std::optional<int> v = parse_qvalue(param.substr(2));
          valid = v.has_value();
          q = v.value_or(0);
        }
      }
      if (!valid) continue;
    }
    if (iequals(coding, "br")) {
      if (q_br < 0) q_br = q;
    } else if (iequals(coding, "gzip") || iequals(coding, "x-gzip")) {
      if (q_gzip < 0) q_gzip = q;
    } else if (coding == "*") {
      if (q_any < 0) q_any = q;
    }
  }
  // RFC 9110 section 12.5.3: "*" stands for every coding not listed.
  const int br = q_br >= 0 ? q_br : std::max(q_any, 0);
  const int gzip = q_gzip >= 0 ? q_gzip : std::max(q_any, 0);
  if (br == 0 && gzip == 0) return "";
  return br >= gzip ? "br" : "gzip";
}

std::optional<std::string> vary_key(std::string_view vary, const http::RequestHead& req) {
  std::array<std::string_view, kMaxVaryFields> names;
  size_t n = 0;
  // A Vary the cache cannot read is as good as "*": it matches nothing.
  if (vary_fields(vary, names, n) != VaryParse::kOk) return std::nullopt;
  std::string key;
  for (size_t k = 0; k < n; ++k) {
    for (char c : names[k]) key.push_back(to_lower(c));
    if (iequals(names[k], "accept-encoding")) {
      std::string joined;
      bool any = false;
      for (size_t i = 0; i < req.header_count; ++i) {
        if (!iequals(req.headers[i].name, "accept-encoding")) continue;
        if (any) joined.push_back(',');
        joined.append(req.headers[i].value);
        any = true;
      }
      key.push_back(':');
      key.append(normalized_accept_encoding(joined));
    } else {
      bool any = false;
      for (size_t i = 0; i < req.header_count; ++i) {
        if (!iequals(req.headers[i].name, names[k])) continue;
        key.push_back(any ? ',' : ':');
        append_normalized(key, req.headers[i].value);
        any = true;
      }
    }
    key.push_back('\n');
  }
  return key;
}

// ---- validation (RFC 9111 section 4.3, RFC 9110 section 13) ----

bool etag_weak_match(std::string_view a, std::string_view b) {
  const auto x = whole_entity_tag(a);
  const auto y = whole_entity_tag(b);
  return x && y && x->opaque == y->opaque;
}

bool etag_strong_match(std::string_view a, std::string_view b) {
  const auto x = whole_entity_tag(a);
  const auto y = whole_entity_tag(b);
  return x && y && !x->weak && !y->weak && x->opaque == y->opaque;
}

bool answer_not_modified(const http::RequestHead& req, std::string_view etag, std::string_view last_modified,
                         int64_t date_value) {
  // RFC 9110 sections 13.1.2 and 13.1.3: 304 is an answer to GET and HEAD only.
  if (req.method != http::Method::kGet && req.method != http::Method::kHead) return false;
  // RFC 9110 section 13.2.2: If-None-Match, when present, decides and If-Modified-Since is ignored.
  if (has_field(req, "if-none-match")) {
    const std::optional<EntityTag> stored = whole_entity_tag(etag);
    bool any_member = false;
    bool matched = false;
    for (size_t i = 0; i < req.header_count; ++i) {
      if (!iequals(req.headers[i].name, "if-none-match")) continue;
      switch (none_match_list(req.headers[i].value, stored, any_member)) {
        case ListMatch::kMalformed:
          return false;
        case ListMatch::kMatch:
          matched = true;
          break;
        case ListMatch::kNoMatch:
          break;
      }
    }
    return matched;
  }
  // RFC 9110 section 13.1.3: one valid HTTP-date, else the field is ignored.
  std::optional<int64_t> since;
  for (size_t i = 0; i < req.header_count; ++i) {
    if (!iequals(req.headers[i].name, "if-modified-since")) continue;
    if (since) return false;
    since = parse_http_date(req.headers[i].value);
    if (!since) return false;
  }
  if (!since) return false;
  // Section 4.3.2: Last-Modified, or the Date of the stored response (or when it was received).
  const int64_t modified = parse_http_date(last_modified).value_or(date_value);
  return modified <= *since;
}

bool header_updatable_from_304(std::string_view name) {
  if (name.empty() || http::is_hop_by_hop(name)) return false;
  static constexpr std::array<std::string_view, 10> kKept = {"content-length",
                                                             "content-encoding",
                                                             "content-range",
                                                             "transfer-encoding",
                                                             "vary",
                                                             "age",
                                                             "set-cookie",
                                                             "proxy-authenticate",
                                                             "proxy-authorization",
                                                             "proxy-authentication-info"};
  for (std::string_view k : kKept) {
    if (iequals(name, k)) return false;
  }
  return true;
}

// ---- ranges (RFC 9110 section 14) ----

RangeKind parse_range(std::string_view value, uint64_t length, std::vector<ByteRange>& out) {
  out.clear();
  value = trim_ows(value);
  if (value.empty()) return RangeKind::kNone;
  // ranges-specifier = range-unit "=" range-set; units compare case-insensitively (section 14.1).
  const size_t eq = value.find('=');
  if (eq == std::string_view::npos || eq == 0 || token_end(value, 0) != eq) return RangeKind::kInvalid;
  if (!iequals(value.substr(0, eq), "bytes")) return RangeKind::kNone;

  struct Spec {
    bool suffix;
    uint64_t first;
    uint64_t last;  // UINT64_MAX when absent
  };
  std::array<Spec, kMaxRanges> specs;
  size_t count = 0;
  const std::string_view set = value.substr(eq + 1);
  size_t i = 0;
  while (i < set.size()) {
    size_t end = set.find(',', i);
    if (end == std::string_view::npos) end = set.size();
    const std::string_view element = trim_ows(set.substr(i, end - i));
    i = end + 1;
    if (element.empty()) continue;  // RFC 9110 section 5.6.1.2: empty list elements are allowed
    if (count == kMaxRanges) return RangeKind::kNone;
    const size_t dash = element.find('-');
    if (dash == std::string_view::npos) return RangeKind::kInvalid;
    Spec s{dash == 0, 0, std::numeric_limits<uint64_t>::max()};
    if (s.suffix) {
      // suffix-range = "-" suffix-length
      if (!parse_u64(element.substr(1), s.first)) return RangeKind::kInvalid;
    } else {
      // int-range = first-pos "-" [ last-pos ]; last-pos before first-pos is invalid (section 14.1.1).
      if (!parse_u64(element.substr(0, dash), s.first)) return RangeKind::kInvalid;
      const std::string_view last = element.substr(dash + 1);
      if (!last.empty() && (!parse_u64(last, s.last) || s.last < s.first)) return RangeKind::kInvalid;
    }
    specs[count++] = s;
  }
  if (count == 0) return RangeKind::kInvalid;

  if (length == 0) {
    // Section 14.1.1: only a non-empty suffix is satisfiable, and the whole (empty) representation is it.
    for (size_t k = 0; k < count; ++k) {
      if (specs[k].suffix && specs[k].first > 0) return RangeKind::kNone;
    }
    return RangeKind::kUnsatisfiable;
  }
  std::array<ByteRange, kMaxRanges> ranges;
  size_t n = 0;
  for (size_t k = 0; k < count; ++k) {
    const Spec& s = specs[k];
    if (s.suffix) {
      if (s.first == 0) continue;
      ranges[n++] = {length - std::min(s.first, length), length - 1};
    } else if (s.first < length) {
      ranges[n++] = {s.first, std::min(s.last, length - 1)};
    }
  }
  if (n == 0) return RangeKind::kUnsatisfiable;

  std::array<ByteRange, kMaxRanges> sorted = ranges;
  std::sort(sorted.begin(), sorted.begin() + n,
            [](const ByteRange& a, const ByteRange& b) { return a.first < b.first; });
  // Section 14.2: coalesce what overlaps or touches; more than one overlap is abuse, ignored.
  size_t overlaps = 0;
  size_t merged = 0;
  for (size_t k = 0; k < n; ++k) {
    if (merged > 0 && sorted[k].first <= sorted[merged - 1].last + 1) {
      overlaps += sorted[k].first <= sorted[merged - 1].last;
      sorted[merged - 1].last = std::max(sorted[merged - 1].last, sorted[k].last);
    } else {
      sorted[merged++] = sorted[k];
    }
  }
  if (overlaps > 1) return RangeKind::kNone;
  // RFC 9110 section 15.3.7.2: parts keep the order of the request unless coalesced.
  if (merged == n) {
    out.assign(ranges.begin(), ranges.begin() + n);
  } else {
    out.assign(sorted.begin(), sorted.begin() + merged);
  }
  return RangeKind::kRanges;
}

bool if_range_allows(std::string_view if_range, std::string_view etag, std::string_view last_modified,
                     std::optional<int64_t> date_value) {
  if_range = trim_ows(if_range);
  if (if_range.empty()) return false;
  // If-Range = entity-tag / HTTP-date (RFC 9110 section 13.1.5).
  if (if_range.front() == '"' || if_range.substr(0, 2) == "W/") return etag_strong_match(if_range, etag);
  const std::optional<int64_t> since = parse_http_date(if_range);
  const std::optional<int64_t> modified = parse_http_date(last_modified);
  if (!since || !modified || *since != *modified) return false;
  // Section 8.8.2.2: Last-Modified is a strong validator only when at least 60 s older than the Date.
  return !date_value || sat_sub(*date_value, *modified) >= 60;
}

}  // namespace cumulo::cache
