// ASCII text helpers that every component needs: case folding, case-insensitive comparison, RFC 9110 tokens,
// hex digits, percent-decoding, the pairs of a query string and aligned columns for a terminal. All are
// byte-wise and locale-free (std::tolower depends on the locale and is undefined for negative chars), take
// string_view and allocate only where they return a new string.
//
// Header-only and dependency-free on purpose: the wire parsers (src/http/wire, src/objstore/wire,
// src/dns/wire) use these, and fuzz targets link those parsers without the rest of core.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace cumulo::core {

constexpr bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}
constexpr bool is_alpha(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
constexpr bool is_alnum(char c) noexcept {
  return is_digit(c) || is_alpha(c);
}

constexpr char to_lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c;
}
constexpr char to_upper(char c) noexcept {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - ('a' - 'A')) : c;
}

inline void to_lower_in_place(std::string& s) noexcept {
  for (char& c : s) c = to_lower(c);
}
inline std::string to_lower(std::string_view s) {
  std::string out(s);
  to_lower_in_place(out);
  return out;
}
inline std::string to_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = to_upper(c);
  return out;
}

// ASCII case-insensitive equality (bytes outside A-Z and a-z must match exactly): what HTTP field names, DNS
// type names and S3 header names need.
constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  return true;
}

// tchar, RFC 9110 section 5.6.2: the bytes of methods, field names, transfer codings and directive names.
constexpr bool is_tchar(char c) noexcept {
  if (is_alnum(c)) return true;
  for (char t : std::string_view("!#$%&'*+-.^_`|~"))
    if (c == t) return true;
  return false;
}
// token = 1*tchar.
constexpr bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_tchar(c)) return false;
  return true;
}

// 0-15 for a hex digit in either case, -1 for anything else.
constexpr int hex_digit_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Length of the well-formed UTF-8 sequence starting at s[i] (RFC 3629 section 4: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 when the byte there does not start one.
constexpr size_t utf8_sequence_length(std::string_view s, size_t i) noexcept {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](size_t k, unsigned char lo = 0x80, unsigned char hi = 0xbf) {
    return k < s.size() && byte(k) >= lo && byte(k) <= hi;
  };
  const unsigned char c = byte(i);
  if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (c == 0xe0) return cont(i + 1, 0xa0, 0xbf) && cont(i + 2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) return cont(i + 1) && cont(i + 2) ? 3 : 0;
  if (c == 0xed) return cont(i + 1, 0x80, 0x9f) && cont(i + 2) ? 3 : 0;
  if (c == 0xf0) return cont(i + 1, 0x90, 0xbf) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c == 0xf4) return cont(i + 1, 0x80, 0x8f) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  return 0;
}

// RFC 3986 section 2.1 percent-encoding: every byte but the unreserved ones (A-Z a-z 0-9 - . _ ~,
// section 2.3) and those in `keep` as %XY, hex in upper case (which SigV4's canonical forms require).
inline std::string percent_encode(std::string_view in, std::string_view keep = {}) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size() + in.size() / 2);
  for (char ch : in) {
    if (is_alnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~' ||
        keep.find(ch) != std::string_view::npos) {
      out.push_back(ch);
    } else {
      const auto c = static_cast<unsigned char>(ch);
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// What '+' means in percent-encoded text: itself in a path and in S3's canonical forms (RFC 3986), a space in
// a query string written as a form (application/x-www-form-urlencoded, which browsers, curl --data-urlencode
// and the SDKs' query builders produce).
enum class PlusIs { kPlus, kSpace };

// RFC 3986 section 2.1 percent-decoding of `in` into `out` (replaced, not appended). False, with `out`
// unspecified, when a '%' is not followed by two hex digits: such text is not a valid URI component, and
// guessing what was meant (keeping the '%', or reading one digit) lets two spellings name one thing.
[[nodiscard]] inline bool percent_decode(std::string_view in, std::string& out, PlusIs plus = PlusIs::kPlus) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      if (in.size() - i < 3) return false;
      const int hi = hex_digit_value(in[i + 1]), lo = hex_digit_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c == '+' && plus == PlusIs::kSpace ? ' ' : c);
    }
  }
  return true;
}

// Calls fn(name, value, pair) for each '&'-separated pair of a query string as sent (not decoded): `name` up
// to the first '=', `value` after it (empty when there is none), `pair` the whole of it (empty between two
// '&', for callers that skip those; a trailing '&' adds no empty pair). Stops, returning false, when fn
// returns false.
template <typename Fn>
constexpr bool for_each_query_pair(std::string_view query, Fn&& fn) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (!fn(pair.substr(0, eq), eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1),
            pair))
      return false;
  }
  return true;
}

// Rows as left-aligned columns for a terminal: each line starts with `indent`, columns are two spaces apart
// at their widest cell, the last cell of a row is not padded, and every line ends with a newline. Rows may
// have fewer cells than others. What `cumulo up` prints as its instance table and the CLI as its listings.
inline std::string format_columns(const std::vector<std::vector<std::string>>& rows,
                                  std::string_view indent = {}) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    out += indent;
    for (size_t c = 0; c < row.size(); ++c) {
      out += row[c];
      if (c + 1 < row.size()) out.append(widths[c] - row[c].size() + 2, ' ');
    }
    out += '\n';
  }
  return out;
}

}  // namespace cumulo::core
