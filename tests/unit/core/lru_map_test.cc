#include "core/lru_map.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace cumulo::core {
namespace {

TEST(LruMap, EvictsTheLeastRecentlyUsedBeyondACount) {
  LruMap<std::string, int> m(LruLimits{.max_entries = 2});
  m.insert("a", 1);
  m.insert("b", 2);
  ASSERT_NE(m.find("a"), nullptr);  // "a" is now the most recent
  m.insert("c", 3);
  std::vector<std::string> evicted;
  EXPECT_EQ(m.evict([&](auto& e) { evicted.push_back(e.key); }), 1u);
  EXPECT_EQ(evicted, std::vector<std::string>{"b"});
  EXPECT_EQ(m.find("b"), nullptr);
  EXPECT_EQ(*m.find("a"), 1);
  EXPECT_EQ(*m.find("c"), 3);
  EXPECT_EQ(m.size(), 2u);
}

TEST(LruMap, EvictsBeyondBytesButKeepsTheMinimum) {
  LruMap<std::string, std::string> m(LruLimits{.max_bytes = 10, .min_entries = 1});
  m.insert("a", "x", 4);
  m.insert("b", "y", 4);
  EXPECT_EQ(m.bytes(), 8u);
  EXPECT_EQ(m.evict(), 0u);
  m.insert("c", "z", 4);
  EXPECT_EQ(m.evict(), 1u);  // "a" goes: 8 bytes left
  EXPECT_EQ(m.bytes(), 8u);
  m.insert("huge", "w", 100);
  EXPECT_EQ(m.evict(), 2u);  // down to the one entry that is kept however large
  EXPECT_EQ(m.size(), 1u);
  EXPECT_NE(m.find("huge"), nullptr);
  EXPECT_EQ(m.bytes(), 100u);
}

TEST(LruMap, SeveralEntriesPerKeyFoundAndReplacedByValue) {
  LruMap<std::string, std::pair<std::string, int>> m;  // (vary key, version)
  m.insert("/a", {"gzip", 1}, 1);
  m.insert("/a", {"br", 1}, 1);
  m.insert("/b", {"", 1}, 1);
  auto is = [](const char* vary) {
    return [vary](const std::pair<std::string, int>& v) { return v.first == vary; };
  };
  ASSERT_NE(m.find_if("/a", is("br")), nullptr);
  EXPECT_EQ(m.find_if("/a", is("zstd")), nullptr);
  EXPECT_TRUE(m.erase_first("/a", is("gzip")));
  m.insert("/a", {"gzip", 2}, 1);
  EXPECT_EQ(m.find_if("/a", is("gzip"))->second, 2);
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(m.erase("/a"), 2u);
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(m.bytes(), 1u);
}

TEST(LruMap, EraseIfVisitsEveryEntryAndReportsEach) {
  LruMap<std::string, int> m;
  for (int i = 0; i < 6; ++i) m.insert("k" + std::to_string(i), i, 10);
  int reported = 0;
  EXPECT_EQ(m.erase_if([](const std::string&, int v) { return v % 2 == 0; }, [&](auto&) { ++reported; }), 3u);
  EXPECT_EQ(reported, 3);
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(m.bytes(), 30u);
  EXPECT_EQ(m.find("k2"), nullptr);
  EXPECT_NE(m.find("k3"), nullptr);
  m.clear();
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.bytes(), 0u);
}

TEST(LruMap, HoldsMoveOnlyValues) {
  LruMap<int, std::unique_ptr<int>> m(LruLimits{.max_entries = 1});
  m.insert(1, std::make_unique<int>(10));
  m.insert(2, std::make_unique<int>(20));
  m.evict();
  ASSERT_NE(m.find(2), nullptr);
  EXPECT_EQ(**m.find(2), 20);
}

}  // namespace
}  // namespace cumulo::core
