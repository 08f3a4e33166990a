// Comma-separated field values (RFC 9110 section 5.6.1: `#element` lists such as Connection,
// Transfer-Encoding, Accept-Encoding): one splitter for the parser, the cache and the gateway. Views into the
// value, no allocation; nothing of the event loop, so fuzz targets link it alone.
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

}  // namespace cumulo::http
