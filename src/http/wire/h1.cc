// HTTP/1.1 head parsing and chunked decoding (RFC 9112). See h1.h for the contract.
//
// Shape of a parse: a cheap resumable scan for LF finds the end of the head, checking on the way that every
// LF is preceded by CR; only then are the start line and fields parsed, in one pass over bytes known to end
// in
// "\r\n\r\n". That terminator is the sentinel that lets the inner loops run without bounds checks: every loop
// below stops on a byte its table rejects, and CR is rejected by all of them.
#include "http/wire/h1.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "core/text.h"
#include "http/wire/field_lists.h"

// SSE2 is part of x86-64; elsewhere, or with -DCUMULO_NO_SIMD (to test that path), portable loops are used.
#if defined(__SSE2__) && !defined(CUMULO_NO_SIMD)
#define CUMULO_H1_SSE2 1
#include <emmintrin.h>
#endif

namespace cumulo::http {
namespace {

using CharTable = std::array<bool, 256>;
using core::is_alpha;
using core::is_digit;

constexpr CharTable make_table(bool (*pred)(unsigned)) {
  CharTable t{};
  for (unsigned c = 0; c < 256; ++c) t[c] = pred(c);
  return t;
}

constexpr bool in_set(unsigned c, std::string_view set) {
  for (char s : set) {
    if (static_cast<unsigned char>(s) == c) return true;
  }
  return false;
}

// tchar, RFC 9110 section 5.6.2: methods, field names, transfer codings.
constexpr CharTable kTokenChar = make_table([](unsigned c) { return core::is_tchar(static_cast<char>(c)); });

// field-vchar / SP / HTAB (RFC 9110 section 5.5); obs-text (>= 0x80) is kept, as recipients must accept it.
constexpr CharTable kFieldValueChar =
    make_table([](unsigned c) { return c == '\t' || (c >= 0x20 && c != 0x7f); });

// request-target characters (RFC 9112 section 3.2, RFC 3986 appendix A): visible ASCII but '#', which only
// introduces a fragment and a fragment is never sent. Non-ASCII is refused rather than guessed at, so that we
// and the upstream cannot disagree about which path was asked for.
constexpr CharTable kTargetChar = make_table([](unsigned c) { return c > 0x20 && c < 0x7f && c != '#'; });

// uri-host [ ":" port ] (RFC 3986 section 3.2.2): reg-name, IP-literal and port characters. Excludes '/',
// '@',
// '?', '#' and whitespace, which would let a Host value route somewhere else than it appears to.
constexpr CharTable kHostChar =
    make_table([](unsigned c) { return is_digit(c) || is_alpha(c) || in_set(c, "-._~!$&'()*+,;=%:[]"); });

inline unsigned char uc(char c) {
  return static_cast<unsigned char>(c);
}

// `lower` must be lowercase already: the names we match are literals.
inline bool iequals_lower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (core::to_lower(s[i]) != lower[i]) return false;
  }
  return true;
}

// iequals_lower for bytes the parser has already validated (tokens or field values: no control bytes) against
// a literal of lowercase letters, digits and '-'. For those, OR 0x20 folds case exactly: the only other bytes
// that would fold onto a digit or '-' are control bytes. Eight bytes per compare; this runs for every field.
inline bool field_equals(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  constexpr uint64_t kFold = 0x2020202020202020ull;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t a;
    uint64_t b;
    std::memcpy(&a, s.data() + i, 8);
    std::memcpy(&b, lower.data() + i, 8);
    if ((a | kFold) != b) return false;
  }
  for (; i < s.size(); ++i) {
    if ((uc(s[i]) | 0x20u) != uc(lower[i])) return false;
  }
  return true;
}

// Content-Length values beyond this are refused: bodies are counted in off_t and int64 elsewhere.
constexpr uint64_t kMaxContentLength = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

ParseStatus fail(ParseError& err, ParseStatus status, size_t pos, int http_status, const char* reason) {
  err.pos = pos;
  err.http_status = http_status;
  err.reason = reason;
  return status;
}

// Errors in a response are the upstream's fault: the client is answered 502 whatever the cause.
constexpr int kBadGateway = 502;

