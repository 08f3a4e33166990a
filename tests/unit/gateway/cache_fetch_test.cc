// What a fetch the cache makes on its own (background revalidation, slices) takes from the client's request.
#include <gtest/gtest.h>

#include <string>

#include "gateway/internal/worker.h"
#include "http/client.h"
#include "http/wire/h1.h"

namespace cumulo::gateway {
namespace {

std::string names(const http::ClientRequest& cr) {
  std::string out;
  for (const auto& [name, value] : cr.headers) out += name + ";";
  return out;
}

TEST(CacheFetchHeaders, ConditionalsOfAnyCaseRangeHostAndHopByHopStayBehind) {
  const std::string head =
      "GET /a HTTP/1.1\r\nHost: x\r\nIF-NONE-MATCH: \"v1\"\r\nIf-Modified-Since: Mon, 07 Dec 2026 10:00:00 "
      "GMT\r\n"
      "if-range: \"v1\"\r\nRange: bytes=0-1\r\nConnection: keep-alive\r\nAccept-Encoding: gzip\r\n"
      "Cookie: c=1\r\nX-Trace: t\r\n\r\n";
  http::RequestParser parser;
  http::RequestHead rq;
  ASSERT_EQ(parser.parse(head, rq), http::ParseStatus::kComplete);

  RouteConfig route;
  route.timeouts.first_byte = std::chrono::milliseconds(1234);
  http::ClientRequest refresh = cache_fetch_request(rq, route, /*keep_accept_encoding=*/true);
  EXPECT_EQ(names(refresh), "Accept-Encoding;Cookie;X-Trace;Via;");
  EXPECT_EQ(refresh.method, "GET");
  EXPECT_EQ(refresh.target, "/a");
  EXPECT_EQ(refresh.host, "x");
  EXPECT_EQ(refresh.timeout, std::chrono::milliseconds(1234));

  http::ClientRequest slice = cache_fetch_request(rq, route, /*keep_accept_encoding=*/false);
  EXPECT_EQ(names(slice), "Cookie;X-Trace;Via;");
}

}  // namespace
}  // namespace cumulo::gateway
