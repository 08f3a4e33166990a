// The one table that maps every error the object store can answer with to its S3 wire form: the code clients
// switch on, the message people read and the HTTP status (the codes of the Amazon S3 API reference, "Error
// responses"). Nothing here includes the event loop.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cumulo::objstore {

enum class S3Error : uint8_t {
  kNone,
  kAccessDenied,
  kAuthorizationHeaderMalformed,
  kAuthorizationQueryParametersError,
  kBadDigest,
  kBucketAlreadyExists,
  kBucketAlreadyOwnedByYou,
  kBucketNotEmpty,
  kEntityTooLarge,
  kEntityTooSmall,
  kExpiredPresignedRequest,
  kIncompleteBody,
  kInternalError,
  kCorruptObject,
  kInvalidAccessKeyId,
  kInvalidArgument,
  kInvalidBucketName,
  kInvalidObjectName,
  kInvalidDigest,
  kInvalidPart,
  kInvalidPartOrder,
  kInvalidRange,
  kInvalidRequest,
  kInvalidChunkSizeError,
  kKeyTooLong,
  kMalformedXML,
  kMaxMessageLengthExceeded,
  kMethodNotAllowed,
  kMissingContentLength,
  kNoSuchBucket,
  kNoSuchKey,
  kNoSuchUpload,
  kNotImplemented,
  kPreconditionFailed,
  kRequestTimeTooSkewed,
  kSignatureDoesNotMatch,
  kContentSha256Mismatch,
  kMissingSecurityHeader,
  kStorageFull,
  kServiceUnavailable,  // replication with on_peer_down: fail, and a peer is down
  kCount,
};

// An S3 error and the detail its message adds ("The parts carry no checksum of one algorithm."), for the
// results of checks that can fail in several ways.
struct S3Failure {
  S3Error code = S3Error::kInternalError;
  std::string detail;
};

struct S3ErrorInfo {
  std::string_view code;     // "NoSuchKey"
  std::string_view message;  // "The specified key does not exist."
  int http_status;
};

const S3ErrorInfo& s3_error_info(S3Error e);

// Appends s with the five XML special characters escaped; bytes below 0x20 other than tab, CR and LF (which
// XML 1.0 cannot carry at all) become '?'.
void xml_escape_to(std::string& out, std::string_view s);

// The <Error> document (RESTErrorResponses): Code, Message, Resource, RequestId, and an optional detail
// appended to the message.
std::string s3_error_xml(S3Error e, std::string_view resource, std::string_view request_id,
                         std::string_view detail = {});

}  // namespace cumulo::objstore
