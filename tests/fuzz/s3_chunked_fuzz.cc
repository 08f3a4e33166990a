// libFuzzer target for the aws-chunked decoder, unsigned with trailers (signed decoding runs the same framing
// code plus HMACs): decoding the input whole and in uneven pieces must give the same status and payload.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "objstore/wire/aws_chunked.h"

namespace {

using cumulo::objstore::AwsChunkedDecoder;
using cumulo::objstore::ChunkedStatus;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Result {
  ChunkedStatus status = ChunkedStatus::kNeedMore;
  std::string payload;
  size_t trailers = 0;
};

Result run(std::string_view in, size_t (*piece)(size_t), bool trailer) {
  AwsChunkedDecoder d(std::nullopt, trailer);
  Result r;
  size_t off = 0;
  for (size_t i = 0; off < in.size(); ++i) {
    size_t n = std::min(piece(i), in.size() - off);
    // Each piece in its own allocation, so that reading past it is caught by ASan.
    std::string copy(in.substr(off, n));
    std::string_view rest = copy;
    off += n;
    while (!rest.empty()) {
      size_t used = 0;
      std::string_view payload;
      r.status = d.decode(rest, used, payload);
      check(used <= rest.size());
      r.payload.append(payload);
      rest.remove_prefix(used);
      if (r.status != ChunkedStatus::kNeedMore) {
        r.trailers = d.trailers().size();
        // Whatever follows the end or an error is not the body's: stop here in both runs.
        return r;
      }
      check(used > 0);
    }
  }
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  bool trailer = data[0] & 1;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  Result whole = run(
      in, [](size_t) { return SIZE_MAX; }, trailer);
  Result bytes = run(
      in, [](size_t) { return size_t{1}; }, trailer);
  Result uneven = run(
      in, [](size_t i) { return i * 7 % 13 + 1; }, trailer);
  check(whole.status == bytes.status && whole.status == uneven.status);
  check(whole.payload == bytes.payload && whole.payload == uneven.payload);
  check(whole.trailers == bytes.trailers);
  return 0;
}
