// libFuzzer target for the flexible-checksum helpers that read client input: checksum names, strict base64,
// and multipart checksums built from parts' values. Differential checks: base64 decodes only what it
// re-encodes identically, and a FULL_OBJECT CRC combined from any split of the data equals the CRC of the
// whole data.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "objstore/wire/checksum.h"

namespace {

using cumulo::objstore::ChecksumAlgorithm;
using cumulo::objstore::Checksummer;
using cumulo::objstore::PartChecksum;

void check(bool ok) {
  if (!ok) std::abort();
}

std::string digest(ChecksumAlgorithm a, std::string_view data) {
  Checksummer c(a);
  c.update(data);
  return c.base64();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  using namespace cumulo::objstore;
  const auto alg = static_cast<ChecksumAlgorithm>(data[0] % 5);
  const size_t cuts = data[1] % 8;
  std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);

  // Names and base64 as clients send them.
  if (auto a = checksum_from_header(in)) check(checksum_from_header(checksum_header(*a)) == a);
  if (auto a = checksum_from_name(in)) check(checksum_from_name(checksum_name(*a)) == a);
  if (auto raw = base64_decode(in)) check(base64_encode(*raw) == in);

  // The input as a comma-separated list of part checksums: any text, never a crash; a result is well formed.
  std::vector<PartChecksum> given;
  for (std::string_view rest = in; !rest.empty() && given.size() < 16;) {
    size_t comma = rest.find(',');
    given.push_back({std::string(rest.substr(0, comma)), rest.size()});
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
  }
  for (bool full : {false, true})
    if (auto v = multipart_checksum(alg, given, full)) check(full || v->find('-') != std::string::npos);

  // The input as object data, split into parts at positions taken from its own bytes.
  if (is_crc(alg)) {
    std::vector<PartChecksum> parts;
    size_t start = 0;
    for (size_t i = 0; i < cuts && i < in.size(); ++i) {
      size_t cut = start + static_cast<unsigned char>(in[i]) % (in.size() - start + 1);
      parts.push_back({digest(alg, in.substr(start, cut - start)), cut - start});
      start = cut;
    }
    parts.push_back({digest(alg, in.substr(start)), in.size() - start});
    check(multipart_checksum(alg, parts, true) == digest(alg, in));
  }
  return 0;
}
