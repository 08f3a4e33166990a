#include "gateway/gateway.h"

#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "cache/store.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/signals.h"
#include "core/workers.h"
#include "gateway/internal/admin.h"
#include "gateway/internal/control.h"
#include "http/client.h"

namespace cumulo::gateway {

namespace {
const char* const kClassNames[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
}

void check_config(const std::string& config_path) {
  (void)parse_gateway_config(config_path);
}

const Route* Snapshot::match(std::string_view host, std::string_view path) const {
  auto colon = host.rfind(':');
  if (colon != std::string_view::npos && host.find(']') == std::string_view::npos)
    host = host.substr(0, colon);
  auto host_matches = [&](const std::string& pattern) {
    if (pattern == "*") return true;
    if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
      std::string_view suffix = std::string_view(pattern).substr(1);  // ".example.com"
      return host.size() > suffix.size() && http::iequals(host.substr(host.size() - suffix.size()), suffix);
    }
    return http::iequals(host, pattern);
  };
  const Route* best = nullptr;
  // Exact hosts beat wildcards; then the longest path prefix; then file order.
  int best_rank = -1;
  size_t best_len = 0;
  for (const Route& r : routes) {
    if (!host_matches(r.config.host)) continue;
    if (path.substr(0, r.config.path_prefix.size()) != r.config.path_prefix) continue;
    int rank = r.config.host == "*" ? 0 : (r.config.host[0] == '*' ? 1 : 2);
    size_t len = r.config.path_prefix.size();
    if (rank > best_rank || (rank == best_rank && len > best_len)) {
      best = &r;
      best_rank = rank;
      best_len = len;
    }
  }
  return best;
}

// ---- the control plane ----

Control::Control(std::string config_path) : config_path_(std::move(config_path)) {}

Control::~Control() = default;

std::shared_ptr<Target> Control::make_target(const std::string& group, const TargetConfig& tc,
                                             bool from_config, bool has_check) {
  auto t = std::make_shared<Target>();
  t->group = group;
  t->address_text = tc.address;
  t->address = *core::SocketAddress::parse(tc.address);
  t->zone = tc.zone;
  t->from_config = from_config;
  t->weight.store(tc.weight);
  t->added_at_ms.store(health::steady_ms(core::Clock::now()));
  // Targets from the file are trusted at start and checked from then on; registered ones prove themselves
  // first.
  t->health->health.store(from_config || !has_check ? health::Health::kHealthy : health::Health::kInitial);
  auto& reg = core::MetricsRegistry::global();
  core::Labels l{{"group", group}, {"target", tc.address}};
  for (int c = 0; c < 6; ++c) {
    core::Labels lc = l;
    lc.emplace_back("code", kClassNames[c]);
    t->metrics.responses[c] = &reg.counter("cumulo_gateway_target_responses_total",
                                           "Responses from a target by status class (none: no response)", lc);
  }
  core::Labels lin = l, lout = l;
  lin.emplace_back("direction", "in");
  lout.emplace_back("direction", "out");
  t->metrics.bytes_in =
      &reg.counter("cumulo_gateway_target_bytes_total", "Body bytes from (in) and to (out) a target", lin);
  t->metrics.bytes_out =
      &reg.counter("cumulo_gateway_target_bytes_total", "Body bytes from (in) and to (out) a target", lout);
  t->metrics.connect_failures = &reg.counter("cumulo_gateway_target_connect_failures_total",
                                             "Failed or timed-out connects to a target", l);
  t->metrics.retries =
      &reg.counter("cumulo_gateway_target_retries_total", "Requests retried after this target failed", l);
  t->metrics.latency = &reg.histogram("cumulo_gateway_target_duration_seconds",
                                      "Time from request start to the end of the response, per target", l);
  std::weak_ptr<Target> weak = t;
  reg.gauge_fn("cumulo_gateway_target_healthy", "1 when the target receives traffic (healthy, not ejected)",
               l, [weak] {
                 auto s = weak.lock();
                 return s && s->available(health::steady_ms(core::Clock::now())) ? 1.0 : 0.0;
               });
  reg.gauge_fn("cumulo_gateway_target_in_flight", "Requests in flight to the target", l, [weak] {
    auto s = weak.lock();
    return s ? static_cast<double>(s->in_flight.load()) : 0.0;
  });
  return t;
}

void Control::watch_health(const std::shared_ptr<Target>& t, const TargetGroupConfig& g) {
  if (!g.has_health_check || !checker_) return;
  checker_->watch(g.name + "/" + t->address_text, t->address, g.health_check, t->health);
}

void Control::apply_config(std::shared_ptr<const GatewayConfig> cfg) {
  std::map<std::string, std::vector<std::shared_ptr<Target>>, std::less<>> next;
  for (const auto& g : cfg->target_groups) {
    auto& list = next[g.name];
    auto old = targets_.find(g.name);
    for (const auto& tc : g.targets) {
      std::shared_ptr<Target> t;
      if (old != targets_.end()) {
        for (auto& o : old->second)
          if (o->address_text == tc.address) t = o;
      }
      if (t) {
        t->zone = tc.zone;
        t->weight.store(tc.weight);
        t->from_config = true;
      } else {
        t = make_target(g.name, tc, true, g.has_health_check);
      }
      list.push_back(t);
      watch_health(t, g);
    }
    // Targets registered at run time stay across reloads.
    if (old != targets_.end()) {
      for (auto& o : old->second) {
        if (o->from_config) continue;
        list.push_back(o);
        watch_health(o, g);
      }
    }
  }
  // Targets that left the file drain like deregistered ones.
  for (auto& [group, list] : targets_) {
    auto it = next.find(group);
    for (auto& t : list) {
      bool kept = false;
      if (it != next.end())
        for (auto& n : it->second) kept |= n == t;
      if (!kept) start_drain(t, cfg->limits.drain_timeout);
    }
  }
  targets_ = std::move(next);
  config_ = std::move(cfg);
  life_.drain_limit = config_->limits.drain_timeout;  // a stop after a reload drains as the new file says
  publish();
  publish_identity({});  // server_id may have changed; the leases stay
}

void Control::on_every_worker(std::function<void(Worker&)> fn, std::function<void()> done) {
  if (workers_.empty()) {
    if (done) done();
    return;
  }
  // Counted on this loop only: each worker posts its part back.
  auto left = std::make_shared<size_t>(workers_.size());
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->loop().post([this, worker, fn, left, done] {
      fn(*worker);
      loop_.post([left, done] {
        if (--*left == 0 && done) done();
      });
    });
  }
}