// Finds the end of the head in in[start, ...), resuming at `scanned`. Every LF must end a CRLF (RFC 9112
// section 2.2 allows a recipient to accept a bare LF; a proxy must not, as the next hop may disagree on where
// a line ends). Only the first max_head_bytes are ever looked at.
ParseStatus find_head_end(std::string_view in, size_t start, size_t max_head_bytes, bool is_request,
                          size_t& scanned, size_t& head_end, ParseError& err) {
  const char* p = in.data();
  const size_t limit = std::min(in.size(), max_head_bytes);
  if (scanned > in.size()) scanned = 0;  // a shorter buffer than last time: start over rather than trust it
  size_t i = std::max(scanned, start);

  // Judges the LF at k: kInvalid if bare, kComplete if it ends the empty line, kNeedMore to go on.
  auto at_lf = [&](size_t k) {
    if (k == start || p[k - 1] != '\r') {
      return fail(err, ParseStatus::kInvalid, k, is_request ? 400 : kBadGateway, "bare LF as line end");
    }
    if (k >= start + 2 && p[k - 2] == '\n') {
      head_end = k + 1;
      scanned = k;  // a repeated call finds the same end again
      return ParseStatus::kComplete;
    }
    return ParseStatus::kNeedMore;
  };

#ifdef CUMULO_H1_SSE2
  // One load and compare per 16 bytes instead of a memchr call per line.
  const __m128i lf = _mm_set1_epi8('\n');
  for (; i + 16 <= limit; i += 16) {
    unsigned mask = static_cast<unsigned>(
        _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)), lf)));
    while (mask != 0) {
      const ParseStatus s = at_lf(i + static_cast<size_t>(__builtin_ctz(mask)));
      if (s != ParseStatus::kNeedMore) return s;
      mask &= mask - 1;
    }
  }
  for (; i < limit; ++i) {
    if (p[i] == '\n') {
      const ParseStatus s = at_lf(i);
      if (s != ParseStatus::kNeedMore) return s;
    }
  }
#else
  while (i < limit) {
    const void* hit = std::memchr(p + i, '\n', limit - i);
    if (hit == nullptr) break;
    const size_t k = static_cast<size_t>(static_cast<const char*>(hit) - p);
    const ParseStatus s = at_lf(k);
    if (s != ParseStatus::kNeedMore) return s;
    i = k + 1;
  }
#endif
  scanned = std::max(limit, start);
  if (in.size() <= max_head_bytes) return ParseStatus::kNeedMore;
  if (!is_request)
    return fail(err, ParseStatus::kTooLarge, max_head_bytes, kBadGateway, "response head too large");
  const bool line_ended = start < limit && std::memchr(p + start, '\n', limit - start) != nullptr;
  if (!line_ended) return fail(err, ParseStatus::kTooLarge, max_head_bytes, 414, "request line too long");
  return fail(err, ParseStatus::kTooLarge, max_head_bytes, 431, "request head too large");
}

// What the fields say about framing and the connection, gathered in one pass and judged at the end.
struct FieldFacts {
  size_t host_count = 0;
  std::string_view host;
  size_t host_pos = 0;
  bool has_content_length = false;
  uint64_t content_length = 0;
  size_t content_length_pos = 0;
  bool has_transfer_encoding = false;
  bool te_final_chunked = false;
  bool te_other_coding = false;
  size_t transfer_encoding_pos = 0;
  bool conn_close = false;
  bool conn_keep_alive = false;
  bool conn_upgrade = false;
  bool has_upgrade = false;
  bool expect_continue = false;
};

// Content-Length = 1*DIGIT, and a list of identical values is the same length (RFC 9110 section 8.6).
ParseStatus note_content_length(std::string_view value, size_t pos, int bad_status, FieldFacts& f,
                                ParseError& err) {
  const char* reason = nullptr;
  bool seen = f.has_content_length;
  uint64_t length = f.content_length;
  for_each_list_element(value, [&](std::string_view element) {
    if (element.empty()) {
      reason = "Content-Length is not a number";
      return false;
    }
    uint64_t v = 0;
    for (char c : element) {
      if (!is_digit(uc(c))) {
        reason = "Content-Length is not a number";
        return false;
      }
      const unsigned d = uc(c) - '0';
      if (v > (kMaxContentLength - d) / 10) {
        reason = "Content-Length too large";
        return false;
      }
      v = v * 10 + d;
    }
    if (seen && v != length) {
      reason = "differing Content-Length values";
      return false;
    }
    seen = true;
    length = v;
    return true;
  });
  if (reason != nullptr) return fail(err, ParseStatus::kInvalid, pos, bad_status, reason);
  f.has_content_length = true;
  f.content_length = length;
  f.content_length_pos = pos;
  return ParseStatus::kComplete;
}

