#include "http/wire/date.h"

#include <algorithm>
#include <chrono>
#include <string_view>

namespace cumulo::http {

namespace {
constexpr int64_t kLastDate = 253402300799;  // 9999-12-31 23:59:59
}  // namespace

size_t format_http_date(int64_t t, char out[30]) {
  using namespace std::chrono;
  t = std::clamp<int64_t>(t, 0, kLastDate);
  const sys_days day_point{std::chrono::days{t / 86400}};
  const year_month_day ymd{day_point};
  const int64_t s = t % 86400;
  const std::string_view wd = kDayNames[weekday{day_point}.c_encoding()];
  const std::string_view mon = kMonthNames[static_cast<unsigned>(ymd.month()) - 1];
  const auto two = [](char* p, int64_t v) {
    p[0] = static_cast<char>('0' + v / 10);
    p[1] = static_cast<char>('0' + v % 10);
  };
  const int y = static_cast<int>(ymd.year());
  // "Sun, 06 Nov 1994 08:49:37 GMT"
  std::copy(wd.begin(), wd.end(), out);
  out[3] = ',';
  out[4] = ' ';
  two(out + 5, static_cast<unsigned>(ymd.day()));
  out[7] = ' ';
  std::copy(mon.begin(), mon.end(), out + 8);
  out[11] = ' ';
  two(out + 12, y / 100);
  two(out + 14, y % 100);
  out[16] = ' ';
  two(out + 17, s / 3600);
  out[19] = ':';
  two(out + 20, s / 60 % 60);
  out[22] = ':';
  two(out + 23, s % 60);
  const std::string_view gmt = " GMT";
  std::copy(gmt.begin(), gmt.end(), out + 25);
  out[29] = '\0';
  return 29;
}

}  // namespace cumulo::http
