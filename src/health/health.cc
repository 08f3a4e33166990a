#include "health/health.h"

#include <cerrno>
#include <charconv>

#include "core/owner_guard.h"
#include "http/client.h"
#include "http/wire/field_lists.h"

namespace cumulo::health {

const char* to_string(Health h) {
  switch (h) {
    case Health::kInitial:
      return "initial";
    case Health::kHealthy:
      return "healthy";
    case Health::kUnhealthy:
      return "unhealthy";
  }
  return "?";
}

int64_t steady_ms(core::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

bool HttpCheckSpec::expects(int status) const {
  for (auto [lo, hi] : expected_codes)
    if (status >= lo && status <= hi) return true;
  return false;
}

bool parse_expected_codes(std::string_view text, std::vector<std::pair<int, int>>& out) {
  out.clear();
  auto number = [](std::string_view s, int& v) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && end == s.data() + s.size() && v >= 100 && v <= 599;
  };
  if (text.empty()) return false;
  // One trailing comma ("200,") has always been accepted in configuration files; an empty element elsewhere
  // has not.
  if (text.ends_with(',')) text.remove_suffix(1);
  const bool ok = http::for_each_list_element(text, [&](std::string_view part) {
    int lo = 0, hi = 0;
    auto dash = part.find('-');
    if (dash == std::string_view::npos) {
      if (!number(part, lo)) return false;
      hi = lo;
    } else if (!number(part.substr(0, dash), lo) || !number(part.substr(dash + 1), hi) || hi < lo) {
      return false;
    }
    out.emplace_back(lo, hi);
    return true;
  });
  return ok && !out.empty();
}

struct HealthChecker::Probe {
  Probe(core::EventLoop& loop, HealthChecker& owner)
      : timer(loop, [this, &owner] { owner.run_probe(*this); }) {}
  std::string endpoint;
  core::SocketAddress address;
  HttpCheckSpec spec;
  std::shared_ptr<HealthState> state;
  core::Timer timer;
  int passes = 0;
  int failures = 0;
  bool in_flight = false;
  core::OwnerGuard<Probe> alive{this};  // replies that arrive after unwatch() find no probe
};

HealthChecker::HealthChecker(core::EventLoop& loop, http::Client& client, TransitionFn on_transition)
    : loop_(loop), client_(client), on_transition_(std::move(on_transition)) {}

HealthChecker::~HealthChecker() = default;

size_t HealthChecker::watched() const {
  return probes_.size();
}

void HealthChecker::watch(const std::string& endpoint, const core::SocketAddress& address,
                          const HttpCheckSpec& spec, std::shared_ptr<HealthState> state) {
  unwatch(endpoint);
  auto probe = std::make_unique<Probe>(loop_, *this);
  Probe* p = probe.get();
  p->endpoint = endpoint;
  p->address = address;
  p->spec = spec;
  p->state = std::move(state);
  probes_.push_back(std::move(probe));
  // First check soon, spread a little so a group of new targets is not probed in one burst.
  p->timer.arm(std::chrono::milliseconds(10 + (probes_.size() * 7) % 100));
}

void HealthChecker::unwatch(const std::string& endpoint) {
  for (auto it = probes_.begin(); it != probes_.end(); ++it) {
    if ((*it)->endpoint == endpoint) {
      probes_.erase(it);
      return;
    }
  }
}

void HealthChecker::run_probe(Probe& p) {
  if (p.in_flight) {
    p.timer.arm(p.spec.interval);
    return;
  }
  p.in_flight = true;
  if (p.spec.kind == CheckKind::kTcp) {
    run_tcp_probe(p);
    return;
  }
  http::ClientRequest req;
  req.target = p.spec.path;
  req.timeout = p.spec.timeout;
  req.headers = {{"User-Agent", "cumulo-health-check"}};
  client_.request(p.address, std::move(req), [this, alive = p.alive.weak()](http::ClientResponse resp) {
    Probe* probe = alive.get();
    if (!probe) return;
    Probe& p = *probe;
    bool pass = resp.ok() && p.spec.expects(resp.status);
    std::string why =
        resp.ok() ? "status " + std::to_string(resp.status) + " on " + p.spec.path : resp.error.message;
    record_result(p, pass, why);
  });
}

void HealthChecker::record_result(Probe& p, bool pass, const std::string& why) {
  p.in_flight = false;
  Health before = p.state->health.load();
  Health after = before;
  if (pass) {
    p.failures = 0;
    ++p.passes;
    // A target that has never been checked joins on its first pass; a failed one needs the full threshold.
    if (before == Health::kInitial || (before == Health::kUnhealthy && p.passes >= p.spec.healthy_threshold))
      after = Health::kHealthy;
  } else {
    p.passes = 0;
    ++p.failures;
    if (before != Health::kUnhealthy && p.failures >= p.spec.unhealthy_threshold) after = Health::kUnhealthy;
  }
  if (after != before) {
    p.state->health.store(after);
    p.state->changed_at_ms.store(steady_ms(loop_.now()));
    if (on_transition_) on_transition_(p.endpoint, before, after, why);
  }
  p.timer.arm(p.spec.interval);
}

// A TCP check: the connection opening within the timeout is a pass. The attempt owns its socket and timer and
// finishes exactly once (connected, refused or timed out).
struct TcpAttempt : core::IoHandler {
  TcpAttempt(core::EventLoop& l, std::function<void(bool, std::string)> d)
      : loop(l), done(std::move(d)), timer(l, [this] { finish(false, "timeout"); }) {}
  void on_io(uint32_t) override {
    int err = core::socket_error(fd.get());
    if (err == 0) {
      finish(true, "connected");
    } else if (err != EINPROGRESS) {
      finish(false, "connect: " + core::errno_text(err));
    }
  }
  void finish(bool pass, std::string why) {
    if (finished) return;
    finished = true;
    timer.cancel();
    loop.remove(fd.get());
    fd.reset();
    auto d = std::move(done);
    std::unique_ptr<TcpAttempt> self(this);
    loop.destroy_later(std::move(self));
    d(pass, std::move(why));
  }
  core::EventLoop& loop;
  std::function<void(bool, std::string)> done;
  core::Timer timer;
  core::Fd fd;
  bool finished = false;
};

void HealthChecker::run_tcp_probe(Probe& p) {
  auto done = [this, alive = p.alive.weak()](bool pass, std::string why) {
    if (Probe* probe = alive.get()) record_result(*probe, pass, why);
  };
  int err = 0;
  core::Fd fd = core::connect_tcp(p.address, &err);
  if (!fd) {
    done(false, "connect: " + core::errno_text(err));
    return;
  }
  auto* attempt = new TcpAttempt(loop_, std::move(done));  // owns itself until finish()
  attempt->fd = std::move(fd);
  attempt->timer.arm(p.spec.timeout);
  loop_.add(attempt->fd.get(), attempt, core::kWritable);
}

bool OutlierDetector::record_failure(Failure kind, const OutlierSpec& spec, int64_t now_ms) {
  int n = 0, limit = 0;
  if (kind == Failure::kConnect) {
    n = connect_failures_.fetch_add(1, std::memory_order_relaxed) + 1;
    limit = spec.consecutive_connect_failures;
  } else {
    n = server_errors_.fetch_add(1, std::memory_order_relaxed) + 1;
    limit = spec.consecutive_5xx;
  }
  if (limit <= 0 || n < limit || ejected(now_ms)) return false;
  int times = ejections_.fetch_add(1, std::memory_order_relaxed);
  int64_t ms = spec.base_ejection.count();
  for (int i = 0; i < times && ms < spec.max_ejection.count(); ++i) ms *= 2;
  if (ms > spec.max_ejection.count()) ms = spec.max_ejection.count();
  ejected_until_ms_.store(now_ms + ms, std::memory_order_relaxed);
  connect_failures_.store(0, std::memory_order_relaxed);
  server_errors_.store(0, std::memory_order_relaxed);
  return true;
}

void OutlierDetector::record_success() {
  if (connect_failures_.load(std::memory_order_relaxed))
    connect_failures_.store(0, std::memory_order_relaxed);
  if (server_errors_.load(std::memory_order_relaxed)) server_errors_.store(0, std::memory_order_relaxed);
}

}  // namespace cumulo::health
