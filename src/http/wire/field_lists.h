// Comma-separated field values (RFC 9110 section 5.6.1: `#element` lists such as Connection,
// Transfer-Encoding, Accept-Encoding): one splitter for the parser, the cache and the gateway; and one walk
// over stored field lines ("Name: value\r\n" each, as a cache object keeps them). Views into the input, no
// allocation; nothing of the event loop, so fuzz targets link it alone.
#pragma once

#include <string_view>

#include "core/text.h"

namespace cumulo::http {

// OWS, RFC 9110 section 5.6.3.
constexpr bool is_ows(char c) noexcept {
  return c == ' ' || c == '\t';
}

constexpr std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// Calls fn(element) for each comma-separated element of a field value, OWS trimmed. Empty elements are passed
// too; each caller decides whether they are acceptable. Stops, returning false, when fn returns false. Commas
// inside quoted-strings are not special-cased: the lists this serves hold tokens (Cache-Control, whose values
// may be quoted, has its own splitter in src/cache/policy).
template <typename Fn>
constexpr bool for_each_list_element(std::string_view value, Fn&& fn) {
  for (;;) {
    const size_t comma = value.find(',');
    if (!fn(trim_ows(value.substr(0, comma)))) return false;
    if (comma == std::string_view::npos) return true;
    value.remove_prefix(comma + 1);
  }
}

// Whether the list holds `token`, compared case-insensitively ("Connection: keep-alive, Upgrade").
constexpr bool list_contains(std::string_view list, std::string_view token) noexcept {
  return !for_each_list_element(list,
                                [token](std::string_view element) { return !core::iequals(element, token); });
}

// Calls fn(name, value, line) for each line of stored field lines ("Name: value\r\n" each; the last CRLF may
// be missing): `name` is what stands before the first colon, `value` what follows it with leading OWS removed
// (both empty for a line without a colon), `line` the whole line with its CRLF, for a caller that copies
// lines through. Stops, returning false, when fn returns false.
template <typename Fn>
constexpr bool for_each_field_line(std::string_view lines, Fn&& fn) {
  while (!lines.empty()) {
    const size_t eol = lines.find("\r\n");
    const std::string_view line = lines.substr(0, eol == std::string_view::npos ? lines.size() : eol + 2);
    lines.remove_prefix(line.size());
    const std::string_view field = line.substr(0, eol);
    const size_t colon = field.find(':');
    std::string_view name, value;
    if (colon != std::string_view::npos) {
      name = field.substr(0, colon);
      value = field.substr(colon + 1);
      while (!value.empty() && is_ows(value.front())) value.remove_prefix(1);
    }
    if (!fn(name, value, line)) return false;
  }
  return true;
}

// The value of the first field named `name` (case-insensitive) in stored field lines, leading OWS removed;
// empty when absent.
constexpr std::string_view field_line_value(std::string_view lines, std::string_view name) noexcept {
  std::string_view found;
  for_each_field_line(lines, [&](std::string_view n, std::string_view v, std::string_view) {
    if (n.empty() || !core::iequals(n, name)) return true;
    found = v;
    return false;
  });
  return found;
}

}  // namespace cumulo::http
