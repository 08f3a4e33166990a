#include "gateway/internal/worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>

#include "cache/store.h"
#include "core/log.h"
#include "core/swap_remove.h"
#include "gateway/internal/session.h"
#include "health/health.h"
#include "http/client.h"

namespace cumulo::gateway {

// ---- upstream connections ----

ssize_t TcpUpstreamConnection::read(char* buf, size_t len) {
  return ::recv(fd_.get(), buf, len, 0);
}

ssize_t TcpUpstreamConnection::writev(const iovec* iov, int count) {
  return ::writev(fd_.get(), iov, count);
}

int TcpUpstreamConnection::connect_error() {
  return core::socket_error(fd_.get());
}

void TcpUpstreamConnection::close() {
  if (!fd_) return;
  worker_.loop().remove(fd_.get());
  fd_.reset();
}

void TcpUpstreamConnection::on_io(uint32_t events) {
  if (events & core::kReadable) readable = true;
  if (events & core::kWritable) writable = true;
  if (events & core::kHangup) hangup = true;
  if (owner) {
    owner->on_upstream_io();
  } else {
    worker_.pooled_conn_event(this);
  }
}

namespace {
class LoopAlarm final : public Alarm {
 public:
  LoopAlarm(core::EventLoop& loop, std::function<void()> fire) : timer_(loop, std::move(fire)) {}
  // gateway::Alarm
  void arm(core::Millis after) override { timer_.arm(after); }
  void cancel() override { timer_.cancel(); }

