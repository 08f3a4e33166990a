#include "eip/internal/keeper.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>

#include "core/log.h"
#include "core/net.h"

namespace cumulo::eip::internal {

namespace {

using json = nlohmann::json;
using Millis = std::chrono::milliseconds;

constexpr char kComponent[] = "eip";
constexpr size_t kMaxEvents = 200;
constexpr Millis kAdminTimeout{250};
constexpr Millis kDrainPoll{50};

bool namespace_exists(const std::string& ns) {
  struct stat st {};
  return ::stat(core::network_namespace_path(ns).c_str(), &st) == 0;
}

GatewayHealth to_gateway_health(health::Health h) {
  switch (h) {
    case health::Health::kHealthy:
      return GatewayHealth::kHealthy;
    case health::Health::kUnhealthy:
      return GatewayHealth::kUnhealthy;
    case health::Health::kInitial:
      break;
  }
  return GatewayHealth::kUnknown;
}

}  // namespace

Keeper::Keeper(core::EventLoop& loop, KeeperConfig config)
    : loop_(loop), cfg_(std::move(config)), tick_(loop, [this] { evaluate(); }) {}

Keeper::~Keeper() {
  *alive_ = false;
  checker_.reset();
}

int64_t Keeper::now_ms() const {
  return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Keeper::Gateway* Keeper::gateway(const std::string& id) {
  auto it = gateways_.find(id);
  return it == gateways_.end() ? nullptr : &it->second;
}

void Keeper::event(const std::string& eip, const std::string& what, const std::string& reason) {
  events_.push_back({core::utc_timestamp(), eip, what, reason});
  if (events_.size() > kMaxEvents) events_.pop_front();
}

bool Keeper::persist() {
  auto r = save_leases(cfg_.state_file, leases_);
  if (!r) {
    core::log_error(kComponent, "cannot write the leases", {{"error", r.error().message}});
    return false;
  }
  return true;
}

net::Netlink* Keeper::netlink(Gateway& g) {
  if (!g.netlink) {
    auto nl = net::Netlink::open(g.entry->ns);
    if (!nl) {
      g.why = nl.error().message;
      return nullptr;
    }
    g.netlink = std::move(*nl);
  }
  return g.netlink.get();
}

// Fencing: the address leaves the gateway's namespace, whatever state its process is in (a stopped gateway's
// kernel would still accept connections there). A namespace that no longer exists holds nothing.
net::Result<void> Keeper::take_from(Gateway& g, const Eip& e) {
  if (!namespace_exists(g.entry->ns)) {
    g.netlink.reset();
    return {};
  }
  net::Netlink* nl = netlink(g);
  if (nl == nullptr)
    return core::Err(core::Error{"network", g.why, core::ErrorSource::kInternal, core::Retry::kSafe});
  auto r = nl->remove_address(g.entry->interface, e.entry->address, 32);
  if (!r) g.netlink.reset();  // opened again next time: the namespace may have been made anew
  return r;
}

void Keeper::watch(Gateway& g) {
  checker_->watch(
      g.entry->id,
      *core::SocketAddress::parse(net::ipv4_text(g.entry->address) + ":" + std::to_string(g.entry->port)),
      cfg_.check, g.state);
}

void Keeper::start() {
  auto loaded = load_leases(cfg_.state_file);
  if (!loaded) throw std::runtime_error(loaded.error().message);
  leases_ = std::move(*loaded);
  auto router = net::Netlink::open(cfg_.router_ns);
  if (!router) throw std::runtime_error("the router's namespace: " + router.error().message);
  router_ = std::move(*router);
  auto connect = net::connect_from(cfg_.router_ns);
  if (!connect) throw std::runtime_error(connect.error().message);
  http::ClientOptions probe_options;
  probe_options.connect = std::move(*connect);
  probe_client_ = std::make_unique<http::Client>(loop_, probe_options);
  admin_client_ = std::make_unique<http::Client>(loop_);
  checker_ = std::make_unique<health::HealthChecker>(
      loop_, *probe_client_,
      [this](const std::string& id, health::Health before, health::Health after, const std::string& why) {
        Gateway* g = gateway(id);
        if (g == nullptr) return;
        g->why = after == health::Health::kHealthy ? "" : why;
        core::log_info(kComponent, id + " is " + health::to_string(after),
                       {{"before", health::to_string(before)}, {"reason", why}});
        evaluate();
      });
  for (const GatewayEntry& e : cfg_.gateways) gateways_[e.id].entry = &e;

  // Adoption: where is each address now, and does that agree with its lease?
  for (const ElasticIpEntry& entry : cfg_.elastic_ips) {
    Eip& e = eips_[entry.name];
    e.entry = &entry;
    e.wait_timer = std::make_unique<core::Timer>(loop_, [&e] {
      auto then = std::move(e.after_wait);
      e.after_wait = nullptr;
      if (then) then();
    });
    Lease& lease = leases_[entry.name];
    std::vector<std::string> found;
    for (const std::string& id : entry.gateways) {
      Gateway& g = gateways_.at(id);
      if (!namespace_exists(g.entry->ns)) continue;
      net::Netlink* nl = netlink(g);
      if (nl == nullptr) continue;
      auto addresses = nl->addresses();
      if (!addresses) continue;
      for (const net::InterfaceAddress& a : *addresses)
        if (a.address == entry.address) found.push_back(id);
    }
    auto route = router_->route(entry.address, 32);
    const GatewayEntry* holder = lease.holder.empty() ? nullptr : cfg_.gateway(lease.holder);
    const bool route_ok = holder != nullptr && route && *route && (*route)->via == holder->address;
    std::string seen;
    for (const std::string& id : found) seen += (seen.empty() ? "" : ",") + id;
    if (holder != nullptr && lease.state == "held" && found == std::vector<std::string>{lease.holder} &&
        route_ok) {
      core::log_info(kComponent, "adopted " + entry.name + " on " + lease.holder,
                     {{"address", net::ipv4_text(entry.address)}, {"term", static_cast<long>(lease.term)}});
      event(entry.name, "adopted on " + lease.holder + " (term " + std::to_string(lease.term) + ")",
            "the keeper started and found the address where its lease says");
      // The gateway may have been restarted since it was told its term.
      http::ClientRequest req;
      req.method = "PUT";
      req.target = "/eips/" + entry.name;
      req.body = json{{"term", lease.term}}.dump();
      req.timeout = kAdminTimeout;
      admin_client_->request(*core::SocketAddress::parse(holder->admin), std::move(req), [](auto) {});
    } else if (holder != nullptr) {
      core::log_warn(kComponent, "finishing the move of " + entry.name + " to " + lease.holder,
                     {{"state", lease.state},
                      {"found_on", seen.empty() ? "nowhere" : seen},
                      {"term", static_cast<long>(lease.term)}});
      lease.state = "moving";  // finished by evaluate(), with the same term
    } else if (!found.empty()) {
      core::log_warn(kComponent, entry.name + " is held by no lease",
                     {{"found_on", seen}, {"action", "given to the first healthy gateway"}});
    }
  }
  for (auto& [id, g] : gateways_) watch(g);
  tick_.arm(cfg_.check.interval);
  core::log_info(kComponent, "keeper started",
                 {{"stack", cfg_.stack},
                  {"elastic_ips", static_cast<long>(cfg_.elastic_ips.size())},
                  {"gateways", static_cast<long>(cfg_.gateways.size())},
                  {"lease_ttl_ms", static_cast<long>(cfg_.lease_ttl.count())}});
}

std::vector<Candidate> Keeper::candidates(const Eip& e) const {
  std::vector<Candidate> out;
  for (const std::string& id : e.entry->gateways) {
    const Gateway& g = gateways_.at(id);
    out.push_back({id, to_gateway_health(g.state->health.load()), g.why});
  }
  return out;
}

void Keeper::evaluate() {
  if (!tick_.armed()) tick_.arm(cfg_.check.interval);
  const int64_t now = now_ms();
  for (auto& [name, e] : eips_) {
    if (e.busy) continue;
    Lease& lease = leases_[name];
    const Decision d = decide(lease, candidates(e));
    if (d.kind == Decision::Kind::kMove) {
      e.unable.clear();
      move(e, d.to, d.reason, nullptr);
      continue;
    }
    if (lease.state == "moving") {
      e.busy = true;
      fence_and_finish(e, "finishing a move a previous keeper began", now, nullptr);
      continue;
    }
    if (d.kind == Decision::Kind::kRenew) {
      e.unable.clear();
      lease.renewed_at_ms = now;
      lease.expires_at_ms = now + cfg_.lease_ttl.count();
      // Durable every third of the lease time: a keeper started again sees a lease that had not expired.
      if (now - e.persisted_at_ms >= cfg_.lease_ttl.count() / 3 && persist()) e.persisted_at_ms = now;
    } else if (!d.reason.empty() && d.reason != e.unable) {
      e.unable = d.reason;
      core::log_warn(kComponent, name + " stays where it is", {{"reason", d.reason}});
      event(name, "not moved", d.reason);
    }
  }
}

void Keeper::move(Eip& e, const std::string& to, const std::string& reason, Done done) {
  const std::string& name = e.entry->name;
  Lease& lease = leases_[name];
  const Lease before = lease;
  const int64_t now = now_ms();
  lease.from = lease.holder;
  lease.holder = to;
  lease.term = before.term + 1;
  lease.state = "moving";
  lease.renewed_at_ms = now;
  lease.expires_at_ms = now + cfg_.lease_ttl.count();
  // The new term is on disk before anything changes: a keeper killed from here on finishes this move.
  if (!persist()) {
    lease = before;
    event(name, "move to " + to + " failed", "cannot write the lease file " + cfg_.state_file);
    if (done) done(500, json{{"error", "cannot write the lease file " + cfg_.state_file}});
    return;
  }
  e.busy = true;
  // Fencing waits for the old lease only when the old holder's namespace cannot be changed.
  if (before.expires_at_ms > now) lease.expires_at_ms = std::max(lease.expires_at_ms, before.expires_at_ms);
  core::log_warn(kComponent, "moving " + name + " to " + to,
                 {{"from", before.holder.empty() ? "-" : before.holder},
                  {"term", static_cast<long>(lease.term)},
                  {"reason", reason}});
  fence_and_finish(e, reason, now, std::move(done));
}

void Keeper::fence_and_finish(Eip& e, const std::string& reason, int64_t started_ms, Done done) {
  const std::string& name = e.entry->name;
  Lease& lease = leases_[name];
  std::string failures;
  for (const std::string& id : e.entry->gateways) {
    if (id == lease.holder) continue;
    if (auto r = take_from(gateways_.at(id), e); !r)
      failures += (failures.empty() ? "" : "; ") + r.error().message;
  }
  const int64_t now = now_ms();
  if (!failures.empty() && now < lease.expires_at_ms) {
    // The old holder may still answer on the address until its lease runs out; the route moves the traffic
    // anyway, but two holders never answer at once.
    core::log_error(kComponent,
                    "cannot take " + name + " from its old holder: waiting for its lease to expire",
                    {{"error", failures}, {"wait_ms", static_cast<long>(lease.expires_at_ms - now)}});
    event(name, "fencing failed", failures + "; waiting out the old lease");
    wait_then(e, lease.expires_at_ms - now,
              [this, &e, reason, started_ms, done] { finish(e, reason, started_ms, done); });
    return;
  }
  // The new holder learns its term before it gets the address, so every answer it gives there carries it.
  const GatewayEntry* to = cfg_.gateway(lease.holder);
  http::ClientRequest req;
  req.method = "PUT";
  req.target = "/eips/" + name;
  req.body = json{{"term", lease.term}}.dump();
  req.timeout = kAdminTimeout;
  auto alive = std::weak_ptr<bool>(alive_);
  admin_client_->request(*core::SocketAddress::parse(to->admin), std::move(req),
                         [this, alive, &e, reason, started_ms, done](http::ClientResponse r) {
                           if (alive.expired()) return;
                           if (!r.ok() || r.status != 200)
                             core::log_warn(kComponent, "the new holder was not told its term",
                                            {{"eip", e.entry->name},
                                             {"error", r.ok() ? std::to_string(r.status) : r.error.message}});
                           finish(e, reason, started_ms, done);
                         });
}

void Keeper::finish(Eip& e, const std::string& reason, int64_t started_ms, Done done) {
  const std::string& name = e.entry->name;
  Lease& lease = leases_[name];
  Gateway* to = gateway(lease.holder);
  std::string error;
  net::Netlink* nl = to == nullptr ? nullptr : netlink(*to);
  if (nl == nullptr) {
    error = to == nullptr ? "no gateway " + lease.holder : to->why;
  } else if (auto r = nl->add_address(to->entry->interface, e.entry->address, 32); !r) {
    error = r.error().message;
    to->netlink.reset();
  } else if (auto rr = router_->replace_route(e.entry->address, 32, to->entry->address,
                                              to->entry->router_interface);
             !rr) {
    error = rr.error().message;
  }
  e.busy = false;
  if (!error.empty()) {
    // Tried again at the next evaluation (the lease stays "moving"), or moved on if the holder is unhealthy.
    core::log_error(kComponent, "cannot give " + name + " to " + lease.holder, {{"error", error}});
    event(name, "move to " + lease.holder + " failed", error);
    if (done) done(500, json{{"error", error}});
    return;
  }
  const std::string from = lease.from;
  const int64_t now = now_ms();
  lease.state = "held";
  lease.from.clear();
  lease.renewed_at_ms = now;
  lease.expires_at_ms = now + cfg_.lease_ttl.count();
  if (persist()) e.persisted_at_ms = now;
  const long took = static_cast<long>(now - started_ms);
  core::log_warn(kComponent, name + " moved to " + lease.holder,
                 {{"from", from.empty() ? "-" : from},
                  {"term", static_cast<long>(lease.term)},
                  {"took_ms", took},
                  {"reason", reason}});
  event(name,
        "moved " + (from.empty() ? std::string() : "from " + from + " ") + "to " + lease.holder + " (term " +
            std::to_string(lease.term) + ", " + std::to_string(took) + " ms)",
        reason);
  if (const GatewayEntry* old = from.empty() ? nullptr : cfg_.gateway(from)) {
    http::ClientRequest req;
    req.method = "DELETE";
    req.target = "/eips/" + name;
    req.timeout = kAdminTimeout;
    admin_client_->request(*core::SocketAddress::parse(old->admin), std::move(req), [](auto) {});
  }
  if (done)
    done(200, json{{"elastic_ip", name}, {"holder", lease.holder}, {"term", lease.term}, {"took_ms", took}});
}

void Keeper::wait_then(Eip& e, int64_t ms, std::function<void()> then) {
  e.after_wait = std::move(then);
  e.wait_timer->arm(Millis(std::max<int64_t>(ms, 0)));
}

void Keeper::set_drain(const GatewayEntry& g, bool on) {
  http::ClientRequest req;
  req.method = "POST";
  req.target = "/drain";
  req.body = json{{"on", on}}.dump();
  req.timeout = kAdminTimeout;
  admin_client_->request(*core::SocketAddress::parse(g.admin), std::move(req), [](auto) {});
}

void Keeper::planned_move(const std::string& name, const std::string& to, Done done) {
  auto it = eips_.find(name);
  if (it == eips_.end()) return done(404, json{{"error", "no elastic IP '" + name + "'"}});
  Eip& e = it->second;
  const auto& allowed = e.entry->gateways;
  if (std::find(allowed.begin(), allowed.end(), to) == allowed.end()) {
    std::string list;
    for (const std::string& id : allowed) list += (list.empty() ? "" : ", ") + id;
    return done(400, json{{"error", "'" + to + "' may not hold " + name + " (it may: " + list + ")"}});
  }
  const Lease& lease = leases_[name];
  if (lease.holder == to && lease.state == "held")
    return done(200, json{{"elastic_ip", name}, {"holder", to}, {"term", lease.term}, {"unchanged", true}});
  // "moving" without a move under way: a keeper that has just started and will finish it at its next tick.
  if (e.busy || lease.state == "moving") return done(409, json{{"error", name + " is being moved already"}});
  const Gateway& target = gateways_.at(to);
  if (target.state->health.load() != health::Health::kHealthy)
    return done(409, json{{"error", to + " is not healthy" + (target.why.empty() ? "" : ": " + target.why)}});
  e.busy = true;
  const GatewayEntry* old = lease.holder.empty() ? nullptr : cfg_.gateway(lease.holder);
  if (old == nullptr) {
    e.busy = false;
    return move(e, to, "planned move", std::move(done));
  }
  // The old holder's checks pause while it drains (it answers them 503 then); they start again after.
  checker_->unwatch(old->id);
  set_drain(*old, true);
  event(name, "draining " + old->id, "planned move to " + to);
  drain_then_move(e, to, now_ms() + cfg_.drain_timeout.count(), std::move(done));
}

void Keeper::drain_then_move(Eip& e, const std::string& to, int64_t deadline_ms, Done done) {
  const GatewayEntry* old = cfg_.gateway(leases_[e.entry->name].holder);
  http::ClientRequest req;
  req.target = "/drain";
  req.timeout = kAdminTimeout;
  auto alive = std::weak_ptr<bool>(alive_);
  admin_client_->request(
      *core::SocketAddress::parse(old->admin), std::move(req),
      [this, alive, &e, to, deadline_ms, done, old](http::ClientResponse r) {
        if (alive.expired()) return;
        long open = -1;
        if (r.ok() && r.status == 200) {
          json j = json::parse(r.body, nullptr, false);
          if (j.is_object()) open = j.value("client_connections", -1L);
        }
        const int64_t now = now_ms();
        if (open > 0 && now < deadline_ms) {
          wait_then(e, kDrainPoll.count(),
                    [this, &e, to, deadline_ms, done] { drain_then_move(e, to, deadline_ms, done); });
          return;
        }
        const std::string reason =
            open < 0    ? "planned move (" + old->id + " did not answer: moved without waiting)"
            : open == 0 ? "planned move (" + old->id + " drained)"
                        : "planned move (" + std::to_string(open) + " connections still open on " + old->id +
                              " after the drain timeout)";
        e.busy = false;
        move(e, to, reason, [this, alive, old, done](int status, json body) {
          if (alive.expired()) return;
          set_drain(*old, false);
          watch(gateways_.at(old->id));
          done(status, std::move(body));
        });
      });
}

json Keeper::status_json() const {
  const int64_t now = now_ms();
  json eips = json::array();
  for (const ElasticIpEntry& entry : cfg_.elastic_ips) {
    const Eip& e = eips_.at(entry.name);
    auto it = leases_.find(entry.name);
    const Lease lease = it == leases_.end() ? Lease{} : it->second;
    eips.push_back({{"name", entry.name},
                    {"address", net::ipv4_text(entry.address)},
                    {"holder", lease.holder},
                    {"term", lease.term},
                    {"state", e.busy ? "moving" : lease.state},
                    {"lease_left_ms", std::max<int64_t>(0, lease.expires_at_ms - now)},
                    {"gateways", entry.gateways},
                    {"problem", e.unable}});
  }
  json gws = json::array();
  for (const GatewayEntry& g : cfg_.gateways) {
    const Gateway& s = gateways_.at(g.id);
    gws.push_back({{"id", g.id},
                   {"address", net::ipv4_text(g.address)},
                   {"namespace", g.ns},
                   {"health", health::to_string(s.state->health.load())},
                   {"why", s.why}});
  }
  return json{{"stack", cfg_.stack},
              {"lease_ttl_ms", cfg_.lease_ttl.count()},
              {"elastic_ips", eips},
              {"gateways", gws}};
}

json Keeper::events_json() const {
  json out = json::array();
  for (const Event& e : events_)
    out.push_back({{"at", e.at}, {"elastic_ip", e.eip}, {"event", e.what}, {"reason", e.reason}});
  return json{{"events", out}};
}

}  // namespace cumulo::eip::internal
