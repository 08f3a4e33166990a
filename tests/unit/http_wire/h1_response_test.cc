#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>

#include "h1_test_util.h"
#include "http/wire/h1.h"

namespace cumulo::http {
namespace {

using namespace std::string_literals;

// Owns a copy of the input, so the head's views stay valid however the test built its input.
struct Parsed {
  std::unique_ptr<std::string> input;
  ParseStatus status;
  ParseError error;
  std::unique_ptr<ResponseHead> head = std::make_unique<ResponseHead>();
};

Parsed parse_response(std::string_view in, Method method = Method::kGet, ParseLimits limits = {}) {
  Parsed p;
  p.input = std::make_unique<std::string>(in);
  ResponseParser parser(limits);
  p.status = parser.parse(*p.input, method, *p.head);
  p.error = parser.error();
  return p;
}

HeadResult parse_growing(std::string_view in, Method method = Method::kGet) {
  ResponseParser parser;
  auto head = std::make_unique<ResponseHead>();
  ParseStatus status = ParseStatus::kNeedMore;
  for (size_t n = 0; n <= in.size() && status == ParseStatus::kNeedMore; ++n) {
    status = parser.parse(in.substr(0, n), method, *head);
  }
  return summarize(status, parser.error(), *head);
}

HeadResult parse_whole(std::string_view in, Method method = Method::kGet) {
  Parsed p = parse_response(in, method);
  return summarize(p.status, p.error, *p.head);
}

TEST(H1Response, NginxOk) {
  const std::string head =
      "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
      "Content-Type: text/html\r\nContent-Length: 615\r\nLast-Modified: Tue, 11 Apr 2023 01:45:34 GMT\r\n"
      "Connection: keep-alive\r\nETag: \"6434bbbe-267\"\r\nAccept-Ranges: bytes\r\n\r\n";
  const std::string in = head + "<!DOCTYPE html>";
  Parsed p = parse_response(in);
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  const ResponseHead& h = *p.head;
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.reason, "OK");
  EXPECT_EQ(h.version_minor, 1);
  EXPECT_EQ(h.header_count, 8u);
  EXPECT_EQ(h.header("etag"), "\"6434bbbe-267\"");
  EXPECT_EQ(h.head_bytes, head.size());
  EXPECT_EQ(h.body, BodyKind::kContentLength);
  EXPECT_EQ(h.content_length, 615u);
  EXPECT_TRUE(h.keep_alive);
}

TEST(H1Response, ReasonPhrases) {
  Parsed p = parse_response("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.head->status, 404);
  EXPECT_EQ(p.head->reason, "Not Found");
  EXPECT_EQ(p.head->body, BodyKind::kNone);
  // Reason omitted, with or without its space.
  p = parse_response("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  EXPECT_EQ(p.head->reason, "");
  p = parse_response("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  EXPECT_EQ(p.head->reason, "");
}

TEST(H1Response, NoBodyForHeadRequests) {
  Parsed p = parse_response("HTTP/1.1 200 OK\r\nContent-Length: 615\r\n\r\n", Method::kHead);
  ASSERT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.head->body, BodyKind::kNone);
  EXPECT_EQ(p.head->content_length, 615u);
  EXPECT_TRUE(p.head->keep_alive);
  p = parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", Method::kHead);
  ASSERT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.head->body, BodyKind::kNone);
  p = parse_response("HTTP/1.1 200 OK\r\n\r\n", Method::kHead);
  ASSERT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.head->body, BodyKind::kNone);
  EXPECT_TRUE(p.head->keep_alive);
}

TEST(H1Response, NoBodyFor1xx204And304) {
  for (const char* line : {"HTTP/1.1 100 Continue", "HTTP/1.1 103 Early Hints", "HTTP/1.1 204 No Content",
                           "HTTP/1.1 304 Not Modified"}) {
    Parsed p = parse_response(std::string(line) + "\r\nContent-Length: 10\r\n\r\n");
    ASSERT_EQ(p.status, ParseStatus::kComplete) << line;
    EXPECT_EQ(p.head->body, BodyKind::kNone) << line;
    EXPECT_TRUE(p.head->keep_alive) << line;
    p = parse_response(std::string(line) + "\r\n\r\n");
    ASSERT_EQ(p.status, ParseStatus::kComplete) << line;
    EXPECT_EQ(p.head->body, BodyKind::kNone) << line;
  }
}

TEST(H1Response, SwitchingProtocols) {
  Parsed p =
      parse_response("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.head->status, 101);
  EXPECT_EQ(p.head->body, BodyKind::kNone);
  EXPECT_TRUE(p.head->connection_upgrade);
}

TEST(H1Response, ConnectSuccessHasNoBody) {
  Parsed p = parse_response("HTTP/1.1 200 Connection established\r\n\r\n", Method::kConnect);
  ASSERT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.head->body, BodyKind::kNone);
  p = parse_response("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 2\r\n\r\n",
                     Method::kConnect);
  ASSERT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.head->body, BodyKind::kContentLength);
}

