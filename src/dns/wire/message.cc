#include <algorithm>
#include <cstring>

#include "core/text.h"
#include "dns/wire/wire.h"

namespace cumulo::dns::wire {

namespace {

struct TypeName {
  uint16_t type;
  const char* name;
};
constexpr TypeName kTypeNames[] = {
    {type::kA, "A"},     {type::kNS, "NS"},   {type::kCNAME, "CNAME"}, {type::kSOA, "SOA"},
    {type::kPTR, "PTR"}, {type::kMX, "MX"},   {type::kTXT, "TXT"},     {type::kAAAA, "AAAA"},
    {type::kSRV, "SRV"}, {type::kOPT, "OPT"}, {type::kIXFR, "IXFR"},   {type::kAXFR, "AXFR"},
    {type::kANY, "ANY"}, {type::kCAA, "CAA"},
};

inline uint8_t lower(uint8_t ch) {
  return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

inline void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void put32(uint8_t* p, uint32_t v) {
  put16(p, static_cast<uint16_t>(v >> 16));
  put16(p + 2, static_cast<uint16_t>(v));
}

// Length of the uncompressed wire name at the start of `s` (0 when it is not one).
size_t wire_name_length(std::string_view s) {
  size_t p = 0;
  while (p < s.size()) {
    uint8_t l = static_cast<uint8_t>(s[p]);
    if (l == 0) return p + 1;
    if (l > kMaxLabelBytes) return 0;
    p += 1 + l;
  }
  return 0;
}

// Skips one resource record of a section the query should not have (answer, authority).
void skip_record(Cursor& c) {
  uint8_t name[kMaxNameBytes];
  if (read_name(c, name, false) == 0) return;
  c.skip(8);
  c.skip(c.u16());
}

}  // namespace

const char* rcode_name(Rcode r) {
  switch (r) {
    case Rcode::kNoError:
      return "NOERROR";
    case Rcode::kFormErr:
      return "FORMERR";
    case Rcode::kServFail:
      return "SERVFAIL";
    case Rcode::kNxDomain:
      return "NXDOMAIN";
    case Rcode::kNotImp:
      return "NOTIMP";
    case Rcode::kRefused:
      return "REFUSED";
    case Rcode::kNotAuth:
      return "NOTAUTH";
    case Rcode::kBadVers:
      return "BADVERS";
  }
  return "RCODE?";
}

std::string type_name(uint16_t t) {
  for (const auto& tn : kTypeNames)
    if (tn.type == t) return tn.name;
  return "TYPE" + std::to_string(t);
}

std::optional<uint16_t> type_from_name(std::string_view name) {
  const std::string up = core::to_upper(name);
  for (const auto& tn : kTypeNames)
    if (up == tn.name) return tn.type;
  if (up.size() > 4 && up.size() <= 9 && up.compare(0, 4, "TYPE") == 0) {
    uint32_t v = 0;
    for (size_t i = 4; i < up.size(); ++i) {
      if (up[i] < '0' || up[i] > '9') return std::nullopt;
      v = v * 10 + static_cast<uint32_t>(up[i] - '0');
    }
    if (v <= 65535) return static_cast<uint16_t>(v);
  }
  return std::nullopt;
}

// ---- Cursor

const uint8_t* Cursor::take(size_t n) {
  if (!ok_ || n > size_ - pos_) {
    fail();
    return nullptr;
  }
  const uint8_t* p = data_ + pos_;
  pos_ += n;
  return p;
}

uint8_t Cursor::u8() {
  const uint8_t* p = take(1);
  return p ? p[0] : 0;
}

uint16_t Cursor::u16() {
  const uint8_t* p = take(2);
  return p ? static_cast<uint16_t>(p[0] << 8 | p[1]) : 0;
}

uint32_t Cursor::u32() {
  const uint8_t* p = take(4);
  return p ? (uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3]) : 0;
}

void Cursor::seek(size_t pos) {
  if (!ok_ || pos > size_) {
    fail();
    return;
  }
  pos_ = pos;
}

// ---- names

size_t read_name(Cursor& c, uint8_t* out, bool lowercase) {
  if (!c.ok()) return 0;
  const uint8_t* d = c.data();
  const size_t size = c.size();
  size_t pos = c.pos();
  size_t limit = pos;  // a pointer must point before the label run it interrupts
  size_t resume = 0;   // where the cursor continues: after the first pointer, or after the root label
  bool jumped = false;
  size_t len = 0;
  for (;;) {
    if (pos >= size) break;
    uint8_t l = d[pos];
    if (l == 0) {
      out[len++] = 0;
      if (!jumped) resume = pos + 1;
      c.seek(resume);
      return len;
    }
    if ((l & 0xC0) == 0xC0) {
      if (pos + 1 >= size) break;
      size_t target = static_cast<size_t>(l & 0x3F) << 8 | d[pos + 1];
      if (target >= limit) break;
      if (!jumped) resume = pos + 2;
      jumped = true;
      limit = target;
      pos = target;
      continue;
    }
    if (l > kMaxLabelBytes) break;  // 0x40 and 0x80 label types are obsolete (RFC 6891 section 5)
    if (pos + 1 + l > size || len + 1 + l + 1 > kMaxNameBytes) break;
    out[len++] = l;
    const uint8_t* src = d + pos + 1;
    if (lowercase) {
      for (size_t i = 0; i < l; ++i) out[len + i] = lower(src[i]);
    } else {
      std::memcpy(out + len, src, l);
    }
    len += l;
    pos += 1 + l;
  }
  c.fail();
  return 0;
}

bool name_from_text(std::string_view text, std::string_view origin_wire, std::string& out) {
  out.clear();
  if (text == "@") {
    out.assign(origin_wire);
    return !out.empty();
  }
  if (text == ".") {
    out.push_back('\0');
    return true;
  }
  if (text.empty()) return false;
  std::string label;
  bool absolute = false;
  size_t i = 0;
  auto end_label = [&]() {
    if (label.empty() || label.size() > kMaxLabelBytes) return false;
    out.push_back(static_cast<char>(label.size()));
    out += label;
    label.clear();
    return true;
  };
  while (i < text.size()) {
    char ch = text[i];
    if (ch == '.') {
      if (!end_label()) return false;
      ++i;
      if (i == text.size()) absolute = true;
      continue;
    }
    if (ch == '\\') {
      const int v = read_escape(text, i);
      if (v < 0) return false;
      label.push_back(static_cast<char>(lower(static_cast<uint8_t>(v))));
      continue;
    }
    label.push_back(static_cast<char>(lower(static_cast<uint8_t>(ch))));
    ++i;
  }
  if (!absolute) {
    if (!end_label()) return false;
    if (origin_wire.empty()) return false;
    out.append(origin_wire);
  } else {
    out.push_back('\0');
  }
  return out.size() <= kMaxNameBytes;
}

void append_decimal_escape(std::string& out, unsigned char ch) {
  const char escape[4] = {'\\', static_cast<char>('0' + ch / 100), static_cast<char>('0' + ch / 10 % 10),
                          static_cast<char>('0' + ch % 10)};
  out.append(escape, sizeof escape);
}

int read_escape(std::string_view text, size_t& i) {
  if (i + 1 >= text.size()) return -1;
  if (!core::is_digit(text[i + 1])) {
    i += 2;
    return static_cast<unsigned char>(text[i - 1]);
  }
  if (i + 3 >= text.size() || !core::is_digit(text[i + 2]) || !core::is_digit(text[i + 3])) return -1;
  const int v = (text[i + 1] - '0') * 100 + (text[i + 2] - '0') * 10 + (text[i + 3] - '0');
  if (v > 255) return -1;
  i += 4;
  return v;
}

std::string name_to_text(std::string_view wire) {
  std::string out;
  size_t p = 0;
  while (p < wire.size()) {
    uint8_t l = static_cast<uint8_t>(wire[p]);
    if (l == 0) break;
    if (p + 1 + l > wire.size()) break;
    for (size_t i = 0; i < l; ++i) {
      auto ch = static_cast<unsigned char>(wire[p + 1 + i]);
      if (ch == '.' || ch == '\\' || ch == '"' || ch == ';' || ch == '(' || ch == ')') {
        out.push_back('\\');
        out.push_back(static_cast<char>(ch));
      } else if (ch <= ' ' || ch >= 127) {
        append_decimal_escape(out, ch);
      } else {
        out.push_back(static_cast<char>(ch));
      }
    }
    out.push_back('.');
    p += 1 + l;
  }
  if (out.empty()) out = ".";
  return out;
}

int label_count(std::string_view wire) {
  int n = 0;
  size_t p = 0;
  while (p < wire.size() && wire[p] != 0) {
    ++n;
    p += 1 + static_cast<uint8_t>(wire[p]);
  }
  return n;
}

bool name_in_zone(std::string_view name, std::string_view zone) {
  if (zone.size() > name.size()) return false;
  size_t p = 0;
  while (p < name.size()) {
    if (name.size() - p == zone.size()) return name.substr(p) == zone;
    if (name[p] == 0) return false;
    p += 1 + static_cast<uint8_t>(name[p]);
  }
  return false;
}

// ---- queries

ParseResult parse_query(std::span<const uint8_t> packet, Query& q) {
  q.question_end = 0;
  q.has_edns = false;
  q.client_subnet.reset();
  q.udp_payload = kMaxUdpPlain;
  q.qname_len = 0;
  if (packet.size() < kHeaderBytes) return ParseResult::kDrop;
  Cursor c(packet.data(), packet.size());
  q.id = c.u16();
  q.flags = c.u16();
  q.qdcount = c.u16();
  q.ancount = c.u16();
  q.nscount = c.u16();
  q.arcount = c.u16();
  if (q.flags & 0x8000) return ParseResult::kDrop;  // a response: answering could start a loop
  q.opcode = static_cast<uint8_t>((q.flags >> 11) & 0xF);
  q.recursion_desired = (q.flags & 0x0100) != 0;
  if (q.qdcount != 1) return q.opcode != 0 ? ParseResult::kNotImp : ParseResult::kFormErr;
  q.qname_len = read_name(c, q.qname, true);
  q.qtype = c.u16();
  q.qclass = c.u16();
  if (!c.ok()) {
    q.qname_len = 0;
    return q.opcode != 0 ? ParseResult::kNotImp : ParseResult::kFormErr;
  }
  q.question_end = c.pos();
  if (q.opcode != 0) return ParseResult::kNotImp;
  // Every record takes at least 11 bytes: absurd counts are refused before any loop runs on them.
  size_t records = size_t{q.ancount} + q.nscount + q.arcount;
  if (records * 11 > c.remaining()) return ParseResult::kFormErr;
  for (size_t i = 0; i < size_t{q.ancount} + q.nscount && c.ok(); ++i) skip_record(c);
  uint8_t name[kMaxNameBytes];
  for (size_t i = 0; i < q.arcount && c.ok(); ++i) {
    size_t nlen = read_name(c, name, false);
    uint16_t rtype = c.u16();
    uint16_t rclass = c.u16();
    uint32_t ttl = c.u32();
    uint16_t rdlen = c.u16();
    const uint8_t* rdata = c.take(rdlen);
    if (!c.ok()) break;
    if (rtype != type::kOPT) continue;
    // RFC 6891 section 6.1.1: one OPT record, owned by the root.
    if (q.has_edns || nlen != 1) return ParseResult::kFormErr;
    q.has_edns = true;
    q.udp_payload = std::max<uint16_t>(rclass, kMaxUdpPlain);
    q.edns_version = static_cast<uint8_t>(ttl >> 16);
    q.dnssec_ok = (ttl & 0x8000) != 0;
    Cursor o(rdata, rdlen);
    while (o.ok() && o.remaining() > 0) {
      uint16_t code = o.u16();
      uint16_t olen = o.u16();
      const uint8_t* val = o.take(olen);
      if (!o.ok()) return ParseResult::kFormErr;
      if (code != 8) continue;  // only Client Subnet (RFC 7871) matters here
      Cursor e(val, olen);
      ClientSubnet ecs;
      ecs.family = e.u16();
      ecs.source_prefix = e.u8();
      uint8_t scope = e.u8();
      size_t max_bits = ecs.family == 1 ? 32 : ecs.family == 2 ? 128 : 0;
      size_t addr_bytes = (ecs.source_prefix + 7u) / 8u;
      // RFC 7871 section 6: scope must be 0 in queries, the address no longer than the prefix needs.
      if (!e.ok() || max_bits == 0 || ecs.source_prefix > max_bits || scope != 0 ||
          e.remaining() != addr_bytes)
        return ParseResult::kFormErr;
      std::memcpy(ecs.address, e.take(addr_bytes), addr_bytes);
      if (q.client_subnet) return ParseResult::kFormErr;
      q.client_subnet = ecs;
    }
  }
  if (!c.ok()) return ParseResult::kFormErr;
  if (q.has_edns && q.edns_version != 0) return ParseResult::kBadVers;
  return ParseResult::kOk;
}

// ---- responses

void ResponseWriter::begin(const Query& q, std::span<const uint8_t> packet, size_t limit) {
  id_ = q.id;
  query_flags_ = q.flags;
  pos_ = kHeaderBytes;
  std::fill(std::begin(counts_), std::end(counts_), 0);
  std::fill(std::begin(section_closed_), std::end(section_closed_), false);
  known_count_ = 0;
  tc_ = false;
  aa_ = true;
  rcode_ = Rcode::kNoError;
  edns_ = q.has_edns;
  edns_payload_ = kServerEdnsPayload;
  dnssec_ok_ = q.dnssec_ok;
  ecs_.reset();
  limit_ = std::min(limit, cap_);
  if (q.question_end > kHeaderBytes && q.question_end <= packet.size() &&
      kHeaderBytes + q.qname_len + 4 <= cap_) {
    if (q.question_end - kHeaderBytes == q.qname_len + 4) {
      // Copied as sent, so the client sees its own case (0x20 randomisation).
      std::memcpy(buf_ + kHeaderBytes, packet.data() + kHeaderBytes, q.question_end - kHeaderBytes);
    } else {
      // The question's name was compressed (pointing into the query's header): written out in full instead.
      std::memcpy(buf_ + kHeaderBytes, q.qname, q.qname_len);
      put16(buf_ + kHeaderBytes + q.qname_len, q.qtype);
      put16(buf_ + kHeaderBytes + q.qname_len + 2, q.qclass);
    }
    pos_ = kHeaderBytes + q.qname_len + 4;
    counts_[0] = 1;
    // Every suffix of the question's name can be pointed at ("mail.example.com." after "www.example.com.").
    for (size_t p = 0; p < q.qname_len && q.qname[p] != 0 && known_count_ < kMaxKnown; p += 1u + q.qname[p])
      known_[known_count_++] = {q.qname + p, static_cast<uint8_t>(q.qname_len - p),
                                static_cast<uint16_t>(kHeaderBytes + p)};
  }
}

void ResponseWriter::begin_error(const Query& q, std::span<const uint8_t> packet, Rcode rcode) {
  begin(q, packet, kMaxUdpPlain);
  aa_ = false;
  rcode_ = rcode;
}

void ResponseWriter::set_client_subnet(const ClientSubnet& ecs, uint8_t scope_prefix) {
  ecs_ = ecs;
  ecs_scope_ = scope_prefix;
}

size_t ResponseWriter::opt_bytes() const {
  if (!edns_) return 0;
  size_t n = 11;
  if (ecs_) n += 8 + (ecs_->source_prefix + 7u) / 8u;
  return n;
}

bool ResponseWriter::write_name(std::string_view name) {
  const auto* n = reinterpret_cast<const uint8_t*>(name.data());
  const size_t len = name.size();
  size_t p = 0;
  int match = -1;
  while (p < len && n[p] != 0) {
    for (int k = 0; k < known_count_; ++k) {
      if (known_[k].len == len - p && std::memcmp(known_[k].name, n + p, len - p) == 0) {
        match = k;
        break;
      }
    }
    if (match >= 0) break;
    p += 1 + n[p];
  }
  // Labels [0, p) are written out, then either a pointer to a known suffix or the root label.
  size_t need = p + (match >= 0 ? 2 : 1);
  if (pos_ + need > cap_) return false;
  size_t q = 0;
  while (q < p) {
    if (pos_ < 0x4000 && known_count_ < kMaxKnown)
      known_[known_count_++] = {n + q, static_cast<uint8_t>(len - q), static_cast<uint16_t>(pos_)};
    uint8_t l = n[q];
    std::memcpy(buf_ + pos_, n + q, 1u + l);
    pos_ += 1u + l;
    q += 1u + l;
  }
  if (match >= 0) {
    put16(buf_ + pos_, static_cast<uint16_t>(0xC000 | known_[match].offset));
    pos_ += 2;
  } else {
    buf_[pos_++] = 0;
  }
  return true;
}

bool ResponseWriter::add(Section s, std::string_view owner, uint16_t rtype, uint16_t rrclass, uint32_t ttl,
                         std::string_view rdata) {
  int si = static_cast<int>(s);
  if (section_closed_[si]) return false;
  const size_t saved_pos = pos_;
  const int saved_known = known_count_;
  bool ok = write_name(owner) && pos_ + 10 <= cap_;
  size_t rdlen_at = 0;
  if (ok) {
    put16(buf_ + pos_, rtype);
    put16(buf_ + pos_ + 2, rrclass);
    put32(buf_ + pos_ + 4, ttl);
    rdlen_at = pos_ + 8;
    pos_ += 10;
    size_t rstart = pos_;
    auto raw = [&](std::string_view bytes) {
      if (pos_ + bytes.size() > cap_) return false;
      std::memcpy(buf_ + pos_, bytes.data(), bytes.size());
      pos_ += bytes.size();
      return true;
    };
    switch (rtype) {
      case type::kNS:
      case type::kCNAME:
      case type::kPTR:
        ok = wire_name_length(rdata) == rdata.size() ? write_name(rdata) : raw(rdata);
        break;
      case type::kMX:
        if (rdata.size() > 2 && wire_name_length(rdata.substr(2)) == rdata.size() - 2) {
          ok = raw(rdata.substr(0, 2)) && write_name(rdata.substr(2));
        } else {
          ok = raw(rdata);
        }
        break;
      case type::kSOA: {
        size_t m = wire_name_length(rdata);
        size_t r = m ? wire_name_length(rdata.substr(m)) : 0;
        if (m && r && rdata.size() == m + r + 20) {
          ok = write_name(rdata.substr(0, m)) && write_name(rdata.substr(m, r)) && raw(rdata.substr(m + r));
        } else {
          ok = raw(rdata);
        }
        break;
      }
      default:
        ok = raw(rdata);
    }
    if (ok) put16(buf_ + rdlen_at, static_cast<uint16_t>(pos_ - rstart));
  }
  if (!ok || pos_ + opt_bytes() > limit_) {
    pos_ = saved_pos;
    known_count_ = saved_known;
    section_closed_[2] = true;
    if (s != Section::kAdditional) {
      tc_ = true;
      section_closed_[0] = section_closed_[1] = true;
    }
    return false;
  }
  ++counts_[si + 1];
  return true;
}

size_t ResponseWriter::finish() {
  uint16_t rc = static_cast<uint16_t>(rcode_);
  if (rc > 15 && !edns_) rc = static_cast<uint16_t>(Rcode::kServFail);
  // Records were fitted with room for the OPT record; a Client Subnet option set afterwards is left out
  // rather than overflow the limit.
  if (ecs_ && pos_ + opt_bytes() > limit_) ecs_.reset();
  if (edns_ && pos_ + opt_bytes() <= cap_) {
    uint8_t* p = buf_ + pos_;
    p[0] = 0;
    put16(p + 1, type::kOPT);
    put16(p + 3, edns_payload_);
    // TTL field: extended rcode, version 0, and the DO bit copied from the query (RFC 3225 section 3).
    put32(p + 5, static_cast<uint32_t>(rc >> 4) << 24 | (dnssec_ok_ ? 0x8000u : 0u));
    size_t rdlen = 0;
    if (ecs_) {
      size_t addr = (ecs_->source_prefix + 7u) / 8u;
      uint8_t* o = p + 11;
      put16(o, 8);
      put16(o + 2, static_cast<uint16_t>(4 + addr));
      put16(o + 4, ecs_->family);
      o[6] = ecs_->source_prefix;
      o[7] = ecs_scope_;
      std::memcpy(o + 8, ecs_->address, addr);
      rdlen = 8 + addr;
    }
    put16(p + 9, static_cast<uint16_t>(rdlen));
    pos_ += 11 + rdlen;
    ++counts_[3];
  }
  uint16_t flags = 0x8000 | (query_flags_ & 0x7800) | (query_flags_ & 0x0100) | (rc & 0xF);
  if (aa_) flags |= 0x0400;
  if (tc_) flags |= 0x0200;
  put16(buf_, id_);
  put16(buf_ + 2, flags);
  for (int i = 0; i < 4; ++i) put16(buf_ + 4 + 2 * i, counts_[i]);
  return pos_;
}

}  // namespace cumulo::dns::wire
