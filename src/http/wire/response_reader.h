// Reads one HTTP/1.1 response: its head (interim 1xx responses skipped), then its body framed by
// Content-Length, chunked coding or the end of the connection, gathered into memory up to a limit, or handed
// out piece by piece as it comes (BodyMode::kStream: a watch stream that never ends, a long download). This
// is the part of a client that turns bytes into a response, with no I/O of its own: the caller reads, feeds
// what it has, and says when the peer closed. http::Client (on an event loop) and the object store's
// replication sender (a blocking thread) both gather responses through it; the gateway's own exchange streams
// bodies instead and reads heads with ResponseParser directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"
#include "http/wire/h1.h"

namespace cumulo::http {

class ResponseReader {
 public:
  enum class Step : uint8_t {
    kNeedMore,  // feed more bytes (or call finish_at_close when the peer closed)
    kDone,      // status(), headers() and body() hold the response
    kFailed,    // error() says why; the connection cannot be used again
  };

  enum class BodyMode : uint8_t {
    kGather,  // body() holds the whole body at kDone
    kStream,  // body_piece() views each run of body bytes as feed() takes it; nothing is kept, no limit
  };

  explicit ResponseReader(size_t max_body_bytes = 64 * 1024 * 1024, ParseLimits limits = {})
      : max_body_(max_body_bytes), parser_(limits) {}

  // A new exchange; `request_method` decides whether a body follows (HEAD: none).
  void start(Method request_method, BodyMode mode = BodyMode::kGather);
  // Takes what it can from `in`: `used` bytes of it. An incomplete head takes nothing (feed it again with
  // more bytes after it); once the response is complete, the bytes after it are not taken. After kDone or
  // kFailed, later calls return the same.
  Step feed(std::string_view in, size_t& used);
  // The peer ended the stream: completes a body that runs to the end of the connection, fails otherwise.
  Step finish_at_close();

  // kStream only: the body bytes the last feed() took, a view into its `in` (at most one run of them, so that
  // the caller can pass each on before the next); empty when that call took none. While a piece came out,
  // feed again with the rest of `in` before reading more.
  std::string_view body_piece() const { return piece_; }

  bool head_read() const { return in_body_; }  // a final (non-1xx) head was read
  int status() const { return status_; }
  HeaderList& headers() { return headers_; }
  std::string& body() { return body_; }
  // The connection may carry another exchange: the response said so and is not delimited by the close.
  bool keep_alive() const { return keep_alive_; }
  // On kFailed: kind "bad_response" (bytes that are not a response, framing, a close in the middle) or
  // "too_large" (a body over the limit); the source is the peer and a retry is not known to be safe.
  const core::Error& error() const { return error_; }

 private:
  Step fail(std::string_view kind, std::string message);
  bool gather(std::string_view bytes);

  size_t max_body_;
  BodyMode mode_ = BodyMode::kGather;
  std::string_view piece_;
  ResponseParser parser_;
  ChunkedDecoder chunks_;
  Method method_ = Method::kGet;
  Step done_ = Step::kNeedMore;  // kDone or kFailed once the exchange ended
  bool in_body_ = false;
  BodyKind kind_ = BodyKind::kNone;
  uint64_t left_ = 0;  // Content-Length bytes still to come
  int status_ = 0;
  bool keep_alive_ = false;
  HeaderList headers_;
  std::string body_;
  core::Error error_;
};

}  // namespace cumulo::http
