#include "dns/wire/zone_file.h"

#include <arpa/inet.h>

#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "core/text.h"
#include "dns/wire/wire.h"

namespace cumulo::dns::wire {

namespace {

struct Entry {
  int line = 0;
  bool continues_owner = false;  // began with a blank: the previous owner
  std::vector<std::string> tokens;
};

// Decodes \X and \DDD in a character string; false on a bad escape.
bool decode_escapes(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size();) {
    if (in[i] != '\\') {
      out.push_back(in[i++]);
      continue;
    }
    const int v = read_escape(in, i);
    if (v < 0) return false;
    out.push_back(static_cast<char>(v));
  }
  return true;
}

// Splits the file into entries: parentheses join lines, ';' starts a comment, quoted strings are one token.
bool split_entries(std::string_view text, std::vector<Entry>& entries, ZoneParseError* error) {
  int line = 1;
  int depth = 0;
  Entry cur;
  bool at_line_start = true;
  auto flush = [&]() {
    if (!cur.tokens.empty()) entries.push_back(std::move(cur));
    cur = Entry{};
  };
  size_t i = 0;
  while (i < text.size()) {
    char ch = text[i];
    if (ch == '\n') {
      ++line;
      ++i;
      if (depth == 0) {
        flush();
        at_line_start = true;
      }
      continue;
    }
    if (ch == ' ' || ch == '\t' || ch == '\r') {
      if (at_line_start && depth == 0 && cur.tokens.empty()) {
        cur.continues_owner = true;
        cur.line = line;
      }
      at_line_start = false;
      ++i;
      continue;
    }
    at_line_start = false;
    if (ch == ';') {
      while (i < text.size() && text[i] != '\n') ++i;
      continue;
    }
    if (cur.tokens.empty()) cur.line = line;
    if (ch == '(') {
      ++depth;
      ++i;
      continue;
    }
    if (ch == ')') {
      if (depth == 0) {
        if (error) *error = {line, "')' without a matching '('"};
        return false;
      }
      --depth;
      ++i;
      continue;
    }
    if (ch == '"') {
      std::string tok = "\"";
      ++i;
      bool closed = false;
      while (i < text.size()) {
        if (text[i] == '\\' && i + 1 < text.size()) {
          tok.push_back(text[i]);
          tok.push_back(text[i + 1]);
          i += 2;
          continue;
        }
        if (text[i] == '"') {
          closed = true;
          ++i;
          break;
        }
        if (text[i] == '\n') ++line;
        tok.push_back(text[i++]);
      }
      if (!closed) {
        if (error) *error = {line, "unterminated quoted string"};
        return false;
      }
      cur.tokens.push_back(std::move(tok));
      continue;
    }
    std::string tok;
    while (i < text.size()) {
      char c = text[i];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';' || c == '(' || c == ')' || c == '"')
        break;
      if (c == '\\' && i + 1 < text.size()) {
        tok.push_back(c);
        tok.push_back(text[i + 1]);
        i += 2;
        continue;
      }
      tok.push_back(c);
      ++i;
    }
    cur.tokens.push_back(std::move(tok));
  }
  if (depth != 0) {
    if (error) *error = {line, "'(' without a matching ')' at the end of the file"};
    return false;
  }
  flush();
  return true;
}

template <typename T>
bool parse_uint(std::string_view s, T& v, uint64_t max) {
  uint64_t x = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
  if (ec != std::errc() || end != s.data() + s.size() || x > max) return false;
  v = static_cast<T>(x);
  return true;
}

void put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}
void put32(std::string& out, uint32_t v) {
  put16(out, static_cast<uint16_t>(v >> 16));
  put16(out, static_cast<uint16_t>(v));
}
uint16_t get16(std::string_view s, size_t p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(s[p]) << 8 | static_cast<uint8_t>(s[p + 1]));
}
uint32_t get32(std::string_view s, size_t p) {
  return uint32_t{get16(s, p)} << 16 | get16(s, p + 2);
}

size_t name_len(std::string_view s, size_t from) {
  size_t p = from;
  while (p < s.size()) {
    auto l = static_cast<uint8_t>(s[p]);
    if (l == 0) return p + 1 - from;
    if (l > kMaxLabelBytes) return 0;
    p += 1 + l;
  }
  return 0;
}

