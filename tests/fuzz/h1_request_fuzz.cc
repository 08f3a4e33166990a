// libFuzzer target for RequestParser: no crash or overread on any input, the same answer whether the head
// arrives whole or a byte at a time, and every accepted head keeps the promises of h1.h.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "http/wire/h1.h"

namespace {

using cumulo::http::BodyKind;
using cumulo::http::kMaxHeaders;
using cumulo::http::ParseLimits;
using cumulo::http::ParseStatus;
using cumulo::http::RequestHead;
using cumulo::http::RequestParser;

void check(bool ok) {
  if (!ok) std::abort();
}

bool is_tchar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool inside(std::string_view view, std::string_view in) {
  return view.empty() || (view.data() >= in.data() && view.data() + view.size() <= in.data() + in.size());
}

void check_head(std::string_view in, const RequestHead& h) {
  check(h.head_bytes >= 4 && h.head_bytes <= in.size());
  const std::string_view head = in.substr(0, h.head_bytes);
  check(head.substr(head.size() - 4) == "\r\n\r\n");
  check(h.version_minor == 0 || h.version_minor == 1);
  check(h.header_count <= kMaxHeaders);
  check(!h.method_name.empty() && inside(h.method_name, head));
  check(!h.target.empty() && inside(h.target, head));
  check(inside(h.query, head) && inside(h.host, head));
  check(inside(h.path, head) || h.path == "/");
  size_t hosts = 0;
  bool has_cl = false;
  bool has_te = false;
  for (size_t i = 0; i < h.header_count; ++i) {
    const auto& f = h.headers[i];
    check(!f.name.empty() && inside(f.name, head) && inside(f.value, head));
    for (char c : f.name) check(is_tchar(c));
    for (char c : f.value) check(c == '\t' || (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f));
    if (!f.value.empty()) {
      check(f.value.front() != ' ' && f.value.front() != '\t' && f.value.back() != ' ' &&
            f.value.back() != '\t');
    }
    hosts += cumulo::http::iequals(f.name, "host");
    has_cl |= cumulo::http::iequals(f.name, "content-length");
    has_te |= cumulo::http::iequals(f.name, "transfer-encoding");
  }
  check(hosts <= 1 && (h.version_minor == 0 || hosts == 1));
  check(!(has_cl && has_te));
  check(h.body != BodyKind::kUntilClose);
  check(h.body != BodyKind::kChunked || (has_te && h.version_minor == 1));
  check(h.body != BodyKind::kContentLength || (has_cl && h.content_length > 0));
}

struct Outcome {
  ParseStatus status;
  size_t head_bytes = 0;
  size_t header_count = 0;
  size_t err_pos = 0;
  int http_status = 0;
  bool operator==(const Outcome&) const = default;
};

Outcome outcome(ParseStatus s, const RequestParser& p, const RequestHead& h) {
  Outcome o{s};
  if (s == ParseStatus::kComplete) {
    o.head_bytes = h.head_bytes;
    o.header_count = h.header_count;
  } else if (s != ParseStatus::kNeedMore) {
    o.err_pos = p.error().pos;
    o.http_status = p.error().http_status;
  }
  return o;
}

void run(std::string_view in, ParseLimits limits, RequestHead& head) {
  RequestParser whole(limits);
  const ParseStatus s = whole.parse(in, head);
  const Outcome expected = outcome(s, whole, head);
  if (s == ParseStatus::kComplete) {
    check_head(in, head);
  } else if (s != ParseStatus::kNeedMore) {
    check(whole.error().reason != nullptr && whole.error().reason[0] != '\0');
    check(whole.error().pos <= in.size());
    const int st = whole.error().http_status;
    check(st == 400 || st == 414 || st == 431 || st == 501 || st == 505);
  }

  // The same bytes arriving one at a time. For small inputs each prefix is copied to the end of its own
  // allocation so that AddressSanitizer sees any read past the prefix too.
  RequestParser growing(limits);
  ParseStatus g = ParseStatus::kNeedMore;
  const bool exact = in.size() <= 1024;
  std::unique_ptr<char[]> buf(new char[in.size() + 1]);
  size_t n = 0;
  for (; n <= in.size() && g == ParseStatus::kNeedMore; ++n) {
    std::string_view prefix = in.substr(0, n);
    if (exact) {
      char* at = buf.get() + (in.size() + 1 - n);
      std::memcpy(at, in.data(), n);
      prefix = std::string_view(at, n);
    }
    g = growing.parse(prefix, head);
  }
  check(outcome(g, growing, head) == expected);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto* head = new RequestHead;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  run(in, ParseLimits{}, *head);
  run(in, ParseLimits{.max_head_bytes = 128, .max_headers = 4}, *head);
  return 0;
}
