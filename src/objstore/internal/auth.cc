#include "objstore/internal/auth.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <vector>

#include "core/text.h"
#include "objstore/wire/checksum.h"
#include "objstore/wire/sigv4.h"

namespace cumulo::objstore {

namespace {

AuthResult fail(S3Error e, std::string detail = {}) {
  AuthResult r;
  r.error = e;
  r.detail = std::move(detail);
  return r;
}

// The checks both forms share: the key, the scope and the signature over the canonical request.
AuthResult verify(const http::Request& head, const S3Config& config, const SigV4Params& p,
                  std::string_view amz_date, std::string_view payload_hash, bool presigned) {
  const S3User* user = config.user_by_access_key(std::string(p.access_key));
  if (!user) return fail(S3Error::kInvalidAccessKeyId);
  if (p.service != "s3")
    return fail(
        presigned ? S3Error::kAuthorizationQueryParametersError : S3Error::kAuthorizationHeaderMalformed,
        "The credential's service must be 's3'.");
  if (!config.region.empty() && p.region != config.region)
    return fail(
        presigned ? S3Error::kAuthorizationQueryParametersError : S3Error::kAuthorizationHeaderMalformed,
        "The region '" + std::string(p.region) + "' is wrong; expecting '" + config.region + "'.");
  if (amz_date.substr(0, 8) != p.date)
    return fail(S3Error::kSignatureDoesNotMatch, "The credential's date does not match the request date.");
  if (std::string_view(p.signed_headers).find("host") == std::string_view::npos)
    return fail(S3Error::kAccessDenied, "The host header must be signed.");
  auto uri = canonical_uri(head.path);
  auto query = canonical_query(head.query, presigned);
  if (!uri || !query) return fail(S3Error::kInvalidRequest, "Bad percent-encoding in the request target.");
  SigningKey key = derive_signing_key(user->secret_key, p.date, p.region, p.service);
  std::string scope = p.scope();
  // The path as the spec encodes it first; then as sent, for clients that leave some reserved characters
  // unencoded in both the request line and their canonical request (S3 does not re-encode the path).
  bool match = false;
  const std::string* candidates[] = {&*uri, &head.path};
  for (const std::string* candidate : candidates) {
    if (match || (candidate == &head.path && head.path == *uri)) continue;
    auto creq =
        canonical_request(head.method, *candidate, *query, head.headers, p.signed_headers, payload_hash);
    if (!creq) return fail(S3Error::kSignatureDoesNotMatch, "A signed header is missing from the request.");
    match = constant_time_equal(hmac_sha256_hex(key, string_to_sign(amz_date, scope, *creq)), p.signature);
  }
  if (!match) return fail(S3Error::kSignatureDoesNotMatch);
  AuthResult r;
  r.user = user;
  if (payload_hash == kStreamingSigned || payload_hash == kStreamingSignedTrailer) {
    r.payload = PayloadMode::kStreaming;
    r.chunk_signing = ChunkSigning{key, std::string(amz_date), scope, std::string(p.signature)};
    r.trailer = payload_hash == kStreamingSignedTrailer;
  } else if (payload_hash == kStreamingUnsignedTrailer) {
    r.payload = PayloadMode::kStreaming;
    r.trailer = true;
  } else if (payload_hash == kUnsignedPayload) {
    r.payload = PayloadMode::kUnsigned;
  } else {
    r.payload = PayloadMode::kSha256;
    r.expected_sha256 = std::string(payload_hash);
  }
  return r;
}

// Presigned URLs of Signature Version 2 ("Query string request authentication alternative" of the S3 REST
// authentication guide): what boto3 before 1.36 and s3cmd's signurl hand out by default. Only this form of
// Signature Version 2 is accepted; its Authorization header form is refused.
AuthResult verify_v2_presigned(const http::Request& head, const S3Config& config, int64_t now_s) {
  std::string access, signature, expires;
  std::vector<std::pair<std::string, std::string>> subresources;
  static constexpr std::string_view kSubresources[] = {"acl",
                                                       "delete",
                                                       "location",
                                                       "partNumber",
                                                       "response-cache-control",
                                                       "response-content-disposition",
                                                       "response-content-encoding",
                                                       "response-content-language",
                                                       "response-content-type",
                                                       "response-expires",
                                                       "tagging",
                                                       "uploadId",
                                                       "uploads",
                                                       "versionId",
                                                       "versioning"};
  std::string_view q = head.query;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    size_t eq = pair.find('=');
    std::string name, value;
    if (!percent_decode(pair.substr(0, eq), name) ||
        !percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), value))
      return fail(S3Error::kAccessDenied, "Bad percent-encoding in the query.");
    if (name == "AWSAccessKeyId")
      access = value;
    else if (name == "Signature")
      signature = value;
    else if (name == "Expires")
      expires = value;
    for (std::string_view sub : kSubresources)
      if (name == sub) subresources.emplace_back(name, eq == std::string_view::npos ? "\x01" : value);
  }
  const S3User* user = config.user_by_access_key(access);
  if (!user) return fail(S3Error::kInvalidAccessKeyId);
  int64_t expiry = 0;
  auto [p, ec] = std::from_chars(expires.data(), expires.data() + expires.size(), expiry);
  if (ec != std::errc() || p != expires.data() + expires.size())
    return fail(S3Error::kAccessDenied, "Bad Expires.");
  if (now_s > expiry) return fail(S3Error::kExpiredPresignedRequest);
  std::sort(subresources.begin(), subresources.end());
  std::string sts = head.method + "\n" + std::string(head.header("content-md5")) + "\n" +
                    std::string(head.header("content-type")) + "\n" + expires + "\n";
  std::vector<std::pair<std::string, std::string>> amz;
  for (const auto& [k, v] : head.headers) {
    std::string n = core::to_lower(k);
    if (n.rfind("x-amz-", 0) == 0) amz.emplace_back(n, v);
  }
  std::sort(amz.begin(), amz.end());
  for (const auto& [k, v] : amz) sts += k + ":" + v + "\n";
  sts += head.path;
  char sep = '?';
  for (const auto& [k, v] : subresources) {
    sts += sep + k;
    if (v != "\x01") sts += "=" + v;
    sep = '&';
  }
  unsigned char mac[20];
  unsigned int len = 0;
  HMAC(EVP_sha1(), user->secret_key.data(), static_cast<int>(user->secret_key.size()),
       reinterpret_cast<const unsigned char*>(sts.data()), sts.size(), mac, &len);
  if (!constant_time_equal(base64_encode(std::string_view(reinterpret_cast<const char*>(mac), len)),
                           signature))
    return fail(S3Error::kSignatureDoesNotMatch);
  AuthResult r;
  r.user = user;
  r.payload = PayloadMode::kUnsigned;
  return r;
}

}  // namespace

