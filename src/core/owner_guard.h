// For callbacks that may run after the object that asked for them is gone: a health-check reply after the
// target was unwatched, a coalesced cache fill after the client closed, a gateway registration answered after
// the scaling group stopped. The owner holds an OwnerGuard (a member, so that it dies with the owner, or
// reset() earlier when the owner stops listening); each callback captures a WeakOwner from it and asks for
// the owner before touching it.
//
// Not a synchronisation primitive: get() is called on the owner's own thread (a callback that arrives on
// another thread is posted to the owner's loop first), as the owner is destroyed on that thread too.
#pragma once

#include <memory>
#include <utility>

namespace cumulo::core {

template <typename T>
class WeakOwner;

template <typename T>
class OwnerGuard {
 public:
  explicit OwnerGuard(T* owner) : cell_(std::make_shared<T*>(owner)) {}
  OwnerGuard(const OwnerGuard&) = delete;
  OwnerGuard& operator=(const OwnerGuard&) = delete;
  ~OwnerGuard() { reset(); }

  // From now on every WeakOwner handed out answers nullptr.
  void reset() noexcept {
    if (cell_) *cell_ = nullptr;
  }
  WeakOwner<T> weak() const { return WeakOwner<T>(cell_); }

 private:
  // Shared with nobody: the WeakOwners hold weak references, so the cell goes with the guard.
  std::shared_ptr<T*> cell_;
};

template <typename T>
class WeakOwner {
 public:
  WeakOwner() = default;
  // The owner, or nullptr once it is destroyed or its guard was reset.
  T* get() const {
    const std::shared_ptr<T*> cell = cell_.lock();
    return cell ? *cell : nullptr;
  }
  explicit operator bool() const { return get() != nullptr; }

 private:
  friend class OwnerGuard<T>;
  explicit WeakOwner(std::weak_ptr<T*> cell) : cell_(std::move(cell)) {}
  std::weak_ptr<T*> cell_;
};

}  // namespace cumulo::core
