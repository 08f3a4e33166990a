#include "db/internal/endpoints.h"

#include <gtest/gtest.h>

namespace cumulo::db {
namespace {

TEST(RoutesFile, RoundTrips) {
  Publication p;
  p.writer = "db-b";
  p.hold_writer = true;
  p.readers = {"db-a", "db-c"};
  p.cut = {"db-d"};
  p.epoch = 7;
  auto back = routes_from_json(routes_to_json(p));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->writer, "db-b");
  EXPECT_TRUE(back->hold_writer);
  EXPECT_EQ(back->readers, p.readers);
  EXPECT_EQ(back->cut, p.cut);
  EXPECT_EQ(back->epoch, 7u);
}

TEST(RoutesFile, AFailoverInProgressHasNoWriter) {
  Publication p;
  p.writer = "";
  auto back = routes_from_json(routes_to_json(p));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->writer, "");
  EXPECT_FALSE(back->hold_writer);
}

TEST(RoutesFile, AnythingElseIsRefused) {
  EXPECT_FALSE(routes_from_json(""));
  EXPECT_FALSE(routes_from_json("{"));
  EXPECT_FALSE(routes_from_json("[]"));
  EXPECT_FALSE(routes_from_json(R"({"readers": []})"));
  EXPECT_FALSE(routes_from_json(R"({"writer": 3})"));
  EXPECT_FALSE(routes_from_json(R"({"writer": "a", "readers": "b"})"));
}

}  // namespace
}  // namespace cumulo::db
