// Range requests served from storage (RFC 9110 sections 14.1.2 and 14.2).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cache/policy.h"

namespace cumulo::cache {

std::ostream& operator<<(std::ostream& os, const ByteRange& r) {
  return os << r.first << "-" << r.last;
}

namespace {

using Ranges = std::vector<ByteRange>;

Ranges ranges(std::string_view value, uint64_t length = 10000) {
  Ranges out{{1, 2}};  // dirty on purpose: parse_range clears it
  const RangeKind kind = parse_range(value, length, out);
  EXPECT_EQ(kind == RangeKind::kRanges, !out.empty()) << value;
  return kind == RangeKind::kRanges ? out : Ranges{};
}

RangeKind kind(std::string_view value, uint64_t length = 10000) {
  Ranges out;
  return parse_range(value, length, out);
}

TEST(Range, ExamplesOfRfc9110) {
  // Section 14.1.2, a representation of 10000 bytes.
  EXPECT_EQ(ranges("bytes=0-499"), (Ranges{{0, 499}}));      // the first 500 bytes
  EXPECT_EQ(ranges("bytes=500-999"), (Ranges{{500, 999}}));  // the second 500 bytes
  EXPECT_EQ(ranges("bytes=-500"), (Ranges{{9500, 9999}}));   // the final 500 bytes
  EXPECT_EQ(ranges("bytes=9500-"), (Ranges{{9500, 9999}}));
  EXPECT_EQ(ranges("bytes=0-0,-1"), (Ranges{{0, 0}, {9999, 9999}}));  // the first and last bytes only
  // Other valid (but not canonical) specifications of the second 500 bytes, served as one range.
  EXPECT_EQ(ranges("bytes=500-600,601-999"), (Ranges{{500, 999}}));
  EXPECT_EQ(ranges("bytes=500-700,601-999"), (Ranges{{500, 999}}));
}

TEST(Range, ClampedToTheRepresentation) {
  // Section 14.1.1: a last-pos past the end means the end; a suffix longer than the representation is all of
  // it.
  EXPECT_EQ(ranges("bytes=9000-20000"), (Ranges{{9000, 9999}}));
  EXPECT_EQ(ranges("bytes=-20000"), (Ranges{{0, 9999}}));
  EXPECT_EQ(ranges("bytes=0-"), (Ranges{{0, 9999}}));
  EXPECT_EQ(ranges("bytes=0-99999999999999999999999999"), (Ranges{{0, 9999}}));
  EXPECT_EQ(ranges("bytes=0-0", 1), (Ranges{{0, 0}}));
  EXPECT_EQ(ranges("bytes=-1", 1), (Ranges{{0, 0}}));
}

TEST(Range, UnitIsCaseInsensitiveOthersAreIgnored) {
  EXPECT_EQ(ranges("Bytes=0-1"), (Ranges{{0, 1}}));
  EXPECT_EQ(ranges("BYTES=0-1"), (Ranges{{0, 1}}));
  EXPECT_EQ(kind("items=0-5"), RangeKind::kNone);
  EXPECT_EQ(kind(""), RangeKind::kNone);
}

TEST(Range, Unsatisfiable) {
  EXPECT_EQ(kind("bytes=10000-"), RangeKind::kUnsatisfiable);
  EXPECT_EQ(kind("bytes=10000-10005"), RangeKind::kUnsatisfiable);
  EXPECT_EQ(kind("bytes=-0"), RangeKind::kUnsatisfiable);
  EXPECT_EQ(kind("bytes=99999999999999999999999-"), RangeKind::kUnsatisfiable);
  EXPECT_EQ(kind("bytes=20000-20001,-0"), RangeKind::kUnsatisfiable);
  // Unsatisfiable specs next to satisfiable ones are dropped.
  EXPECT_EQ(ranges("bytes=20000-20001,0-1"), (Ranges{{0, 1}}));
}

TEST(Range, EmptyRepresentation) {
  // Section 14.1.1: only a non-empty suffix is satisfiable; the whole (empty) representation is sent.
  EXPECT_EQ(kind("bytes=-5", 0), RangeKind::kNone);
  EXPECT_EQ(kind("bytes=0-", 0), RangeKind::kUnsatisfiable);
  EXPECT_EQ(kind("bytes=0-0,-0", 0), RangeKind::kUnsatisfiable);
}

TEST(Range, InvalidSyntax) {
  for (const char* v : {"bytes", "bytes=", "bytes=,", "bytes=500-400", "bytes=abc", "bytes=1-2-3", "bytes=1",
                        "bytes=--1", "bytes=-", "bytes=- 1", "bytes=1 -2", "bytes=0x1-2", "bytes =0-1",
                        "=0-1", "bytes=0-1;x", "by tes=0-1", "bytes=+1-2"}) {
    EXPECT_EQ(kind(v), RangeKind::kInvalid) << v;
  }
}

TEST(Range, ListSyntax) {
  // OWS around commas and empty list elements (RFC 9110 section 5.6.1.2).
  EXPECT_EQ(ranges("bytes=0-1, 5-6 ,\t9-9"), (Ranges{{0, 1}, {5, 6}, {9, 9}}));
  EXPECT_EQ(ranges("bytes=,0-1,,"), (Ranges{{0, 1}}));
}

TEST(Range, OrderOfTheRequestUnlessCoalesced) {
  // RFC 9110 section 15.3.7.2: parts in the order asked for.
  EXPECT_EQ(ranges("bytes=500-599,0-99"), (Ranges{{500, 599}, {0, 99}}));
  EXPECT_EQ(ranges("bytes=-1,0-0"), (Ranges{{9999, 9999}, {0, 0}}));
  // Touching ranges coalesce, and then everything is in ascending order.
  EXPECT_EQ(ranges("bytes=900-999,100-199,200-299"), (Ranges{{100, 299}, {900, 999}}));
  EXPECT_EQ(ranges("bytes=0-5,3-8"), (Ranges{{0, 8}}));
}

TEST(Range, AbuseIsIgnored) {
  // Section 14.2: more than kMaxRanges ranges, or several overlapping ones, are served as 200.
  std::string sixteen = "bytes=0-0";
  for (int i = 1; i < 16; ++i) sixteen += "," + std::to_string(i * 10) + "-" + std::to_string(i * 10);
  EXPECT_EQ(ranges(sixteen).size(), 16u);
  EXPECT_EQ(kind(sixteen + ",500-500"), RangeKind::kNone);
  EXPECT_EQ(kind(sixteen + ",-"), RangeKind::kNone);  // too many wins over syntax: nothing is served anyway
  EXPECT_EQ(kind("bytes=0-,0-,0-"), RangeKind::kNone);
  EXPECT_EQ(kind("bytes=0-99,50-149,100-199"), RangeKind::kNone);
  EXPECT_EQ(kind("bytes=0-1,0-1,5-6,5-6"), RangeKind::kNone);
  EXPECT_EQ(ranges("bytes=0-,0-"), (Ranges{{0, 9999}}));  // one overlap is tolerated
}

TEST(Range, HugeRepresentation) {
  const uint64_t max = UINT64_MAX;
  EXPECT_EQ(ranges("bytes=-1", max), (Ranges{{max - 1, max - 1}}));
  EXPECT_EQ(ranges("bytes=18446744073709551614-", max), (Ranges{{max - 1, max - 1}}));
  EXPECT_EQ(kind("bytes=18446744073709551615-", max), RangeKind::kUnsatisfiable);
  EXPECT_EQ(ranges("bytes=0-", max), (Ranges{{0, max - 1}}));
}

}  // namespace
}  // namespace cumulo::cache