// Transfer-Encoding is a list over all its field lines (RFC 9112 section 6.1). Only its last coding decides
// the framing; chunked may be applied once and must then be last. Empty elements are refused rather than
// skipped: "chunked," must not read as chunked here and as something else upstream.
ParseStatus note_transfer_encoding(std::string_view value, size_t pos, int bad_status, FieldFacts& f,
                                   ParseError& err) {
  const char* reason = nullptr;
  for_each_list_element(value, [&](std::string_view coding) {
    if (coding.empty()) {
      reason = "empty Transfer-Encoding element";
      return false;
    }
    if (field_equals(coding, "chunked")) {
      if (f.te_final_chunked) {
        reason = "chunked applied more than once";
        return false;
      }
      f.te_final_chunked = true;
    } else {
      if (f.te_final_chunked) {
        reason = "chunked is not the final transfer coding";
        return false;
      }
      f.te_other_coding = true;
    }
    return true;
  });
  if (reason != nullptr) return fail(err, ParseStatus::kInvalid, pos, bad_status, reason);
  f.has_transfer_encoding = true;
  f.transfer_encoding_pos = pos;
  return ParseStatus::kComplete;
}

void note_connection(std::string_view value, FieldFacts& f) {
  for_each_list_element(value, [&](std::string_view option) {
    if (field_equals(option, "close")) {
      f.conn_close = true;
    } else if (field_equals(option, "keep-alive")) {
      f.conn_keep_alive = true;
    } else if (field_equals(option, "upgrade")) {
      f.conn_upgrade = true;
    }
    return true;
  });
}

// The fields that change framing or the connection, picked by length first so most names cost one compare.
ParseStatus note_field(const Header& h, size_t pos, int bad_status, FieldFacts& f, ParseError& err) {
  switch (h.name.size()) {
    case 4:
      if (field_equals(h.name, "host")) {
        if (f.host_count++ == 0) {
          f.host = h.value;
          f.host_pos = pos;
        }
      }
      break;
    case 6:
      if (field_equals(h.name, "expect") && field_equals(h.value, "100-continue")) f.expect_continue = true;
      break;
    case 7:
      if (field_equals(h.name, "upgrade") && !h.value.empty()) f.has_upgrade = true;
      break;
    case 10:
      if (field_equals(h.name, "connection")) note_connection(h.value, f);
      break;
    case 14:
      if (field_equals(h.name, "content-length"))
        return note_content_length(h.value, pos, bad_status, f, err);
      break;
    case 17:
      if (field_equals(h.name, "transfer-encoding")) {
        return note_transfer_encoding(h.value, pos, bad_status, f, err);
      }
      break;
    default:
      break;
  }
  return ParseStatus::kComplete;
}

// Skips field-value bytes and returns the first byte that is not one (CR at the latest). Values such as
// Cookie or User-Agent are long, so this goes 16 bytes at a time where SSE2 exists (every x86-64), else 8.
inline const char* skip_field_value(const char* p, const char* end) {
#ifdef CUMULO_H1_SSE2
  const __m128i space = _mm_set1_epi8(0x20);
  const __m128i del = _mm_set1_epi8(0x7f);
  while (end - p >= 16) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Unsigned b >= 0x20 is max(b, 0x20) == b, so obs-text (>= 0x80) passes; then DEL is taken out.
    const __m128i ok = _mm_andnot_si128(_mm_cmpeq_epi8(b, del), _mm_cmpeq_epi8(_mm_max_epu8(b, space), b));
    const unsigned bad = ~static_cast<unsigned>(_mm_movemask_epi8(ok)) & 0xffffu;
    if (bad == 0) {
      p += 16;
      continue;
    }
    p += __builtin_ctz(bad);
    if (*p != '\t') return p;
    ++p;
  }
#else
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHighs = 0x8080808080808080ull;
  while (end - p >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    // Some byte < 0x20, or some byte == 0x7f (the "haszero" trick on w ^ 0x7f..); bytes >= 0x80 are masked
    // out by ~w. A hit only sends us to the byte loop, which decides.
    const uint64_t below = (w - kOnes * 0x20) & ~w & kHighs;
    const uint64_t x = w ^ (kOnes * 0x7f);
    const uint64_t del = (x - kOnes) & ~x & kHighs;
    if ((below | del) != 0) break;
    p += 8;
  }
#endif
  while (kFieldValueChar[uc(*p)]) ++p;
  return p;
}