void Control::publish_identity(std::function<void()> done) {
  auto field = std::make_shared<const std::string>(render_identity_field(config_->server_id, leases_));
  if (identity_field_ && *identity_field_ == *field) {
    if (done) done();
    return;
  }
  identity_field_ = field;
  on_every_worker([field](Worker& w) { w.set_identity_field(field); }, std::move(done));
}

std::string Control::set_lease(const std::string& name, int64_t term, std::function<void()> done) {
  if (!valid_lease_name(name))
    return "400 an elastic IP's name is 1 to " + std::to_string(kMaxLeaseNameBytes) +
           " letters, digits, '-' or '_', got '" + name + "'";
  if (term < 1) return "400 term must be an integer from 1";
  if (!leases_.count(name) && leases_.size() >= kMaxLeases)
    return "409 this gateway holds " + std::to_string(kMaxLeases) +
           " elastic IPs already (the most it names in its responses); delete one first";
  auto [it, added] = leases_.insert_or_assign(name, term);
  core::log_info("gateway", added ? "elastic IP lease set" : "elastic IP lease changed",
                 {{"eip", name}, {"term", term}});
  publish_identity(std::move(done));
  return {};
}

std::string Control::remove_lease(const std::string& name, std::function<void()> done) {
  auto it = leases_.find(name);
  if (it == leases_.end()) return "404 no elastic IP lease named '" + name + "'";
  core::log_info("gateway", "elastic IP lease removed", {{"eip", name}, {"term", it->second}});
  leases_.erase(it);
  publish_identity(std::move(done));
  return {};
}

void Control::set_client_drain(bool on, std::function<void()> done) {
  if (on != client_drain_)
    core::log_info("gateway", on ? "draining client connections (still accepting)" : "client drain ended",
                   {{"connections", client_connections()}});
  client_drain_ = on;
  on_every_worker([on](Worker& w) { w.set_draining(on); }, std::move(done));
}