std::optional<int64_t> parse_http_date(std::string_view s) {
  std::string copy(s);
  tm t{};
  const char* end = strptime(copy.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &t);
  if (!end || *end) return std::nullopt;
  return static_cast<int64_t>(timegm(&t));
}

AuthResult authenticate(const http::Request& head, const S3Config& config, int64_t now_s) {
  const int64_t skew_s = config.clock_skew.count() / 1000;
  std::string_view authorization = head.header("authorization");
  if (!authorization.empty()) {
    SigV4Params p;
    const char* why = "";
    if (authorization.substr(0, 4) == "AWS ")
      return fail(S3Error::kAccessDenied,
                  "Signature Version 2 is not supported; sign with Signature Version 4.");
    if (!parse_authorization_header(authorization, p, &why))
      return fail(S3Error::kAuthorizationHeaderMalformed, why);
    std::string_view amz_date = head.header("x-amz-date");
    std::optional<int64_t> when;
    std::string date_storage;
    if (!amz_date.empty()) {
      when = parse_amz_date(amz_date);
    } else if (auto d = head.header("date"); !d.empty()) {
      when = parse_http_date(d);
      if (when) date_storage = format_amz_date(*when);
      amz_date = date_storage;
    }
    if (!when) return fail(S3Error::kAccessDenied, "The request needs a valid x-amz-date or Date header.");
    if (*when > now_s + skew_s || *when < now_s - skew_s) return fail(S3Error::kRequestTimeTooSkewed);
    std::string_view payload = head.header("x-amz-content-sha256");
    if (payload.empty())
      return fail(S3Error::kMissingSecurityHeader, "Missing header: x-amz-content-sha256.");
    if (payload != kUnsignedPayload && payload != kStreamingSigned && payload != kStreamingSignedTrailer &&
        payload != kStreamingUnsignedTrailer && !is_hex64(payload))
      return fail(S3Error::kInvalidArgument,
                  "x-amz-content-sha256 must be a SHA-256 hex digest or a known "
                  "payload mode.");
    return verify(head, config, p, amz_date, payload, false);
  }
  if (head.query.find("X-Amz-Signature=") != std::string::npos ||
      head.query.find("X-Amz-Credential=") != std::string::npos) {
    SigV4Params p;
    const char* why = "";
    if (!parse_presigned_query(head.query, p, &why))
      return fail(S3Error::kAuthorizationQueryParametersError, why);
    int64_t when = *parse_amz_date(p.amz_date);
    if (when > now_s + skew_s) return fail(S3Error::kAccessDenied, "Request is not valid yet.");
    if (now_s > when + p.expires_s) return fail(S3Error::kExpiredPresignedRequest);
    std::string amz_date = p.amz_date;
    return verify(head, config, p, amz_date, kUnsignedPayload, true);
  }
  if (head.query.find("Signature=") != std::string::npos &&
      head.query.find("AWSAccessKeyId=") != std::string::npos)
    return verify_v2_presigned(head, config, now_s);
  AuthResult anon;
  return anon;
}

}  // namespace cumulo::objstore
