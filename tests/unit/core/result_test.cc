// core::Result and core::Error: a value or an error, never both, and the error says its source and whether a
// retry is safe.
#include "core/result.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace cumulo::core {
namespace {

enum class Code { kNotFound, kBroken };

Result<int, Code> parse_digit(char c) {
  if (c < '0' || c > '9') return Err(Code::kBroken);
  return c - '0';
}

Result<void, Error> check(bool good) {
  if (!good) return Err(Error{"check", "the check failed", ErrorSource::kClient, Retry::kNo});
  return {};
}

TEST(Result, HoldsAValue) {
  Result<int, Code> r = parse_digit('7');
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r.value(), 7);
  EXPECT_EQ(*r, 7);
  EXPECT_EQ(r.value_or(-1), 7);
}

TEST(Result, HoldsAnError) {
  Result<int, Code> r = parse_digit('x');
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.error(), Code::kBroken);
  EXPECT_EQ(r.value_or(-1), -1);
}

TEST(Result, MovesItsValueOut) {
  Result<std::unique_ptr<int>, Code> r = std::make_unique<int>(5);
  ASSERT_TRUE(r);
  std::unique_ptr<int> p = std::move(r).value();
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, 5);

  Result<std::vector<std::string>, Code> v = std::vector<std::string>{"a", "b"};
  EXPECT_EQ(v->size(), 2u);
  v.value().push_back("c");
  EXPECT_EQ(v->back(), "c");
}

TEST(Result, ErrorOfAnotherTypeConvertsWhenConstructible) {
  Result<int, std::string> r = Err("no such thing");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "no such thing");
}

TEST(Result, VoidSpecialisation) {
  Result<void, Error> good = check(true);
  EXPECT_TRUE(good.ok());
  Result<void, Error> bad = check(false);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().kind, "check");
  EXPECT_EQ(bad.error().source, ErrorSource::kClient);
  EXPECT_FALSE(bad.error().retry_safe());
}

TEST(Error, SaysItsSourceAndWhetherARetryIsSafe) {
  Error e{"sqlite_step", "listing bucket b1: database is locked", ErrorSource::kStorage, Retry::kSafe};
  EXPECT_TRUE(e.retry_safe());
  EXPECT_EQ(e.describe(), "storage error (sqlite_step, retry safe): listing bucket b1: database is locked");
  Error u{"connect", "10.0.0.1:80: connection refused", ErrorSource::kUpstream, Retry::kNo};
  EXPECT_EQ(u.describe(), "upstream error (connect): 10.0.0.1:80: connection refused");
  EXPECT_EQ(error_source_name(ErrorSource::kInternal), "internal");
}

static_assert(std::is_same_v<Result<int, Code>::value_type, int>);
static_assert(std::is_same_v<Result<void, Code>::error_type, Code>);

}  // namespace
}  // namespace cumulo::core
