#include "db/internal/topology.h"

#include <gtest/gtest.h>

namespace cumulo::db {
namespace {

GtidSet set(std::string_view text) {
  auto s = GtidSet::parse(text);
  EXPECT_TRUE(s) << text;
  return s.value_or(GtidSet{});
}

ReplicaState known(std::string name, std::string_view received) {
  ReplicaState r;
  r.name = std::move(name);
  r.known = true;
  r.received = set(received);
  return r;
}

ReplicaState unknown(std::string name, std::optional<GtidSet> bound = std::nullopt) {
  ReplicaState r;
  r.name = std::move(name);
  r.known = false;
  r.bound = std::move(bound);
  return r;
}

TEST(GtidSet, KeepsEveryDomainServerPairWithItsHighestSequence) {
  GtidSet s = set("0-1-42, 1-2-7,0-3-40,0-1-30\n");
  EXPECT_EQ(s.to_string(), "0-1-42,0-3-40,1-2-7");
  EXPECT_EQ(s.position(), "0-1-42,1-2-7");
  EXPECT_EQ(s.highest_seq(0), 42u);
  EXPECT_EQ(s.highest_seq(1), 7u);
  EXPECT_EQ(s.highest_seq(5), 0u);
  EXPECT_TRUE(set("").empty());
  EXPECT_FALSE(GtidSet::parse("0-1"));
  EXPECT_FALSE(GtidSet::parse("a-1-2"));
  EXPECT_FALSE(GtidSet::parse("0-1-2x"));
  EXPECT_FALSE(GtidSet::parse("0--2"));
}

TEST(GtidSet, ContainsComparesEveryDomainAndServer) {
  EXPECT_TRUE(set("0-1-10,1-1-5").contains(set("0-1-9")));
  EXPECT_FALSE(set("0-1-9").contains(set("0-1-10,1-1-5")));
  EXPECT_FALSE(set("0-1-10,1-1-5").contains(set("0-1-11")));
  EXPECT_FALSE(set("0-1-11").contains(set("0-1-10,1-1-5")));  // lacks domain 1
  EXPECT_TRUE(set("0-1-5").contains(set("")));
}

TEST(GtidSet, SeveralServerIdsInOneDomainTellDivergedHistoriesApart) {
  // db-a (server 1) wrote up to 0-1-102 but only 0-1-100 reached db-b (server 2), which was promoted and
  // wrote on to 0-2-150. A per-domain maximum (150 > 102) would say db-b holds all of db-a; it does not.
  GtidSet old_primary = set("0-1-102");
  GtidSet new_primary = set("0-1-100,0-2-150");
  EXPECT_FALSE(new_primary.contains(old_primary));
  EXPECT_EQ(old_primary.missing_from(new_primary).to_string(), "0-1-102");
  EXPECT_TRUE(new_primary.contains(set("0-1-100")));
  EXPECT_TRUE(set("0-1-100,0-2-150,0-3-151").contains(new_primary));
}

TEST(ReceivedSet, APositionReachesBackThroughTheHistoryItCameFrom) {
  // A replica applied up to 0-1-90 and then received, from the new primary db-b, everything up to 0-2-150:
  // its relay log holds 0-1-91..0-1-100 too, though its own binary log does not show them yet.
  GtidSet history = set("0-1-100,0-2-170");
  GtidSet r = received_set(set("0-1-90"), set("0-1-90"), set("0-2-150"), history);
  EXPECT_EQ(r.to_string(), "0-1-100,0-2-150");
  EXPECT_TRUE(r.contains(set("0-1-100,0-2-140")));
  EXPECT_FALSE(r.contains(set("0-2-151")));
  // Nothing received yet: only what it applied.
  EXPECT_EQ(received_set(set("0-1-90"), set("0-1-90"), set(""), history).to_string(), "0-1-90");
}

TEST(ErrantTransactions, AreWhatTheReplicaHasAndThePrimaryLacks) {
  EXPECT_TRUE(errant_transactions(set("0-1-100,0-2-150"), set("0-1-100,0-2-160")).empty());
  // Written on the replica itself (server 3).
  EXPECT_EQ(errant_transactions(set("0-1-100,0-2-150,0-3-151"), set("0-1-100,0-2-160")).to_string(),
            "0-3-151");
  // A former primary's tail that never reached its successor.
  EXPECT_EQ(errant_transactions(set("0-1-102"), set("0-1-100,0-2-160")).to_string(), "0-1-102");
}

TEST(PlanPromotion, TheReplicaThatReceivedEverythingWinsAndMustApplyIt) {
  auto plan =
      plan_promotion({known("db-b", "0-1-100"), known("db-c", "0-1-120"), known("db-d", "0-1-90")}, {}, "");
  ASSERT_TRUE(plan.candidate);
  EXPECT_EQ(*plan.candidate, "db-c");
  EXPECT_EQ(plan.target.to_string(), "0-1-120");
  EXPECT_EQ(plan.target.position(), "0-1-120");
}

TEST(PlanPromotion, TiesGoToTheFirstName) {
  auto plan = plan_promotion({known("db-c", "0-1-10"), known("db-b", "0-1-10")}, {}, "");
  EXPECT_EQ(plan.candidate, "db-b");
}

TEST(PlanPromotion, TheMostAdvancedReplicaUnreachableMeansWaiting) {
  // db-c may have acknowledged commits that db-b never received: promoting db-b could lose them.
  auto plan = plan_promotion({known("db-b", "0-1-100"), unknown("db-c")}, {}, "");
  EXPECT_FALSE(plan.candidate);
  EXPECT_NE(plan.waiting_for.find("db-c"), std::string::npos) << plan.waiting_for;
  // Its bound (the primary's binary log when it stopped replicating) lies beyond db-b: still waiting.
  plan = plan_promotion({known("db-b", "0-1-100"), unknown("db-c", set("0-1-101"))}, {}, "");
  EXPECT_FALSE(plan.candidate);
  // Its bound lies within db-b: db-b holds whatever db-c could have acknowledged.
  plan = plan_promotion({known("db-b", "0-1-100"), unknown("db-c", set("0-1-95"))}, {}, "");
  EXPECT_EQ(plan.candidate, "db-b");
  // Being rebuilt, it holds nothing of its own.
  plan = plan_promotion({known("db-b", "0-1-100"), unknown("db-c", GtidSet{})}, {}, "");
  EXPECT_EQ(plan.candidate, "db-b");
}

TEST(PlanPromotion, NoReplicaKnownMeansWaiting) {
  auto plan = plan_promotion({unknown("db-b"), unknown("db-c")}, {}, "");
  EXPECT_FALSE(plan.candidate);
  EXPECT_FALSE(plan.waiting_for.empty());
  EXPECT_FALSE(plan_promotion({}, {}, "").candidate);
}

TEST(PlanPromotion, DivergedReplicasAreNeverPromoted) {
  // db-b and db-c each hold a transaction the other lacks: promoting either would drop the other's.
  auto plan = plan_promotion({known("db-b", "0-1-100,0-2-101"), known("db-c", "0-1-100,0-3-101")}, {}, "");
  EXPECT_FALSE(plan.candidate);
  EXPECT_NE(plan.waiting_for.find("db-b lacks 0-3-101"), std::string::npos) << plan.waiting_for;
  EXPECT_NE(plan.waiting_for.find("db-c lacks 0-2-101"), std::string::npos) << plan.waiting_for;
}

TEST(PlanPromotion, AFailedCandidatesTargetBindsTheNextChoice) {
  // db-c was chosen with target 0-1-4496 and failed (it died while applying its relay log). db-b received
  // only 0-1-4495: it must not be chosen instead, whatever db-c's state now.
  GtidSet earlier = set("0-1-4496");
  auto plan = plan_promotion({known("db-b", "0-1-4495"), unknown("db-c")}, earlier, "db-c");
  EXPECT_FALSE(plan.candidate);
  plan = plan_promotion({known("db-b", "0-1-4495"), known("db-c", "0-1-4496")}, earlier, "db-c");
  EXPECT_EQ(plan.candidate, "db-c");
  EXPECT_EQ(plan.target.to_string(), "0-1-4496");
  // db-c came back with its relay log lost: nobody holds the target, so the tier waits rather than lose it.
  plan = plan_promotion({known("db-b", "0-1-4495"), known("db-c", "0-1-4490")}, earlier, "db-c");
  EXPECT_FALSE(plan.candidate);
  // A replica that has it all may take over from the failed candidate.
  plan = plan_promotion({known("db-b", "0-1-4496"), unknown("db-c", earlier)}, earlier, "db-c");
  EXPECT_EQ(plan.candidate, "db-b");
  // When both qualify, the earlier candidate is kept.
  plan = plan_promotion({known("db-b", "0-1-4496"), known("db-c", "0-1-4496")}, earlier, "db-c");
  EXPECT_EQ(plan.candidate, "db-c");
}

TEST(PlanPromotion, AReplicaWithAnErrantTransactionIsNeverPromoted) {
  // db-b received the most but also holds a write of its own (0-2-57): it is not eligible; db-c is chosen if
  // db-b's bound lies within db-c.
  ReplicaState b = known("db-b", "0-1-120,0-2-57");
  b.eligible = false;
  b.bound = set("0-1-110");
  auto plan = plan_promotion({b, known("db-c", "0-1-110")}, {}, "");
  EXPECT_EQ(plan.candidate, "db-c");
  EXPECT_EQ(plan.target.to_string(), "0-1-110");
  // Without a bound, db-b might hold acknowledged commits: wait.
  b.bound.reset();
  EXPECT_FALSE(plan_promotion({b, known("db-c", "0-1-110")}, {}, "").candidate);
}

TEST(PlanPromotion, PositionsWithSeveralServerIdsInOneDomain) {
  // After two failovers the domain holds runs by servers 1, 2 and 3. db-c's IO position (0-3-300) is beyond
  // db-b's, and both carry the earlier servers' runs.
  auto plan = plan_promotion(
      {known("db-b", "0-1-100,0-2-200,0-3-290"), known("db-c", "0-1-100,0-2-200,0-3-300")}, {}, "");
  EXPECT_EQ(plan.candidate, "db-c");
  // db-c lacks the end of server 2's run that db-b has: neither holds everything.
  plan = plan_promotion({known("db-b", "0-1-100,0-2-200"), known("db-c", "0-1-100,0-2-190,0-3-300")}, {}, "");
  EXPECT_FALSE(plan.candidate);
}

TEST(ReadersWithinLag, DropsLaggingAndBrokenReplicas) {
  auto replica = [](std::string name, bool reachable = true) {
    ReplicaView v;
    v.name = std::move(name);
    v.reachable = reachable;
    v.io_running = v.sql_running = true;
    v.seconds_behind = 0;
    return v;
  };
  std::vector<ReplicaView> r = {replica("ok"),   replica("slow"),    replica("nosql"),
                                replica("noio"), replica("unknown"), replica("down", false),
                                replica("edge"), replica("fenced")};
  r[1].seconds_behind = 6;
  r[2].sql_running = false;
  r[3].io_running = false;
  r[4].seconds_behind.reset();
  r[6].seconds_behind = 5;
  r[7].fenced = true;
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
