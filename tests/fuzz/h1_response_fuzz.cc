// libFuzzer target for ResponseParser. The first byte picks the method of the request being answered; the
// rest is the response. Checks as for requests: no overread, whole == byte at a time, sound heads.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "http/wire/h1.h"

namespace {

using cumulo::http::BodyKind;
using cumulo::http::Method;
using cumulo::http::ParseLimits;
using cumulo::http::ParseStatus;
using cumulo::http::ResponseHead;
using cumulo::http::ResponseParser;

void check(bool ok) {
  if (!ok) std::abort();
}

bool inside(std::string_view view, std::string_view in) {
  return view.empty() || (view.data() >= in.data() && view.data() + view.size() <= in.data() + in.size());
}

void check_head(std::string_view in, Method method, const ResponseHead& h) {
  check(h.head_bytes >= 4 && h.head_bytes <= in.size());
  const std::string_view head = in.substr(0, h.head_bytes);
  check(head.substr(head.size() - 4) == "\r\n\r\n");
  check(h.status >= 100 && h.status <= 999);
  check(inside(h.reason, head));
  for (size_t i = 0; i < h.header_count; ++i) {
    check(!h.headers[i].name.empty() && inside(h.headers[i].name, head) && inside(h.headers[i].value, head));
  }
  const bool bodiless = method == Method::kHead || h.status < 200 || h.status == 204 || h.status == 304;
  check(!bodiless || h.body == BodyKind::kNone);
  check(h.body != BodyKind::kUntilClose || !h.keep_alive);
  check(h.body != BodyKind::kContentLength || h.content_length > 0);
}

struct Outcome {
  ParseStatus status;
  size_t head_bytes = 0;
  size_t err_pos = 0;
  BodyKind body = BodyKind::kNone;
  bool operator==(const Outcome&) const = default;
};

Outcome outcome(ParseStatus s, const ResponseParser& p, const ResponseHead& h) {
  Outcome o{s};
  if (s == ParseStatus::kComplete) {
    o.head_bytes = h.head_bytes;
    o.body = h.body;
  } else if (s != ParseStatus::kNeedMore) {
    o.err_pos = p.error().pos;
  }
  return o;
}

void run(std::string_view in, Method method, ParseLimits limits, ResponseHead& head) {
  ResponseParser whole(limits);
  const ParseStatus s = whole.parse(in, method, head);
  const Outcome expected = outcome(s, whole, head);
  if (s == ParseStatus::kComplete) {
    check_head(in, method, head);
  } else if (s != ParseStatus::kNeedMore) {
    check(whole.error().http_status == 502 && whole.error().reason[0] != '\0' &&
          whole.error().pos <= in.size());
  }
  ResponseParser growing(limits);
  ParseStatus g = ParseStatus::kNeedMore;
  const bool exact = in.size() <= 1024;
  std::unique_ptr<char[]> buf(new char[in.size() + 1]);
  for (size_t n = 0; n <= in.size() && g == ParseStatus::kNeedMore; ++n) {
    std::string_view prefix = in.substr(0, n);
    if (exact) {
      char* at = buf.get() + (in.size() + 1 - n);
      std::memcpy(at, in.data(), n);
      prefix = std::string_view(at, n);
    }
    g = growing.parse(prefix, method, head);
  }
  check(outcome(g, growing, head) == expected);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static auto* head = new ResponseHead;
  const Method method = static_cast<Method>(data[0] % (static_cast<int>(Method::kOther) + 1));
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  run(in, method, ParseLimits{}, *head);
  run(in, method, ParseLimits{.max_head_bytes = 128, .max_headers = 4}, *head);
  return 0;
}
