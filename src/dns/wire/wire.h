// DNS wire format (RFC 1035 section 4, EDNS0 RFC 6891, Client Subnet RFC 7871): a bounds-checked cursor,
// names with compression, query parsing and response building. Nothing here knows about sockets or the event
// loop, so the fuzz targets link it alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace cumulo::dns::wire {

inline constexpr size_t kHeaderBytes = 12;
inline constexpr size_t kMaxNameBytes = 255;  // RFC 1035 section 2.3.4, wire form with the root label
inline constexpr size_t kMaxLabelBytes = 63;
inline constexpr size_t kMaxUdpPlain = 512;  // without EDNS (RFC 1035 section 4.2.1)
inline constexpr size_t kMaxMessage = 65535;

namespace type {
inline constexpr uint16_t kA = 1, kNS = 2, kCNAME = 5, kSOA = 6, kPTR = 12, kMX = 15, kTXT = 16, kAAAA = 28,
                          kSRV = 33, kOPT = 41, kIXFR = 251, kAXFR = 252, kANY = 255, kCAA = 257;
}
inline constexpr uint16_t kClassIN = 1;

enum class Rcode : uint16_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNxDomain = 3,
  kNotImp = 4,
  kRefused = 5,
  kNotAuth = 9,   // RFC 2136 section 2.2: not authoritative for the zone (AXFR of a zone not served)
  kBadVers = 16,  // extended (RFC 6891 section 6.1.3): the upper 8 bits travel in the OPT record
};
const char* rcode_name(Rcode r);
// "A", "AAAA", ... or "TYPE65" for the rest (RFC 3597 section 5).
std::string type_name(uint16_t type);
// Accepts the mnemonics above, case-insensitive, and "TYPEnnn".
std::optional<uint16_t> type_from_name(std::string_view name);

// Reads big-endian fields from a packet. The first read past the end fails the cursor and every later read
// returns zero, so a parser checks ok() once at the end instead of after every field (Knot's wire_ctx).
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t u8();
  uint16_t u16();
  uint32_t u32();
  // A view of the next n bytes, or nullptr (and a failed cursor) when fewer are left.
  const uint8_t* take(size_t n);
  void skip(size_t n) { (void)take(n); }
  void seek(size_t pos);
  void fail() {
    ok_ = false;
    pos_ = size_;
  }
  bool ok() const { return ok_; }
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// Reads a name at the cursor, following compression pointers, into `out` (at least kMaxNameBytes) in
// uncompressed wire form, lowercased when `lowercase`. Pointers must go strictly backwards from the start of
// the label sequence they interrupt, which rules out loops; the name may not exceed 255 bytes. Returns the
// wire length, or 0 with the cursor failed. The cursor ends after the name's first pointer (or its root
// label).
size_t read_name(Cursor& c, uint8_t* out, bool lowercase);

// Names as text: "www.example.com." <-> wire. Text escapes \. and \DDD are understood; `origin` completes a
// relative name (no trailing dot) and "@" is the origin itself. Wire names are lowercased. False on a bad
// name.
bool name_from_text(std::string_view text, std::string_view origin_wire, std::string& out);
std::string name_to_text(std::string_view wire);
// Appends `ch` as the \DDD escape of master files (RFC 1035 section 5.1: three decimal digits), for bytes
// that cannot stand as themselves; which bytes those are is each caller's (names, character-strings).
void append_decimal_escape(std::string& out, unsigned char ch);
// Reads the escape that starts at text[i] (a backslash): \DDD as that byte, \X as X. Advances `i` past it
// and returns the byte, or returns -1 for an escape cut short or a \DDD above 255. For names and
// character-strings alike.
int read_escape(std::string_view text, size_t& i);
// Number of labels, the root not counted.
int label_count(std::string_view wire);
// True when `name` equals `zone` or lies below it (both lowercase wire).
bool name_in_zone(std::string_view name, std::string_view zone);

struct ClientSubnet {
  uint16_t family = 0;        // 1 IPv4, 2 IPv6
  uint8_t source_prefix = 0;  // bits the client gave
  uint8_t address[16]{};      // zero-padded
};

