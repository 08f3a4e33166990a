// HTTP caching rules for a shared cache (RFC 9111), with the conditional and range request rules a cache
// applies when it answers from storage (RFC 9110 sections 13 and 14). Pure functions of header values and
// times: nothing here does I/O, keeps state, or includes the event loop, so fuzz targets link it alone.
//
// Parsers of field values never throw, never read outside the views they are given, and treat malformed
// input as the RFC says (usually: as if the field were absent, or as the more restrictive reading).
// Times are whole seconds since the Unix epoch, from the cache's own clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/wire/date.h"
#include "http/wire/h1.h"

namespace cumulo::cache {

// RFC 9111 section 1.2.2: a delta-seconds too large to represent is taken as 2^31.
inline constexpr int64_t kDeltaSecondsMax = 2147483648;
// RFC 9111 section 4.2.2: heuristic freshness is at most this (a day), as caches commonly cap it.
inline constexpr int64_t kMaxHeuristicLifetime = 86400;
// RFC 9110 section 14.2: more range-specs than this in one Range field are ignored (served as 200).
inline constexpr size_t kMaxRanges = 16;

// Cache-Control directives (RFC 9111 section 5.2) of a request or a response. Directive names are
// case-insensitive; arguments may be tokens or quoted strings (section 5.2: recipients accept both).
// Unknown directives (extensions, section 5.2.3) are ignored. When a directive appears more than once, the
// first occurrence counts (section 4.2.1). Numbers are delta-seconds (section 1.2.2): over 2^31 they are
// 2^31; a max-age or s-maxage whose argument is missing or not a number is 0, so that the response is
// stale (section 4.2.1: invalid freshness information); other invalid numbers leave the directive absent
// (-1). The qualified forms no-cache="field" and private="field" (sections 5.2.2.4, 5.2.2.7) are taken as
// the unqualified, stricter, directives.
struct CacheControl {
  bool no_store = false;
  bool no_cache = false;
  bool private_ = false;
  bool public_ = false;
  bool must_revalidate = false;
  bool proxy_revalidate = false;
  bool must_understand = false;
  bool immutable = false;  // RFC 8246
  bool no_transform = false;
  bool only_if_cached = false;
  int64_t max_age = -1;
  int64_t s_maxage = -1;
  int64_t max_stale = -1;  // kMaxStaleAny: "max-stale" without a value, any staleness is accepted
  int64_t min_fresh = -1;
  int64_t stale_while_revalidate = -1;  // RFC 5861 section 3
  int64_t stale_if_error = -1;          // RFC 5861 section 4
};
inline constexpr int64_t kMaxStaleAny = -2;

// All Cache-Control field lines of `head`, in order, as one list (RFC 9110 section 5.3).
CacheControl parse_cache_control(const http::MessageHead& head);
// One Cache-Control field value.
CacheControl parse_cache_control(std::string_view value);
// Adds the directives of one more field line to `cc` (the ones already set stay: the first wins).
void merge_cache_control(std::string_view value, CacheControl& cc);

// HTTP-date (RFC 9110 section 5.6.7): IMF-fixdate, or the obsolete RFC 850 and asctime formats, which
// recipients must accept. nullopt when malformed or not a real calendar date. A two-digit RFC 850 year
// more than 50 years in the future of `now` is taken as the latest past year with those digits; the
// overload without `now` uses the system clock for that.
std::optional<int64_t> parse_http_date(std::string_view value, int64_t now);
std::optional<int64_t> parse_http_date(std::string_view value);
// Writes the IMF-fixdate of `t` ("Sun, 06 Nov 1994 08:49:37 GMT") and a NUL; returns its length, 29.
// Times before 1970 or after 9999 are clamped to those years.
using http::format_http_date;

// Per-route overrides of the origin's caching headers.
struct RoutePolicy {
  int64_t default_ttl = 0;  // seconds of freshness when the response gives none and no heuristic applies
  bool ignore_origin_cache_control = false;  // freshness is default_ttl; no-store, private, no-cache,
                                             // max-age, Expires... of the response are not consulted
  int64_t max_ttl = -1;                      // caps any freshness lifetime; -1: no cap
  bool cache_authorized = false;  // store responses to requests with Authorization (the route has made
                                  // sure they do not differ per user)
};

// RFC 9111 section 3: may a shared cache store this response to this request? When not, `reason` is a
// short static text for logs and X-Cache explanations: "method", "status not final", "status 206",
// "status 304", "status not understood" (with must-understand), "request no-store", "no-store", "private",
// "Authorization without public/s-maxage/must-revalidate", "Set-Cookie", "Vary: *",
// "Vary malformed or over 32 fields", "status not cacheable without explicit freshness",
// "no validator and no freshness".
// Set-Cookie: RFC 9111 allows storing such responses, but a shared cache that replays one user's cookie to
// everybody is a session leak, so they are never stored (as Varnish does by default).
struct Storable {
  bool ok;
  const char* reason;  // "" when ok
};
Storable storable(const http::RequestHead& req, const http::ResponseHead& resp, const RoutePolicy& policy);

// Facts kept with a stored response, computed once when it is stored (or refreshed by a 304).
struct EntryTimes {
  int64_t request_time = 0;        // when the request that got this response was sent (section 4.2.3)
  int64_t response_time = 0;       // when the response was received
  int64_t date_value = 0;          // its Date, or response_time when Date is absent or invalid
  int64_t age_value = 0;           // its Age, 0 when absent or invalid (section 5.1)
  int64_t freshness_lifetime = 0;  // section 4.2.1, after the route's overrides
  int64_t expires = 0;             // when the entry becomes stale on the cache's clock: current_age()
                                   // reaches freshness_lifetime then (response_time - corrected initial
                                   // age + freshness_lifetime)
};
// Section 4.2.1: freshness lifetime from s-maxage, else max-age, else Expires - Date (an invalid Expires
// is in the past, section 5.3), else for heuristically cacheable status codes or a public response
// (section 4.2.2) 10% of Date - Last-Modified capped at a day, else policy.default_ttl; policy.max_ttl caps
// the result. With policy.ignore_origin_cache_control the lifetime is policy.default_ttl (capped too).
EntryTimes entry_times(const http::ResponseHead& resp, int64_t request_time, int64_t response_time,
                       const RoutePolicy& policy);
// Section 4.2.3: the age of the stored response at `now`.
int64_t current_age(const EntryTimes& t, int64_t now);

enum class Freshness {
  kFresh,                 // serve from storage as it is
  kStaleWhileRevalidate,  // serve from storage and revalidate in the background (RFC 5861 section 3)
  kStale,                 // revalidate (or fetch) before answering
};
// Section 4.2 and 4.2.4 with the request's wishes (section 5.2.1): request no-cache, max-age, min-fresh
// ask for revalidation; max-stale accepts stale responses; a stored no-cache always revalidates; a stale
// response with must-revalidate, proxy-revalidate or s-maxage (section 5.2.2.10) is never served stale.
Freshness freshness(const EntryTimes& t, const CacheControl& stored, const CacheControl& request,
                    int64_t now);
// RFC 5861 section 4: when the origin fails (5xx, unreachable), may the stale stored response be served?
// The request's stale-if-error, when present, decides the window, else the stored response's; directives
// that forbid serving stale (section 4.2.4) forbid it here too. True for a response still fresh.
bool stale_if_error_allows(const EntryTimes& t, const CacheControl& stored, const CacheControl& request,
                           int64_t now);

// Section 4.1: the secondary cache key of `req` for a stored response whose Vary field value is `vary`
// (all its Vary lines joined with ","). Field names are lowercased, sorted and deduplicated, so that the
// same set of fields gives the same key whatever their order. Values: all lines of the field joined with
// ",", OWS around the commas and at the ends removed; an absent field differs from an empty one.
// Accept-Encoding is reduced to the coding the cache would pick (normalized_accept_encoding). Empty for no
// Vary; nullopt for "Vary: *", which never matches (section 4.1), and for a Vary that is not a list of
// field names or names more than 32 fields (storable() refuses both).
// Because of that reduction, a miss on a response that varies on Accept-Encoding must be fetched with the
// request's Accept-Encoding replaced by the normalised one (or removed when it is ""), as Varnish does, so
// that what is stored under a key is what every request with that key accepts.
std::optional<std::string> vary_key(std::string_view vary, const http::RequestHead& req);
// The content coding worth distinguishing that an Accept-Encoding value accepts (RFC 9110 section
// 12.5.3): "br" or "gzip", the higher qvalue first and br on a tie, or "" (identity) for none of them.
std::string_view normalized_accept_encoding(std::string_view accept_encoding);

// Section 4.3.2 with RFC 9110 section 13.1: answer this request 304 from the stored response with these
// validators? Only for GET and HEAD. If-None-Match (weak comparison, "*" matches any stored response)
// decides when present; otherwise If-Modified-Since, a valid date, compared with Last-Modified or, when the
// stored response has none, its `date_value` (EntryTimes::date_value). A malformed field never gives 304.
bool answer_not_modified(const http::RequestHead& req, std::string_view etag, std::string_view last_modified,
                         int64_t date_value);

// Section 3.2 (used by section 4.3.4): does a field of a 304 replace the stored response's field of that
// name? Not: Content-Length, the framing and hop-by-hop fields (section 3.1), fields that describe how the
// stored content was encoded or cut (Content-Encoding, Content-Range, Transfer-Encoding), Vary (the entry is
// filed under it), Age (recomputed from the 304: refresh EntryTimes too), Set-Cookie (never stored) and the
// proxy authentication fields (section 3.1).
bool header_updatable_from_304(std::string_view name);

// RFC 9110 section 14.1.2 with section 14.2: the ranges of a representation of `length` bytes a Range field
// asks for, inclusive and clamped to the representation. Ranges that overlap or touch are coalesced and then
// served in ascending order; otherwise they keep the order of the request (RFC 9110 section 15.3.7.2).
// Unsatisfiable range-specs are dropped. kNone: no Range, another unit, more than kMaxRanges range-specs, or
// more than one range overlapping another (the abuse of section 14.2): serve 200. kInvalid: the field is
// malformed (e.g. last-pos before first-pos), also served 200. kUnsatisfiable: valid but nothing to send:
// 416. A zero-length representation is served whole (200) when a non-empty suffix is asked for.
struct ByteRange {
  uint64_t first;
  uint64_t last;  // inclusive
  bool operator==(const ByteRange&) const = default;
};
enum class RangeKind { kNone, kRanges, kUnsatisfiable, kInvalid };
RangeKind parse_range(std::string_view value, uint64_t length, std::vector<ByteRange>& out);

// RFC 9110 section 14.6: the multipart/byteranges body answering `ranges` (two or more, as parse_range gives
// them) of the representation `body` whose Content-Type is `content_type` (omitted from the parts when
// empty), with `boundary` (1 to 70 characters of bchars, RFC 2046 section 5.1.1; the caller picks one that
// cannot occur in the body, e.g. random). Each part carries its Content-Range; the response's Content-Type is
// "multipart/byteranges; boundary=" + boundary. Ranges must lie within `body`.
std::string multipart_byteranges(std::string_view body, const std::vector<ByteRange>& ranges,
                                 std::string_view content_type, std::string_view boundary);

// RFC 9110 section 14.4: a Content-Range of a 206 as an origin sends it for one range, "bytes
// first-last/length" (the length may be "*" when unknown: `complete_length` is then nullopt). nullopt when
// malformed, when last is before first, or when last is not below a known complete length.
struct ContentRange {
  uint64_t first;
  uint64_t last;
  std::optional<uint64_t> complete_length;
};
std::optional<ContentRange> parse_content_range(std::string_view value);

// RFC 9110 section 13.1.5: may the Range be honoured, given the stored response's ETag and Last-Modified?
// An entity-tag must match the ETag by strong comparison; an HTTP-date must equal Last-Modified, which must
// be a strong validator (section 8.8.2.2: at least 60 s before the stored response's Date, when
// `date_value` is given).
bool if_range_allows(std::string_view if_range, std::string_view etag, std::string_view last_modified,
                     std::optional<int64_t> date_value = std::nullopt);

// RFC 9110 section 8.8.3.2: weak and strong comparison of two entity-tags; false when either is malformed.
bool etag_weak_match(std::string_view a, std::string_view b);
bool etag_strong_match(std::string_view a, std::string_view b);

}  // namespace cumulo::cache
