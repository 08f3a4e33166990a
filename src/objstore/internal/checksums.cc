#include "objstore/internal/checksums.h"

#include <algorithm>

#include "core/text.h"

namespace cumulo::objstore {

namespace {

// No declaration: the parts' own checksums, when they all have one of the same algorithm.
std::optional<ChecksumAlgorithm> parts_algorithm(const std::vector<PartInfo>& parts) {
  std::optional<ChecksumAlgorithm> out;
  for (const auto& p : parts) {
    auto a = checksum_from_name(p.checksum_algorithm);
    if (!a || p.checksum.empty() || (out && *a != *out)) return std::nullopt;
    out = a;
  }
  return out;
}

std::string_view type_name(bool full_object) {
  return full_object ? "FULL_OBJECT" : "COMPOSITE";
}

}  // namespace

core::Result<DeclaredChecksum, S3Failure> parse_declared_checksum(std::string_view algorithm,
                                                                  std::string_view type) {
  auto invalid = [](const char* why) { return core::Err(S3Failure{S3Error::kInvalidRequest, why}); };
  DeclaredChecksum out;
  if (!algorithm.empty()) {
    out.algorithm = checksum_from_name(algorithm);
    if (!out.algorithm)
      return invalid("Unknown x-amz-checksum-algorithm: CRC32, CRC32C, CRC64NVME, SHA1 or SHA256.");
  }
  if (!type.empty()) {
    if (core::iequals(type, "FULL_OBJECT"))
      out.full_object = true;
    else if (core::iequals(type, "COMPOSITE"))
      out.full_object = false;
    else
      return invalid("x-amz-checksum-type must be COMPOSITE or FULL_OBJECT.");
  }
  if (out.algorithm && out.full_object) {
    if (*out.full_object && !is_crc(*out.algorithm))
      return invalid("The FULL_OBJECT checksum type needs a CRC algorithm (CRC32, CRC32C or CRC64NVME).");
    if (!*out.full_object && *out.algorithm == ChecksumAlgorithm::kCrc64Nvme)
      return invalid("CRC64NVME supports the FULL_OBJECT checksum type only.");
  }
  return out;
}

DeclaredChecksum declared_checksum(const MetaHeaders& h) {
  std::string_view algorithm, type;
  for (const auto& [k, v] : h) {
    if (k == kChecksumAlgorithmHeader) algorithm = v;
    if (k == kChecksumTypeHeader) type = v;
  }
  // Stored only after it parsed, so it parses again.
  return parse_declared_checksum(algorithm, type).value_or(DeclaredChecksum{});
}

void add_declaration(MetaHeaders& h, const DeclaredChecksum& d) {
  if (d.algorithm) h.emplace_back(kChecksumAlgorithmHeader, checksum_name(*d.algorithm));
  if (d.full_object) h.emplace_back(kChecksumTypeHeader, type_name(*d.full_object));
}

core::Result<std::optional<ObjectChecksum>, S3Failure> completed_checksum(
    const DeclaredChecksum& upload, const DeclaredChecksum& request, std::string_view expected,
    const std::vector<PartInfo>& parts) {
  auto fail = [](S3Error e, std::string d) { return core::Err(S3Failure{e, std::move(d)}); };
  if (upload.full_object && request.full_object && *upload.full_object != *request.full_object)
    return fail(
        S3Error::kInvalidRequest,
        "The x-amz-checksum-type of the completion differs from the one the upload was created with.");
  std::optional<ChecksumAlgorithm> found = upload.algorithm ? upload.algorithm : parts_algorithm(parts);
  if (!found) {
    if (request.algorithm)
      return fail(S3Error::kInvalidRequest, "The parts carry no checksum of one algorithm.");
    return std::optional<ObjectChecksum>();
  }
  const ChecksumAlgorithm algorithm = *found;
  if (request.algorithm && *request.algorithm != algorithm)
    return fail(S3Error::kInvalidRequest, "The completion's checksum algorithm differs from the parts'.");
  // The type: as declared, else as the completion asks; else S3's defaults: COMPOSITE for a declared
  // algorithm but CRC64NVME, and for undeclared parts' CRCs the whole object's CRC.
  bool full = upload.full_object    ? *upload.full_object
              : request.full_object ? *request.full_object
              : upload.algorithm    ? algorithm == ChecksumAlgorithm::kCrc64Nvme
                                    : is_crc(algorithm);
  ObjectChecksum out;
  out.algorithm = algorithm;
  out.full_object = full;
  std::vector<PartChecksum> values;
  const std::string_view name = checksum_name(algorithm);
  for (const auto& p : parts) {
    if (p.checksum.empty() || p.checksum_algorithm != name)
      return fail(S3Error::kInvalidPart,
                  "Part " + std::to_string(p.number) + " has no " + std::string(name) + " checksum.");
    values.push_back({p.checksum, p.size});
    out.part_values.push_back(p.checksum);
  }
  auto value = multipart_checksum(algorithm, values, full);
  if (!value)
    return fail(S3Error::kInvalidRequest, std::string(checksum_name(algorithm)) + " does not support the " +
                                              std::string(type_name(full)) + " checksum type.");
  out.value = std::move(*value);
  if (!expected.empty() && expected != out.value) {
    // A composite value may be sent with or without its "-N".
    std::string_view bare = std::string_view(out.value).substr(0, out.value.rfind('-'));
    if (full || expected != bare) return fail(S3Error::kBadDigest, "");
  }
  return std::optional<ObjectChecksum>(std::move(out));
}

std::optional<ObjectChecksum> stored_checksum(const MetaHeaders& h) {
  std::optional<ObjectChecksum> out;
  std::string_view type, parts;
  for (const auto& [k, v] : h) {
    if (auto a = checksum_from_header(k)) {
      out.emplace();
      out->algorithm = *a;
      out->value = v;
    } else if (k == kChecksumTypeHeader) {
      type = v;
    } else if (k == kPartChecksumsHeader) {
      parts = v;
    }
  }
  if (!out) return out;
  out->full_object =
      type.empty() ? out->value.find('-') == std::string::npos : core::iequals(type, "FULL_OBJECT");
  while (!parts.empty()) {
    size_t comma = parts.find(',');
    out->part_values.emplace_back(parts.substr(0, comma));
    if (comma == std::string_view::npos) break;
    parts.remove_prefix(comma + 1);
  }
  return out;
}

bool is_checksum_header(std::string_view name) {
  return name.rfind("x-amz-checksum-", 0) == 0;
}

bool is_internal_header(std::string_view name) {
  return name.rfind("x-cumulo-", 0) == 0;
}

void strip_checksum_headers(MetaHeaders& h) {
  std::erase_if(h, [](const auto& kv) {
    return is_checksum_header(kv.first) || kv.first == kChecksumAlgorithmHeader ||
           kv.first == kPartChecksumsHeader;
  });
}

void add_checksum_headers(MetaHeaders& h, const ObjectChecksum& c) {
  h.emplace_back(checksum_header(c.algorithm), c.value);
  h.emplace_back(kChecksumTypeHeader, type_name(c.full_object));
  if (!c.part_values.empty()) {
    std::string joined;
    for (const auto& v : c.part_values) {
      if (!joined.empty()) joined += ',';
      joined += v;
    }
    h.emplace_back(kPartChecksumsHeader, std::move(joined));
  }
}

}  // namespace cumulo::objstore
