// HTTP dates (RFC 9110 section 5.6.7): the IMF-fixdate every sender writes ("Sun, 06 Nov 1994 08:49:37 GMT"),
// by hand: strftime's names follow the locale, and this runs for every response.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace cumulo::http {

inline constexpr size_t kHttpDateBytes = 29;

// The names of the HTTP-date grammar, for this formatter and for the cache's parser of all three formats.
// month, January first.
inline constexpr std::array<std::string_view, 12> kMonthNames = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
// day-name, indexed by std::chrono::weekday::c_encoding(): Sunday is 0.
inline constexpr std::array<std::string_view, 7> kDayNames = {"Sun", "Mon", "Tue", "Wed",
                                                              "Thu", "Fri", "Sat"};
// day-name-l of the obsolete rfc850-date, in the same order.
inline constexpr std::array<std::string_view, 7> kLongDayNames = {
    "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};

// Writes the date of `seconds` since the epoch (clamped to years 1970-9999) and a NUL; returns 29.
size_t format_http_date(int64_t seconds, char out[30]);
inline std::string http_date(int64_t seconds) {
  char buf[30];
  return std::string(buf, format_http_date(seconds, buf));
}

}  // namespace cumulo::http
