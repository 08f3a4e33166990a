// RFC 1035 section 5 master files ("zone files"): $ORIGIN, $TTL, parentheses, comments, quoted strings,
// relative names and "@", the owner carried over from the previous record, TTL and class in either order, and
// the RDATA of SOA NS A AAAA CNAME PTR MX TXT SRV CAA plus RFC 3597's generic "\# LEN HEX". Free of the event
// loop: a fuzz target links it alone.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cumulo::dns::wire {

struct ZoneRecord {
  std::string owner;  // lowercase uncompressed wire
  uint16_t type = 0;
  uint32_t ttl = 0;
  std::string rdata;  // uncompressed wire, names lowercased
  int line = 0;
};

struct ZoneParseError {
  int line = 0;
  std::string message;  // what was found and what was expected
};

// Parses a whole zone file. `origin_wire` is the starting $ORIGIN (the zone's name). Returns false with
// *error set at the first problem.
[[nodiscard]] bool parse_zone_file(std::string_view text, std::string_view origin_wire, uint32_t default_ttl,
                                   std::vector<ZoneRecord>& out, ZoneParseError* error);

// RDATA of one record from its presentation tokens (quotes already removed from TXT/CAA strings, which are
// marked by a leading '"' kept on the token). False with *error set on a bad value.
[[nodiscard]] bool rdata_from_text(uint16_t type, const std::vector<std::string>& tokens,
                                   std::string_view origin_wire, std::string& out, std::string* error);
// Presentation form of RDATA ("10 mail.example.com.", "\"v=spf1 -all\"").
std::string rdata_to_text(uint16_t type, std::string_view rdata);

// "300", "5m", "1h30m", "2d", "1w" (BIND's TTL units).
std::optional<uint32_t> parse_ttl(std::string_view text);

// Splits one record's text ("www 300 IN A 192.0.2.1", RDATA only "10 mail") into tokens as the zone file
// parser does (quoted strings keep a leading '"').
std::vector<std::string> tokenize_line(std::string_view text);

}  // namespace cumulo::dns::wire