std::shared_ptr<const Snapshot> Control::build_snapshot() const {
  auto snap = std::make_shared<Snapshot>();
  snap->config = config_;
  snap->cache = cache_;
  auto& reg = core::MetricsRegistry::global();
  for (const auto& g : config_->target_groups) {
    auto tg = std::make_shared<TargetGroup>();
    tg->config = g;
    tg->targets = targets_.at(g.name);
    tg->balancer.resize(workers_.size());
    snap->groups.emplace(g.name, std::move(tg));
  }
  for (const auto& rc : config_->routes) {
    Route r;
    r.config = rc;
    r.group = snap->groups.at(rc.target_group);
    core::Labels l{{"route", rc.name}};
    for (int c = 0; c < 6; ++c) {
      core::Labels lc = l;
      lc.emplace_back("code", kClassNames[c]);
      r.metrics.responses[c] = &reg.counter("cumulo_gateway_requests_total",
                                            "Requests by route and status class (none: no response)", lc);
    }
    r.metrics.latency = &reg.histogram("cumulo_gateway_request_duration_seconds",
                                       "Time from request head to the end of the response, per route", l);
    r.metrics.bytes_out =
        &reg.counter("cumulo_gateway_response_bytes_total", "Bytes sent to clients, per route", l);
    static const char* const kCacheResults[4] = {"hit", "miss", "stale", "bypass"};
    for (int i = 0; i < 4; ++i) {
      core::Labels lc = l;
      lc.emplace_back("result", kCacheResults[i]);
      r.metrics.cache_results[i] =
          &reg.counter("cumulo_gateway_cache_requests_total",
                       "Cacheable requests by outcome (stale: served stale or revalidated)", lc);
    }
    r.metrics.cache_bytes = &reg.counter("cumulo_gateway_cache_served_bytes_total",
                                         "Body bytes served from the cache, per route", l);
    snap->routes.push_back(std::move(r));
  }
  return snap;
}

void Control::publish() {
  auto snap = build_snapshot();
  current_ = snap;
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->loop().post([worker, snap] { worker->set_snapshot(snap); });
  }
}

void Control::start_drain(const std::shared_ptr<Target>& t, std::chrono::milliseconds timeout) {
  t->draining.store(true);
  if (checker_) checker_->unwatch(t->group + "/" + t->address_text);
  draining_.push_back({t, core::Clock::now() + timeout});
  core::log_info("gateway", "target draining",
                 {{"group", t->group},
                  {"target", t->address_text},
                  {"in_flight", static_cast<int64_t>(t->in_flight.load())},
                  {"drain_timeout_ms", static_cast<int64_t>(timeout.count())}});
}

void Control::check_drains() {
  auto now = core::Clock::now();
  for (size_t i = 0; i < draining_.size();) {
    auto& d = draining_[i];
    int64_t left = d.target->in_flight.load();
    if (left == 0 || now >= d.deadline) {
      core::log_info("gateway", left == 0 ? "target drained" : "target drain timed out: cutting its requests",
                     {{"group", d.target->group}, {"target", d.target->address_text}, {"in_flight", left}});
      if (left != 0) {
        for (auto& w : workers_) {
          Worker* worker = w.get();
          std::shared_ptr<Target> t = d.target;
          worker->loop().post([worker, t] { worker->cut_requests_to(t.get()); });
        }
      }
      core::MetricsRegistry::global().remove_matching(
          {{"group", d.target->group}, {"target", d.target->address_text}});
      draining_.erase(draining_.begin() + static_cast<long>(i));
    } else {
      ++i;
    }
  }
}

bool Control::reload(std::string* error) {
  std::shared_ptr<const GatewayConfig> cfg;
  try {
    cfg = std::make_shared<const GatewayConfig>(parse_gateway_config(config_path_));
  } catch (const std::exception& e) {
    *error = e.what();
    core::log_error("gateway", "reload refused; the running configuration stays", {{"error", e.what()}});
    return false;
  }
  // Listeners are bound once per worker; changing them needs a restart (said, not silently ignored).
  auto listener_key = [](const GatewayConfig& c) {
    std::string k;
    for (auto& l : c.listeners) {
      k += l.name + "|" + l.listen + "|" + l.redirect_to_https + "|";
      for (auto& cert : l.certificates) k += cert.cert_file + "," + cert.key_file + ";";
    }
    return k + "|" + c.admin_listen + "|" + std::to_string(c.workers);
  };
  if (listener_key(*cfg) != listener_key(*config_)) {
    *error =
        config_path_ + ": listeners, admin address or workers changed; these take effect on restart only";
    core::log_error("gateway", "reload refused; the running configuration stays", {{"error", *error}});
    return false;
  }
  if (auto lvl = core::parse_log_level(cfg->log_level)) core::log_set_level(*lvl);
  apply_config(cfg);
  core::log_info("gateway", "configuration reloaded", {{"file", config_path_}});
  return true;
}

