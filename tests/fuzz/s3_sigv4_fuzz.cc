// libFuzzer target for the SigV4 parsers: the Authorization header, the presigned query, percent-decoding and
// the canonical query and URI. None may crash or read out of bounds; what they accept must be consistent (a
// parsed signature is 64 hex digits, a decoded-then-encoded string decodes back to itself).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "objstore/wire/sigv4.h"

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cumulo::objstore;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const char* why = "";
  SigV4Params a;
  if (parse_authorization_header(in, a, &why)) {
    check(a.signature.size() == 64);
    check(!a.access_key.empty() && a.date.size() == 8);
  }
  SigV4Params p;
  if (parse_presigned_query(in, p, &why)) {
    check(p.signature.size() == 64);
    check(p.expires_s >= 1 && p.expires_s <= 604800);
  }
  std::string decoded, again;
  if (percent_decode(in, decoded)) {
    check(percent_decode(uri_encode(decoded, true), again));
    check(again == decoded);
  }
  (void)canonical_query(in, true);
  (void)canonical_uri(in);
  (void)parse_amz_date(in);
  HeaderPairs headers = {{"host", std::string(in.substr(0, 64))}, {"x-amz-date", "20130524T000000Z"}};
  (void)canonical_request("GET", "/", "", headers, in.substr(0, 40), kUnsignedPayload);
  return 0;
}