// A parsed query. Views point into the packet; qname is a lowercased copy.
struct Query {
  uint16_t id = 0;
  uint16_t flags = 0;  // as received
  uint8_t opcode = 0;
  bool recursion_desired = false;
  uint16_t qdcount = 0, ancount = 0, nscount = 0, arcount = 0;
  uint8_t qname[kMaxNameBytes]{};
  size_t qname_len = 0;
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  size_t question_end = 0;  // packet offset just after the question, 0 when there is none
  bool has_edns = false;
  uint8_t edns_version = 0;
  bool dnssec_ok = false;
  uint16_t udp_payload = 512;  // the client's advertised size, clamped to at least 512
  std::optional<ClientSubnet> client_subnet;

  std::string_view name() const { return {reinterpret_cast<const char*>(qname), qname_len}; }
};

enum class ParseResult : uint8_t {
  kOk,
  kDrop,     // not answerable (too short for a header, or a response): ignore it, no reply (RFC 1035 7.3)
  kFormErr,  // malformed: answer FORMERR with the header (and the question if it parsed)
  kNotImp,   // opcode other than QUERY: NOTIMP (RFC 1035 section 4.1.1)
  kBadVers,  // EDNS version other than 0: BADVERS (RFC 6891 section 6.1.3)
};

// Parses a query; never reads outside `packet`. On kFormErr, q.question_end tells whether the question can be
// echoed.
[[nodiscard]] ParseResult parse_query(std::span<const uint8_t> packet, Query& q);

enum class Section : uint8_t { kAnswer, kAuthority, kAdditional };

// Builds a response in a caller's buffer: header and question copied from the query, records appended with
// name compression (RFC 1035 section 4.1.4), truncated at a size limit (RFC 2181 section 9: TC when the
// answer or authority section does not fit; additional records are left out silently), an OPT record at the
// end when the query had one.
class ResponseWriter {
 public:
  ResponseWriter(uint8_t* buf, size_t capacity) : buf_(buf), cap_(capacity) {}

  // Header and question of the answer to q (taken from `packet`); AA is set, RA never. The limit is the
  // size the reply may take (the EDNS payload or 512 for UDP, 65535 for TCP).
  void begin(const Query& q, std::span<const uint8_t> packet, size_t limit);
  // A header-only reply (FORMERR, NOTIMP) echoing the question when the query had a readable one.
  void begin_error(const Query& q, std::span<const uint8_t> packet, Rcode rcode);

  // Appends one record; rdata is uncompressed wire form. Names inside NS, CNAME, PTR, MX and SOA data are
  // compressed (RFC 3597 section 4 allows it for those types only). False when it did not fit: then answer
  // and authority records set TC and nothing more is added to those sections.
  bool add(Section s, std::string_view owner, uint16_t type, uint16_t rrclass, uint32_t ttl,
           std::string_view rdata);
  void set_rcode(Rcode r) { rcode_ = r; }
  Rcode rcode() const { return rcode_; }
  void set_authoritative(bool aa) { aa_ = aa; }
  // Echo a Client Subnet option in the OPT record with this scope (RFC 7871 section 7.2.1).
  void set_client_subnet(const ClientSubnet& ecs, uint8_t scope_prefix);
  bool truncated() const { return tc_; }
  // Rate limiting's slip answers (empty, TC set) and zone transfers' message splits (TC cleared) set it
  // directly.
  void set_truncated(bool tc) { tc_ = tc; }
  uint16_t count(Section s) const { return counts_[static_cast<int>(s) + 1]; }

  // Writes the counts, flags and OPT record; returns the message size.
  size_t finish();

 private:
  bool write_name(std::string_view name);
  size_t opt_bytes() const;
  struct Known {
    const uint8_t* name;  // lowercase uncompressed wire suffix, alive until finish()
    uint8_t len;
    uint16_t offset;
  };
  uint8_t* buf_;
  size_t cap_;
  size_t limit_ = kMaxUdpPlain;
  size_t pos_ = 0;
  uint16_t counts_[4]{};  // question, answer, authority, additional
  uint16_t id_ = 0;
  uint16_t query_flags_ = 0;
  Rcode rcode_ = Rcode::kNoError;
  bool aa_ = true;
  bool tc_ = false;
  bool section_closed_[3]{};
  bool edns_ = false;
  bool dnssec_ok_ = false;
  uint16_t edns_payload_ = 1232;
  std::optional<ClientSubnet> ecs_;
  uint8_t ecs_scope_ = 0;
  static constexpr int kMaxKnown = 48;
  Known known_[kMaxKnown];
  int known_count_ = 0;
};

// The payload size this server advertises in its OPT record (DNS flag day 2020's 1232).
inline constexpr uint16_t kServerEdnsPayload = 1232;

}  // namespace cumulo::dns::wire
