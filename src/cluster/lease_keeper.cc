// LeaseKeeper: one lease renewed every ttl/3, and its loss told once. The local deadline counts from the send
// time of the last renewal that succeeded, not its answer: etcd restarted the lease's ttl no earlier than
// that, so the lease cannot outlive it (etcd may have expired it sooner only if its own clock ran fast).
#include <algorithm>

#include "cluster/cluster.h"

namespace cumulo::cluster {

struct LeaseKeeper::Impl {
  Impl(core::EventLoop& l, Client& c, Lease lease, std::function<void(core::Error)> lost_fn)
      : loop(l),
        client(c),
        id(lease.id),
        ttl_s(lease.ttl_s),
        on_lost(std::move(lost_fn)),
        tick(l, [this] { renew(); }),
        deadline(l, [this] { expire(); }) {
    expires = core::Clock::now() + std::chrono::seconds(ttl_s);
    deadline.arm_at(expires);
    tick.arm(interval());
  }
  ~Impl() { *alive = false; }

  core::Millis interval() const { return std::max(core::Millis(100), core::Millis(ttl_s * 1000 / 3)); }

  void renew() {
    tick.arm(interval());
    if (in_flight || lost) return;
    in_flight = true;
    core::TimePoint sent = core::Clock::now();
    client.keep_alive(id, [this, token = alive, sent](core::Result<Lease, core::Error> r) {
      if (!*token) return;
      in_flight = false;
      if (lost) return;
      if (!r) {
        last_error = r.error().message;
        if (r.error().kind == "lease_not_found") lose(r.error());
        return;  // tried again at the next tick
      }
      if (r->ttl_s <= 0) {
        core::Error e;
        e.kind = "lease_not_found";
        e.source = core::ErrorSource::kClient;
        e.message = "lease " + std::to_string(id) + " is gone: etcd's renewal answer has no time left";
        lose(e);
        return;
      }
      ttl_s = r->ttl_s;
      expires = sent + std::chrono::seconds(ttl_s);
      deadline.arm_at(expires);
      ++renewals;
    });
  }

  void expire() {
    core::Error e;
    e.kind = "lease_expired";
    e.source = core::ErrorSource::kUpstream;
    e.message = "lease " + std::to_string(id) + " expired: no renewal succeeded for its ttl of " +
                std::to_string(ttl_s) + " s" +
                (last_error.empty() ? "" : " (last error: " + last_error + ")");
    lose(e);
  }

  void lose(const core::Error& e) {
    lost = true;
    tick.cancel();
    deadline.cancel();
    auto fn = std::move(on_lost);  // it may destroy the keeper, and so on_lost, while it runs
    fn(e);
  }

  core::EventLoop& loop;
  Client& client;
  int64_t id;
  int64_t ttl_s;
  std::function<void(core::Error)> on_lost;
  core::TimePoint expires{};
  bool in_flight = false;
  bool lost = false;
  int renewals = 0;
  std::string last_error;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  core::Timer tick;
  core::Timer deadline;
};

LeaseKeeper::LeaseKeeper(core::EventLoop& loop, Client& client, Lease lease,
                         std::function<void(core::Error)> on_lost)
    : impl_(std::make_unique<Impl>(loop, client, lease, std::move(on_lost))) {}
LeaseKeeper::~LeaseKeeper() = default;

int64_t LeaseKeeper::id() const {
  return impl_->id;
}
bool LeaseKeeper::lost() const {
  return impl_->lost;
}
core::TimePoint LeaseKeeper::expires_at() const {
  return impl_->expires;
}
int LeaseKeeper::renewals() const {
  return impl_->renewals;
}

}  // namespace cumulo::cluster
