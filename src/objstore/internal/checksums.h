// Flexible checksums beyond one request body: the checksum a multipart upload declares, the checksum of the
// completed object (COMPOSITE or FULL_OBJECT), and how an object's checksum is kept with its headers (so that
// it travels with the object through copies and replication).
//
// An object's checksum is stored as its headers "x-amz-checksum-<alg>" and "x-amz-checksum-type"; a
// multipart object also keeps its parts' checksums under kPartChecksumsHeader, for GetObjectAttributes. An
// upload's declaration (x-amz-checksum-algorithm, x-amz-checksum-type of CreateMultipartUpload) is kept with
// the upload's headers until it completes.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "objstore/internal/storage.h"
#include "objstore/wire/checksum.h"
#include "objstore/wire/s3_errors.h"

namespace cumulo::objstore {

inline constexpr std::string_view kChecksumTypeHeader = "x-amz-checksum-type";
inline constexpr std::string_view kChecksumAlgorithmHeader = "x-amz-checksum-algorithm";
// Internal: the base64 checksums of a multipart object's parts, comma-separated, in part order. Never sent.
inline constexpr std::string_view kPartChecksumsHeader = "x-cumulo-part-checksums";

struct DeclaredChecksum {
  std::optional<ChecksumAlgorithm> algorithm;
  std::optional<bool> full_object;  // x-amz-checksum-type when given: FULL_OBJECT (true) or COMPOSITE
};

// x-amz-checksum-algorithm and x-amz-checksum-type as a request gives them (either may be empty), or
// kInvalidRequest saying what is wrong.
core::Result<DeclaredChecksum, S3Failure> parse_declared_checksum(std::string_view algorithm,
                                                                  std::string_view type);
// The declaration kept with an upload's headers.
DeclaredChecksum declared_checksum(const MetaHeaders& upload_headers);
// Adds the declaration to an upload's headers.
void add_declaration(MetaHeaders& upload_headers, const DeclaredChecksum& d);

struct ObjectChecksum {
  ChecksumAlgorithm algorithm = ChecksumAlgorithm::kCrc32;
  std::string value;  // base64; "-N" appended for COMPOSITE
  bool full_object = true;
  std::vector<std::string> part_values;  // multipart objects: each part's checksum
};

// The checksum of a completed multipart upload from its parts (in the order completed). upload: the
// upload's declaration; request: CompleteMultipartUpload's own x-amz-checksum-type (and algorithm of its
// x-amz-checksum-* header, if any), expected: that header's value. Without a declaration, parts that all
// carry a checksum of one algorithm still give the object one (FULL_OBJECT for CRCs, else COMPOSITE); with
// none, nullopt. A mismatch with `expected` is kBadDigest; contradictory types kInvalidRequest; a part
// without the checksum kInvalidPart.
core::Result<std::optional<ObjectChecksum>, S3Failure> completed_checksum(const DeclaredChecksum& upload,
                                                                          const DeclaredChecksum& request,
                                                                          std::string_view expected,
                                                                          const std::vector<PartInfo>& parts);

// The object's checksum as stored in its headers.
std::optional<ObjectChecksum> stored_checksum(const MetaHeaders& headers);
// Removes every checksum header (the object's, its parts', an upload's declaration).
void strip_checksum_headers(MetaHeaders& headers);
void add_checksum_headers(MetaHeaders& headers, const ObjectChecksum& c);
// Whether a stored header is one of the object's checksum headers (sent only in checksum mode) or internal
// (never sent).
bool is_checksum_header(std::string_view name);
bool is_internal_header(std::string_view name);

}  // namespace cumulo::objstore
