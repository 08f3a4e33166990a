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
  std::unique_ptr<RequestHead> head = std::make_unique<RequestHead>();
};

Parsed parse_request(std::string_view in, ParseLimits limits = {}) {
  Parsed p;
  p.input = std::make_unique<std::string>(in);
  RequestParser parser(limits);
  p.status = parser.parse(*p.input, *p.head);
  p.error = parser.error();
  return p;
}

// Feeds `in` one byte more at a time, as a socket might, until the parser stops asking for more.
HeadResult parse_growing(std::string_view in, ParseLimits limits = {}) {
  RequestParser parser(limits);
  auto head = std::make_unique<RequestHead>();
  ParseStatus status = ParseStatus::kNeedMore;
  for (size_t n = 0; n <= in.size() && status == ParseStatus::kNeedMore; ++n) {
    status = parser.parse(in.substr(0, n), *head);
  }
  return summarize(status, parser.error(), *head);
}

HeadResult parse_whole(std::string_view in, ParseLimits limits = {}) {
  Parsed p = parse_request(in, limits);
  return summarize(p.status, p.error, *p.head);
}

TEST(H1Request, SimpleGet) {
  const std::string in =
      "GET /index.html?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n";
  Parsed p = parse_request(in);
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  const RequestHead& h = *p.head;
  EXPECT_EQ(h.method, Method::kGet);
  EXPECT_EQ(h.method_name, "GET");
  EXPECT_EQ(h.target, "/index.html?x=1&y=2");
  EXPECT_EQ(h.path, "/index.html");
  EXPECT_EQ(h.query, "x=1&y=2");
  EXPECT_EQ(h.host, "example.com");
  EXPECT_EQ(h.version_minor, 1);
  ASSERT_EQ(h.header_count, 3u);
  EXPECT_EQ(h.headers[0].name, "Host");
  EXPECT_EQ(h.headers[1].value, "curl/8.0");
  EXPECT_EQ(h.header("user-agent"), "curl/8.0");
  EXPECT_EQ(h.header("ACCEPT"), "*/*");
  EXPECT_TRUE(h.header("cookie").empty());
  EXPECT_EQ(h.head_bytes, in.size());
  EXPECT_EQ(h.body, BodyKind::kNone);
  EXPECT_TRUE(h.keep_alive);
  EXPECT_FALSE(h.connection_upgrade);
  EXPECT_FALSE(h.expect_continue);
  // Views point into the input.
  EXPECT_EQ(h.target.data(), p.input->data() + 4);
}

