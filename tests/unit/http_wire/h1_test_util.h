// Printers and feeding helpers shared by the HTTP/1.1 wire tests.
#pragma once

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "http/wire/h1.h"

namespace cumulo::http {

inline void PrintTo(ParseStatus s, std::ostream* os) {
  switch (s) {
    case ParseStatus::kComplete:
      *os << "kComplete";
      return;
    case ParseStatus::kNeedMore:
      *os << "kNeedMore";
      return;
    case ParseStatus::kInvalid:
      *os << "kInvalid";
      return;
    case ParseStatus::kTooLarge:
      *os << "kTooLarge";
      return;
  }
  *os << "ParseStatus(" << static_cast<int>(s) << ")";
}

inline void PrintTo(BodyKind b, std::ostream* os) {
  switch (b) {
    case BodyKind::kNone:
      *os << "kNone";
      return;
    case BodyKind::kContentLength:
      *os << "kContentLength";
      return;
    case BodyKind::kChunked:
      *os << "kChunked";
      return;
    case BodyKind::kUntilClose:
      *os << "kUntilClose";
      return;
  }
  *os << "BodyKind(" << static_cast<int>(b) << ")";
}

// The observable result of a head parse, comparable between a whole and a piecewise feed.
struct HeadResult {
  ParseStatus status = ParseStatus::kNeedMore;
  int http_status = 0;
  size_t err_pos = 0;
  size_t head_bytes = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;
  bool keep_alive = false;

  bool operator==(const HeadResult&) const = default;
};

inline HeadResult summarize(ParseStatus status, const ParseError& err, const MessageHead& head) {
  HeadResult r;
  r.status = status;
  if (status == ParseStatus::kComplete) {
    r.head_bytes = head.head_bytes;
    for (size_t i = 0; i < head.header_count; ++i) {
      r.headers.emplace_back(std::string(head.headers[i].name), std::string(head.headers[i].value));
    }
    r.body = head.body;
    r.content_length = head.content_length;
    r.keep_alive = head.keep_alive;
  } else if (status != ParseStatus::kNeedMore) {
    r.http_status = err.http_status;
    r.err_pos = err.pos;
  }
  return r;
}

inline std::ostream& operator<<(std::ostream& os, const HeadResult& r) {
  PrintTo(r.status, &os);
  os << " http_status=" << r.http_status << " err_pos=" << r.err_pos << " head_bytes=" << r.head_bytes
     << " headers=" << r.headers.size() << " content_length=" << r.content_length
     << " keep_alive=" << r.keep_alive;
  return os;
}

}  // namespace cumulo::http
