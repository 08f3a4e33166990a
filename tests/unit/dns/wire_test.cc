#include "dns/wire/wire.h"

#include <gtest/gtest.h>

#include <cstring>

#include "dns_test_util.h"

namespace cumulo::dns {
namespace {

using test::decode;
using test::make_query;
using wire::ParseResult;

TEST(DnsCursor, FirstErrorSticks) {
  uint8_t data[] = {0x12, 0x34, 0x56};
  wire::Cursor c(data, sizeof data);
  EXPECT_EQ(c.u16(), 0x1234);
  EXPECT_EQ(c.u16(), 0);  // past the end
  EXPECT_FALSE(c.ok());
  EXPECT_EQ(c.u8(), 0);  // even though one byte was left
}

TEST(DnsName, TextRoundTripAndCase) {
  std::string w;
  ASSERT_TRUE(wire::name_from_text("WWW.Example.COM.", "", w));
  EXPECT_EQ(w, std::string("\3www\7example\3com\0", 17));
  EXPECT_EQ(wire::name_to_text(w), "www.example.com.");
  std::string origin = w.substr(4);
  ASSERT_TRUE(wire::name_from_text("mail", origin, w));
  EXPECT_EQ(wire::name_to_text(w), "mail.example.com.");
  ASSERT_TRUE(wire::name_from_text("@", origin, w));
  EXPECT_EQ(w, origin);
  ASSERT_TRUE(wire::name_from_text("a\\.b.example.com.", "", w));
  EXPECT_EQ(wire::label_count(w), 3);
  EXPECT_FALSE(wire::name_from_text("a..b.", "", w));
  EXPECT_FALSE(wire::name_from_text(std::string(64, 'a') + ".", "", w));
  EXPECT_TRUE(wire::name_in_zone(test::wire_name("a.b.example.com."), origin));
  EXPECT_FALSE(wire::name_in_zone(test::wire_name("example.org."), origin));
  EXPECT_FALSE(wire::name_in_zone(test::wire_name("xexample.com."), origin));
}

TEST(DnsName, CompressionPointerLoopIsRejected) {
  // A name that points to itself, and two pointers pointing at each other.
  uint8_t self[] = {0xC0, 0x00};
  uint8_t out[255];
  wire::Cursor c1(self, sizeof self);
  EXPECT_EQ(wire::read_name(c1, out, true), 0u);
  EXPECT_FALSE(c1.ok());
  uint8_t pair[] = {1, 'a', 0xC0, 0x04, 0xC0, 0x00};
  wire::Cursor c2(pair, sizeof pair);
  c2.seek(4);
  EXPECT_EQ(wire::read_name(c2, out, true),
            0u);  // forward pointer from the second to... itself via the first
  // A backwards pointer is fine and the cursor resumes after it.
  uint8_t ok[] = {1, 'A', 0, 1, 'b', 0xC0, 0x00, 0xFF};
  wire::Cursor c3(ok, sizeof ok);
  c3.seek(3);
  size_t n = wire::read_name(c3, out, true);
  ASSERT_EQ(n, 5u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), n), std::string("\1b\1a\0", 5));
  EXPECT_EQ(c3.pos(), 7u);
}

TEST(DnsName, OverlongNameIsRejected) {
  std::vector<uint8_t> p;
  for (int i = 0; i < 5; ++i) {
    p.push_back(63);
    p.insert(p.end(), 63, 'a');
  }
  p.push_back(0);
  uint8_t out[255];
  wire::Cursor c(p.data(), p.size());
  EXPECT_EQ(wire::read_name(c, out, true), 0u);
}