 private:
  core::Timer timer_;
};
}  // namespace

std::unique_ptr<Alarm> LoopClock::make_alarm(std::function<void()> fire) {
  return std::make_unique<LoopAlarm>(loop_, std::move(fire));
}

std::unique_ptr<UpstreamConnection> Worker::take_idle(const Target& t) {
  auto it = idle_.find(&t);
  if (it == idle_.end()) return nullptr;
  auto& list = it->second;
  while (!list.empty()) {
    UpstreamConnection* c = list.back();
    list.pop_back();
    std::unique_ptr<UpstreamConnection> conn(c);
    if (conn->hangup || !conn->in.empty()) {
      discard(std::move(conn));
      continue;
    }
    return conn;
  }
  return nullptr;
}

std::unique_ptr<UpstreamConnection> Worker::connect(std::shared_ptr<Target> t, int& err) {
  core::Fd fd = core::connect_tcp(t->address, &err);
  if (!fd) return nullptr;
  auto c = std::make_unique<TcpUpstreamConnection>(*this, std::move(fd), std::move(t));
  loop_.add(c->fd(), c.get());
  return c;
}

void Worker::give_back(std::unique_ptr<UpstreamConnection> c, int max_idle) {
  auto& list = idle_[c->target.get()];
  if (static_cast<int>(list.size()) >= max_idle || c->target->draining.load(std::memory_order_relaxed)) {
    discard(std::move(c));
    return;
  }
  c->in.release();
  c->idle_since_ms = health::steady_ms(loop_.now());
  list.push_back(c.release());
}

void Worker::discard(std::unique_ptr<UpstreamConnection> c) {
  if (!c) return;
  c->owner = nullptr;
  c->close();
  loop_.destroy_later(std::move(c));
}

void Worker::pooled_conn_event(TcpUpstreamConnection* c) {
  // An idle connection that becomes readable was closed by the target (or it sent bytes nobody asked for).
  if (!c->readable && !c->hangup) return;
  auto it = idle_.find(c->target.get());
  if (it == idle_.end()) return;
  auto& list = it->second;
  auto pos = std::find(list.begin(), list.end(), c);
  if (pos == list.end()) return;
  list.erase(pos);
  discard(std::unique_ptr<UpstreamConnection>(c));
}

// ---- accepting ----

void Acceptor::on_io(uint32_t) {
  for (int i = 0; i < 256; ++i) {
    int err = 0;
    int fd = core::accept_nonblocking(fd_.get(), &err);
    if (fd < 0) {
      if (err != 0) {
        // Out of descriptors or memory: say so once per burst and let the backlog wait.
        core::log_warn("gateway", "accept failed",
                       {{"listener", listener_.config.name}, {"error", core::errno_text(err)}});
      }
      return;
    }
    worker_.adopt_client(fd, listener_);
  }
  // More may be waiting; edge-triggered readiness will not say so again.
  worker_.loop().defer([this] { on_io(core::kReadable); });
}

void Worker::adopt_client(int fd, const ListenerRuntime& listener) {
  if (stopping_) {  // a deferred accept round after the listeners closed
    ::close(fd);
    return;
  }
  core::set_nodelay(fd);
  auto peer = core::SocketAddress::from_fd_peer(fd).value_or(core::SocketAddress{});
  std::unique_ptr<http::Transport> t = listener.tls ? listener.tls->wrap(fd) : http::make_plain_transport(fd);
  add_session(std::make_unique<Session>(*this, *this, clock_, std::move(t), listener, peer));
}

void Worker::add_session(std::unique_ptr<Session> session) {
  Session* s = session.release();
  s->index = sessions_.size();
  sessions_.push_back(s);
  shared_.sessions.fetch_add(1, std::memory_order_relaxed);
  if (shared_.active_connections) shared_.active_connections->add(1);
  if (shared_.accepted) shared_.accepted->inc();
  s->start();
}

void Worker::session_closed(Session* s) {
  size_t i = s->index;
  if (i < sessions_.size() && sessions_[i] == s) core::swap_remove(sessions_, i);
  shared_.sessions.fetch_sub(1, std::memory_order_relaxed);
  if (shared_.active_connections) shared_.active_connections->add(-1);
  loop_.destroy_later(std::unique_ptr<Session>(s));
}

http::ClientRequest cache_fetch_request(const http::RequestHead& rq, const RouteConfig& route,
                                        bool keep_accept_encoding) {
  http::ClientRequest cr;
  cr.method = "GET";
  cr.target.assign(rq.target);
  cr.host.assign(rq.host);
  cr.timeout = route.timeouts.first_byte;
  for (size_t i = 0; i < rq.header_count; ++i) {
    const http::Header& h = rq.headers[i];
    if (http::is_hop_by_hop(h.name) || http::iequals(h.name, "host") || http::iequals(h.name, "range") ||
        (!keep_accept_encoding && http::iequals(h.name, "accept-encoding")) ||
        (h.name.size() > 3 && http::iequals(h.name.substr(0, 3), "if-")))
      continue;
    cr.headers.emplace_back(h.name, h.value);
  }
  cr.headers.emplace_back("Via", "1.1 cumulo");
  return cr;
}

// ---- the worker thread ----

Worker::Worker(int index, WorkerShared& shared, core::EventLoop& loop)
    : index_(index), shared_(shared), loop_(loop) {
  fetch_port_.now_ms = [this] { return health::steady_ms(loop_.now()); };
  fetch_port_.balancer = static_cast<size_t>(index);
}

Worker::~Worker() {
  for (Session* s : sessions_) delete s;
  for (auto& [t, list] : idle_)
    for (UpstreamConnection* c : list) delete c;
}

void Worker::start(std::shared_ptr<const Snapshot> snapshot,
                   const std::vector<std::unique_ptr<ListenerRuntime>>& listeners) {
  snapshot_ = std::move(snapshot);
  std::random_device rd;
  char prefix[16];
  std::snprintf(prefix, sizeof prefix, "%08x%02x", rd(), index_ & 0xff);
  request_id_prefix_ = prefix;
  for (auto& l : listeners) {
    core::Fd fd = core::listen_tcp(l->address, true);
    acceptors_.push_back(std::make_unique<Acceptor>(*this, *l, std::move(fd)));
  }
  housekeeping_timer_ = std::make_unique<core::Timer>(loop_, [this] { housekeeping(); });
  for (auto& a : acceptors_) loop_.add(a->fd(), a.get(), core::kReadable);
  housekeeping_timer_->arm(std::chrono::milliseconds(100));
}

void Worker::begin_drain() {
  stopping_ = true;
  for (auto& a : acceptors_) {
    loop_.remove(a->fd());
    loop_.destroy_later(std::move(a));  // a deferred accept round may still name it in this batch
  }
  acceptors_.clear();
  set_draining(true);
}

void Worker::set_draining(bool on) {
  draining_ = on || stopping_;
  if (!draining_) return;
  // Again when draining already: connections accepted since, still waiting for their first request, go too.
  std::vector<Session*> copy = sessions_;
  for (Session* s : copy) s->drain();
}

void Worker::cut_requests_to(const Target* t) {
  std::vector<Session*> copy = sessions_;
  for (Session* s : copy) s->cut_if_using(t);
}

void Worker::refresh_in_background(std::shared_ptr<const Snapshot> snapshot, const Route* route,
                                   const std::string& key, std::shared_ptr<const cache::Object> stale,
                                   std::string request_head) {
  cache::Store& store = *snapshot->cache;
  if (!store.begin_fill(key)) return;  // a refresh or a fill of this key is under way already
  http::RequestParser parser;
  http::RequestHead rq;
  if (parser.parse(request_head, rq) != http::ParseStatus::kComplete) {
    store.end_fill(key);
    return;
  }
  http::ClientRequest cr = cache_fetch_request(rq, route->config, /*keep_accept_encoding=*/true);
  if (!stale->etag.empty())
    cr.headers.emplace_back("If-None-Match", stale->etag);
  else if (!stale->last_modified.empty())
    cr.headers.emplace_back("If-Modified-Since", stale->last_modified);
  int64_t request_time = ::time(nullptr);
  bool sent =
      fetch_for_cache(snapshot, route, std::move(cr),
                      [snapshot, route, key, stale, request_head = std::move(request_head),
                       request_time](http::ClientResponse resp) {
                        cache::Store& store = *snapshot->cache;
                        int64_t now = ::time(nullptr);
                        if (resp.ok() && resp.status == 304) {
                          stale->refreshed_date.store(now);
                          stale->refreshed_response_time.store(now);
                        } else if (resp.ok()) {
                          if (auto obj = build_cache_object(key, request_head, resp, /*as_part_of_200=*/false,
                                                            route->config.cache, request_time, now)) {
                            obj->body = std::move(resp.body);
                            prepare_variants(*obj);
                            store.insert(std::move(obj));
                          }
                        }
                        store.end_fill(key);
                      });
  if (!sent) store.end_fill(key);  // no target to ask: the stale object stays as it is
}

bool Worker::fetch_for_cache(std::shared_ptr<const Snapshot> snapshot, const Route* route,
                             http::ClientRequest req, std::function<void(http::ClientResponse)> done) {
  if (!fetch_port_.send) {
    fetch_client_ = std::make_unique<http::Client>(loop_);
    fetch_port_.send = [client = fetch_client_.get()](const core::SocketAddress& to, http::ClientRequest r,
                                                      std::function<void(http::ClientResponse)> d) {
      client->request(to, std::move(r), std::move(d));
    };
  }
  return fetch_from_targets(fetch_port_, std::move(snapshot), route, std::move(req), std::move(done));
}

void Worker::housekeeping() {
  core::AccessLog::flush();
  int64_t now = health::steady_ms(loop_.now());
  int64_t max_idle_ms = snapshot_->config->limits.upstream_idle_timeout.count();
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& list = it->second;
    for (size_t i = 0; i < list.size();) {
      UpstreamConnection* c = list[i];
      if (now - c->idle_since_ms > max_idle_ms || c->target->draining.load(std::memory_order_relaxed)) {
        list[i] = list.back();
        list.pop_back();
        discard(std::unique_ptr<UpstreamConnection>(c));
      } else {
        ++i;
      }
    }
    it = list.empty() ? idle_.erase(it) : std::next(it);
  }
  housekeeping_timer_->arm(std::chrono::milliseconds(100));
}