// Parses field lines from p up to and including the empty line that ends the head at head_end. Header names
// are tokens followed directly by ':'; values are trimmed of OWS and may not hold control bytes (RFC 9112
// section 5, RFC 9110 section 5.5).
ParseStatus parse_fields(const char* base, const char* p, const char* head_end, size_t max_headers,
                         int bad_status, int too_many_status, MessageHead& out, FieldFacts& f,
                         ParseError& err) {
  for (;;) {
    if (*p == '\r') {
      if (p + 2 == head_end) return ParseStatus::kComplete;
      return fail(err, ParseStatus::kInvalid, static_cast<size_t>(p - base), bad_status, "bare CR in head");
    }
    const char* name = p;
    while (kTokenChar[uc(*p)]) ++p;
    if (*p != ':' || p == name) {
      const char* reason;
      if (p == name && is_ows(*p)) {
        // RFC 9112 section 5.2: obs-fold is refused in requests; also whitespace after the start line (2.2).
        reason = "obs-fold or leading whitespace in header line";
      } else if (p == name && *p == ':') {
        reason = "empty header name";
      } else if (is_ows(*p)) {
        reason = "whitespace between header name and colon";  // RFC 9112 section 5.1: MUST reject with 400
      } else if (*p == '\r') {
        reason = "header line without colon";
      } else {
        reason = "invalid character in header name";
      }
      return fail(err, ParseStatus::kInvalid, static_cast<size_t>(p - base), bad_status, reason);
    }
    const size_t line_pos = static_cast<size_t>(name - base);
    const std::string_view field_name(name, static_cast<size_t>(p - name));
    ++p;
    while (is_ows(*p)) ++p;
    const char* value = p;
    p = skip_field_value(p, head_end);
    if (*p != '\r' || p[1] != '\n') {
      return fail(err, ParseStatus::kInvalid, static_cast<size_t>(p - base), bad_status,
                  *p == '\r' ? "bare CR in header value" : "control character in header value");
    }
    const char* value_end = p;
    while (value_end > value && is_ows(value_end[-1])) --value_end;
    p += 2;
    if (out.header_count == max_headers) {
      return fail(err, ParseStatus::kTooLarge, line_pos, too_many_status, "too many header fields");
    }
    Header& h = out.headers[out.header_count++];
    h.name = field_name;
    h.value = std::string_view(value, static_cast<size_t>(value_end - value));
    if (note_field(h, line_pos, bad_status, f, err) != ParseStatus::kComplete) return ParseStatus::kInvalid;
  }
}

// "HTTP/" DIGIT "." DIGIT (RFC 9112 section 2.3). The comparisons short-circuit, so no byte past the first
// mismatch is read, and every matched byte is followed by more head (the line still has its CRLF to come).
// Returns the minor version, -1 for a well-formed but unsupported version, -2 when malformed.
inline int parse_version(const char* p) {
  if (!(p[0] == 'H' && p[1] == 'T' && p[2] == 'T' && p[3] == 'P' && p[4] == '/' && is_digit(uc(p[5])) &&
        p[6] == '.' && is_digit(uc(p[7])))) {
    return -2;
  }
  if (p[5] != '1' || (p[7] != '0' && p[7] != '1')) return -1;
  return p[7] - '0';
}

void reset_message(MessageHead& out) {
  // Not `out = {}`: that would also clear the header array, which costs more than the whole parse.
  out.version_minor = 1;
  out.header_count = 0;
  out.head_bytes = 0;
  out.body = BodyKind::kNone;
  out.content_length = 0;
  out.keep_alive = true;
  out.connection_upgrade = false;
}

bool valid_host(std::string_view host) {
  for (char c : host) {
    if (!kHostChar[uc(c)]) return false;
  }
  return true;
}

// authority-form, RFC 9112 section 3.2.3: uri-host ":" port, only for CONNECT.
bool valid_authority_form(std::string_view target) {
  const size_t colon = target.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == target.size()) return false;
  if (target.size() - colon - 1 > 5) return false;
  for (size_t i = colon + 1; i < target.size(); ++i) {
    if (!is_digit(uc(target[i]))) return false;
  }
  const std::string_view host = target.substr(0, colon);
  return valid_host(host) && host.find('@') == std::string_view::npos;
}

void split_path_query(std::string_view rest, RequestHead& out) {
  const size_t q = rest.find('?');
  if (q == std::string_view::npos) {
    out.path = rest;
  } else {
    out.path = rest.substr(0, q);
    out.query = rest.substr(q + 1);
  }
}