TEST(DnsParse, QueryWithEdnsAndClientSubnet) {
  test::QueryOptions o;
  o.edns = true;
  o.payload = 4096;
  o.ecs_family = 1;
  o.ecs_prefix = 24;
  o.ecs_address = {10, 1, 2};
  auto p = make_query("WwW.example.com.", wire::type::kAAAA, o);
  wire::Query q;
  ASSERT_EQ(wire::parse_query(p, q), ParseResult::kOk);
  EXPECT_EQ(q.id, 0xBEEF);
  EXPECT_EQ(q.qtype, wire::type::kAAAA);
  EXPECT_EQ(q.name(), test::wire_name("www.example.com."));
  EXPECT_TRUE(q.has_edns);
  EXPECT_EQ(q.udp_payload, 4096);
  ASSERT_TRUE(q.client_subnet);
  EXPECT_EQ(q.client_subnet->source_prefix, 24);
  EXPECT_EQ(q.client_subnet->address[1], 1);
}

TEST(DnsParse, BadInputs) {
  wire::Query q;
  auto p = make_query("example.com.", wire::type::kA);
  EXPECT_EQ(wire::parse_query(std::span<const uint8_t>(p.data(), 11), q), ParseResult::kDrop);
  auto resp = p;
  resp[2] |= 0x80;  // QR: a response
  EXPECT_EQ(wire::parse_query(resp, q), ParseResult::kDrop);
  auto notify = p;
  notify[2] = static_cast<uint8_t>(4 << 3);  // opcode NOTIFY
  EXPECT_EQ(wire::parse_query(notify, q), ParseResult::kNotImp);
  EXPECT_GT(q.question_end, 0u);
  auto truncated = p;
  truncated.resize(p.size() - 3);
  EXPECT_EQ(wire::parse_query(truncated, q), ParseResult::kFormErr);
  EXPECT_EQ(q.question_end, 0u);
  auto two = p;
  two[5] = 2;  // qdcount 2
  EXPECT_EQ(wire::parse_query(two, q), ParseResult::kFormErr);
  auto absurd = p;
  absurd[10] = 0xFF;  // arcount 65280 with no bytes for them
  absurd[11] = 0;
  EXPECT_EQ(wire::parse_query(absurd, q), ParseResult::kFormErr);
  test::QueryOptions o;
  o.edns = true;
  auto v1 = make_query("example.com.", wire::type::kA, o);
  v1[v1.size() - 5] = 1;  // EDNS version 1
  EXPECT_EQ(wire::parse_query(v1, q), ParseResult::kBadVers);
}

TEST(DnsWriter, CompressesOwnerNamesAndRdataNames) {
  auto p = make_query("www.example.com.", wire::type::kMX);
  wire::Query q;
  ASSERT_EQ(wire::parse_query(p, q), ParseResult::kOk);
  uint8_t buf[512];
  wire::ResponseWriter w(buf, sizeof buf);
  w.begin(q, p, 512);
  std::string mx = std::string("\0\12", 2) + test::wire_name("mail.example.com.");
  ASSERT_TRUE(w.add(wire::Section::kAnswer, q.name(), wire::type::kMX, 1, 300, mx));
  size_t n = w.finish();
  // Header 12 + question 21 + owner pointer 2 + fixed 10 + pref 2 + "mail" 5 + pointer 2.
  EXPECT_EQ(n, 12u + 21 + 2 + 10 + 2 + 5 + 2);
  auto d = decode(buf, n);
  ASSERT_TRUE(d.ok);
  ASSERT_EQ(d.answer.size(), 1u);
  EXPECT_EQ(d.answer[0].name, "www.example.com.");
  EXPECT_EQ(d.answer[0].text, "10 mail.example.com.");
  EXPECT_TRUE(d.aa);
  EXPECT_EQ(d.flags & 0x8000, 0x8000);
  EXPECT_EQ(d.flags & 0x0100, 0x0100);  // RD copied
}