size_t Worker::next_request_id(char* out, size_t cap) {
  // The worker's random prefix, then a counter: unique without coordination between workers.
  static constexpr char kHex[] = "0123456789abcdef";
  size_t n = std::min(request_id_prefix_.size(), cap);
  std::memcpy(out, request_id_prefix_.data(), n);
  uint64_t c = ++request_counter_;
  for (int shift = 44; shift >= 0 && n < cap; shift -= 4) out[n++] = kHex[(c >> shift) & 0xf];
  return n;
}

// ---- balancing ----

namespace {
double slow_start_factor(const Target& t, const TargetGroupConfig& cfg, int64_t now_ms) {
  if (cfg.slow_start.count() <= 0) return 1.0;
  int64_t since = std::max(t.added_at_ms.load(std::memory_order_relaxed),
                           t.health->changed_at_ms.load(std::memory_order_relaxed));
  double f = static_cast<double>(now_ms - since) / static_cast<double>(cfg.slow_start.count());
  return std::clamp(f, 0.1, 1.0);
}
}  // namespace

Target* pick_target(const TargetGroup& group, BalancerState& state, std::string_view own_zone, int64_t now_ms,
                    const TriedTargets& tried) {
  const auto& targets = group.targets;
  size_t n = targets.size();
  if (n == 0) return nullptr;
  // Indexes of candidates; groups are small, so a fixed array covers nearly all and a vector the rest.
  uint32_t fixed[64];
  std::vector<uint32_t> big;
  uint32_t* cand = fixed;
  if (n > 64) {
    big.resize(n);
    cand = big.data();
  }
  size_t count = 0;
  bool zone_filter = group.config.zone_aware && !own_zone.empty();
  size_t local_total = 0, local_ok = 0;
  for (size_t i = 0; i < n; ++i) {
    const Target& t = *targets[i];
    bool local = zone_filter && t.zone == own_zone;
    if (local) ++local_total;
    if (!t.available(now_ms) || tried.contains(&t) || t.weight.load(std::memory_order_relaxed) <= 0) continue;
    if (local) ++local_ok;
    cand[count++] = static_cast<uint32_t>(i);
  }
  if (count == 0) return nullptr;
  // Zone preference: stay in our zone while enough of its targets are healthy, else spread over all zones.
  if (zone_filter && local_ok > 0 &&
      local_ok * 100 >= static_cast<size_t>(group.config.zone_min_healthy_percent) * local_total) {
    size_t k = 0;
    for (size_t i = 0; i < count; ++i)
      if (targets[cand[i]]->zone == own_zone) cand[k++] = cand[i];
    count = k;
  }
  switch (group.config.balance) {
    case Balance::kRoundRobin: {
      // A target in slow start takes its turn only with the probability of its ramp, so it gets a growing
      // share.
      for (size_t k = 0; k < count; ++k) {
        Target* t = targets[cand[state.next++ % count]].get();
        double f = slow_start_factor(*t, group.config, now_ms);
        if (f >= 1.0) return t;
        state.rng = state.rng * 6364136223846793005ULL + 1442695040888963407ULL;
        if (static_cast<double>(state.rng >> 11) * 0x1.0p-53 < f) return t;
      }
      return targets[cand[state.next++ % count]].get();
    }
    case Balance::kWeighted: {
      // Smooth weighted round robin: every candidate gains its weight, the leader is picked and pays the
      // total.
      if (state.current_weight.size() != n) state.current_weight.assign(n, 0);
      int64_t total = 0;
      size_t best = cand[0];
      for (size_t i = 0; i < count; ++i) {
        size_t idx = cand[i];
        const Target& t = *targets[idx];
        int64_t w = static_cast<int64_t>(t.weight.load(std::memory_order_relaxed) * 100 *
                                         slow_start_factor(t, group.config, now_ms));
        state.current_weight[idx] += w;
        total += w;
        if (state.current_weight[idx] > state.current_weight[best]) best = idx;
      }
      state.current_weight[best] -= total;
      return targets[best].get();
    }
    case Balance::kLeastOutstanding: {
      size_t start = state.next++ % count;
      size_t best = cand[start];
      double best_load = 0;
      for (size_t k = 0; k < count; ++k) {
        size_t idx = cand[(start + k) % count];
        const Target& t = *targets[idx];
        double w = t.weight.load(std::memory_order_relaxed) * slow_start_factor(t, group.config, now_ms);
        double load = static_cast<double>(t.in_flight.load(std::memory_order_relaxed) + 1) / w;
        if (k == 0 || load < best_load) {
          best = idx;
          best_load = load;
        }
      }
      return targets[best].get();
    }
  }
  return nullptr;
}

