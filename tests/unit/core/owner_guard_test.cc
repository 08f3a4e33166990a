#include "core/owner_guard.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <vector>

namespace cumulo::core {
namespace {

struct Owner {
  int calls = 0;
  OwnerGuard<Owner> guard{this};
};

TEST(OwnerGuard, CallbacksReachTheOwnerWhileItLives) {
  Owner owner;
  WeakOwner<Owner> weak = owner.guard.weak();
  ASSERT_EQ(weak.get(), &owner);
  EXPECT_TRUE(weak);
  if (Owner* o = weak.get()) ++o->calls;
  EXPECT_EQ(owner.calls, 1);
}

TEST(OwnerGuard, CallbacksThatOutliveTheOwnerFindNothing) {
  std::vector<std::function<void()>> pending;
  int reached = 0;
  {
    auto owner = std::make_unique<Owner>();
    pending.push_back([weak = owner->guard.weak(), &reached] {
      if (weak.get()) ++reached;
    });
  }
  for (auto& f : pending) f();
  EXPECT_EQ(reached, 0);
}

TEST(OwnerGuard, ResetStopsAnswersBeforeTheOwnerGoes) {
  Owner owner;
  WeakOwner<Owner> before = owner.guard.weak();
  owner.guard.reset();
  EXPECT_EQ(before.get(), nullptr);
  EXPECT_FALSE(owner.guard.weak());  // and every one handed out later
  EXPECT_FALSE(WeakOwner<Owner>());  // a default one answers nothing
}

}  // namespace
}  // namespace cumulo::core
