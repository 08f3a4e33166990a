// Who sent a request: SigV4 in the Authorization header or in a presigned URL, checked against the users of
// the configuration; or nobody (anonymous). Also says how the body must be verified as it streams in.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "http/server.h"
#include "objstore/internal/s3_config.h"
#include "objstore/wire/aws_chunked.h"
#include "objstore/wire/s3_errors.h"

namespace cumulo::objstore {

enum class PayloadMode : uint8_t {
  kNone,       // anonymous: nothing to verify
  kUnsigned,   // UNSIGNED-PAYLOAD (and presigned URLs)
  kSha256,     // x-amz-content-sha256 is the body's hash: verify it at the end
  kStreaming,  // aws-chunked; chunk_signing set when chunks are signed, trailer when trailers follow
};

struct AuthResult {
  S3Error error = S3Error::kNone;
  std::string detail;
  const S3User* user = nullptr;  // nullptr: anonymous
  PayloadMode payload = PayloadMode::kNone;
  std::string expected_sha256;
  std::optional<ChunkSigning> chunk_signing;
  bool trailer = false;
};

// now_s: seconds since the epoch (a parameter so tests can fix the clock).
AuthResult authenticate(const http::Request& head, const S3Config& config, int64_t now_s);

// An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") in seconds since the epoch; nullopt for anything else (the
// Date header of a signed request, and the conditional headers of GET and HEAD, as S3 reads them).
std::optional<int64_t> parse_http_date(std::string_view s);

}  // namespace cumulo::objstore
