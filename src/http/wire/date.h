// HTTP dates (RFC 9110 section 5.6.7): the IMF-fixdate every sender writes ("Sun, 06 Nov 1994 08:49:37 GMT"),
// by hand: strftime's names follow the locale, and this runs for every response.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace cumulo::http {

inline constexpr size_t kHttpDateBytes = 29;

// Writes the date of `seconds` since the epoch (clamped to years 1970-9999) and a NUL; returns 29.
size_t format_http_date(int64_t seconds, char out[30]);
inline std::string http_date(int64_t seconds) {
  char buf[30];
  return std::string(buf, format_http_date(seconds, buf));
}

}  // namespace cumulo::http
