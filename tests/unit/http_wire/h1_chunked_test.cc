#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "h1_test_util.h"
#include "http/wire/h1.h"

namespace cumulo::http {
namespace {

using namespace std::string_literals;

struct Decoded {
  ParseStatus status = ParseStatus::kNeedMore;
  size_t consumed = 0;  // over all calls
  std::string payload;
  size_t err_pos = 0;
  int http_status = 0;

  bool operator==(const Decoded&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Decoded& d) {
  PrintTo(d.status, &os);
  return os << " consumed=" << d.consumed << " payload=" << d.payload.size() << "B err_pos=" << d.err_pos
            << " http_status=" << d.http_status;
}

// Feeds `in` in pieces ending at each of `cuts` (ascending), calling again on what a call left over, as a
// connection does. Stops at the first status other than kNeedMore.
Decoded decode_pieces(std::string_view in, const std::vector<size_t>& cuts) {
  ChunkedDecoder decoder;
  Decoded d;
  size_t piece_start = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(in.size());
  for (size_t end : ends) {
    std::string_view piece = in.substr(piece_start, end - piece_start);
    piece_start = end;
    do {
      size_t consumed = 0;
      std::string_view payload;
      d.status = decoder.decode(piece, consumed, payload);
      EXPECT_LE(consumed, piece.size());
      if (!payload.empty()) {
        // The payload is a view of the consumed bytes.
        EXPECT_GE(payload.data(), piece.data());
        EXPECT_LE(payload.data() + payload.size(), piece.data() + consumed);
      }
      d.payload.append(payload);
      d.consumed += consumed;
      piece.remove_prefix(consumed);
      if (d.status != ParseStatus::kNeedMore) {
        if (d.status != ParseStatus::kComplete) {
          d.err_pos = decoder.error().pos;
          d.http_status = decoder.error().http_status;
        }
        EXPECT_EQ(decoder.payload_bytes(), d.payload.size());
        return d;
      }
      if (consumed == 0) {
        EXPECT_TRUE(piece.empty()) << "kNeedMore without progress";
        break;
      }
    } while (!piece.empty());
  }
  EXPECT_EQ(decoder.payload_bytes(), d.payload.size());
  return d;
}

Decoded decode_whole(std::string_view in) {
  return decode_pieces(in, {});
}

Decoded decode_bytewise(std::string_view in) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < in.size(); ++i) cuts.push_back(i);
  return decode_pieces(in, cuts);
}

// Whole, byte by byte, and split at every single position all agree.
void expect_split_invariant(std::string_view in) {
  const Decoded whole = decode_whole(in);
  EXPECT_EQ(decode_bytewise(in), whole) << testing::PrintToString(in);
  for (size_t cut = 0; cut <= in.size(); ++cut) {
    EXPECT_EQ(decode_pieces(in, {cut}), whole) << "cut at " << cut;
  }
}

TEST(H1Chunked, Simple) {
  const std::string body = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  const Decoded d = decode_whole(body + "GET / HTTP/1.1\r\n");
  EXPECT_EQ(d.status, ParseStatus::kComplete);
  EXPECT_EQ(d.consumed, body.size());
  EXPECT_EQ(d.payload, "hello world");
  expect_split_invariant(body);
}

TEST(H1Chunked, EveryPairOfSplits) {
  const std::string body = "3;a=b\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: v\r\n\r\n";
  const Decoded whole = decode_whole(body);
  ASSERT_EQ(whole.status, ParseStatus::kComplete);
  EXPECT_EQ(whole.payload, "abc0123456789");
  for (size_t a = 0; a <= body.size(); ++a) {
    for (size_t b = a; b <= body.size(); ++b) {
      ASSERT_EQ(decode_pieces(body, {a, b}), whole) << a << "," << b;
    }
  }
}

TEST(H1Chunked, OneCallHandsOutOneRunOfPayload) {
  ChunkedDecoder decoder;
  const std::string body = "3\r\nabc\r\n0\r\n\r\n";
  size_t consumed = 0;
  std::string_view payload;
  ASSERT_EQ(decoder.decode(body, consumed, payload), ParseStatus::kNeedMore);
  EXPECT_EQ(consumed, 6u);
  EXPECT_EQ(payload, "abc");
  ASSERT_EQ(decoder.decode(std::string_view(body).substr(6), consumed, payload), ParseStatus::kComplete);
  EXPECT_EQ(consumed, body.size() - 6);
  EXPECT_TRUE(payload.empty());
  // Done stays done.
  ASSERT_EQ(decoder.decode("more", consumed, payload), ParseStatus::kComplete);
  EXPECT_EQ(consumed, 0u);
  decoder.reset();
  EXPECT_EQ(decoder.payload_bytes(), 0u);
  ASSERT_EQ(decoder.decode("0\r\n\r\n", consumed, payload), ParseStatus::kComplete);
}

TEST(H1Chunked, LargeChunkAcrossManyCalls) {
  const std::string data(100000, 'd');
  const std::string body = "186a0\r\n" + data + "\r\n0\r\n\r\n";
  std::vector<size_t> cuts;
  for (size_t i = 1000; i < body.size(); i += 1000) cuts.push_back(i);
  const Decoded d = decode_pieces(body, cuts);
  EXPECT_EQ(d.status, ParseStatus::kComplete);
  EXPECT_EQ(d.payload, data);
}

TEST(H1Chunked, HexDigitsInBothCases) {
  const std::string body =
      "a\r\n0123456789\r\nB\r\n0123456789a\r\n1F\r\n" + std::string(31, 'x') + "\r\n0\r\n\r\n";
  const Decoded d = decode_whole(body);
  EXPECT_EQ(d.status, ParseStatus::kComplete);
  EXPECT_EQ(d.payload.size(), 10u + 11u + 31u);
}

TEST(H1Chunked, ExtensionsAreSkipped) {
  for (const std::string& body :
       {"5;name=value\r\nhello\r\n0\r\n\r\n"s, "5;a;b=\"q;x\"\r\nhello\r\n0;last\r\n\r\n"s,
        "5 ;x\r\nhello\r\n0\r\n\r\n"s, "5\t \r\nhello\r\n0 \r\n\r\n"s}) {
    const Decoded d = decode_whole(body);
    EXPECT_EQ(d.status, ParseStatus::kComplete) << body;
    EXPECT_EQ(d.payload, "hello") << body;
    expect_split_invariant(body);
  }
}

TEST(H1Chunked, ExtensionIsBounded) {
  // 4 KiB after the ';' is the most we skip.
  const std::string at_limit = "1;" + std::string(4096, 'e') + "\r\nx\r\n0\r\n\r\n";
  EXPECT_EQ(decode_whole(at_limit).status, ParseStatus::kComplete);
  const std::string over = "1;" + std::string(4097, 'e') + "\r\nx\r\n0\r\n\r\n";
  const Decoded d = decode_whole(over);
  EXPECT_EQ(d.status, ParseStatus::kInvalid);
  EXPECT_EQ(d.err_pos, 2u + 4096u);
  EXPECT_EQ(decode_bytewise(over), d);
  EXPECT_EQ(decode_pieces(over, {1000, 3000, 4097}), d);
}

TEST(H1Chunked, Trailers) {
  const std::string body = "2\r\nhi\r\n0\r\nX-Checksum: abc\r\nX-Empty:\r\nX-Tab:\ta\tb\r\n\r\n";
  const Decoded d = decode_whole(body + "next");
  EXPECT_EQ(d.status, ParseStatus::kComplete);
  EXPECT_EQ(d.consumed, body.size());
  EXPECT_EQ(d.payload, "hi");
  expect_split_invariant(body);
}

TEST(H1Chunked, TrailersAreBounded) {
  std::string trailers;
  while (trailers.size() < 16 * 1024) trailers += "X-Trailer: " + std::string(100, 't') + "\r\n";
  const Decoded d = decode_whole("0\r\n" + trailers + "\r\n");
  EXPECT_EQ(d.status, ParseStatus::kTooLarge);
  EXPECT_EQ(d.err_pos, 3u + 16 * 1024);
  // Just under the bound is fine.
  const std::string small = "0\r\nX: " + std::string(16 * 1024 - 7, 'x') + "\r\n\r\n";
  EXPECT_EQ(small.size() - 3, 16u * 1024);
  EXPECT_EQ(decode_whole(small).status, ParseStatus::kComplete);
}

TEST(H1Chunked, SizeOverflow) {
  const Decoded d = decode_whole("00000000000000001\r\nx\r\n0\r\n\r\n");
  EXPECT_EQ(d.status, ParseStatus::kTooLarge);
  EXPECT_EQ(d.err_pos, 16u);
  EXPECT_EQ(decode_whole("8000000000000000\r\n").status, ParseStatus::kTooLarge);
  EXPECT_EQ(decode_whole("ffffffffffffffffff\r\n").status, ParseStatus::kTooLarge);
  // 2^63 - 1 is a size we accept (and then wait for).
  const Decoded max = decode_whole("7fffffffffffffff\r\nabc");
  EXPECT_EQ(max.status, ParseStatus::kNeedMore);
  EXPECT_EQ(max.payload, "abc");
  expect_split_invariant("8000000000000000\r\n");
}

TEST(H1Chunked, Rejects) {
  struct Case {
    std::string body;
    size_t err_pos;
  };
  for (const Case& c : {
           Case{"x\r\n", 0},
           Case{"\r\n", 0},
           Case{";ext\r\n", 0},
           Case{"-5\r\nhello\r\n", 0},
           Case{"0x5\r\nhello\r\n", 1},
           Case{"5\nhello\r\n", 1},
           Case{"5\rhello\r\n", 2},
           Case{"5 x\r\nhello\r\n", 2},
           Case{"5;a\x01z\r\nhello\r\n", 3},
           Case{"5;a\nhello\r\n", 3},
           Case{"5\r\nhelloX\r\n0\r\n\r\n", 8},
           Case{"5\r\nhello\rX", 9},
           Case{"5\r\nhello\n0\r\n\r\n", 8},
           Case{"5\r\nhello\r\n0\r\n X: y\r\n\r\n", 13},
           Case{"0\r\nX : y\r\n\r\n", 4},
           Case{"0\r\nX\r\n\r\n", 4},
           Case{"0\r\n: y\r\n\r\n", 3},
           Case{"0\r\nX: a\x01z\r\n\r\n", 7},
           Case{"0\r\nX: a\rz\r\n\r\n", 8},
           Case{"0\r\nX: a\n\r\n", 7},
           Case{"0\r\n\rX", 4},
           Case{"0\r\n\n", 3},
       }) {
    const Decoded d = decode_whole(c.body);
    EXPECT_EQ(d.status, ParseStatus::kInvalid) << testing::PrintToString(c.body);
    EXPECT_EQ(d.err_pos, c.err_pos) << testing::PrintToString(c.body);
    EXPECT_EQ(d.http_status, 400) << testing::PrintToString(c.body);
    EXPECT_EQ(d.consumed, c.err_pos) << testing::PrintToString(c.body);
    expect_split_invariant(c.body);
  }
}

TEST(H1Chunked, ErrorsAreSticky) {
  ChunkedDecoder decoder;
  size_t consumed = 0;
  std::string_view payload;
  ASSERT_EQ(decoder.decode("z", consumed, payload), ParseStatus::kInvalid);
  EXPECT_EQ(decoder.decode("0\r\n\r\n", consumed, payload), ParseStatus::kInvalid);
  EXPECT_EQ(consumed, 0u);
  EXPECT_NE(std::string_view(decoder.error().reason), "");
}

TEST(H1Chunked, ErrorPositionCountsFromTheBodyStart) {
  ChunkedDecoder decoder;
  size_t consumed = 0;
  std::string_view payload;
  ASSERT_EQ(decoder.decode("3\r\nab", consumed, payload), ParseStatus::kNeedMore);
  ASSERT_EQ(consumed, 5u);
  ASSERT_EQ(decoder.decode("cX", consumed, payload), ParseStatus::kNeedMore);
  ASSERT_EQ(consumed, 1u);
  ASSERT_EQ(decoder.decode("X", consumed, payload), ParseStatus::kInvalid);
  EXPECT_EQ(decoder.error().pos, 6u);
}

TEST(H1Chunked, EmptyInputNeedsMore) {
  ChunkedDecoder decoder;
  size_t consumed = 1;
  std::string_view payload = "x";
  EXPECT_EQ(decoder.decode({}, consumed, payload), ParseStatus::kNeedMore);
  EXPECT_EQ(consumed, 0u);
  EXPECT_TRUE(payload.empty());
}

}  // namespace
}  // namespace cumulo::http
