// AWS Signature Version 4 as S3 uses it ("Authenticating Requests (AWS Signature Version 4)" in the Amazon S3
// API reference): parsing the Authorization header and the presigned-URL query, building the canonical
// request and the string to sign, deriving the signing key. Pure functions over the request's bytes (OpenSSL
// for SHA-256 and HMAC); nothing here includes the event loop, so the fuzz targets link it alone.
#pragma once

#include <array>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/text.h"

namespace cumulo::objstore {

using SigningKey = std::array<uint8_t, 32>;
using HeaderPairs = std::vector<std::pair<std::string, std::string>>;

inline constexpr std::string_view kSigV4Algorithm = "AWS4-HMAC-SHA256";
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
inline constexpr std::string_view kStreamingSigned = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
inline constexpr std::string_view kStreamingSignedTrailer = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
inline constexpr std::string_view kStreamingUnsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
inline constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// What an Authorization header or a presigned query carries. Views into the parsed text.
struct SigV4Params {
  std::string_view access_key;
  std::string_view date;  // YYYYMMDD of the credential scope
  std::string_view region;
  std::string_view service;         // "s3"
  std::string_view signed_headers;  // "host;x-amz-content-sha256;x-amz-date", as sent
  std::string_view signature;       // 64 hex digits
  // Presigned only (decoded copies, since query values arrive percent-encoded):
  std::string amz_date;            // X-Amz-Date
  int64_t expires_s = 0;           // X-Amz-Expires
  std::string credential_storage;  // backs the views above for the presigned form
  std::string signed_headers_storage;

  std::string scope() const;  // "DATE/REGION/SERVICE/aws4_request"
};

// "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date,
// Signature=abc..." (the three parts in any order, separated by commas and optional spaces). False with a
// reason when it does not have that form.
[[nodiscard]] bool parse_authorization_header(std::string_view header, SigV4Params& out, const char** why);
// The X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature
// parameters of a presigned URL's raw query.
[[nodiscard]] bool parse_presigned_query(std::string_view raw_query, SigV4Params& out, const char** why);
// "AK/20130524/us-east-1/s3/aws4_request".
[[nodiscard]] bool parse_credential(std::string_view credential, SigV4Params& out);

// RFC 3986 percent-decoding ('+' is a plus); false on a '%' not followed by two hex digits. The one decoder
// of src/core/text.h: what SigV4 canonicalises and what the API serves are decoded alike.
using core::percent_decode;
// S3's UriEncode(): every byte but A-Z a-z 0-9 - _ . ~ as %XY (upper-case hex); '/' kept when !encode_slash.
std::string uri_encode(std::string_view in, bool encode_slash);
// CanonicalQueryString: each name and value decoded and re-encoded, sorted by name then value; a parameter
// without '=' has an empty value. With skip_signature, X-Amz-Signature is left out (presigned URLs).
// nullopt when a parameter is not valid percent-encoding.
std::optional<std::string> canonical_query(std::string_view raw_query, bool skip_signature);
// CanonicalURI from the raw request path: decoded, then each segment re-encoded (S3 does not
// double-encode). nullopt on bad percent-encoding.
std::optional<std::string> canonical_uri(std::string_view raw_path);

// The canonical request. `headers` are the request's headers as received; the signed ones are looked up
// case-insensitively, repeated ones joined with ',', values trimmed with inner runs of spaces folded. nullopt
// when a signed header is absent from the request.
std::optional<std::string> canonical_request(std::string_view method, std::string_view canonical_uri,
                                             std::string_view canonical_query, const HeaderPairs& headers,
                                             std::string_view signed_headers, std::string_view payload_hash);
std::string string_to_sign(std::string_view amz_date, std::string_view scope,
                           std::string_view canonical_request);

SigningKey derive_signing_key(std::string_view secret, std::string_view date, std::string_view region,
                              std::string_view service);
std::string hmac_sha256_hex(const SigningKey& key, std::string_view data);
std::string sha256_hex(std::string_view data);
std::string hex_encode(const uint8_t* p, size_t n);
// 64 lower-case hex digits: a SHA-256 as SigV4 writes it.
bool is_hex64(std::string_view s);
// Comparison that takes the same time wherever the first difference is (signatures).
bool constant_time_equal(std::string_view a, std::string_view b);

// "20130524T000000Z" (ISO 8601 basic, UTC) to seconds since the epoch.
std::optional<int64_t> parse_amz_date(std::string_view s);
std::string format_amz_date(int64_t epoch_s);

}  // namespace cumulo::objstore
