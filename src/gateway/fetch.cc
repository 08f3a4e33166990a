// The cache's own requests to targets (gateway/internal/fetch.h).
#include "gateway/internal/fetch.h"

#include "core/log.h"
#include "gateway/internal/worker.h"

namespace cumulo::gateway {

void note_target_failure(Target& t, const TargetGroupConfig& cfg, TargetFailure kind, bool reused_connection,
                         int64_t now_ms) {
  switch (kind) {
    case TargetFailure::kConnect:
      t.metrics.connect_failures->inc();
      t.outlier.record_failure(health::OutlierDetector::Failure::kConnect, cfg.outlier, now_ms);
      break;
    case TargetFailure::kConnectTimeout:
      t.metrics.connect_failures->inc();
      break;
    case TargetFailure::kReset:
    case TargetFailure::kBadResponse:
      if (!reused_connection)
        t.outlier.record_failure(health::OutlierDetector::Failure::k5xx, cfg.outlier, now_ms);
      break;
    case TargetFailure::kNoAnswerInTime:
      break;
  }
  t.metrics.responses[0]->inc();
}

void note_target_response(Target& t, const TargetGroupConfig& cfg, int status, int64_t now_ms) {
  if (status >= 500) {
    t.outlier.record_failure(health::OutlierDetector::Failure::k5xx, cfg.outlier, now_ms);
  } else {
    t.outlier.record_success();
  }
}

TargetFailure target_failure_of(const core::Error& e) {
  if (e.kind == "connect") return TargetFailure::kConnect;
  if (e.kind == "reset") return TargetFailure::kReset;
  if (e.kind == "timeout") return TargetFailure::kNoAnswerInTime;
  return TargetFailure::kBadResponse;
}

namespace {

struct Fetch {
  const FetchPort* port = nullptr;
  std::shared_ptr<const Snapshot> snapshot;
  const Route* route = nullptr;
  http::ClientRequest req;
  std::function<void(http::ClientResponse)> done;
  TriedTargets tried;
  int attempts = 0;
};

bool attempt(const std::shared_ptr<Fetch>& f) {
  const TargetGroup& group = *f->route->group;
  int64_t started_ms = f->port->now_ms();
  std::shared_ptr<Target> target =
      take_target(group, group.balancer[f->port->balancer], f->snapshot->config->zone, started_ms, f->tried);
  if (!target) return false;
  f->port->send(target->address, f->req, [f, target, started_ms](http::ClientResponse resp) {
    target->in_flight.fetch_sub(1, std::memory_order_relaxed);
    const TargetGroup& group = *f->route->group;
    int64_t now_ms = f->port->now_ms();
    if (!resp.ok()) {
      note_target_failure(*target, group.config, target_failure_of(resp.error), /*reused_connection=*/false,
                          now_ms);
      core::log(core::LogLevel::kDebug, "gateway", "cache fetch failed",
                {{"target", target->address_text},
                 {"target_uri", f->req.target},
                 {"error", resp.error.describe()}});
      if (resp.error.retry_safe() && f->attempts < group.config.retries.attempts &&
          retry_allowed(group.config.retries, group.balancer[f->port->balancer], now_ms)) {
        ++f->attempts;
        target->metrics.retries->inc();
        if (attempt(f)) return;
      }
      f->done(std::move(resp));
      return;
    }
    note_target_response(*target, group.config, resp.status, now_ms);
    target->metrics.responses[std::min(resp.status / 100, 5)]->inc();
    target->metrics.latency->observe(static_cast<double>(now_ms - started_ms) / 1000.0);
    target->metrics.bytes_in->inc(resp.body.size());
    f->done(std::move(resp));
  });
  return true;
}

}  // namespace

bool fetch_from_targets(const FetchPort& port, std::shared_ptr<const Snapshot> snapshot, const Route* route,
                        http::ClientRequest req, std::function<void(http::ClientResponse)> done) {
  auto f = std::make_shared<Fetch>();
  f->port = &port;
  f->snapshot = std::move(snapshot);
  f->route = route;
  f->req = std::move(req);
  f->done = std::move(done);
  const TargetGroup& group = *route->group;
  retry_deposit(group.config.retries, group.balancer[port.balancer]);
  return attempt(f);
}

}  // namespace cumulo::gateway