int Control::run() {
  std::shared_ptr<const GatewayConfig> cfg;
  try {
    cfg = std::make_shared<const GatewayConfig>(parse_gateway_config(config_path_));
  } catch (const core::ConfigError& e) {
    std::fprintf(stderr, "cumulo gateway: %s\n", e.what());
    return 2;
  }
  if (auto lvl = core::parse_log_level(cfg->log_level)) core::log_set_level(*lvl);
  if (cfg->access_log != "off" && !cfg->access_log.empty() && !core::AccessLog::open(cfg->access_log)) {
    std::fprintf(stderr, "cumulo gateway: %s: access_log: cannot open '%s': %s\n", config_path_.c_str(),
                 cfg->access_log.c_str(), std::strerror(errno));
    return 2;
  }

  // Signals are taken by the control loop alone; worker threads inherit the mask.
  const sigset_t mask = core::block_signals({SIGINT, SIGTERM, SIGHUP});

  int workers = cfg->workers > 0 ? cfg->workers : static_cast<int>(core::default_worker_count());
  loops_ = std::make_unique<core::LoopThreads>(static_cast<size_t>(workers));
  try {
    for (auto& lc : cfg->listeners) {
      auto l = std::make_unique<ListenerRuntime>();
      l->config = lc;
      l->address = *core::SocketAddress::parse(lc.listen);
      l->port_text = std::to_string(l->address.port());
      if (!lc.certificates.empty()) l->tls = http::TlsServerContext::create(lc.certificates);
      listeners_.push_back(std::move(l));
    }
    auto& reg = core::MetricsRegistry::global();
    shared_.active_connections = &reg.gauge("cumulo_gateway_client_connections", "Open client connections");
    shared_.accepted =
        &reg.counter("cumulo_gateway_client_connections_accepted_total", "Client connections accepted");
    const char* const kMonitorHelp =
        "Requests for monitor_uri answered by the gateway itself, by status class";
    shared_.monitor_answers[0] =
        &reg.counter("cumulo_gateway_monitor_requests_total", kMonitorHelp, {{"code", "2xx"}});
    shared_.monitor_answers[1] =
        &reg.counter("cumulo_gateway_monitor_requests_total", kMonitorHelp, {{"code", "5xx"}});
    reg.gauge_fn("cumulo_gateway_draining", "1 while client connections drain (POST /drain or a stop)", {},
                 [this] { return client_drain() ? 1.0 : 0.0; });
    for (int i = 0; i < workers; ++i)
      workers_.push_back(std::make_unique<Worker>(i, shared_, loops_->loop(static_cast<size_t>(i))));

    http_client_ = std::make_unique<http::Client>(loop_);
    checker_ = std::make_unique<health::HealthChecker>(
        loop_, *http_client_,
        [](const std::string& endpoint, health::Health before, health::Health after, const std::string& why) {
          auto level = after == health::Health::kHealthy ? core::LogLevel::kInfo : core::LogLevel::kWarn;
          core::log(level, "gateway", "target health changed",
                    {{"target", endpoint},
                     {"from", health::to_string(before)},
                     {"to", health::to_string(after)},
                     {"reason", why}});
        });
    config_ = cfg;
    cache_ =
        std::make_shared<cache::Store>(cfg->cache_max_bytes, cfg->cache_disk_path, cfg->cache_disk_max_bytes);
    reg.gauge_fn("cumulo_gateway_cache_bytes", "Bytes held by the cache", {},
                 [store = cache_] { return static_cast<double>(store->stats().bytes); });
    reg.gauge_fn("cumulo_gateway_cache_objects", "Objects held by the cache", {},
                 [store = cache_] { return static_cast<double>(store->stats().objects); });
    if (!cfg->cache_disk_path.empty()) {
      reg.gauge_fn("cumulo_gateway_cache_disk_bytes", "Bytes held by the cache's disk tier", {},
                   [store = cache_] { return static_cast<double>(store->stats().disk_bytes); });
      reg.gauge_fn("cumulo_gateway_cache_disk_objects", "Objects held by the cache's disk tier", {},
                   [store = cache_] { return static_cast<double>(store->stats().disk_objects); });
    }
    apply_config(cfg);  // targets, health checks, first snapshot
    for (auto& w : workers_) {
      w->set_identity_field(identity_field_);  // before the loop runs: the first response has it too
      w->start(current_, listeners_);
    }
    // Each worker's access log lines are buffered on its thread: the last ones are written as it ends.
    loops_->start([](size_t) { core::AccessLog::flush(); });
    admin_ = std::make_unique<Admin>(*this, loop_, *core::SocketAddress::parse(cfg->admin_listen));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cumulo gateway: cannot start: %s\n", e.what());
    loops_->stop();
    return 1;
  }

  life_.component = "gateway";
  life_.drain_limit = cfg->limits.drain_timeout;
  life_.reload = [this] {
    std::string error;
    reload(&error);
  };
  life_.begin_drain = [this] {
    stopping_ = true;
    core::log_info("gateway", "draining client connections",
                   {{"connections", static_cast<int64_t>(shared_.sessions.load())}});
    for (auto& w : workers_) {
      Worker* worker = w.get();
      worker->loop().post([worker] { worker->begin_drain(); });
    }
  };
  life_.idle = [this] { return shared_.sessions.load() == 0; };
  drain_check_ = std::make_unique<core::Timer>(loop_, [this] {
    check_drains();
    drain_check_->arm(std::chrono::milliseconds(100));
  });
  drain_check_->arm(std::chrono::milliseconds(100));

  std::string addrs;
  for (auto& l : listeners_)
    addrs +=
        (addrs.empty() ? "" : " ") + std::string(l->tls ? "https://" : "http://") + l->address.to_string();
  core::log_info("gateway", "started",
                 {{"listen", addrs},
                  {"admin", "http://" + cfg->admin_listen},
                  {"workers", workers},
                  {"config", config_path_}});
  core::run_service(loop_, mask, life_);

  loops_->stop();
  core::AccessLog::close();
  if (cache_) cache_->flush_disk();  // what the disk tier has queued is kept for the next start
  core::log_info("gateway", "stopped");
  return 0;
}

