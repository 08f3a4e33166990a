// HTTP/1.1 message parsing (RFC 9112) in place: every string_view points into the caller's receive
// buffer. Nothing here allocates, throws, or includes the event loop, so fuzz targets link it alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/text.h"

namespace cumulo::http {

enum class ParseStatus : uint8_t {
  kComplete,  // a whole head (or body) was parsed; see the consumed byte count
  kNeedMore,  // everything given was consumed or scanned; call again with more bytes
  kInvalid,   // malformed: answer with error().http_status and close
  kTooLarge,  // over a configured limit: answer with error().http_status and close
};

enum class Method : uint8_t { kGet, kHead, kPost, kPut, kDelete, kOptions, kPatch, kTrace, kConnect, kOther };

// How the body that follows a head is delimited (RFC 9112 section 6.3).
enum class BodyKind : uint8_t { kNone, kContentLength, kChunked, kUntilClose };

struct Header {
  std::string_view name;
  std::string_view value;  // leading and trailing whitespace removed
};

inline constexpr size_t kMaxHeaders = 100;

struct ParseLimits {
  size_t max_head_bytes =
      16 * 1024;  // request/status line + all headers + final CRLF; over it: 431 (414 if the line alone)
  size_t max_headers = kMaxHeaders;  // over it: 431
};

// Where and why parsing stopped, and the HTTP status that answers it (HAProxy keeps err_pos/err_state).
struct ParseError {
  size_t pos = 0;         // offset in the input of the offending byte
  int http_status = 400;  // 400, 413, 414, 431, 501 (unsupported transfer coding), 505 (version)
  const char* reason =
      "";  // short, static, for logs and the error body, e.g. "both Content-Length and Transfer-Encoding"
};

struct MessageHead {
  int version_minor = 1;  // HTTP/1.<minor>; 0 or 1, anything else is an error (505)
  Header headers[kMaxHeaders];
  size_t header_count = 0;
  size_t head_bytes = 0;  // bytes of input the head took, including the final empty line

  // Semantics derived while parsing:
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;      // valid when body == kContentLength
  bool keep_alive = true;           // from version and Connection: close / keep-alive
  bool connection_upgrade = false;  // Connection: upgrade together with an Upgrade header

  // Case-insensitive lookup of the first header with this name; empty view when absent.
  std::string_view header(std::string_view name) const;
  // Removes every header with this name (case-insensitive), keeping the others in order.
  void remove_header(std::string_view name);
};

struct RequestHead : MessageHead {
  Method method = Method::kOther;
  std::string_view method_name;  // as sent, e.g. "GET"
  std::string_view target;       // request-target as sent: "/a/b?x=1", "http://h/a", "*", "h:443"
  std::string_view path;         // target up to '?' (origin-form), or path part of an absolute-form target
                                 // ("/" from static storage when that part is empty); "*" for asterisk-form;
                                 // empty for CONNECT
  std::string_view query;        // after '?', without it; empty when none
  std::string_view host;         // Host header (or authority of absolute-form); HTTP/1.1 requires exactly one
  bool expect_continue = false;  // Expect: 100-continue
};

struct ResponseHead : MessageHead {
  int status = 0;  // 100..999
  std::string_view reason;
};

// Parses a request head. Rejects what request smuggling relies on (RFC 9112 sections 6.1, 6.3, 5.2):
// both Content-Length and Transfer-Encoding, differing duplicate Content-Length, a Content-Length that is
// not all digits or overflows, a Transfer-Encoding other than a final "chunked", obs-fold, whitespace before
// the colon, control characters, bare CR or LF as line ends, a missing or repeated Host in HTTP/1.1.
class RequestParser {
 public:
  explicit RequestParser(ParseLimits limits = {}) : limits_(limits) {}

  // `in` is every byte received so far for this message, from its first byte. The parser remembers how far it
  // scanned for the end of the head, so repeated calls with a growing buffer cost O(new bytes) until the head
  // is complete. On kComplete, out.head_bytes is the length of the head and the body (if any) starts there.
  [[nodiscard]] ParseStatus parse(std::string_view in, RequestHead& out);
  const ParseError& error() const { return error_; }
  void reset() {
    scanned_ = 0;
    error_ = {};
  }

