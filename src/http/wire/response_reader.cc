#include "http/wire/response_reader.h"

#include <algorithm>

namespace cumulo::http {

void ResponseReader::start(Method request_method, BodyMode mode) {
  method_ = request_method;
  mode_ = mode;
  piece_ = {};
  parser_.reset();
  chunks_.reset();
  done_ = Step::kNeedMore;
  in_body_ = false;
  kind_ = BodyKind::kNone;
  left_ = 0;
  status_ = 0;
  keep_alive_ = false;
  headers_.clear();
  body_.clear();
  error_ = core::Error{};
}

ResponseReader::Step ResponseReader::fail(std::string_view kind, std::string message) {
  error_.kind = kind;
  error_.message = std::move(message);
  error_.source = core::ErrorSource::kUpstream;
  error_.retry = core::Retry::kNo;
  done_ = Step::kFailed;
  return done_;
}

bool ResponseReader::gather(std::string_view bytes) {
  if (mode_ == BodyMode::kStream) {
    piece_ = bytes;
    return true;
  }
  if (body_.size() + bytes.size() > max_body_) {
    fail("too_large", "bad response: body over the limit of " + std::to_string(max_body_) + " bytes");
    return false;
  }
  body_.append(bytes);
  return true;
}

ResponseReader::Step ResponseReader::feed(std::string_view in, size_t& used) {
  used = 0;
  piece_ = {};
  if (done_ != Step::kNeedMore) return done_;
  while (!in_body_) {
    ResponseHead h;
    ParseStatus st = parser_.parse(in.substr(used), method_, h);
    if (st == ParseStatus::kNeedMore) return Step::kNeedMore;
    if (st != ParseStatus::kComplete)
      return fail("bad_response", std::string("bad response: ") + parser_.error().reason);
    if (h.status < 200 && h.status != 101) {  // 100 Continue, 103 Early Hints: the real response follows
      used += h.head_bytes;
      parser_.reset();
      continue;
    }
    status_ = h.status;
    headers_.reserve(h.header_count);
    for (size_t i = 0; i < h.header_count; ++i) headers_.emplace_back(h.headers[i].name, h.headers[i].value);
    kind_ = h.body;
    left_ = h.content_length;
    keep_alive_ = h.keep_alive && kind_ != BodyKind::kUntilClose;
    used += h.head_bytes;
    in_body_ = true;
    if (kind_ == BodyKind::kContentLength && mode_ == BodyMode::kGather) {
      if (left_ > max_body_)
        return fail("too_large", "bad response: body of " + std::to_string(left_) +
                                     " bytes is over the limit of " + std::to_string(max_body_));
      body_.reserve(left_);
    }
  }
  switch (kind_) {
    case BodyKind::kNone:
      return done_ = Step::kDone;
    case BodyKind::kContentLength: {
      size_t n = static_cast<size_t>(std::min<uint64_t>(in.size() - used, left_));
      if (!gather(in.substr(used, n))) return done_;
      used += n;
      left_ -= n;
      return left_ == 0 ? (done_ = Step::kDone) : Step::kNeedMore;
    }
    case BodyKind::kChunked:
      for (;;) {
        size_t consumed = 0;
        std::string_view payload;
        ParseStatus st = chunks_.decode(in.substr(used), consumed, payload);
        if (!payload.empty() && !gather(payload)) return done_;
        used += consumed;
        if (st == ParseStatus::kComplete) return done_ = Step::kDone;
        if (st != ParseStatus::kNeedMore)
          return fail("bad_response", std::string("bad response: ") + chunks_.error().reason);
        if (consumed == 0 || used == in.size() || !piece_.empty()) return Step::kNeedMore;
      }
    case BodyKind::kUntilClose:
      if (!gather(in.substr(used))) return done_;
      used = in.size();
      return Step::kNeedMore;
  }
  return Step::kNeedMore;
}

ResponseReader::Step ResponseReader::finish_at_close() {
  if (done_ != Step::kNeedMore) return done_;
  if (in_body_ && kind_ == BodyKind::kUntilClose) return done_ = Step::kDone;
  return fail("bad_response", in_body_ ? "bad response: connection closed before the end of the response"
                                       : "bad response: connection closed before the end of the head");
}

}  // namespace cumulo::http
