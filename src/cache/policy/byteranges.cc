// multipart/byteranges (RFC 9110 section 14.6) and Content-Range (section 14.4): the range rules a cache
// needs beyond parsing Range (policy.cc), free of I/O like the rest of cache/policy.
#include <charconv>

#include "cache/policy.h"
#include "http/wire/content_range.h"

namespace cumulo::cache {
namespace {

// 1*DIGIT without overflow; false when empty, not all digits or above UINT64_MAX.
bool parse_digits(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

std::string multipart_byteranges(std::string_view body, const std::vector<ByteRange>& ranges,
                                 std::string_view content_type, std::string_view boundary) {
  std::string out;
  size_t size = boundary.size() + 8;
  for (const ByteRange& r : ranges) size += r.last - r.first + 1 + boundary.size() + content_type.size() + 96;
  out.reserve(size);
  for (const ByteRange& r : ranges) {
    // Each part: the delimiter, its fields, an empty line, its bytes (RFC 2046 section 5.1.1: the CRLF before
    // the next delimiter belongs to the delimiter).
    out.append("\r\n--").append(boundary).append("\r\n");
    if (!content_type.empty()) out.append("Content-Type: ").append(content_type).append("\r\n");
    out.append("Content-Range: ");
    http::append_content_range(out, r.first, r.last, body.size());
    out.append("\r\n\r\n");
    out.append(body.substr(r.first, r.last - r.first + 1));
  }
  out.append("\r\n--").append(boundary).append("--\r\n");
  return out;
}

std::optional<ContentRange> parse_content_range(std::string_view value) {
  // Content-Range = range-unit SP ( range-resp / unsatisfied-range ); range-resp = incl-range "/" ( length /
  // "*" )
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.size() < 6) return std::nullopt;
  for (size_t i = 0; i < 5; ++i)
    if ((value[i] | 0x20) != "bytes"[i]) return std::nullopt;
  if (value[5] != ' ') return std::nullopt;
  value.remove_prefix(6);
  const size_t dash = value.find('-');
  const size_t slash = value.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) return std::nullopt;
  ContentRange cr{};
  if (!parse_digits(value.substr(0, dash), cr.first) ||
      !parse_digits(value.substr(dash + 1, slash - dash - 1), cr.last) || cr.last < cr.first)
    return std::nullopt;
  const std::string_view length = value.substr(slash + 1);
  if (length != "*") {
    uint64_t n = 0;
    if (!parse_digits(length, n) || cr.last >= n) return std::nullopt;
    cr.complete_length = n;
  }
  return cr;
}

}  // namespace cumulo::cache
