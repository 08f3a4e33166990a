#include "core/text.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cumulo::core {
namespace {

TEST(Text, CaseFoldingIsAsciiOnly) {
  EXPECT_EQ(to_lower('A'), 'a');
  EXPECT_EQ(to_lower('z'), 'z');
  EXPECT_EQ(to_lower('@'), '@');  // the byte before 'A'
  EXPECT_EQ(to_lower('['), '[');  // the byte after 'Z'
  EXPECT_EQ(to_upper('a'), 'A');
  EXPECT_EQ(to_upper('{'), '{');
  EXPECT_EQ(to_lower(std::string_view("X-Amz-Date: \xC3\x9C")),
            "x-amz-date: \xC3\x9C");  // bytes >= 0x80 kept
  EXPECT_EQ(to_upper("caa-Tag1"), "CAA-TAG1");
  std::string s = "MiXeD";
  to_lower_in_place(s);
  EXPECT_EQ(s, "mixed");
  static_assert(to_lower('Q') == 'q');
}

TEST(Text, CaseInsensitiveEquals) {
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("content-length", "content-lengt"));
  EXPECT_FALSE(iequals("Host", "Hosts"));
  EXPECT_FALSE(iequals("a", "b"));
  // Only letters fold: '@' and '`' differ from each other as they differ from 'A' and 'a'.
  EXPECT_FALSE(iequals("@", "`"));
  EXPECT_FALSE(iequals("[", "{"));
  EXPECT_FALSE(iequals("Host", "Hast"));
  EXPECT_FALSE(iequals("\xC3\x9C", "\xC3\xBC"));
  static_assert(iequals("Host", "hOST"));
}

TEST(Text, Tokens) {
  for (char c : std::string_view("!#$%&'*+-.^_`|~09azAZ")) EXPECT_TRUE(is_tchar(c)) << c;
  for (char c : std::string_view(" \t\"(),/:;<=>?@[\\]{}\x7f\x80\xff")) EXPECT_FALSE(is_tchar(c)) << int(c);
  EXPECT_FALSE(is_tchar('\0'));
  EXPECT_TRUE(is_token("max-age"));
  EXPECT_FALSE(is_token(""));
  EXPECT_FALSE(is_token("max age"));
  EXPECT_TRUE(is_alnum('7') && is_alnum('q') && !is_alnum('-'));
}

TEST(Text, HexDigits) {
  EXPECT_EQ(hex_digit_value('0'), 0);
  EXPECT_EQ(hex_digit_value('9'), 9);
  EXPECT_EQ(hex_digit_value('a'), 10);
  EXPECT_EQ(hex_digit_value('F'), 15);
  EXPECT_EQ(hex_digit_value('g'), -1);
  EXPECT_EQ(hex_digit_value('G'), -1);
  EXPECT_EQ(hex_digit_value('/'), -1);
  EXPECT_EQ(hex_digit_value(':'), -1);
  EXPECT_EQ(hex_digit_value('\xff'), -1);
}

TEST(Text, PercentDecode) {
  std::string out = "left over";
  ASSERT_TRUE(percent_decode("", out));
  EXPECT_EQ(out, "");
  ASSERT_TRUE(percent_decode("a%20b%2fc%2F%7e", out));
  EXPECT_EQ(out, "a b/c/~");
  ASSERT_TRUE(percent_decode("%00%FF", out));
  EXPECT_EQ(out, std::string("\0\xff", 2));
  ASSERT_TRUE(percent_decode("%2541", out));  // decoded once: "%41", not "A"
  EXPECT_EQ(out, "%41");
}

TEST(Text, PercentEncode) {
  EXPECT_EQ(percent_encode("aZ09-._~"), "aZ09-._~");
  EXPECT_EQ(percent_encode("a b/c:d+%"), "a%20b%2Fc%3Ad%2B%25");
  EXPECT_EQ(percent_encode("a b/c:d", "/:"), "a%20b/c:d");
  EXPECT_EQ(percent_encode(std::string_view("\0\xff", 2)), "%00%FF");
  std::string back;
  ASSERT_TRUE(percent_decode(percent_encode("any \x01 bytes/\xC3\xBC"), back));
  EXPECT_EQ(back, "any \x01 bytes/\xC3\xBC");
}

TEST(Text, PercentDecodePlus) {
  std::string out;
  ASSERT_TRUE(percent_decode("a+b%2B", out));
  EXPECT_EQ(out, "a+b+");
  ASSERT_TRUE(percent_decode("a+b%2B", out, PlusIs::kSpace));
  EXPECT_EQ(out, "a b+");
}

TEST(Text, PercentDecodeRefusesWhatIsNotAnEscape) {
  std::string out;
  for (std::string_view bad :
       {"%", "a%", "%4", "a%4", "%g0", "%0g", "%%41", "% 1", "%-1", "%+1", "%1z", "%\xff\xff"})
    EXPECT_FALSE(percent_decode(bad, out)) << bad;
}

TEST(Text, QueryPairsAsSent) {
  std::vector<std::string> seen;
  EXPECT_TRUE(for_each_query_pair(
      "a=1&&b&c=x=y&=v&", [&](std::string_view n, std::string_view v, std::string_view pair) {
        seen.push_back(std::string(n) + "|" + std::string(v) + "|" + std::string(pair));
        return true;
      }));
  const std::vector<std::string> want{"a|1|a=1", "||", "b||b", "c|x=y|c=x=y", "|v|=v"};
  EXPECT_EQ(seen, want);
  int calls = 0;
  EXPECT_FALSE(
      for_each_query_pair("a=%41&b=2", [&](std::string_view n, std::string_view v, std::string_view) {
        ++calls;
        return !(n == "a" && v == "%41");
      }));
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(
      for_each_query_pair("", [](std::string_view, std::string_view, std::string_view) { return false; }));
}

// The widest cell sets each column's width, two spaces apart; short rows and the unpadded last cell keep
// lines free of trailing blanks.
TEST(FormatColumns, AlignsOnTheWidestCell) {
  const std::vector<std::vector<std::string>> rows = {
      {"NAME", "ZONE", "STATE"}, {"gateway", "-", "ready"}, {"web-1", "zone-a"}, {}};
  EXPECT_EQ(format_columns(rows),
            "NAME     ZONE    STATE\n"
            "gateway  -       ready\n"
            "web-1    zone-a\n"
            "\n");
  EXPECT_EQ(format_columns({{"a", "bb"}, {"ccc", "d"}}, "  "), "  a    bb\n  ccc  d\n");
  EXPECT_EQ(format_columns({}), "");
}

}  // namespace
}  // namespace cumulo::core