// Sets path and query, and for absolute-form the authority to use as host. Returns a reason when invalid.
const char* classify_target(RequestHead& out, std::string_view& authority) {
  const std::string_view t = out.target;
  if (t[0] == '/') {
    if (out.method == Method::kConnect) return "CONNECT needs an authority-form target";
    split_path_query(t, out);
    return nullptr;
  }
  if (t == "*") {
    // RFC 9112 section 3.2.4: asterisk-form is only for a server-wide OPTIONS.
    if (out.method != Method::kOptions) return "asterisk-form target outside OPTIONS";
    out.path = t;
    return nullptr;
  }
  if (out.method == Method::kConnect) {
    return valid_authority_form(t) ? nullptr : "invalid authority-form target";
  }
  // absolute-form, RFC 9112 section 3.2.2: scheme "://" authority path-abempty [ "?" query ].
  size_t i = 0;
  if (!is_alpha(uc(t[0]))) return "invalid request target";
  while (i < t.size() && (is_alpha(uc(t[i])) || is_digit(uc(t[i])) || in_set(uc(t[i]), "+-."))) ++i;
  if (t.substr(i, 3) != "://") return "invalid request target";
  i += 3;
  const size_t auth_end = std::min(t.find_first_of("/?", i), t.size());
  authority = t.substr(i, auth_end - i);
  // RFC 9110 section 4.2.1: an empty host is invalid; section 4.2.4: userinfo is deprecated and a classic
  // disguise ("http://trusted@evil/").
  if (authority.empty()) return "empty authority in absolute-form target";
  if (authority.find('@') != std::string_view::npos) return "userinfo in absolute-form target";
  if (!valid_host(authority)) return "invalid authority in absolute-form target";
  split_path_query(t.substr(auth_end), out);
  if (out.path.empty()) out.path = "/";  // RFC 9112 section 3.2.1: an empty path is sent as "/"
  return nullptr;
}

}  // namespace

std::string_view MessageHead::header(std::string_view name) const {
  for (size_t i = 0; i < header_count; ++i) {
    if (iequals(headers[i].name, name)) return headers[i].value;
  }
  return {};
}

void MessageHead::remove_header(std::string_view name) {
  size_t kept = 0;
  for (size_t i = 0; i < header_count; ++i) {
    if (!iequals(headers[i].name, name)) headers[kept++] = headers[i];
  }
  header_count = kept;
}

// Methods are case-sensitive (RFC 9110 section 9.1).
Method method_from_string(std::string_view name) {
  switch (name.size()) {
    case 3:
      if (name == "GET") return Method::kGet;
      if (name == "PUT") return Method::kPut;
      break;
    case 4:
      if (name == "POST") return Method::kPost;
      if (name == "HEAD") return Method::kHead;
      break;
    case 5:
      if (name == "PATCH") return Method::kPatch;
      if (name == "TRACE") return Method::kTrace;
      break;
    case 6:
      if (name == "DELETE") return Method::kDelete;
      break;
    case 7:
      if (name == "OPTIONS") return Method::kOptions;
      if (name == "CONNECT") return Method::kConnect;
      break;
    default:
      break;
  }
  return Method::kOther;
}

bool is_hop_by_hop(std::string_view name) {
  switch (name.size()) {
    case 2:
      return iequals_lower(name, "te");
    case 7:
      return iequals_lower(name, "trailer") || iequals_lower(name, "upgrade");
    case 10:
      return iequals_lower(name, "connection") || iequals_lower(name, "keep-alive");
    case 16:
      return iequals_lower(name, "proxy-connection");
    case 17:
      return iequals_lower(name, "transfer-encoding");
    default:
      return false;
  }
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 203:
      return "Non-Authoritative Information";
    case 204:
      return "No Content";
    case 205:
      return "Reset Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 305:
      return "Use Proxy";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 407:
      return "Proxy Authentication Required";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 421:
      return "Misdirected Request";
    case 422:
      return "Unprocessable Content";
    case 425:
      return "Too Early";
    case 426:
      return "Upgrade Required";
    case 428:
      return "Precondition Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 451:
      return "Unavailable For Legal Reasons";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    case 511:
      return "Network Authentication Required";
    default:
      return "Unknown";
  }
}

