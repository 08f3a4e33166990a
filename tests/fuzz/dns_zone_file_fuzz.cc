// The zone file parser on arbitrary text: no crash, and every record it returns prints and parses back to the
// same RDATA.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "dns/wire/wire.h"
#include "dns/wire/zone_file.h"

using namespace cumulo::dns::wire;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  static const std::string origin("\7example\3com\0", 13);
  std::vector<ZoneRecord> records;
  ZoneParseError err;
  if (!parse_zone_file(text, origin, 3600, records, &err)) return 0;
  for (const auto& r : records) {
    if (r.owner.empty() || r.owner.size() > kMaxNameBytes) abort();
    std::string printed = rdata_to_text(r.type, r.rdata);
    std::string again;
    if (!rdata_from_text(r.type, tokenize_line(printed), origin, again, nullptr)) abort();
    // Names are lowercased when read from text, so compare without case.
    auto lower = [](std::string v) {
      for (char& ch : v)
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + 32);
      return v;
    };
    if (lower(again) != lower(r.rdata)) abort();
  }
  return 0;
}