TEST(H1Response, UntilCloseWithoutLength) {
  Parsed p = parse_response("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody");
  ASSERT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.head->body, BodyKind::kUntilClose);
  EXPECT_FALSE(p.head->keep_alive);
}

TEST(H1Response, Chunked) {
  Parsed p = parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.head->body, BodyKind::kChunked);
  EXPECT_TRUE(p.head->keep_alive);
  p = parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.head->body, BodyKind::kChunked);
}

TEST(H1Response, FinalCodingNotChunkedReadsUntilClose) {
  // RFC 9112 section 6.3 item 4.
  Parsed p = parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.head->body, BodyKind::kUntilClose);
  EXPECT_FALSE(p.head->keep_alive);
}

TEST(H1Response, KeepAliveRules) {
  struct Case {
    const char* head;
    bool keep_alive;
  };
  for (const Case& c : {Case{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
                        Case{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", false},
                        Case{"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
                        Case{"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n", true},
                        Case{"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false}}) {
    Parsed p = parse_response(c.head);
    ASSERT_EQ(p.status, ParseStatus::kComplete) << c.head;
    EXPECT_EQ(p.head->keep_alive, c.keep_alive) << c.head;
  }
}

TEST(H1Response, Rejects) {
  for (const std::string& in : {
           "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"s,
           "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"s,
           "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n"s,
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"s,
           "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"s,
           "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"s,
           "HTTP/1.1 200 OK\r\nX : a\r\n\r\n"s,
           "HTTP/1.1 200 OK\r\nX: a\x01z\r\n\r\n"s,
           "HTTP/1.1 200 OK\nX: a\r\n\r\n"s,
           "HTTP/1.1 200 O\x01K\r\n\r\n"s,
           "HTTP/1.1 200 O\rK\r\n\r\n"s,
           "HTTP/1.1 20 OK\r\n\r\n"s,
           "HTTP/1.1 2000 OK\r\n\r\n"s,
           "HTTP/1.1 099 Nope\r\n\r\n"s,
           "HTTP/1.1  200 OK\r\n\r\n"s,
           "HTTP/1.1 2a0 OK\r\n\r\n"s,
           "http/1.1 200 OK\r\n\r\n"s,
           "HTTP/1.1\r\n\r\n"s,
           "HTTP/2.0 200 OK\r\n\r\n"s,
           "HTTP/1.2 200 OK\r\n\r\n"s,
           "ICY 200 OK\r\n\r\n"s,
           "\r\nHTTP/1.1 200 OK\r\n\r\n"s,
       }) {
    Parsed p = parse_response(in);
    EXPECT_EQ(p.status, ParseStatus::kInvalid) << in;
    // Whatever the upstream got wrong, the client is answered 502.
    EXPECT_EQ(p.error.http_status, 502) << in;
    EXPECT_NE(std::string_view(p.error.reason), "") << in;
    EXPECT_EQ(parse_growing(in), parse_whole(in)) << in;
  }
}

TEST(H1Response, TooLarge) {
  const ParseLimits limits{.max_head_bytes = 64, .max_headers = 2};
  const std::string in = "HTTP/1.1 200 OK\r\nServer: " + std::string(100, 's') + "\r\n\r\n";
  Parsed p = parse_response(in, Method::kGet, limits);
  EXPECT_EQ(p.status, ParseStatus::kTooLarge);
  EXPECT_EQ(p.error.http_status, 502);
  p = parse_response("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", Method::kGet, limits);
  EXPECT_EQ(p.status, ParseStatus::kTooLarge);
  EXPECT_EQ(p.error.http_status, 502);
}

TEST(H1Response, ByteByByteEqualsWhole) {
  for (const std::string& in : {
           "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"s,
           "HTTP/1.1 204 No Content\r\n\r\n"s,
           "HTTP/1.0 200 OK\r\n\r\nuntil close"s,
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"s,
       }) {
    const HeadResult whole = parse_whole(in);
    EXPECT_EQ(whole.status, ParseStatus::kComplete) << in;
    EXPECT_EQ(parse_growing(in), whole) << in;
    EXPECT_EQ(parse_growing(in, Method::kHead), parse_whole(in, Method::kHead)) << in;
  }
}

}  // namespace
}  // namespace cumulo::http