ParseStatus RequestParser::parse(std::string_view in, RequestHead& out) {
  // RFC 9112 section 2.2: a server SHOULD ignore empty lines before the request line (some clients send a
  // CRLF after a POST body). They count in head_bytes so that the caller's offsets stay simple.
  size_t start = 0;
  const size_t skip_limit = std::min(in.size(), limits_.max_head_bytes);
  while (start + 1 < skip_limit && in[start] == '\r' && in[start + 1] == '\n') start += 2;

  size_t head_end = 0;
  const ParseStatus scan = find_head_end(in, start, limits_.max_head_bytes, true, scanned_, head_end, error_);
  if (scan != ParseStatus::kComplete) return scan;

  const char* base = in.data();
  const char* end = base + head_end;
  const char* p = base + start;
  auto pos = [base](const char* at) { return static_cast<size_t>(at - base); };

  reset_message(out);
  out.method = Method::kOther;
  out.method_name = out.target = out.path = out.query = out.host = {};
  out.expect_continue = false;

  // request-line = method SP request-target SP HTTP-version (RFC 9112 section 3), single spaces only.
  const char* method = p;
  while (kTokenChar[uc(*p)]) ++p;
  if (*p != ' ' || p == method) {
    return fail(error_, ParseStatus::kInvalid, pos(p), 400,
                p == method ? "missing method" : "invalid character in method");
  }
  out.method_name = std::string_view(method, static_cast<size_t>(p - method));
  out.method = method_from_string(out.method_name);
  const char* target = ++p;
  while (kTargetChar[uc(*p)]) ++p;
  if (*p != ' ' || p == target) {
    const char* reason = p == target  ? "empty request target"
                         : *p == '\r' ? "missing HTTP version"
                                      : "invalid character in request target";
    return fail(error_, ParseStatus::kInvalid, pos(p), 400, reason);
  }
  out.target = std::string_view(target, static_cast<size_t>(p - target));
  ++p;
  const int minor = parse_version(p);
  if (minor == -2 || p[8] != '\r' || p[9] != '\n') {
    return fail(error_, ParseStatus::kInvalid, pos(p), 400, "malformed HTTP version");
  }
  if (minor < 0) return fail(error_, ParseStatus::kInvalid, pos(p), 505, "unsupported HTTP version");
  out.version_minor = minor;
  p += 10;

  std::string_view authority;
  if (const char* reason = classify_target(out, authority)) {
    return fail(error_, ParseStatus::kInvalid, pos(target), 400, reason);
  }

  FieldFacts f;
  const size_t max_headers = std::min(limits_.max_headers, kMaxHeaders);
  const ParseStatus fields = parse_fields(base, p, end, max_headers, 400, 431, out, f, error_);
  if (fields != ParseStatus::kComplete) return fields;

  // RFC 9112 section 3.2: exactly one Host in HTTP/1.1, never more than one, and a valid value.
  if (f.host_count > 1)
    return fail(error_, ParseStatus::kInvalid, f.host_pos, 400, "more than one Host header");
  if (f.host_count == 0 && out.version_minor == 1) {
    return fail(error_, ParseStatus::kInvalid, pos(p), 400, "missing Host header");
  }
  if (!valid_host(f.host)) return fail(error_, ParseStatus::kInvalid, f.host_pos, 400, "invalid Host header");
  // RFC 9112 section 3.2.2: the authority of an absolute-form target wins over the Host header.
  out.host = authority.empty() ? f.host : authority;

  if (f.has_transfer_encoding) {
    const size_t te_pos = f.transfer_encoding_pos;
    // RFC 9112 section 6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty; with Content-Length
    // too it is the classic smuggling pair, and the request is refused rather than one header trusted.
    if (out.version_minor == 0) {
      return fail(error_, ParseStatus::kInvalid, te_pos, 400, "Transfer-Encoding in HTTP/1.0 request");
    }
    if (f.has_content_length) {
      return fail(error_, ParseStatus::kInvalid, std::max(te_pos, f.content_length_pos), 400,
                  "both Content-Length and Transfer-Encoding");
    }
    // RFC 9112 section 6.3: a request whose final coding is not chunked has no reliable length: 400.
    if (!f.te_final_chunked) {
      return fail(error_, ParseStatus::kInvalid, te_pos, 400, "final transfer coding is not chunked");
    }
    // RFC 9112 section 6.1: a coding we do not implement is answered with 501.
    if (f.te_other_coding) {
      return fail(error_, ParseStatus::kInvalid, te_pos, 501, "unsupported transfer coding");
    }
    out.body = BodyKind::kChunked;
  } else if (f.has_content_length) {
    out.content_length = f.content_length;
    out.body = f.content_length > 0 ? BodyKind::kContentLength : BodyKind::kNone;
  }

  // RFC 9112 section 9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive".
  out.keep_alive = !f.conn_close && (out.version_minor == 1 || f.conn_keep_alive);
  out.connection_upgrade = f.conn_upgrade && f.has_upgrade;
  // RFC 9110 section 10.1.1: 100-continue in an HTTP/1.0 request is ignored.
  out.expect_continue = f.expect_continue && out.version_minor == 1;
  out.head_bytes = head_end;
  return ParseStatus::kComplete;
}