// A character string token: quoted (leading '"') or bare; escapes decoded.
bool char_string(const std::string& tok, std::string& out) {
  std::string_view body = tok;
  if (!body.empty() && body.front() == '"') body.remove_prefix(1);
  return decode_escapes(body, out);
}

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(ch));
    } else if (ch < ' ' || ch >= 127) {
      append_decimal_escape(out, ch);
    } else {
      out.push_back(static_cast<char>(ch));
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace

std::optional<uint32_t> parse_ttl(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t total = 0, cur = 0;
  bool digits = false, any_unit = false;
  for (char ch : text) {
    if (ch >= '0' && ch <= '9') {
      cur = cur * 10 + static_cast<uint64_t>(ch - '0');
      digits = true;
      if (cur > 0xFFFFFFFFull) return std::nullopt;
      continue;
    }
    uint64_t mul = 0;
    switch (core::to_lower(ch)) {
      case 's':
        mul = 1;
        break;
      case 'm':
        mul = 60;
        break;
      case 'h':
        mul = 3600;
        break;
      case 'd':
        mul = 86400;
        break;
      case 'w':
        mul = 604800;
        break;
      default:
        return std::nullopt;
    }
    if (!digits) return std::nullopt;
    total += cur * mul;
    cur = 0;
    digits = false;
    any_unit = true;
  }
  if (digits) {
    if (any_unit) return std::nullopt;  // "1h30" is ambiguous
    total += cur;
  }
  if (total > 0x7FFFFFFFull) return std::nullopt;  // RFC 2181 section 8
  return static_cast<uint32_t>(total);
}

std::vector<std::string> tokenize_line(std::string_view text) {
  std::vector<Entry> entries;
  std::vector<std::string> out;
  if (!split_entries(text, entries, nullptr)) return out;
  for (auto& e : entries)
    for (auto& t : e.tokens) out.push_back(std::move(t));
  return out;
}

bool rdata_from_text(uint16_t rtype, const std::vector<std::string>& tokens, std::string_view origin,
                     std::string& out, std::string* error) {
  out.clear();
  auto fail = [&](const std::string& what) {
    if (error) *error = what;
    return false;
  };
  auto count = [&](size_t n) {
    if (tokens.size() == n) return true;
    if (error)
      *error = type_name(rtype) + " takes " + std::to_string(n) + " value(s), got " +
               std::to_string(tokens.size());
    return false;
  };
  std::string name;
  auto add_name = [&](const std::string& text) {
    if (!name_from_text(text, origin, name)) return fail("bad domain name '" + text + "'");
    out += name;
    return true;
  };
  if (!tokens.empty() && tokens[0] == "\\#") {  // RFC 3597 section 5
    size_t len = 0;
    if (tokens.size() < 2 || !parse_uint(tokens[1], len, 65535)) return fail("\\# needs a length");
    std::string hex;
    for (size_t i = 2; i < tokens.size(); ++i) hex += tokens[i];
    if (hex.size() != len * 2) return fail("\\# length does not match the hex data");
    for (size_t i = 0; i < len; ++i) {
      unsigned v = 0;
      auto [end, ec] = std::from_chars(hex.data() + i * 2, hex.data() + i * 2 + 2, v, 16);
      if (ec != std::errc() || end != hex.data() + i * 2 + 2) return fail("bad hex in \\# data");
      out.push_back(static_cast<char>(v));
    }
    return true;
  }
  switch (rtype) {
    case type::kA: {
      if (!count(1)) return false;
      in_addr a{};
      if (inet_pton(AF_INET, tokens[0].c_str(), &a) != 1) return fail("bad IPv4 address '" + tokens[0] + "'");
      out.assign(reinterpret_cast<const char*>(&a), 4);
      return true;
    }
    case type::kAAAA: {
      if (!count(1)) return false;
      in6_addr a{};
      if (inet_pton(AF_INET6, tokens[0].c_str(), &a) != 1)
        return fail("bad IPv6 address '" + tokens[0] + "'");
      out.assign(reinterpret_cast<const char*>(&a), 16);
      return true;
    }
    case type::kNS:
    case type::kCNAME:
    case type::kPTR:
      return count(1) && add_name(tokens[0]);
    case type::kMX: {
      uint16_t pref = 0;
      if (!count(2)) return false;
      if (!parse_uint(tokens[0], pref, 65535)) return fail("bad MX preference '" + tokens[0] + "'");
      put16(out, pref);
      return add_name(tokens[1]);
    }
    case type::kTXT: {
      if (tokens.empty()) return fail("TXT needs at least one string");
      std::string s;
      for (const auto& t : tokens) {
        if (!char_string(t, s)) return fail("bad escape in TXT string");
        if (s.size() > 255) return fail("TXT string longer than 255 bytes (split it into several strings)");
        out.push_back(static_cast<char>(s.size()));
        out += s;
      }
      return true;
    }
    case type::kSRV: {
      uint16_t prio = 0, weight = 0, port = 0;
      if (!count(4)) return false;
      if (!parse_uint(tokens[0], prio, 65535) || !parse_uint(tokens[1], weight, 65535) ||
          !parse_uint(tokens[2], port, 65535))
        return fail("SRV wants PRIORITY WEIGHT PORT TARGET");
      put16(out, prio);
      put16(out, weight);
      put16(out, port);
      return add_name(tokens[3]);
    }
    case type::kCAA: {
      uint8_t flags = 0;
      if (!count(3)) return false;
      if (!parse_uint(tokens[0], flags, 255)) return fail("bad CAA flags '" + tokens[0] + "'");
      const std::string& tag = tokens[1];
      if (tag.empty() || tag.size() > 15) return fail("CAA tag must have 1 to 15 characters");
      for (char ch : tag)
        if (!core::is_alnum(ch)) return fail("CAA tag must be letters and digits");
      std::string value;
      if (!char_string(tokens[2], value)) return fail("bad escape in CAA value");
      out.push_back(static_cast<char>(flags));
      out.push_back(static_cast<char>(tag.size()));
      out += core::to_lower(tag);
      out += value;
      return true;
    }
    case type::kSOA: {
      if (!count(7)) return false;
      if (!add_name(tokens[0]) || !add_name(tokens[1])) return false;
      uint32_t serial = 0;
      if (!parse_uint(tokens[2], serial, 0xFFFFFFFFull)) return fail("bad SOA serial '" + tokens[2] + "'");
      put32(out, serial);
      for (int i = 3; i < 7; ++i) {
        auto v = parse_ttl(tokens[i]);
        if (!v) return fail("bad SOA timer '" + tokens[i] + "'");
        put32(out, *v);
      }
      return true;
    }
    default:
      return fail("type " + type_name(rtype) + " is only accepted in the generic form \\# LENGTH HEX");
  }
}

std::string rdata_to_text(uint16_t rtype, std::string_view rd) {
  char buf[INET6_ADDRSTRLEN];
  auto generic = [&]() {
    std::string s = "\\# " + std::to_string(rd.size());
    if (!rd.empty()) s += " ";
    for (unsigned char ch : rd) {
      char h[3];
      std::snprintf(h, sizeof h, "%02x", ch);
      s += h;
    }
    return s;
  };
  switch (rtype) {
    case type::kA:
      if (rd.size() != 4) return generic();
      return inet_ntop(AF_INET, rd.data(), buf, sizeof buf);
    case type::kAAAA:
      if (rd.size() != 16) return generic();
      return inet_ntop(AF_INET6, rd.data(), buf, sizeof buf);
    case type::kNS:
    case type::kCNAME:
    case type::kPTR:
      // Empty RDATA (read from "\# 0") is no name at all, not the root name.
      if (rd.empty() || name_len(rd, 0) != rd.size()) return generic();
      return name_to_text(rd);
    case type::kMX:
      if (rd.size() < 3 || name_len(rd, 2) != rd.size() - 2) return generic();
      return std::to_string(get16(rd, 0)) + " " + name_to_text(rd.substr(2));
    case type::kSRV:
      if (rd.size() < 7 || name_len(rd, 6) != rd.size() - 6) return generic();
      return std::to_string(get16(rd, 0)) + " " + std::to_string(get16(rd, 2)) + " " +
             std::to_string(get16(rd, 4)) + " " + name_to_text(rd.substr(6));
    case type::kTXT: {
      if (rd.empty()) return generic();
      std::string s;
      size_t p = 0;
      while (p < rd.size()) {
        size_t l = static_cast<uint8_t>(rd[p]);
        if (p + 1 + l > rd.size()) return generic();
        if (!s.empty()) s += " ";
        s += quote(rd.substr(p + 1, l));
        p += 1 + l;
      }
      return s;
    }
    case type::kCAA: {
      if (rd.size() < 2 || rd.size() < 2u + static_cast<uint8_t>(rd[1])) return generic();
      size_t tl = static_cast<uint8_t>(rd[1]);
      if (tl == 0 || tl > 15) return generic();
      for (size_t i = 0; i < tl; ++i)
        if (!core::is_alnum(rd[2 + i])) return generic();
      return std::to_string(static_cast<uint8_t>(rd[0])) + " " + std::string(rd.substr(2, tl)) + " " +
             quote(rd.substr(2 + tl));
    }
    case type::kSOA: {
      size_t m = name_len(rd, 0);
      size_t r = m ? name_len(rd, m) : 0;
      if (!m || !r || rd.size() != m + r + 20) return generic();
      std::string s = name_to_text(rd.substr(0, m)) + " " + name_to_text(rd.substr(m, r));
      for (int i = 0; i < 5; ++i) s += " " + std::to_string(get32(rd, m + r + 4 * i));
      return s;
    }
    default:
      return generic();
  }
}

bool parse_zone_file(std::string_view text, std::string_view origin_wire, uint32_t default_ttl,
                     std::vector<ZoneRecord>& out, ZoneParseError* error) {
  std::vector<Entry> entries;
  if (!split_entries(text, entries, error)) return false;
  std::string origin(origin_wire);
  std::string owner;
  std::optional<uint32_t> dollar_ttl;
  auto fail = [&](int line, std::string msg) {
    if (error) *error = {line, std::move(msg)};
    return false;
  };
  for (Entry& e : entries) {
    auto& t = e.tokens;
    if (!t[0].empty() && t[0][0] == '$' && !e.continues_owner) {
      if (t[0] == "$ORIGIN") {
        std::string o;
        if (t.size() != 2 || !name_from_text(t[1], origin, o))
          return fail(e.line, "$ORIGIN wants one domain name");
        origin = o;
      } else if (t[0] == "$TTL") {
        if (t.size() != 2 || !(dollar_ttl = parse_ttl(t[1])))
          return fail(e.line, "$TTL wants one TTL (300, 1h)");
      } else if (t[0] == "$INCLUDE") {
        return fail(e.line, "$INCLUDE is not supported: put the records in this file");
      } else {
        return fail(e.line, "unknown directive '" + t[0] + "' (expected $ORIGIN or $TTL)");
      }
      continue;
    }
    size_t i = 0;
    if (!e.continues_owner) {
      if (!name_from_text(t[0], origin, owner)) return fail(e.line, "bad owner name '" + t[0] + "'");
      i = 1;
    } else if (owner.empty()) {
      return fail(e.line, "record without an owner name (the first record must name one)");
    }
    std::optional<uint32_t> ttl;
    std::optional<uint16_t> rtype;
    for (int k = 0; k < 3 && i < t.size() && !rtype; ++k) {
      const std::string& tok = t[i];
      const std::string up = core::to_upper(tok);
      if (up == "IN") {
        ++i;
      } else if (up == "CH" || up == "HS" || up == "CS") {
        return fail(e.line, "class " + up + " is not served: only IN");
      } else if (!tok.empty() && std::isdigit(static_cast<unsigned char>(tok[0]))) {
        if (ttl || !(ttl = parse_ttl(tok))) return fail(e.line, "bad TTL '" + tok + "'");
        ++i;
      } else {
        rtype = type_from_name(tok);
        if (!rtype) return fail(e.line, "unknown record type '" + tok + "'");
        ++i;
      }
    }
    if (!rtype) return fail(e.line, "missing record type");
    if (*rtype == type::kOPT || *rtype == type::kAXFR || *rtype == type::kIXFR || *rtype == type::kANY)
      return fail(e.line, "type " + type_name(*rtype) + " cannot be in a zone");
    std::vector<std::string> rd(t.begin() + static_cast<long>(i), t.end());
    ZoneRecord rec;
    std::string why;
    if (!rdata_from_text(*rtype, rd, origin, rec.rdata, &why)) return fail(e.line, why);
    rec.owner = owner;
    rec.type = *rtype;
    rec.ttl = ttl ? *ttl : dollar_ttl ? *dollar_ttl : default_ttl;
    rec.line = e.line;
    out.push_back(std::move(rec));
  }
  return true;
}

}  // namespace cumulo::dns::wire
