// Content-Range field values (RFC 9110 section 14.4), spelled in one place for every answer to a Range.
// Nothing of the event loop, so fuzz targets link it alone.
#pragma once

#include <cstdint>
#include <string>

namespace cumulo::http {

// "bytes FIRST-LAST/LENGTH": the range-resp of a 206, `last` inclusive.
inline std::string content_range(uint64_t first, uint64_t last, uint64_t length) {
  return "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(length);
}

// "bytes */LENGTH": the unsatisfied-range of a 416.
inline std::string unsatisfied_content_range(uint64_t length) {
  return "bytes */" + std::to_string(length);
}

}  // namespace cumulo::http
