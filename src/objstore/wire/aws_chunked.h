// Decoder of the aws-chunked content encoding that S3 clients use to stream uploads (Amazon S3 API reference,
// "Signature Calculations for the Authorization Header: Transferring Payload in Multiple Chunks" and the
// trailer variants): "SIZE;chunk-signature=SIG\r\nDATA\r\n" ... "0;chunk-signature=SIG\r\n" [trailers]
// "\r\n". Each chunk's signature chains on the previous one, starting from the seed signature of the
// Authorization header. Incremental over any split of the input; only framing lines are buffered (bounded),
// data passes through as views. Nothing here includes the event loop.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "objstore/wire/sigv4.h"

namespace cumulo::objstore {

enum class ChunkedStatus : uint8_t {
  kNeedMore,           // all input consumed; the body goes on
  kComplete,           // the final chunk and trailers were consumed; `consumed` ends at the body's end
  kMalformed,          // bad framing: answer IncompleteBody / InvalidRequest
  kSignatureMismatch,  // a chunk or trailer signature is wrong: SignatureDoesNotMatch
  kTooLarge,           // a size over 2^40, or a framing line over 4 KiB
};

// What verifies chunk signatures; absent for STREAMING-UNSIGNED-PAYLOAD-TRAILER.
struct ChunkSigning {
  SigningKey key{};
  std::string amz_date;        // x-amz-date of the request
  std::string scope;           // DATE/REGION/s3/aws4_request
  std::string seed_signature;  // the Authorization header's signature
};

class AwsChunkedDecoder {
 public:
  // signing: verify each chunk's signature (and the trailer's, when `trailer` is set). trailer: the body
  // ends with trailing headers (the *-TRAILER payload variants).
  AwsChunkedDecoder(std::optional<ChunkSigning> signing, bool trailer);
  ~AwsChunkedDecoder();
  AwsChunkedDecoder(const AwsChunkedDecoder&) = delete;
  AwsChunkedDecoder& operator=(const AwsChunkedDecoder&) = delete;

  // Consumes framing and at most one run of chunk data from `in`; `payload` views that data (possibly empty),
  // `consumed` is how many bytes of `in` were used. Call again with the rest. After an error every call
  // returns it again.
  [[nodiscard]] ChunkedStatus decode(std::string_view in, size_t& consumed, std::string_view& payload);

  uint64_t payload_bytes() const { return total_; }
  const char* error_reason() const { return reason_; }
  // Trailing headers (names lower-cased), without x-amz-trailer-signature; valid after kComplete.
  const std::vector<std::pair<std::string, std::string>>& trailers() const { return trailers_; }

 private:
  enum class State : uint8_t { kHeader, kData, kDataCr, kDataLf, kTrailer, kDone, kError };
  ChunkedStatus fail(ChunkedStatus st, const char* why);
  ChunkedStatus on_header_line();
  ChunkedStatus on_trailer_line();
  bool chunk_signature_ok();

  std::optional<ChunkSigning> signing_;
  bool trailer_;
  State state_ = State::kHeader;
  ChunkedStatus error_ = ChunkedStatus::kMalformed;
  const char* reason_ = "";
  std::string line_;
  std::string expected_signature_;  // of the current chunk
  std::string previous_signature_;
  uint64_t remaining_ = 0;
  uint64_t total_ = 0;
  bool last_chunk_ = false;
  EVP_MD_CTX* chunk_hash_ = nullptr;
  std::vector<std::pair<std::string, std::string>> trailers_;
  std::string trailer_signature_;
  std::string canonical_trailers_;
};

}  // namespace cumulo::objstore