 private:
  ParseLimits limits_;
  size_t scanned_ = 0;
  ParseError error_;
};

// Parses a response head. `request_method` decides whether a body follows (HEAD, 1xx, 204, 304, 2xx to
// CONNECT: none). Every error in a response is the upstream's, so error().http_status is always 502 here.
// Both Content-Length and Transfer-Encoding, or Transfer-Encoding in HTTP/1.0, are refused as in requests.
class ResponseParser {
 public:
  explicit ResponseParser(ParseLimits limits = {}) : limits_(limits) {}
  [[nodiscard]] ParseStatus parse(std::string_view in, Method request_method, ResponseHead& out);
  const ParseError& error() const { return error_; }
  void reset() {
    scanned_ = 0;
    error_ = {};
  }

 private:
  ParseLimits limits_;
  size_t scanned_ = 0;
  ParseError error_;
};

// Decodes a chunked body (RFC 9112 section 7.1) incrementally, over any split of the input. Chunk extensions
// are skipped, trailers are consumed and checked like header lines.
class ChunkedDecoder {
 public:
  // Consumes framing and at most one run of payload from `in`. `consumed` is how many bytes of `in` were
  // used; `payload` views the chunk data among them (possibly empty). Returns kNeedMore while the body goes
  // on (call again with the rest of `in`, or with more bytes once they arrive), kComplete once the last chunk
  // and trailers were consumed (then `consumed` ends exactly at the message end), kInvalid on bad framing
  // (non-hex size, missing CRLF after data), kTooLarge when a chunk size overflows 2^63 or has over 16
  // digits, or the trailers exceed 16 KiB. Chunk extensions over 4 KiB are kInvalid. After an error,
  // `consumed` stops before the offending byte, error().pos counts from the start of the body, and later
  // calls return the same status.
  [[nodiscard]] ParseStatus decode(std::string_view in, size_t& consumed, std::string_view& payload);
  const ParseError& error() const { return error_; }
  void reset() { *this = ChunkedDecoder{}; }
  uint64_t payload_bytes() const { return total_; }

 private:
  enum class State : uint8_t {
    kSize,    // hex digits of chunk-size
    kSizeWs,  // BWS after the size, before ';' or CRLF
    kExt,     // chunk-ext, skipped up to CR
    kSizeLf,
    kData,
    kDataCr,
    kDataLf,
    kTrailerStart,  // start of a trailer line, or CR of the final empty line
    kTrailer,       // trailer field name
    kTrailerValue,  // trailer field value up to CR
    kTrailerLf,
    kFinalLf,
    kDone,
    kError,  // sticky: every later call returns failed_
  };
  State state_ = State::kSize;
  ParseStatus failed_ = ParseStatus::kInvalid;
  uint64_t remaining_ = 0;  // bytes left in the current chunk
  uint64_t total_ = 0;
  // Bytes of the body consumed by earlier calls, so that error().pos counts from the body start.
  uint64_t offset_ = 0;
  size_t size_digits_ = 0;
  size_t ext_bytes_ = 0;
  size_t trailer_bytes_ = 0;
  ParseError error_;
};

// Header fields as (name, value) pairs, in order, for messages kept beyond the buffer they were read from.
using HeaderList = std::vector<std::pair<std::string, std::string>>;

Method method_from_string(std::string_view name);
using core::iequals;  // ASCII case-insensitive, for field names and tokens
// True for hop-by-hop headers a proxy must not forward (RFC 9110 section 7.6.1): Connection, Keep-Alive,
// Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade. (The caller also drops names listed in
// Connection.)
bool is_hop_by_hop(std::string_view name);
// Standard reason phrase for a status code ("OK", "Not Found", ...), "Unknown" when none.
std::string_view reason_phrase(int status);

}  // namespace cumulo::http
