// Content-Range field values (RFC 9110 section 14.4), spelled in one place for every answer to a Range.
// Nothing of the event loop, so fuzz targets link it alone.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>

namespace cumulo::http {

// Appends "bytes FIRST-LAST/LENGTH", the range-resp of a 206 (`last` inclusive), to `out`: no allocation of
// its own, for a writer that reserved room beforehand (each part of a multipart/byteranges body).
inline void append_content_range(std::string& out, uint64_t first, uint64_t last, uint64_t length) {
  const auto number = [&out](uint64_t v) {
    char buf[20];  // UINT64_MAX has 20 digits
    out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
  };
  out.append("bytes ");
  number(first);
  out.push_back('-');
  number(last);
  out.push_back('/');
  number(length);
}

// The same as a value of its own.
inline std::string content_range(uint64_t first, uint64_t last, uint64_t length) {
  std::string out;
  out.reserve(6 + 3 * 20 + 2);  // one allocation for the longest value
  append_content_range(out, first, last, length);
  return out;
}

// "bytes */LENGTH": the unsatisfied-range of a 416.
inline std::string unsatisfied_content_range(uint64_t length) {
  return "bytes */" + std::to_string(length);
}

}  // namespace cumulo::http
