#include "http/wire/field_lists.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace cumulo::http {
namespace {

std::vector<std::string> elements(std::string_view value) {
  std::vector<std::string> out;
  for_each_list_element(value, [&](std::string_view e) {
    out.emplace_back(e);
    return true;
  });
  return out;
}

TEST(FieldLists, SplitsOnCommasAndTrimsOws) {
  EXPECT_EQ(elements("gzip, br;q=0.5 ,\tdeflate\t"),
            (std::vector<std::string>{"gzip", "br;q=0.5", "deflate"}));
  EXPECT_EQ(elements(""), (std::vector<std::string>{""}));
  EXPECT_EQ(elements(" , a,,"), (std::vector<std::string>{"", "a", "", ""}));  // empty elements are passed
  EXPECT_EQ(trim_ows(" \t x y \t"), "x y");
}

TEST(FieldLists, StopsWhenTheCallbackSaysSo) {
  int seen = 0;
  EXPECT_FALSE(for_each_list_element("a, b, c", [&](std::string_view e) {
    ++seen;
    return e != "b";
  }));
  EXPECT_EQ(seen, 2);
  EXPECT_TRUE(for_each_list_element("a, b", [](std::string_view) { return true; }));
}

TEST(FieldLists, ListContainsIsCaseInsensitive) {
  EXPECT_TRUE(list_contains("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(list_contains("close", "Close"));
  EXPECT_FALSE(list_contains("keep-alive, Upgrade", "up"));
  EXPECT_FALSE(list_contains("", "close"));
  EXPECT_FALSE(list_contains("x-close", "close"));
  static_assert(list_contains("TE, trailers", "te"));
}

}  // namespace
}  // namespace cumulo::http
