// The elastic IP keeper (docs/elastic-ips.md, "How a move works"): health checks of the gateways from the
// router's namespace, one lease per elastic IP in the state file, and the moves, on one event loop.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/event_loop.h"
#include "eip/internal/config.h"
#include "eip/internal/lease.h"
#include "health/health.h"
#include "http/client.h"
#include "net/net.h"

namespace cumulo::eip::internal {

class Keeper {
 public:
  Keeper(core::EventLoop& loop, KeeperConfig config);
  ~Keeper();
  Keeper(const Keeper&) = delete;
  Keeper& operator=(const Keeper&) = delete;

  // Reads the leases, opens the router's namespace, adopts each address where the lease says it is (or
  // finishes a move that a killed keeper left half done), then starts checking. Throws std::runtime_error.
  void start();

  nlohmann::json status_json() const;  // GET /v1/eips
  nlohmann::json events_json() const;  // GET /v1/events
  // A planned move: drain `to`'s predecessor (up to drain_timeout), then move. `done(status, body)` once the
  // address is in place on `to`, or the move was refused.
  void planned_move(const std::string& name, const std::string& to,
                    std::function<void(int status, nlohmann::json body)> done);

 private:
  struct Gateway {
    const GatewayEntry* entry = nullptr;
    std::shared_ptr<health::HealthState> state = std::make_shared<health::HealthState>();
    std::string why;  // the last failed check
    std::unique_ptr<net::Netlink> netlink;
  };
  struct Eip {
    const ElasticIpEntry* entry = nullptr;
    bool busy = false;   // a move (planned or not) is under way
    std::string unable;  // why nothing can be done now, said once per change
    int64_t persisted_at_ms = 0;
    // A wait within a move (an old lease running out, a drain being polled): what to do when it ends.
    std::unique_ptr<core::Timer> wait_timer;
    std::function<void()> after_wait;
  };
  using Done = std::function<void(int status, nlohmann::json body)>;

  void evaluate();
  void watch(Gateway& g);
  std::vector<Candidate> candidates(const Eip& e) const;
  // Records the new holder and term durably, then fences and finishes.
  void move(Eip& e, const std::string& to, const std::string& reason, Done done);
  // Takes the address from every candidate but the holder, tells the holder its term, adds the address
  // there and routes it. Also what a keeper does with a lease found "moving".
  void fence_and_finish(Eip& e, const std::string& reason, int64_t started_ms, Done done);
  void finish(Eip& e, const std::string& reason, int64_t started_ms, Done done);
  void drain_then_move(Eip& e, const std::string& to, int64_t deadline_ms, Done done);
  void set_drain(const GatewayEntry& g, bool on);
  void wait_then(Eip& e, int64_t ms, std::function<void()> then);
  net::Result<void> take_from(Gateway& g, const Eip& e);
  net::Netlink* netlink(Gateway& g);
  Gateway* gateway(const std::string& id);
  bool persist();
  void event(const std::string& eip, const std::string& what, const std::string& reason);
  int64_t now_ms() const;

  core::EventLoop& loop_;
  KeeperConfig cfg_;
  std::unique_ptr<http::Client> probe_client_;  // connects from the router's namespace
  std::unique_ptr<http::Client> admin_client_;  // the gateways' admin APIs on the host
  std::unique_ptr<health::HealthChecker> checker_;
  std::unique_ptr<net::Netlink> router_;
  std::map<std::string, Gateway> gateways_;
  std::map<std::string, Eip> eips_;
  Leases leases_;
  core::Timer tick_;
  struct Event {
    std::string at, eip, what, reason;
  };
  std::deque<Event> events_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace cumulo::eip::internal
