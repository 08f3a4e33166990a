// Query parsing and response building on arbitrary bytes: the parser must never read outside the packet, and
// whatever it accepts must turn into a response that fits its limit and parses back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "dns/wire/wire.h"

using namespace cumulo::dns::wire;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Query q;
  ParseResult r = parse_query(std::span<const uint8_t>(data, size), q);
  static uint8_t buf[kMaxMessage];
  ResponseWriter w(buf, sizeof buf);
  switch (r) {
    case ParseResult::kDrop:
      return 0;
    case ParseResult::kOk: {
      size_t limit = q.has_edns ? q.udp_payload : kMaxUdpPlain;
      w.begin(q, std::span<const uint8_t>(data, size), limit);
      // The question's own name as owner and as RDATA exercises compression against the copied question.
      std::string_view name = q.name();
      for (int i = 0; i < 40; ++i) {
        if (!w.add(Section::kAnswer, name, type::kCNAME, kClassIN, 60, name)) break;
      }
      std::string mx = std::string("\0\1", 2) + std::string(name);
      (void)w.add(Section::kAdditional, name, type::kMX, kClassIN, 60, mx);
      if (q.client_subnet) w.set_client_subnet(*q.client_subnet, q.client_subnet->source_prefix);
      size_t n = w.finish();
      if (n > std::max<size_t>(limit, kMaxUdpPlain) && !(q.question_end > limit)) abort();
      // The response must parse as a message: header, then its question's name.
      Cursor c(buf, n);
      c.skip(kHeaderBytes);
      uint8_t out[kMaxNameBytes];
      if (q.question_end > kHeaderBytes && read_name(c, out, true) != q.qname_len) abort();
      return 0;
    }
    default:
      w.begin_error(q, std::span<const uint8_t>(data, size), Rcode::kFormErr);
      (void)w.finish();
      return 0;
  }
}
