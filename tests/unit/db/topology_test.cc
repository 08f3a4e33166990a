#include "db/internal/topology.h"

#include <gtest/gtest.h>

namespace cumulo::db {
namespace {

ReplicaView replica(std::string name, std::string io_pos, std::string slave_pos = "", bool reachable = true) {
  ReplicaView v;
  v.name = std::move(name);
  v.reachable = reachable;
  v.io_running = v.sql_running = true;
  v.seconds_behind = 0;
  v.gtid_io_pos = std::move(io_pos);
  v.gtid_slave_pos = std::move(slave_pos);
  return v;
}

TEST(GtidPosition, ParsesDomainsAndKeepsTheHighestSequence) {
  auto p = GtidPosition::parse("0-1-42, 1-2-7,0-3-40");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->seq_by_domain.at(0), 42u);
  EXPECT_EQ(p->seq_by_domain.at(1), 7u);
  EXPECT_EQ(p->total(), 49u);
  EXPECT_TRUE(GtidPosition::parse("")->seq_by_domain.empty());
  EXPECT_FALSE(GtidPosition::parse("0-1"));
  EXPECT_FALSE(GtidPosition::parse("a-1-2"));
  EXPECT_FALSE(GtidPosition::parse("0-1-2x"));
}

TEST(GtidPosition, ContainsComparesEveryDomain) {
  auto a = *GtidPosition::parse("0-1-10,1-1-5");
  auto b = *GtidPosition::parse("0-1-9");
  auto c = *GtidPosition::parse("0-1-11");
  EXPECT_TRUE(a.contains(b));
  EXPECT_FALSE(b.contains(a));
  EXPECT_FALSE(a.contains(c));
  EXPECT_FALSE(c.contains(a));  // lacks domain 1
}

TEST(PromotionCandidate, TheReplicaThatReceivedMostWins) {
  std::vector<ReplicaView> r = {replica("db-b", "0-1-100"), replica("db-c", "0-1-120"),
                                replica("db-d", "0-1-90")};
  EXPECT_EQ(choose_promotion_candidate(r), "db-c");
}

TEST(PromotionCandidate, ReceivedCountsNotApplied) {
  // db-b applied more so far, but db-c received more: after applying its relay log it has everything.
  std::vector<ReplicaView> r = {replica("db-b", "0-1-50", "0-1-50"), replica("db-c", "0-1-60", "0-1-20")};
  EXPECT_EQ(choose_promotion_candidate(r), "db-c");
}

TEST(PromotionCandidate, AppliedBeyondReceivedCounts) {
  // After a restart the IO position may be empty while the applied one is known.
  std::vector<ReplicaView> r = {replica("db-b", "", "0-1-70"), replica("db-c", "0-1-60", "0-1-60")};
  EXPECT_EQ(choose_promotion_candidate(r), "db-b");
}

TEST(PromotionCandidate, UnreachableAndFencedReplicasAreNeverChosen) {
  std::vector<ReplicaView> r = {replica("db-b", "0-1-500", "", false), replica("db-c", "0-1-10")};
  r.push_back(replica("db-d", "0-1-900"));
  r.back().fenced = true;
  EXPECT_EQ(choose_promotion_candidate(r), "db-c");
  r[1].reachable = false;
  EXPECT_FALSE(choose_promotion_candidate(r));
  EXPECT_FALSE(choose_promotion_candidate({}));
}

TEST(PromotionCandidate, TiesGoToTheFirstName) {
  std::vector<ReplicaView> r = {replica("db-c", "0-1-10"), replica("db-b", "0-1-10")};
  EXPECT_EQ(choose_promotion_candidate(r), "db-b");
}

TEST(ReadersWithinLag, DropsLaggingAndBrokenReplicas) {
  std::vector<ReplicaView> r = {replica("ok", ""),   replica("slow", ""),    replica("nosql", ""),
                                replica("noio", ""), replica("unknown", ""), replica("down", "", "", false),
                                replica("edge", "")};
  r[1].seconds_behind = 6;
  r[2].sql_running = false;
  r[3].io_running = false;
  r[4].seconds_behind.reset();
  r[6].seconds_behind = 5;
  EXPECT_EQ(readers_within_lag(r, std::chrono::seconds(5)), (std::vector<std::string>{"ok", "edge"}));
  EXPECT_EQ(readers_within_lag(r, std::chrono::milliseconds(4'999)), (std::vector<std::string>{"ok"}));
}

TEST(ReaderRoute, RoundRobinOverReadersAndFallsBackToThePrimary) {
  ReaderRoute route({"b", "c"}, "a");
  EXPECT_EQ(route.next(), "b");
  EXPECT_EQ(route.next(), "c");
  EXPECT_EQ(route.next(), "b");
  ReaderRoute fallback({}, "a");
  EXPECT_EQ(fallback.next(), "a");
  EXPECT_EQ(fallback.next(), "a");
  ReaderRoute none({}, "");
  EXPECT_EQ(none.next(), "");
}

}  // namespace
}  // namespace cumulo::db