// ---- run-time changes from the admin API ----

std::string Control::register_target(const std::string& group, const TargetConfig& tc) {
  const TargetGroupConfig* g = nullptr;
  for (auto& c : config_->target_groups)
    if (c.name == group) g = &c;
  if (!g) return "404 no target group named '" + group + "'";
  if (!core::SocketAddress::parse(tc.address))
    return "400 address must look like 127.0.0.1:8080, got '" + tc.address + "'";
  auto& list = targets_[group];
  for (auto& t : list)
    if (t->address_text == tc.address)
      return "409 target " + tc.address + " is already in group '" + group + "'";
  auto t = make_target(group, tc, false, g->has_health_check);
  list.push_back(t);
  watch_health(t, *g);
  publish();
  core::log_info("gateway", "target registered",
                 {{"group", group},
                  {"target", tc.address},
                  {"zone", tc.zone},
                  {"weight", tc.weight},
                  {"health", health::to_string(t->health->health.load())}});
  return {};
}

std::string Control::deregister_target(const std::string& group, const std::string& address,
                                       std::optional<std::chrono::milliseconds> drain_timeout) {
  auto it = targets_.find(group);
  if (it == targets_.end()) return "404 no target group named '" + group + "'";
  auto& list = it->second;
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i]->address_text != address) continue;
    auto t = list[i];
    list.erase(list.begin() + static_cast<long>(i));
    std::chrono::milliseconds timeout = drain_timeout.value_or(std::chrono::milliseconds(30'000));
    if (!drain_timeout)
      for (auto& c : config_->target_groups)
        if (c.name == group) timeout = c.drain_timeout;
    start_drain(t, timeout);
    publish();
    return {};
  }
  return "404 no target " + address + " in group '" + group + "'";
}

std::string Control::set_weight(const std::string& group, const std::string& address, int weight) {
  auto it = targets_.find(group);
  if (it == targets_.end()) return "404 no target group named '" + group + "'";
  for (auto& t : it->second) {
    if (t->address_text == address) {
      t->weight.store(weight);
      core::log_info("gateway", "target weight changed",
                     {{"group", group}, {"target", address}, {"weight", weight}});
      return {};
    }
  }
  return "404 no target " + address + " in group '" + group + "'";
}

int run(const std::string& config_path) {
  Control control(config_path);
  return control.run();
}

}  // namespace cumulo::gateway
