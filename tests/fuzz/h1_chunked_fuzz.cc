// libFuzzer target for ChunkedDecoder: decoding the input whole, a byte at a time, and in uneven pieces must
// give the same status, bytes consumed, payload and error position. abort() when they differ.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "http/wire/h1.h"

namespace {

using cumulo::http::ChunkedDecoder;
using cumulo::http::ParseStatus;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Result {
  ParseStatus status = ParseStatus::kNeedMore;
  size_t consumed = 0;
  std::string payload;
  uint64_t err_pos = 0;
  bool operator==(const Result&) const = default;
};

// Feeds `in` in pieces of piece_len(i) bytes, each copied to the end of its own allocation so that
// AddressSanitizer sees a read past a piece. A call may leave bytes of its piece; they are passed again.
template <typename PieceLen>
Result decode(std::string_view in, PieceLen piece_len) {
  ChunkedDecoder decoder;
  Result r;
  size_t at = 0;
  for (size_t i = 0; at < in.size(); ++i) {
    const size_t len = std::min(in.size() - at, piece_len(i));
    std::unique_ptr<char[]> copy(new char[len]);
    std::memcpy(copy.get(), in.data() + at, len);
    std::string_view piece(copy.get(), len);
    at += len;
    while (!piece.empty()) {
      size_t consumed = 0;
      std::string_view payload;
      r.status = decoder.decode(piece, consumed, payload);
      check(consumed <= piece.size());
      check(payload.empty() ||
            (payload.data() >= piece.data() && payload.data() + payload.size() <= piece.data() + consumed));
      r.payload.append(payload);
      r.consumed += consumed;
      piece.remove_prefix(consumed);
      if (r.status != ParseStatus::kNeedMore) {
        if (r.status != ParseStatus::kComplete) {
          r.err_pos = decoder.error().pos;
          check(decoder.error().reason[0] != '\0' && r.err_pos == r.consumed);
        }
        check(decoder.payload_bytes() == r.payload.size());
        return r;
      }
      check(consumed > 0);  // kNeedMore with bytes left must make progress
    }
  }
  check(decoder.payload_bytes() == r.payload.size());
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const Result whole = decode(in, [&](size_t) { return in.size(); });
  const Result bytewise = decode(in, [](size_t) { return size_t{1}; });
  if (!(whole == bytewise)) std::abort();
  // Uneven pieces, sized by the input itself so that they vary between runs.
  const Result uneven =
      decode(in, [&](size_t i) { return size_t{1} + static_cast<uint8_t>(in[i % in.size()]) % 7; });
  if (!(whole == uneven)) std::abort();
  return 0;
}
