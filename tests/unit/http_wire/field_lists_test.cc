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

TEST(FieldLines, WalksNameValueAndWholeLine) {
  std::vector<std::string> seen;
  EXPECT_TRUE(for_each_field_line("A: 1\r\nno colon\r\nB:\t two \r\nC:3",
                                  [&](std::string_view n, std::string_view v, std::string_view line) {
                                    seen.push_back(std::string(n) + "|" + std::string(v) + "|" +
                                                   std::string(line));
                                    return true;
                                  }));
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0], "A|1|A: 1\r\n");
  EXPECT_EQ(seen[1], "||no colon\r\n");
  EXPECT_EQ(seen[2], "B|two |B:\t two \r\n");
  EXPECT_EQ(seen[3], "C|3|C:3");
  int calls = 0;
  EXPECT_FALSE(
      for_each_field_line("A: 1\r\nB: 2\r\n", [&](std::string_view, std::string_view, std::string_view) {
        ++calls;
        return false;
      }));
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(
      for_each_field_line("", [](std::string_view, std::string_view, std::string_view) { return false; }));
}

TEST(FieldLines, ValueOfTheFirstFieldWithTheName) {
  constexpr std::string_view kLines = "Content-Type:  text/html\r\nX-A: 1\r\nx-a: 2\r\n";
  EXPECT_EQ(field_line_value(kLines, "content-type"), "text/html");
  EXPECT_EQ(field_line_value(kLines, "X-A"), "1");
  EXPECT_EQ(field_line_value(kLines, "x"), "");
  EXPECT_EQ(field_line_value("Etag: \"x\"", "etag"), "\"x\"");
  EXPECT_EQ(field_line_value(":no name\r\n", ""), "");
  static_assert(field_line_value("A: b\r\n", "a") == "b");
}

}  // namespace
}  // namespace cumulo::http
