// Builds queries and decodes responses for the DNS unit tests, independently of ResponseWriter.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dns/wire/wire.h"
#include "dns/wire/zone_file.h"

namespace cumulo::dns::test {

inline void put16(std::vector<uint8_t>& v, uint16_t x) {
  v.push_back(static_cast<uint8_t>(x >> 8));
  v.push_back(static_cast<uint8_t>(x));
}

inline std::string wire_name(const std::string& text) {
  std::string w;
  if (!wire::name_from_text(text, "", w)) throw std::runtime_error("bad test name " + text);
  return w;
}

struct QueryOptions {
  bool edns = false;
  uint16_t payload = 1232;
  uint16_t flags = 0x0100;
  int ecs_family = 0;  // 1 or 2
  uint8_t ecs_prefix = 0;
  std::vector<uint8_t> ecs_address;
  std::string raw_name;  // wire name as is (mixed case etc.)
};

inline std::vector<uint8_t> make_query(const std::string& name, uint16_t qtype, QueryOptions o = {}) {
  std::vector<uint8_t> p;
  put16(p, 0xBEEF);
  put16(p, o.flags);
  put16(p, 1);
  put16(p, 0);
  put16(p, 0);
  put16(p, o.edns ? 1 : 0);
  std::string w = o.raw_name.empty() ? wire_name(name) : o.raw_name;
  p.insert(p.end(), w.begin(), w.end());
  put16(p, qtype);
  put16(p, 1);
  if (o.edns) {
    p.push_back(0);
    put16(p, 41);
    put16(p, o.payload);
    put16(p, 0);
    put16(p, 0);
    std::vector<uint8_t> opt;
    if (o.ecs_family) {
      put16(opt, 8);
      put16(opt, static_cast<uint16_t>(4 + o.ecs_address.size()));
      put16(opt, static_cast<uint16_t>(o.ecs_family));
      opt.push_back(o.ecs_prefix);
      opt.push_back(0);
      opt.insert(opt.end(), o.ecs_address.begin(), o.ecs_address.end());
    }
    put16(p, static_cast<uint16_t>(opt.size()));
    p.insert(p.end(), opt.begin(), opt.end());
  }
  return p;
}

struct DecodedRR {
  std::string name;
  uint16_t type = 0;
  uint32_t ttl = 0;
  std::string text;
};

struct Decoded {
  bool ok = false;
  uint16_t id = 0;
  uint16_t flags = 0;
  int rcode = 0;
  bool aa = false, tc = false;
  uint16_t qd = 0;
  std::vector<DecodedRR> answer, authority, additional;
};

// Decodes a response (names decompressed, RDATA of the types with names decompressed too).
inline Decoded decode(const uint8_t* data, size_t size) {
  Decoded d;
  wire::Cursor c(data, size);
  d.id = c.u16();
  d.flags = c.u16();
  d.qd = c.u16();
  uint16_t counts[3] = {c.u16(), c.u16(), c.u16()};
  d.rcode = d.flags & 0xF;
  d.aa = d.flags & 0x0400;
  d.tc = d.flags & 0x0200;
  uint8_t name[255];
  for (int i = 0; i < d.qd; ++i) {
    wire::read_name(c, name, false);
    c.skip(4);
  }
  std::vector<DecodedRR>* sections[3] = {&d.answer, &d.authority, &d.additional};
  for (int s = 0; s < 3; ++s) {
    for (int i = 0; i < counts[s]; ++i) {
      DecodedRR rr;
      size_t n = wire::read_name(c, name, false);
      rr.name = wire::name_to_text({reinterpret_cast<char*>(name), n});
      rr.type = c.u16();
      c.u16();
      rr.ttl = c.u32();
      uint16_t rdlen = c.u16();
      size_t start = c.pos();
      if (!c.ok()) return d;
      std::string rd;
      auto add_name = [&]() {
        size_t l = wire::read_name(c, name, false);
        rd.append(reinterpret_cast<char*>(name), l);
      };
      if (rr.type == wire::type::kCNAME || rr.type == wire::type::kNS || rr.type == wire::type::kPTR) {
        add_name();
      } else if (rr.type == wire::type::kMX) {
        const uint8_t* p = c.take(2);
        if (p) rd.append(reinterpret_cast<const char*>(p), 2);
        add_name();
      } else if (rr.type == wire::type::kSOA) {
        add_name();
        add_name();
        const uint8_t* p = c.take(20);
        if (p) rd.append(reinterpret_cast<const char*>(p), 20);
      } else {
        const uint8_t* p = c.take(rdlen);
        if (p) rd.append(reinterpret_cast<const char*>(p), rdlen);
      }
      c.seek(start + rdlen);
      rr.text = wire::rdata_to_text(rr.type, rd);
      if (rr.type != wire::type::kOPT) sections[s]->push_back(rr);
    }
  }
  d.ok = c.ok();
  return d;
}

}  // namespace cumulo::dns::test
