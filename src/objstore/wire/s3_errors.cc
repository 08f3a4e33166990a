#include "objstore/wire/s3_errors.h"

#include <array>

namespace cumulo::objstore {

namespace {

// Indexed by S3Error; the static_assert below keeps it in step with the enum.
constexpr std::array<S3ErrorInfo, static_cast<size_t>(S3Error::kCount)> kTable = {{
    {"", "", 200},
    {"AccessDenied", "Access Denied.", 403},
    {"AuthorizationHeaderMalformed", "The authorization header is malformed.", 400},
    {"AuthorizationQueryParametersError", "The presigned URL's X-Amz-* query parameters are malformed.", 400},
    {"BadDigest", "The Content-MD5 or checksum you specified did not match what we received.", 400},
    {"BucketAlreadyExists",
     "The requested bucket name is not available; the bucket namespace is shared by all "
     "users. Select a different name and try again.",
     409},
    {"BucketAlreadyOwnedByYou",
     "Your previous request to create the named bucket succeeded and you already "
     "own it.",
     409},
    {"BucketNotEmpty", "The bucket you tried to delete is not empty.", 409},
    {"EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size.", 400},
    {"EntityTooSmall",
     "Your proposed upload is smaller than the minimum allowed object size (each part but the "
     "last must be at least 5 MiB).",
     400},
    {"AccessDenied", "Request has expired.", 403},
    {"IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.",
     400},
    {"InternalError", "We encountered an internal error. Please try again.", 500},
    {"InternalError",
     "The stored object failed its integrity check and cannot be served; restore it from a "
     "replica or backup.",
     500},
    {"InvalidAccessKeyId", "The AWS access key ID you provided does not exist in our records.", 403},
    {"InvalidArgument", "Invalid argument.", 400},
    {"InvalidBucketName", "The specified bucket is not valid.", 400},
    {"InvalidArgument",
     "Object key is not valid: it must be 1 to 1024 bytes of UTF-8 without NUL and without a "
     "'..' path segment.",
     400},
    {"InvalidDigest", "The Content-MD5 or checksum you specified is not valid.", 400},
    {"InvalidPart",
     "One or more of the specified parts could not be found. The part may not have been "
     "uploaded, or the specified entity tag may not match the part's entity tag.",
     400},
    {"InvalidPartOrder",
     "The list of parts was not in ascending order. Parts must be ordered by part number.", 400},
    {"InvalidRange", "The requested range is not satisfiable.", 416},
    {"InvalidRequest", "Invalid request.", 400},
    {"InvalidChunkSizeError", "Only the last chunk is allowed to have a size less than 8192 bytes.", 400},
    {"KeyTooLongError", "Your key is too long (at most 1024 bytes).", 400},
    {"MalformedXML",
     "The XML you provided was not well-formed or did not validate against our published "
     "schema.",
     400},
    {"MaxMessageLengthExceeded", "Your request was too big.", 400},
    {"MethodNotAllowed", "The specified method is not allowed against this resource.", 405},
    {"MissingContentLength", "You must provide the Content-Length HTTP header.", 411},
    {"NoSuchBucket", "The specified bucket does not exist.", 404},
    {"NoSuchKey", "The specified key does not exist.", 404},
    {"NoSuchUpload",
     "The specified multipart upload does not exist. The upload ID may be invalid, or the "
     "upload may have been aborted or completed.",
     404},
    {"NotImplemented", "A header or query you provided implies functionality that is not implemented.", 501},
    {"PreconditionFailed", "At least one of the preconditions you specified did not hold.", 412},
    {"RequestTimeTooSkewed", "The difference between the request time and the server's time is too large.",
     403},
    {"SignatureDoesNotMatch",
     "The request signature we calculated does not match the signature you provided. "
     "Check your key and signing method.",
     403},
    {"XAmzContentSHA256Mismatch",
     "The provided 'x-amz-content-sha256' header does not match what was "
     "computed.",
     400},
    {"MissingSecurityHeader", "Your request is missing a required header.", 400},
    {"InsufficientStorage",
     "The store has no space left for this upload; nothing was stored. Free space or "
     "add capacity, then retry.",
     507},
    {"ServiceUnavailable",
     "A replica zone did not confirm the write in time and the store is configured to refuse writes that "
     "are not durable in every zone (replication.on_peer_down: fail); retry later.",
     503},
}};

// A row left out at the end would be value-initialized (no code, status 0) and a row too many does not
// compile: so a new S3Error value without its row here fails the build instead of answering "" with 0.
constexpr bool every_error_has_a_row() {
  for (size_t i = 1; i < kTable.size(); ++i)
    if (kTable[i].code.empty() || kTable[i].message.empty() || kTable[i].http_status < 400) return false;
  return kTable[0].code.empty();  // kNone
}
static_assert(every_error_has_a_row(), "kTable needs one row per S3Error value, in the enum's order");

}  // namespace

const S3ErrorInfo& s3_error_info(S3Error e) {
  size_t i = static_cast<size_t>(e);
  return kTable[i < kTable.size() ? i : static_cast<size_t>(S3Error::kInternalError)];
}

void xml_escape_to(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
          out += '?';
        } else {
          out += c;
        }
    }
  }
}

std::string s3_error_xml(S3Error e, std::string_view resource, std::string_view request_id,
                         std::string_view detail) {
  const S3ErrorInfo& info = s3_error_info(e);
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>";
  out += info.code;
  out += "</Code><Message>";
  xml_escape_to(out, info.message);
  if (!detail.empty()) {
    out += ' ';
    xml_escape_to(out, detail);
  }
  out += "</Message><Resource>";
  xml_escape_to(out, resource);
  out += "</Resource><RequestId>";
  xml_escape_to(out, request_id);
  out += "</RequestId></Error>";
  return out;
}

}  // namespace cumulo::objstore