TEST(DnsWriter, TruncatesAtTheLimitAndSetsTc) {
  auto p = make_query("big.example.com.", wire::type::kTXT);
  wire::Query q;
  ASSERT_EQ(wire::parse_query(p, q), ParseResult::kOk);
  uint8_t buf[4096];
  wire::ResponseWriter w(buf, sizeof buf);
  w.begin(q, p, 512);
  std::string txt(1, static_cast<char>(200));
  txt += std::string(200, 'x');
  int added = 0;
  for (int i = 0; i < 5; ++i) added += w.add(wire::Section::kAnswer, q.name(), wire::type::kTXT, 1, 60, txt);
  EXPECT_EQ(added, 2);
  EXPECT_TRUE(w.truncated());
  size_t n = w.finish();
  EXPECT_LE(n, 512u);
  auto d = decode(buf, n);
  EXPECT_TRUE(d.tc);
  EXPECT_EQ(d.answer.size(), 2u);
}

TEST(DnsWriter, ErrorReplyEchoesQuestionAndOpt) {
  test::QueryOptions o;
  o.edns = true;
  auto p = make_query("example.com.", wire::type::kA, o);
  wire::Query q;
  ASSERT_EQ(wire::parse_query(p, q), ParseResult::kOk);
  uint8_t buf[512];
  wire::ResponseWriter w(buf, sizeof buf);
  w.begin_error(q, p, wire::Rcode::kBadVers);
  size_t n = w.finish();
  auto d = decode(buf, n);
  EXPECT_EQ(d.qd, 1);
  EXPECT_EQ(d.rcode, 0);          // BADVERS is 16: its low bits are 0 ...
  EXPECT_EQ(buf[n - 11 + 5], 1);  // ... and the upper bits travel in the OPT TTL
  EXPECT_FALSE(d.aa);
}

// RFC 1035 section 5.1: always three digits; names escape space and the bytes outside printable ASCII, and
// the escape reads back to the same byte.
TEST(DnsNameText, DecimalEscape) {
  std::string out = "a";
  wire::append_decimal_escape(out, 0);
  wire::append_decimal_escape(out, 7);
  wire::append_decimal_escape(out, 32);
  wire::append_decimal_escape(out, 255);
  EXPECT_EQ(out, "a\\000\\007\\032\\255");

  const std::string label(
      "\x04"
      "a b\xc8",
      5);  // one label "a b\xc8", then the root
  EXPECT_EQ(wire::name_to_text(std::string(label) + std::string(1, '\0')), "a\\032b\\200.");
  std::string back;
  ASSERT_TRUE(wire::name_from_text("a\\032b\\200.", "", back));
  EXPECT_EQ(back, std::string(label) + std::string(1, '\0'));
}

// The reading side: \DDD as its byte, \X as X, the position after the escape; cut short or above 255 is -1.
TEST(DnsNameText, ReadEscape) {
  const auto read = [](std::string_view text, size_t at, size_t expect_next) {
    size_t i = at;
    const int v = wire::read_escape(text, i);
    EXPECT_EQ(i, v < 0 ? at : expect_next) << text;
    return v;
  };
  EXPECT_EQ(read("\\065", 0, 4), 65);
  EXPECT_EQ(read("a\\255b", 1, 5), 255);
  EXPECT_EQ(read("\\000", 0, 4), 0);
  EXPECT_EQ(read("\\.x", 0, 2), '.');
  EXPECT_EQ(read("\\\xc8", 0, 2), 0xc8);
  EXPECT_EQ(read("\\256", 0, 0), -1);
  EXPECT_EQ(read("\\06", 0, 0), -1);
  EXPECT_EQ(read("\\0a5", 0, 0), -1);
  EXPECT_EQ(read("\\", 0, 0), -1);
  std::string wire_name;
  EXPECT_FALSE(wire::name_from_text("a\\25.", "", wire_name));
  ASSERT_TRUE(wire::name_from_text("A\\.B\\066.", "", wire_name));
  EXPECT_EQ(wire_name, std::string("\x04"
                                   "a.bb",
                                   5) +
                           std::string(1, '\0'));
}

}  // namespace
}  // namespace cumulo::dns