ParseStatus ResponseParser::parse(std::string_view in, Method request_method, ResponseHead& out) {
  size_t head_end = 0;
  const ParseStatus scan = find_head_end(in, 0, limits_.max_head_bytes, false, scanned_, head_end, error_);
  if (scan != ParseStatus::kComplete) return scan;

  const char* base = in.data();
  const char* end = base + head_end;
  const char* p = base;
  auto pos = [base](const char* at) { return static_cast<size_t>(at - base); };

  reset_message(out);
  out.status = 0;
  out.reason = {};

  // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 section 4). A missing SP before
  // an empty reason is tolerated: servers send "HTTP/1.1 200\r\n" and it is unambiguous.
  const int minor = parse_version(p);
  if (minor == -2 || p[8] != ' ') {
    return fail(error_, ParseStatus::kInvalid, 0, kBadGateway, "malformed status line");
  }
  if (minor < 0) return fail(error_, ParseStatus::kInvalid, 0, kBadGateway, "unsupported HTTP version");
  out.version_minor = minor;
  p += 9;
  if (!(p[0] >= '1' && p[0] <= '9' && is_digit(uc(p[1])) && is_digit(uc(p[2])))) {
    return fail(error_, ParseStatus::kInvalid, pos(p), kBadGateway, "malformed status code");
  }
  out.status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
  p += 3;
  if (*p == ' ') {
    const char* reason = ++p;
    p = skip_field_value(p, end);
    out.reason = std::string_view(reason, static_cast<size_t>(p - reason));
  }
  if (*p != '\r' || p[1] != '\n') {
    return fail(error_, ParseStatus::kInvalid, pos(p), kBadGateway, "malformed status line");
  }
  p += 2;

  FieldFacts f;
  const size_t max_headers = std::min(limits_.max_headers, kMaxHeaders);
  const ParseStatus fields =
      parse_fields(base, p, end, max_headers, kBadGateway, kBadGateway, out, f, error_);
  if (fields != ParseStatus::kComplete) return fields;

  if (f.has_transfer_encoding) {
    if (out.version_minor == 0) {
      return fail(error_, ParseStatus::kInvalid, f.transfer_encoding_pos, kBadGateway,
                  "Transfer-Encoding in HTTP/1.0 response");
    }
    // RFC 9112 section 6.3 lets Transfer-Encoding win, but also calls the pair a likely smuggling or
    // splitting attempt; a gateway has no reason to forward such a response.
    if (f.has_content_length) {
      return fail(error_, ParseStatus::kInvalid, std::max(f.transfer_encoding_pos, f.content_length_pos),
                  kBadGateway, "both Content-Length and Transfer-Encoding");
    }
  }
  if (f.has_content_length) out.content_length = f.content_length;

  // RFC 9112 section 6.3, in its order.
  const int s = out.status;
  if (request_method == Method::kHead || s < 200 || s == 204 || s == 304 ||
      (request_method == Method::kConnect && s < 300)) {
    out.body = BodyKind::kNone;
  } else if (f.has_transfer_encoding) {
    out.body = f.te_final_chunked ? BodyKind::kChunked : BodyKind::kUntilClose;
  } else if (f.has_content_length) {
    out.body = f.content_length > 0 ? BodyKind::kContentLength : BodyKind::kNone;
  } else {
    out.body = BodyKind::kUntilClose;
  }

  out.keep_alive =
      !f.conn_close && (out.version_minor == 1 || f.conn_keep_alive) && out.body != BodyKind::kUntilClose;
  out.connection_upgrade = f.conn_upgrade && f.has_upgrade;
  out.head_bytes = head_end;
  return ParseStatus::kComplete;
}

namespace {

constexpr size_t kMaxChunkSizeDigits = 16;
constexpr uint64_t kMaxChunkSize = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
constexpr size_t kMaxChunkExtensionBytes = 4 * 1024;
constexpr size_t kMaxTrailerBytes = 16 * 1024;

}  // namespace

