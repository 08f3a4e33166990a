#include <gtest/gtest.h>

#include "http/wire/h1.h"

namespace cumulo::http {
namespace {

TEST(H1Names, MethodFromString) {
  EXPECT_EQ(method_from_string("GET"), Method::kGet);
  EXPECT_EQ(method_from_string("HEAD"), Method::kHead);
  EXPECT_EQ(method_from_string("POST"), Method::kPost);
  EXPECT_EQ(method_from_string("PUT"), Method::kPut);
  EXPECT_EQ(method_from_string("DELETE"), Method::kDelete);
  EXPECT_EQ(method_from_string("OPTIONS"), Method::kOptions);
  EXPECT_EQ(method_from_string("PATCH"), Method::kPatch);
  EXPECT_EQ(method_from_string("TRACE"), Method::kTrace);
  EXPECT_EQ(method_from_string("CONNECT"), Method::kConnect);
  EXPECT_EQ(method_from_string("get"), Method::kOther);
  EXPECT_EQ(method_from_string(""), Method::kOther);
  EXPECT_EQ(method_from_string("PROPFIND"), Method::kOther);
}

TEST(H1Names, HopByHop) {
  for (const char* name :
       {"Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer", "transfer-encoding", "UPGRADE"}) {
    EXPECT_TRUE(is_hop_by_hop(name)) << name;
  }
  for (const char* name : {"Host", "Content-Length", "Trailers", "T", "Upgrade-Insecure-Requests", ""}) {
    EXPECT_FALSE(is_hop_by_hop(name)) << name;
  }
}

TEST(H1Names, ReasonPhrase) {
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(404), "Not Found");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(502), "Bad Gateway");
  EXPECT_EQ(reason_phrase(999), "Unknown");
  for (int code : {100, 101, 200, 201, 202, 203, 204, 205, 206, 301, 302, 303, 304, 305, 307, 308, 400,
                   401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417,
                   421, 422, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 511}) {
    EXPECT_NE(reason_phrase(code), "Unknown") << code;
  }
}

}  // namespace
}  // namespace cumulo::http
