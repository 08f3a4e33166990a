// libFuzzer target for ResponseReader. The first byte picks the request's method, the second how the rest
// is split into feeds; the rest is what a server sent. Checks: the same outcome whole and in pieces, never
// more taken than given, a body never over the limit, and a complete response streamed (BodyMode::kStream) to
// the same body.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http/wire/response_reader.h"

namespace {

using cumulo::http::Method;
using cumulo::http::ResponseReader;
using Step = ResponseReader::Step;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Outcome {
  Step step;
  int status;
  std::string body;
  bool keep_alive;
  bool operator==(const Outcome&) const = default;
};

Outcome read(std::string_view in, Method method, size_t piece, size_t limit) {
  ResponseReader r(limit);
  r.start(method);
  std::string buffer;
  size_t pos = 0;
  Step st = Step::kNeedMore;
  for (;;) {
    size_t used = 0;
    st = r.feed(buffer, used);
    check(used <= buffer.size());
    buffer.erase(0, used);
    check(r.body().size() <= limit);
    if (st != Step::kNeedMore) break;
    if (pos == in.size()) {
      st = r.finish_at_close();
      break;
    }
    size_t n = piece < in.size() - pos ? piece : in.size() - pos;
    buffer.append(in.substr(pos, n));
    pos += n;
  }
  if (st == Step::kFailed) check(!r.error().kind.empty() && !r.error().message.empty());
  if (st != Step::kDone) return {st, 0, {}, false};
  check(r.status() >= 101 && r.status() <= 999);
  return {st, r.status(), r.body(), r.keep_alive()};
}

// The same in stream mode: the body as the pieces the reader hands out, fed again with the rest of the buffer
// while one comes out (the contract of body_piece()).
Outcome stream(std::string_view in, Method method, size_t piece) {
  ResponseReader r(16);  // no limit applies to a streamed body
  r.start(method, ResponseReader::BodyMode::kStream);
  std::string buffer;
  std::string body;
  size_t pos = 0;
  Step st = Step::kNeedMore;
  for (;;) {
    size_t used = 0;
    st = r.feed(buffer, used);
    check(used <= buffer.size());
    check(r.body_piece().size() <= used);
    body += r.body_piece();
    bool gave = !r.body_piece().empty();
    buffer.erase(0, used);
    check(r.body().empty());
    if (st != Step::kNeedMore) break;
    if (gave) continue;
    if (pos == in.size()) {
      st = r.finish_at_close();
      break;
    }
    size_t n = piece < in.size() - pos ? piece : in.size() - pos;
    buffer.append(in.substr(pos, n));
    pos += n;
  }
  if (st != Step::kDone) return {st, 0, {}, false};
  return {st, r.status(), body, r.keep_alive()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const Method method = static_cast<Method>(data[0] % (static_cast<int>(Method::kOther) + 1));
  const size_t piece = 1 + data[1] % 64;
  const std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
  const Outcome whole = read(in, method, in.size() + 1, 1 << 16);
  check(read(in, method, piece, 1 << 16) == whole);
  read(in, method, piece, 16);  // a small limit: checked inside
  // A response read whole is streamed the same, in any pieces.
  if (whole.step == Step::kDone) check(stream(in, method, piece) == whole);
  return 0;
}