// A byte-at-a-time state machine for the framing, so that any split of the input gives the same result; chunk
// data is handed out as one view per call.
ParseStatus ChunkedDecoder::decode(std::string_view in, size_t& consumed, std::string_view& payload) {
  consumed = 0;
  payload = {};
  if (state_ == State::kDone) return ParseStatus::kComplete;
  if (state_ == State::kError) return failed_;

  size_t i = 0;
  auto stop = [&](ParseStatus status, int http_status, const char* reason) {
    state_ = State::kError;
    failed_ = status;
    fail(error_, status, offset_ + i, http_status, reason);
    consumed = i;
    offset_ += i;
    return status;
  };

  const size_t n = in.size();
  while (i < n) {
    const unsigned char c = uc(in[i]);
    switch (state_) {
      case State::kSize: {
        const int d = core::hex_digit_value(static_cast<char>(c));
        if (d >= 0) {
          if (size_digits_ == kMaxChunkSizeDigits) {
            return stop(ParseStatus::kTooLarge, 413, "chunk size has more than 16 hex digits");
          }
          if (remaining_ > (kMaxChunkSize - static_cast<uint64_t>(d)) / 16) {
            return stop(ParseStatus::kTooLarge, 413, "chunk size too large");
          }
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(d);
          ++size_digits_;
          break;
        }
        if (size_digits_ == 0) return stop(ParseStatus::kInvalid, 400, "missing chunk size");
        if (c == ';') {
          state_ = State::kExt;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == ' ' || c == '\t') {
          state_ = State::kSizeWs;
        } else {
          return stop(ParseStatus::kInvalid, 400, "invalid character in chunk size");
        }
        break;
      }
      case State::kSizeWs:
        // RFC 9112 section 7.1.1: BWS before ';'. Also tolerated before CRLF, as HAProxy does; the size is
        // already unambiguous.
        if (c == ';') {
          state_ = State::kExt;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c != ' ' && c != '\t') {
          return stop(ParseStatus::kInvalid, 400, "invalid character after chunk size");
        }
        break;
      case State::kExt: {
        // Extensions are skipped, not interpreted; they only need to stay on their line and be bounded.
        const size_t run_end = std::min(n, i + (kMaxChunkExtensionBytes - ext_bytes_));
        size_t j = i;
        while (j < run_end && kFieldValueChar[uc(in[j])]) ++j;
        ext_bytes_ += j - i;
        i = j;
        if (i == n) continue;
        if (in[i] == '\r') {
          state_ = State::kSizeLf;
        } else if (kFieldValueChar[uc(in[i])]) {
          return stop(ParseStatus::kInvalid, 400, "chunk extension too long");
        } else {
          return stop(ParseStatus::kInvalid, 400, "control character in chunk extension");
        }
        break;
      }
      case State::kSizeLf:
        if (c != '\n') return stop(ParseStatus::kInvalid, 400, "chunk size line not ended by CRLF");
        size_digits_ = 0;
        ext_bytes_ = 0;
        state_ = remaining_ == 0 ? State::kTrailerStart : State::kData;
        break;
      case State::kData: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, n - i));
        payload = in.substr(i, take);
        remaining_ -= take;
        total_ += take;
        if (remaining_ == 0) state_ = State::kDataCr;
        i += take;
        consumed = i;
        offset_ += i;
        return ParseStatus::kNeedMore;
      }
      case State::kDataCr:
        if (c != '\r') return stop(ParseStatus::kInvalid, 400, "chunk data not followed by CRLF");
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (c != '\n') return stop(ParseStatus::kInvalid, 400, "chunk data not followed by CRLF");
        state_ = State::kSize;
        break;
      case State::kTrailerStart:
      case State::kTrailer:
      case State::kTrailerValue:
      case State::kTrailerLf:
      case State::kFinalLf:
        // RFC 9112 section 7.1.2: trailer fields have the syntax of header fields.
        if (++trailer_bytes_ > kMaxTrailerBytes) {
          return stop(ParseStatus::kTooLarge, 431, "trailer section too large");
        }
        switch (state_) {
          case State::kTrailerStart:
            if (c == '\r') {
              state_ = State::kFinalLf;
            } else if (kTokenChar[c]) {
              state_ = State::kTrailer;
            } else {
              return stop(ParseStatus::kInvalid, 400,
                          c == ' ' || c == '\t' ? "obs-fold in trailer" : "invalid trailer field name");
            }
            break;
          case State::kTrailer:
            if (c == ':') {
              state_ = State::kTrailerValue;
            } else if (!kTokenChar[c]) {
              return stop(ParseStatus::kInvalid, 400,
                          c == ' ' || c == '\t' ? "whitespace before colon in trailer"
                                                : "invalid trailer field name");
            }
            break;
          case State::kTrailerValue:
            if (c == '\r') {
              state_ = State::kTrailerLf;
            } else if (!kFieldValueChar[c]) {
              return stop(ParseStatus::kInvalid, 400, "control character in trailer value");
            }
            break;
          case State::kTrailerLf:
            if (c != '\n') return stop(ParseStatus::kInvalid, 400, "bare CR in trailer");
            state_ = State::kTrailerStart;
            break;
          default:  // kFinalLf
            if (c != '\n') return stop(ParseStatus::kInvalid, 400, "chunked body not ended by CRLF");
            state_ = State::kDone;
            consumed = i + 1;
            offset_ += i + 1;
            return ParseStatus::kComplete;
        }
        break;
      case State::kDone:
      case State::kError:
        break;  // handled before the loop
    }
    ++i;
  }
  consumed = n;
  offset_ += n;
  return ParseStatus::kNeedMore;
}

}  // namespace cumulo::http