TEST(H1Request, HeadEndsWhereTheBodyStarts) {
  const std::string head = "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
  Parsed p = parse_request(head + "helloGET / HTTP/1.1\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  EXPECT_EQ(p.head->method, Method::kPost);
  EXPECT_EQ(p.head->head_bytes, head.size());
  EXPECT_EQ(p.head->body, BodyKind::kContentLength);
  EXPECT_EQ(p.head->content_length, 5u);
}

TEST(H1Request, NeedsMoreUntilTheEmptyLine) {
  const std::string in = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  for (size_t n = 0; n < in.size(); ++n) {
    EXPECT_EQ(parse_request(in.substr(0, n)).status, ParseStatus::kNeedMore) << n;
  }
  EXPECT_EQ(parse_request(in).status, ParseStatus::kComplete);
}

TEST(H1Request, ValuesAreTrimmedOfOws) {
  Parsed p =
      parse_request("GET / HTTP/1.1\r\nHost:h\r\nX-A:   a \t b \t \r\nX-Empty:\r\nX-Blank:   \r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  EXPECT_EQ(p.head->host, "h");
  EXPECT_EQ(p.head->header("x-a"), "a \t b");
  EXPECT_EQ(p.head->header("x-empty"), "");
  EXPECT_EQ(p.head->header("x-blank"), "");
  EXPECT_EQ(p.head->header_count, 4u);
}

TEST(H1Request, ObsTextInValuesIsKept) {
  Parsed p = parse_request("GET / HTTP/1.1\r\nHost: h\r\nX-Name: Jos\xc3\xa9\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  EXPECT_EQ(p.head->header("x-name"), "Jos\xc3\xa9");
}

TEST(H1Request, LongValuesWithTabsAndDelNearTheEnd) {
  const std::string value(200, 'v');
  Parsed ok = parse_request("GET / HTTP/1.1\r\nHost: h\r\nCookie: " + value + "\t" + value + "\r\n\r\n");
  ASSERT_EQ(ok.status, ParseStatus::kComplete) << ok.error.reason;
  EXPECT_EQ(ok.head->header("cookie").size(), 401u);
  for (size_t at : {0u, 1u, 7u, 8u, 9u, 100u, 199u}) {
    std::string bad = value;
    bad[at] = '\x7f';
    Parsed p = parse_request("GET / HTTP/1.1\r\nHost: h\r\nCookie: " + bad + "\r\n\r\n");
    EXPECT_EQ(p.status, ParseStatus::kInvalid) << at;
    EXPECT_EQ(p.error.pos, 33 + at) << at;
  }
}

TEST(H1Request, EmptyLinesBeforeTheRequestLineAreSkipped) {
  const std::string in = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
  Parsed p = parse_request(in);
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  EXPECT_EQ(p.head->method, Method::kGet);
  EXPECT_EQ(p.head->head_bytes, in.size());
  EXPECT_EQ(parse_growing(in), parse_whole(in));
}

TEST(H1Request, ParsingAgainAfterCompleteGivesTheSameHead) {
  const std::string in = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
  RequestParser parser;
  RequestHead head;
  ASSERT_EQ(parser.parse(in, head), ParseStatus::kComplete);
  ASSERT_EQ(parser.parse(in, head), ParseStatus::kComplete);
  EXPECT_EQ(head.path, "/a");
  EXPECT_EQ(head.head_bytes, in.size());
}

TEST(H1Request, PipelinedRequestsAfterReset) {
  const std::string first = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string second = "GET /2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  const std::string in = first + second;
  RequestParser parser;
  RequestHead head;
  ASSERT_EQ(parser.parse(in, head), ParseStatus::kComplete);
  EXPECT_EQ(head.path, "/1");
  ASSERT_EQ(head.head_bytes, first.size());
  parser.reset();
  ASSERT_EQ(parser.parse(std::string_view(in).substr(head.head_bytes), head), ParseStatus::kComplete);
  EXPECT_EQ(head.path, "/2");
  EXPECT_EQ(head.header_count, 2u);
  EXPECT_FALSE(head.keep_alive);
}

TEST(H1Request, ContentLengthZeroHasNoBody) {
  Parsed p = parse_request("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.head->body, BodyKind::kNone);
  EXPECT_EQ(p.head->content_length, 0u);
}

TEST(H1Request, IdenticalContentLengthsAreOne) {
  for (const char* headers : {"Content-Length: 42\r\nContent-Length: 42\r\n", "Content-Length: 42, 42\r\n",
                              "Content-Length: 42,42 , 42\r\nContent-Length: 42\r\n"}) {
    Parsed p = parse_request("POST / HTTP/1.1\r\nHost: h\r\n"s + headers + "\r\n");
    ASSERT_EQ(p.status, ParseStatus::kComplete) << headers << p.error.reason;
    EXPECT_EQ(p.head->body, BodyKind::kContentLength);
    EXPECT_EQ(p.head->content_length, 42u);
  }
}

TEST(H1Request, LargestContentLength) {
  Parsed p = parse_request("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  EXPECT_EQ(p.head->content_length, 9223372036854775807u);
}

TEST(H1Request, ChunkedBody) {
  for (const char* te : {"chunked", "Chunked", " CHUNKED ", "chunked\t"}) {
    Parsed p = parse_request("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "s + te + "\r\n\r\n");
    ASSERT_EQ(p.status, ParseStatus::kComplete) << te << p.error.reason;
    EXPECT_EQ(p.head->body, BodyKind::kChunked);
  }
}

TEST(H1Request, ExpectContinue) {
  Parsed p = parse_request("PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_TRUE(p.head->expect_continue);
  // RFC 9110 section 10.1.1: ignored in HTTP/1.0.
  p = parse_request("PUT /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_FALSE(p.head->expect_continue);
}

TEST(H1Request, MethodsAreRecognisedCaseSensitively) {
  struct Case {
    const char* name;
    Method method;
  };
  for (const Case& c :
       {Case{"GET", Method::kGet}, Case{"HEAD", Method::kHead}, Case{"POST", Method::kPost},
        Case{"PUT", Method::kPut}, Case{"DELETE", Method::kDelete}, Case{"PATCH", Method::kPatch},
        Case{"TRACE", Method::kTrace}, Case{"PURGE", Method::kOther}, Case{"get", Method::kOther},
        Case{"M-SEARCH", Method::kOther}}) {
    const std::string in = std::string(c.name) + " / HTTP/1.1\r\nHost: h\r\n\r\n";
    Parsed p = parse_request(in);
    ASSERT_EQ(p.status, ParseStatus::kComplete) << c.name;
    EXPECT_EQ(p.head->method, c.method) << c.name;
    EXPECT_EQ(p.head->method_name, c.name);
  }
}

struct KeepAliveCase {
  const char* version;
  const char* headers;
  bool keep_alive;
  bool upgrade;
};

class H1RequestKeepAlive : public testing::TestWithParam<KeepAliveCase> {};

TEST_P(H1RequestKeepAlive, FollowsVersionAndConnection) {
  const KeepAliveCase& c = GetParam();
  Parsed p = parse_request("GET / "s + c.version + "\r\nHost: h\r\n" + c.headers + "\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  EXPECT_EQ(p.head->keep_alive, c.keep_alive);
  EXPECT_EQ(p.head->connection_upgrade, c.upgrade);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, H1RequestKeepAlive,
    testing::Values(
        KeepAliveCase{"HTTP/1.1", "", true, false},
        KeepAliveCase{"HTTP/1.1", "Connection: close\r\n", false, false},
        KeepAliveCase{"HTTP/1.1", "Connection: CLOSE\r\n", false, false},
        KeepAliveCase{"HTTP/1.1", "Connection: keep-alive, close\r\n", false, false},
        KeepAliveCase{"HTTP/1.1", "Connection: keep-alive\r\nConnection: close\r\n", false, false},
        KeepAliveCase{"HTTP/1.1", "Connection: closed\r\n", true, false},
        KeepAliveCase{"HTTP/1.1", "Connection: ,, ,Keep-Alive,\r\n", true, false},
        KeepAliveCase{"HTTP/1.0", "", false, false},
        KeepAliveCase{"HTTP/1.0", "Connection: keep-alive\r\n", true, false},
        KeepAliveCase{"HTTP/1.0", "Connection: Keep-Alive\r\n", true, false},
        KeepAliveCase{"HTTP/1.0", "Connection: keep-alive, close\r\n", false, false},
        KeepAliveCase{"HTTP/1.1", "Connection: Upgrade\r\nUpgrade: websocket\r\n", true, true},
        KeepAliveCase{"HTTP/1.1", "Connection: keep-alive, upgrade\r\nUpgrade: h2c\r\n", true, true},
        KeepAliveCase{"HTTP/1.1", "Connection: upgrade\r\n", true, false},
        KeepAliveCase{"HTTP/1.1", "Upgrade: websocket\r\n", true, false}));

struct RejectCase {
  const char* name;
  std::string input;
  ParseStatus status;
  int http_status;
};

std::ostream& operator<<(std::ostream& os, const RejectCase& c) {
  return os << c.name;
}

class H1RequestRejects : public testing::TestWithParam<RejectCase> {};

TEST_P(H1RequestRejects, WithTheRightStatus) {
  const RejectCase& c = GetParam();
  Parsed p = parse_request(c.input);
  EXPECT_EQ(p.status, c.status);
  EXPECT_EQ(p.error.http_status, c.http_status);
  EXPECT_NE(std::string_view(p.error.reason), "");
  EXPECT_LE(p.error.pos, c.input.size());
  // Arriving a byte at a time changes nothing.
  EXPECT_EQ(parse_growing(c.input), parse_whole(c.input));
}

RejectCase bad(const char* name, std::string head_and_fields, int http_status = 400) {
  return {name, std::move(head_and_fields), ParseStatus::kInvalid, http_status};
}

// A request line followed by `fields` and the empty line.
std::string req(std::string_view fields, std::string_view line = "POST /p HTTP/1.1") {
  return std::string(line) + "\r\n" + std::string(fields) + "\r\n";
}

INSTANTIATE_TEST_SUITE_P(
    Smuggling, H1RequestRejects,
    testing::Values(bad("ClAndTe", req("Host: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n")),
                    bad("TeAndCl", req("Host: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n")),
                    bad("ClZeroAndTe", req("Host: h\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n")),
                    bad("DifferingCl", req("Host: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n")),
                    bad("DifferingClList", req("Host: h\r\nContent-Length: 5, 6\r\n")),
                    bad("ClNotDigits", req("Host: h\r\nContent-Length: abc\r\n")),
                    bad("ClNegative", req("Host: h\r\nContent-Length: -1\r\n")),
                    bad("ClPlus", req("Host: h\r\nContent-Length: +5\r\n")),
                    bad("ClHex", req("Host: h\r\nContent-Length: 0x10\r\n")),
                    bad("ClInnerSpace", req("Host: h\r\nContent-Length: 1 0\r\n")),
                    bad("ClEmpty", req("Host: h\r\nContent-Length:\r\n")),
                    bad("ClEmptyElement", req("Host: h\r\nContent-Length: 5,,5\r\n")),
                    bad("ClOverflowU64", req("Host: h\r\nContent-Length: 99999999999999999999\r\n")),
                    bad("ClOverInt64", req("Host: h\r\nContent-Length: 9223372036854775808\r\n")),
                    bad("TeGzip", req("Host: h\r\nTransfer-Encoding: gzip\r\n")),
                    bad("TeIdentity", req("Host: h\r\nTransfer-Encoding: identity\r\n")),
                    bad("TeChunkedThenGzip", req("Host: h\r\nTransfer-Encoding: chunked, gzip\r\n")),
                    bad("TeChunkedThenGzipLines",
                        req("Host: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n")),
                    bad("TeGzipChunked", req("Host: h\r\nTransfer-Encoding: gzip, chunked\r\n"), 501),
                    bad("TeChunkedTwice", req("Host: h\r\nTransfer-Encoding: chunked, chunked\r\n")),
                    bad("TeChunkedTwiceLines",
                        req("Host: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")),
                    bad("TeTrailingComma", req("Host: h\r\nTransfer-Encoding: chunked,\r\n")),
                    bad("TeEmpty", req("Host: h\r\nTransfer-Encoding:\r\n")),
                    bad("TeLookalike", req("Host: h\r\nTransfer-Encoding: xchunked\r\n")),
                    bad("TeWithParameter", req("Host: h\r\nTransfer-Encoding: chunked;q=1\r\n")),
                    bad("TeVerticalTab", req("Host: h\r\nTransfer-Encoding: \vchunked\r\n")),
                    bad("TeInHttp10", req("Transfer-Encoding: chunked\r\n", "POST /p HTTP/1.0")),
                    bad("ObsFold", req("Host: h\r\nX-A: a\r\n b\r\n")),
                    bad("ObsFoldTab", req("Host: h\r\nX-A: a\r\n\tb\r\n")),
                    bad("WhitespaceAfterStartLine", req(" Host: h\r\n")),
                    bad("SpaceBeforeColon", req("Host : h\r\n")),
                    bad("TabBeforeColon", req("Host: h\r\nContent-Length\t: 5\r\n")),
                    bad("EmptyFieldName", req("Host: h\r\n: v\r\n")),
                    bad("NoColon", req("Host: h\r\nX-A\r\n")),
                    bad("ParenInFieldName", req("Host: h\r\nX(a): v\r\n")),
                    bad("CtlInFieldName", req("Host: h\r\nX\x01: v\r\n")),
                    bad("NonAsciiFieldName", req("Host: h\r\nX\xc3\xa9: v\r\n")),
                    bad("NulInValue", req("Host: h\r\nX-A: a\0b\r\n"s)),
                    bad("CtlInValue", req("Host: h\r\nX-A: a\x01z\r\n")),
                    bad("DelInValue", req("Host: h\r\nX-A: a\x7fz\r\n")),
                    bad("BareCrInValue", req("Host: h\r\nX-A: a\rb\r\n")),
                    bad("BareCrBeforeCrlf", req("Host: h\r\nX-A: a\r\r\n")),
                    bad("BareCrLine", req("Host: h\r\n\rX: y\r\n")),
                    bad("BareLfInRequestLine", "GET / HTTP/1.1\nHost: h\r\n\r\n"),
                    bad("BareLfAfterField", "GET / HTTP/1.1\r\nHost: h\n\r\n"),
                    bad("BareLfEnd", "GET / HTTP/1.1\r\nHost: h\r\n\n"),
                    bad("LeadingBareLf", "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"),
                    bad("NonTokenMethod", req("Host: h\r\n", "G(T / HTTP/1.1")),
                    bad("LeadingSpace", req("Host: h\r\n", " GET / HTTP/1.1")),
                    bad("DoubleSpaceBeforeTarget", req("Host: h\r\n", "GET  / HTTP/1.1")),
                    bad("DoubleSpaceBeforeVersion", req("Host: h\r\n", "GET /  HTTP/1.1")),
                    bad("TabSeparator", req("Host: h\r\n", "GET\t/ HTTP/1.1")),
                    bad("TrailingSpace", req("Host: h\r\n", "GET / HTTP/1.1 ")),
                    bad("NoVersion", req("Host: h\r\n", "GET /")), bad("Http09", "GET /\r\n\r\n"),
                    bad("LowercaseVersion", req("Host: h\r\n", "GET / http/1.1")),
                    bad("VersionTooLong", req("Host: h\r\n", "GET / HTTP/1.10")),
                    bad("VersionShort", req("Host: h\r\n", "GET / HTTP/1")),
                    bad("Version20", req("Host: h\r\n", "GET / HTTP/2.0"), 505),
                    bad("Version12", req("Host: h\r\n", "GET / HTTP/1.2"), 505),
                    bad("Version09", req("Host: h\r\n", "GET / HTTP/0.9"), 505),
                    bad("CtlInTarget", req("Host: h\r\n", "GET /a\x01z HTTP/1.1")),
                    bad("DelInTarget", req("Host: h\r\n", "GET /a\x7fz HTTP/1.1")),
                    bad("NonAsciiTarget", req("Host: h\r\n", "GET /caf\xc3\xa9 HTTP/1.1")),
                    bad("FragmentInTarget", req("Host: h\r\n", "GET /a#b HTTP/1.1")),
                    bad("MissingHost", req("Accept: */*\r\n", "GET / HTTP/1.1")),
                    bad("TwoHosts", req("Host: a\r\nHost: a\r\n", "GET / HTTP/1.1")),
                    bad("TwoHostsHttp10", req("Host: a\r\nHost: b\r\n", "GET / HTTP/1.0")),
                    bad("HostWithSlash", req("Host: a/b\r\n", "GET / HTTP/1.1")),
                    bad("HostWithUserinfo", req("Host: user@a\r\n", "GET / HTTP/1.1")),
                    bad("HostWithSpace", req("Host: a b\r\n", "GET / HTTP/1.1")),
                    bad("AsteriskWithGet", req("Host: h\r\n", "GET * HTTP/1.1")),
                    bad("ConnectOriginForm", req("Host: h\r\n", "CONNECT / HTTP/1.1")),
                    bad("ConnectNoPort", req("Host: h\r\n", "CONNECT example.com HTTP/1.1")),
                    bad("ConnectNoHost", req("Host: h\r\n", "CONNECT :443 HTTP/1.1")),
                    bad("ConnectBadPort", req("Host: h\r\n", "CONNECT example.com:44x HTTP/1.1")),
                    bad("AuthorityFormWithGet", req("Host: h\r\n", "GET example.com:443 HTTP/1.1")),
                    bad("AbsoluteUserinfo", req("Host: h\r\n", "GET http://trusted@evil/ HTTP/1.1")),
                    bad("AbsoluteEmptyAuthority", req("Host: h\r\n", "GET http:///a HTTP/1.1")),
                    bad("AbsoluteOneSlash", req("Host: h\r\n", "GET http:/a HTTP/1.1")),
                    bad("AbsoluteBadScheme", req("Host: h\r\n", "GET 1http://a/ HTTP/1.1")),
                    bad("AbsoluteBadAuthority", req("Host: h\r\n", "GET http://a\"b/ HTTP/1.1"))),
    [](const testing::TestParamInfo<RejectCase>& info) { return std::string(info.param.name); });

TEST(H1Request, ErrorPositionPointsAtTheOffender) {
  const std::string in = "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01z\r\n\r\n";
  Parsed p = parse_request(in);
  ASSERT_EQ(p.status, ParseStatus::kInvalid);
  EXPECT_EQ(p.error.pos, in.find('\x01'));
  p = parse_request("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kInvalid);
  EXPECT_EQ(p.error.pos, 23u);
  EXPECT_STREQ(p.error.reason, "bare LF as line end");
}

TEST(H1Request, BareLfIsRefusedBeforeTheHeadIsComplete) {
  // Waiting for "\r\n\r\n" would never end for a client that only sends LF.
  Parsed p = parse_request("GET / HTTP/1.1\nHost: h\n");
  EXPECT_EQ(p.status, ParseStatus::kInvalid);
}

TEST(H1Request, Http10WithoutHost) {
  Parsed p = parse_request("GET /x HTTP/1.0\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  EXPECT_EQ(p.head->version_minor, 0);
  EXPECT_TRUE(p.head->host.empty());
  EXPECT_FALSE(p.head->keep_alive);
}

TEST(H1Request, EmptyHostIsAllowed) {
  // RFC 9112 section 3.2: sent empty when the target URI has no authority.
  Parsed p = parse_request("GET / HTTP/1.1\r\nHost:\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  EXPECT_TRUE(p.head->host.empty());
}

TEST(H1Request, HostWithPortAndIpv6Literal) {
  Parsed p = parse_request("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  EXPECT_EQ(p.head->host, "[::1]:8080");
}

TEST(H1Request, AbsoluteForm) {
  Parsed p = parse_request("GET http://example.com:8080/a/b?q=1&r HTTP/1.1\r\nHost: other\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  EXPECT_EQ(p.head->target, "http://example.com:8080/a/b?q=1&r");
  // RFC 9112 section 3.2.2: the target's authority wins over Host.
  EXPECT_EQ(p.head->host, "example.com:8080");
  EXPECT_EQ(p.head->path, "/a/b");
  EXPECT_EQ(p.head->query, "q=1&r");
}

TEST(H1Request, AbsoluteFormWithoutPath) {
  Parsed p = parse_request("GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  EXPECT_EQ(p.head->host, "example.com");
  EXPECT_EQ(p.head->path, "/");
  EXPECT_EQ(p.head->query, "");
  p = parse_request("GET http://example.com?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  EXPECT_EQ(p.head->path, "/");
  EXPECT_EQ(p.head->query, "x=1");
}

TEST(H1Request, AbsoluteFormInHttp10NeedsNoHost) {
  Parsed p = parse_request("GET http://example.com/x HTTP/1.0\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  EXPECT_EQ(p.head->host, "example.com");
  EXPECT_EQ(p.head->path, "/x");
}

TEST(H1Request, AsteriskFormForOptions) {
  Parsed p = parse_request("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  EXPECT_EQ(p.head->method, Method::kOptions);
  EXPECT_EQ(p.head->target, "*");
  EXPECT_EQ(p.head->path, "*");
}

TEST(H1Request, AuthorityFormForConnect) {
  Parsed p = parse_request("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
  EXPECT_EQ(p.head->method, Method::kConnect);
  EXPECT_EQ(p.head->target, "example.com:443");
  EXPECT_EQ(p.head->host, "example.com:443");
  EXPECT_TRUE(p.head->path.empty());
  p = parse_request("CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(p.status, ParseStatus::kComplete) << p.error.reason;
}

TEST(H1Request, HeadOverTheLimitIs431) {
  const ParseLimits limits{.max_head_bytes = 64, .max_headers = kMaxHeaders};
  const std::string in = "GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + std::string(100, 'x') + "\r\n\r\n";
  Parsed p = parse_request(in, limits);
  EXPECT_EQ(p.status, ParseStatus::kTooLarge);
  EXPECT_EQ(p.error.http_status, 431);
  // Incomplete and already over the limit: no need to wait for the rest.
  p = parse_request(in.substr(0, 65), limits);
  EXPECT_EQ(p.status, ParseStatus::kTooLarge);
  EXPECT_EQ(p.error.http_status, 431);
  // Incomplete and within the limit: wait.
  EXPECT_EQ(parse_request(in.substr(0, 64), limits).status, ParseStatus::kNeedMore);
  EXPECT_EQ(parse_growing(in, limits), parse_whole(in, limits));
}

TEST(H1Request, HeadExactlyAtTheLimitIsAccepted) {
  std::string in = "GET / HTTP/1.1\r\nHost: h\r\nX: \r\n\r\n";
  in.insert(in.size() - 4, 64 - in.size(), 'x');
  ASSERT_EQ(in.size(), 64u);
  const ParseLimits limits{.max_head_bytes = 64, .max_headers = kMaxHeaders};
  EXPECT_EQ(parse_request(in, limits).status, ParseStatus::kComplete);
  const ParseLimits smaller{.max_head_bytes = 63, .max_headers = kMaxHeaders};
  Parsed p = parse_request(in, smaller);
  EXPECT_EQ(p.status, ParseStatus::kTooLarge);
  EXPECT_EQ(p.error.http_status, 431);
}

TEST(H1Request, LongRequestLineIs414) {
  const ParseLimits limits{.max_head_bytes = 64, .max_headers = kMaxHeaders};
  const std::string in = "GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n";
  Parsed p = parse_request(in, limits);
  EXPECT_EQ(p.status, ParseStatus::kTooLarge);
  EXPECT_EQ(p.error.http_status, 414);
  EXPECT_EQ(parse_growing(in, limits), parse_whole(in, limits));
}

TEST(H1Request, DefaultLimitIs16KiB) {
  const std::string big = "GET / HTTP/1.1\r\nHost: h\r\nCookie: " + std::string(16 * 1024, 'c') + "\r\n\r\n";
  Parsed p = parse_request(big);
  EXPECT_EQ(p.status, ParseStatus::kTooLarge);
  EXPECT_EQ(p.error.http_status, 431);
}

TEST(H1Request, TooManyHeadersIs431) {
  std::string fields = "Host: h\r\n";
  for (int i = 0; i < 3; ++i) fields += "X-" + std::to_string(i) + ": v\r\n";
  const ParseLimits three{.max_head_bytes = 16 * 1024, .max_headers = 3};
  Parsed p = parse_request(req(fields, "GET / HTTP/1.1"), three);
  EXPECT_EQ(p.status, ParseStatus::kTooLarge);
  EXPECT_EQ(p.error.http_status, 431);
  const ParseLimits four{.max_head_bytes = 16 * 1024, .max_headers = 4};
  EXPECT_EQ(parse_request(req(fields, "GET / HTTP/1.1"), four).status, ParseStatus::kComplete);

  std::string many = "Host: h\r\n";
  for (size_t i = 1; i < kMaxHeaders; ++i) many += "X: v\r\n";
  p = parse_request(req(many, "GET / HTTP/1.1"));
  ASSERT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.head->header_count, kMaxHeaders);
  p = parse_request(req(many + "X: v\r\n", "GET / HTTP/1.1"));
  EXPECT_EQ(p.status, ParseStatus::kTooLarge);
  EXPECT_EQ(p.error.http_status, 431);
  // A configured limit above the array size is clamped to it.
  const ParseLimits huge{.max_head_bytes = 16 * 1024, .max_headers = 1000};
  EXPECT_EQ(parse_request(req(many + "X: v\r\n", "GET / HTTP/1.1"), huge).status, ParseStatus::kTooLarge);
}

class H1RequestGrowing : public testing::TestWithParam<std::string> {};

TEST_P(H1RequestGrowing, ByteByByteEqualsWhole) {
  const std::string& in = GetParam();
  const HeadResult whole = parse_whole(in);
  EXPECT_EQ(parse_growing(in), whole);
  EXPECT_NE(whole.status, ParseStatus::kNeedMore);
}

INSTANTIATE_TEST_SUITE_P(
    Inputs, H1RequestGrowing,
    testing::Values("GET / HTTP/1.1\r\nHost: h\r\n\r\n"s,
                    "GET /wrk HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"s,
                    "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"s,
                    "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"s,
                    "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"s,
                    "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"s, "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n"s,
                    "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n"s,
                    "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"s,
                    "GET / HTTP/3.0\r\nHost: h\r\n\r\n"s));

TEST(H1Request, ResumesWhereItStoppedScanning) {
  // A head that grows in pieces: each call after the first only has new bytes to look at, and the answer
  // is the same as for the whole head.
  std::string in = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 50; ++i) in += "X-Field-" + std::to_string(i) + ": value\r\n";
  in += "\r\n";
  RequestParser parser;
  auto head = std::make_unique<RequestHead>();
  for (size_t n = 0; n < in.size(); n += 7) {
    ASSERT_EQ(parser.parse(std::string_view(in).substr(0, n), *head), ParseStatus::kNeedMore) << n;
  }
  ASSERT_EQ(parser.parse(in, *head), ParseStatus::kComplete);
  EXPECT_EQ(head->header_count, 51u);
  EXPECT_EQ(head->header("x-field-49"), "value");
}

TEST(H1Request, ShorterBufferAfterResetStartsOver) {
  RequestParser parser;
  auto head = std::make_unique<RequestHead>();
  ASSERT_EQ(parser.parse("GET /long-path-here HTTP/1.1\r\nHost: h\r\n", *head), ParseStatus::kNeedMore);
  parser.reset();
  ASSERT_EQ(parser.parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n", *head), ParseStatus::kComplete);
  EXPECT_EQ(head->path, "/");
}

}  // namespace
}  // namespace cumulo::http
