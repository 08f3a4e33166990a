// libFuzzer target for the S3 request-body XML reader: no crash, no read past the end, bounded recursion, and
// a parsed document obeys the limits.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "objstore/wire/xml.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

size_t count(const cumulo::objstore::XmlElement& e, size_t depth, size_t& max_depth) {
  max_depth = std::max(max_depth, depth);
  size_t n = 1;
  for (const auto& c : e.children) n += count(c, depth + 1, max_depth);
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cumulo::objstore;
  std::string copy(reinterpret_cast<const char*>(data), size);
  XmlElement root;
  XmlError err;
  XmlLimits limits;
  if (parse_xml(copy, root, err, limits)) {
    size_t depth = 0;
    check(count(root, 1, depth) <= limits.max_elements);
    check(depth <= limits.max_depth);
    check(!root.name.empty());
  } else {
    check(err.pos <= size);
  }
  return 0;
}