std::shared_ptr<Target> take_target(const TargetGroup& group, BalancerState& state, std::string_view own_zone,
                                    int64_t now_ms, TriedTargets& tried) {
  Target* picked = pick_target(group, state, own_zone, now_ms, tried);
  if (!picked) return nullptr;
  std::shared_ptr<Target> target;
  for (const auto& sp : group.targets)
    if (sp.get() == picked) target = sp;
  tried.add(picked);
  target->in_flight.fetch_add(1, std::memory_order_relaxed);
  return target;
}

void retry_deposit(const RetryConfig& cfg, BalancerState& state) {
  constexpr double kMaxTokens = 1000;
  state.retry_tokens = std::min(kMaxTokens, state.retry_tokens + cfg.budget_percent / 100.0);
}

bool retry_allowed(const RetryConfig& cfg, BalancerState& state, int64_t now_ms) {
  if (now_ms - state.retry_window_start_ms >= 1000) {
    state.retry_window_start_ms = now_ms;
    state.retries_in_window = 0;
  }
  if (state.retries_in_window < cfg.min_per_second) {
    ++state.retries_in_window;
    return true;
  }
  if (state.retry_tokens >= 1.0) {
    state.retry_tokens -= 1.0;
    return true;
  }
  return false;
}

}  // namespace cumulo::gateway
