#include "core/swap_remove.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace cumulo::core {
namespace {

struct Item {
  int id = 0;
  size_t index = 0;
};

std::vector<std::unique_ptr<Item>> items(int n) {
  std::vector<std::unique_ptr<Item>> v;
  for (int i = 0; i < n; ++i) v.push_back(std::make_unique<Item>(Item{i, static_cast<size_t>(i)}));
  return v;
}

TEST(SwapRemove, TheLastTakesThePlaceAndLearnsIt) {
  auto v = items(4);
  std::unique_ptr<Item> removed = swap_remove(v, 1);
  ASSERT_NE(removed, nullptr);
  EXPECT_EQ(removed->id, 1);
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[1]->id, 3);
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(v[i]->index, i);
}

TEST(SwapRemove, TheLastAndTheOnlyOne) {
  auto v = items(2);
  EXPECT_EQ(swap_remove(v, 1)->id, 1);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0]->index, 0u);
  EXPECT_EQ(swap_remove(v, 0)->id, 0);
  EXPECT_TRUE(v.empty());
}

TEST(SwapRemove, RawPointersToo) {
  Item a{0, 0}, b{1, 1}, c{2, 2};
  std::vector<Item*> v{&a, &b, &c};
  EXPECT_EQ(swap_remove(v, 0), &a);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0], &c);
  EXPECT_EQ(c.index, 0u);
}

}  // namespace
}  // namespace cumulo::core
