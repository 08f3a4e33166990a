// A worker: the state of one event loop thread (core::LoopThreads): its own listening sockets (SO_REUSEPORT),
// the client sessions it accepted, and its pool of keep-alive connections to targets. Nothing here is touched
// by another thread except through EventLoop::post().
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/buffer.h"
#include "core/event_loop.h"
#include "core/net.h"
#include "gateway/internal/fetch.h"
#include "gateway/internal/model.h"
#include "gateway/internal/upstream.h"
#include "http/transport.h"
#include "http/wire/h1.h"

namespace cumulo::http {
class Client;
struct ClientRequest;
struct ClientResponse;
}  // namespace cumulo::http
namespace cumulo::cache {
struct Object;
}

namespace cumulo::gateway {

class Worker;
class Session;

// A listener as the workers see it; owned by the gateway, outlives the workers.
struct ListenerRuntime {
  ListenerConfig config;
  core::SocketAddress address;
  std::unique_ptr<http::TlsServerContext> tls;
  std::string port_text;
};

// A connection to a target over a non-blocking TCP socket watched by the worker's loop.
class TcpUpstreamConnection final : public UpstreamConnection, public core::IoHandler {
 public:
  TcpUpstreamConnection(Worker& w, core::Fd f, std::shared_ptr<Target> t)
      : UpstreamConnection(std::move(t)), worker_(w), fd_(std::move(f)) {}
  // gateway::UpstreamConnection
  ssize_t read(char* buf, size_t len) override;
  ssize_t writev(const iovec* iov, int count) override;
  int connect_error() override;
  void close() override;
  // core::IoHandler
  void on_io(uint32_t events) override;

  int fd() const { return fd_.get(); }

 private:
  Worker& worker_;
  core::Fd fd_;
};

// The worker's clock: its loop's time and timers.
class LoopClock final : public SessionClock {
 public:
  explicit LoopClock(core::EventLoop& loop) : loop_(loop) {}
  // gateway::SessionClock
  core::TimePoint now() override { return loop_.now(); }
  core::TimePoint update_now() override { return loop_.update_now(); }
  std::unique_ptr<Alarm> make_alarm(std::function<void()> fire) override;

 private:
  core::EventLoop& loop_;
};

class Acceptor final : public core::IoHandler {
 public:
  Acceptor(Worker& w, const ListenerRuntime& l, core::Fd fd) : worker_(w), listener_(l), fd_(std::move(fd)) {}
  void on_io(uint32_t events) override;
  int fd() const { return fd_.get(); }

 private:
  Worker& worker_;
  const ListenerRuntime& listener_;
  core::Fd fd_;
};

struct WorkerShared {
  std::atomic<int64_t> sessions{0};  // open client connections of every worker: +1 on accept, -1 on close
  core::Gauge* active_connections = nullptr;
  core::Counter* accepted = nullptr;
  core::Counter* monitor_answers[2] = {};  // monitor_uri answered 200 (ok), 503 (draining)
};

// A GET the cache makes itself (a background revalidation, a slice) for the client's request `rq`: its
// target and host, the route's first-byte timeout, Via, and the client's headers except the hop-by-hop ones,
// Host, Range and its conditionals (If-*, in any case); the cache adds its own.
http::ClientRequest cache_fetch_request(const http::RequestHead& rq, const RouteConfig& route,
                                        bool keep_accept_encoding);

class Worker final : public Upstreams {
 public:
  // Runs on `loop` (a core::LoopThreads worker in the gateway; the test's own loop in unit tests).
  Worker(int index, WorkerShared& shared, core::EventLoop& loop);
  ~Worker() override;

  int index() const { return index_; }
  core::EventLoop& loop() { return loop_; }
  // Before the loop runs: its listening sockets (SO_REUSEPORT) and timers.
  void start(std::shared_ptr<const Snapshot> snapshot,
             const std::vector<std::unique_ptr<ListenerRuntime>>& listeners);

  // Loop thread only, below.
  const std::shared_ptr<const Snapshot>& snapshot() const { return snapshot_; }
  void set_snapshot(std::shared_ptr<const Snapshot> s) { snapshot_ = std::move(s); }
  // Stopping (SIGTERM): the listeners close, then set_draining(true) for good.
  void begin_drain();
  // Draining without stopping (admin POST /drain): each connection closes after its current response (which
  // says Connection: close), idle keep-alive ones at once; new connections are still accepted, each for one
  // response, and monitor_uri answers 503. Off: keep-alive again, unless the worker is stopping.
  void set_draining(bool on);
  void cut_requests_to(const Target* t);  // a drain timeout passed: requests still on t end now
  // stale-while-revalidate (RFC 5861): fetch the key again without a client waiting; one refresh per key at
  // once.
  void refresh_in_background(std::shared_ptr<const Snapshot> snapshot, const Route* route,
                             const std::string& key, std::shared_ptr<const cache::Object> stale,
                             std::string request_head);
  // Sends `req` to a target of the route's group (fetch.h: balanced, counted, retried) on the worker's own
  // http::Client, for the cache's own requests (no client connection is tied to them); false when no target
  // is available. `done` runs on this worker's loop.
  bool fetch_for_cache(std::shared_ptr<const Snapshot> snapshot, const Route* route, http::ClientRequest req,
                       std::function<void(http::ClientResponse)> done);
  // Tests: how the cache's requests are sent (the worker's http::Client otherwise).
  void set_fetch_sender(decltype(FetchPort::send) send) { fetch_port_.send = std::move(send); }
  bool draining() const { return draining_; }
  // The cumulo-gateway field line (identity.h) every response to a client carries; "" for none.
  std::string_view identity_field() const { return identity_field_ ? *identity_field_ : std::string_view(); }
  void set_identity_field(std::shared_ptr<const std::string> field) { identity_field_ = std::move(field); }
  void count_monitor_answer(bool draining) {
    if (core::Counter* c = shared_.monitor_answers[draining ? 1 : 0]) c->inc();
  }

  void adopt_client(int fd, const ListenerRuntime& listener);
  // Owns the session from now on (until session_closed) and starts it; adopt_client and tests make them.
  void add_session(std::unique_ptr<Session> session);
  void session_closed(Session* s);

  // gateway::Upstreams (the worker's pool of keep-alive connections to targets)
  std::unique_ptr<UpstreamConnection> take_idle(const Target& t) override;
  std::unique_ptr<UpstreamConnection> connect(std::shared_ptr<Target> t, int& err) override;
  void give_back(std::unique_ptr<UpstreamConnection> c, int max_idle) override;
  void discard(std::unique_ptr<UpstreamConnection> c) override;
  void pooled_conn_event(TcpUpstreamConnection* c);

  // Per-worker request accounting for the retry budget.
  int64_t active_requests = 0;
  http::RequestHead scratch_request;
  http::ResponseHead scratch_response;
  // Writes a new unique request id (hex) into out; returns its length.
  size_t next_request_id(char* out, size_t cap);

 private:
  void housekeeping();
  int index_;
  WorkerShared& shared_;
  core::EventLoop& loop_;
  LoopClock clock_{loop_};
  std::shared_ptr<const Snapshot> snapshot_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  std::vector<Session*> sessions_;  // owned; index kept in the session for O(1) removal
  std::unordered_map<const Target*, std::vector<UpstreamConnection*>> idle_;  // owned
  std::unique_ptr<core::Timer> housekeeping_timer_;
  // The cache's own requests (fetch_for_cache). The client goes first: its destructor fails what is still
  // outstanding, and those callbacks use the port.
  FetchPort fetch_port_;
  std::unique_ptr<http::Client> fetch_client_;
  bool draining_ = false;
  bool stopping_ = false;  // begin_drain: the listeners are closed and draining stays on
  // Posted by the control thread when server_id or a lease changes; shared, immutable, read per response.
  std::shared_ptr<const std::string> identity_field_;
  uint64_t request_counter_ = 0;
  std::string request_id_prefix_;
  friend class Session;
};

// The targets one request (a client's, or the cache's own) has tried, so that a retry goes to another. The
// first kRemembered are kept; attempts beyond them may repeat one.
struct TriedTargets {
  static constexpr int kRemembered = 4;
  const Target* targets[kRemembered] = {};
  int count = 0;

  void add(const Target* t) {
    if (count < kRemembered) targets[count++] = t;
  }
  bool contains(const Target* t) const {
    for (int i = 0; i < count; ++i)
      if (targets[i] == t) return true;
    return false;
  }
};

// Picks a target for a request: available, not yet tried, zone preference, then the group's algorithm.
// Returns nullptr when none qualifies.
Target* pick_target(const TargetGroup& group, BalancerState& state, std::string_view own_zone, int64_t now_ms,
                    const TriedTargets& tried = {});

// An attempt's target: pick_target's choice, added to `tried` and counted in flight (the caller subtracts it
// when the attempt ends). The owning pointer keeps the target alive should it be deregistered meanwhile; null
// when none qualifies.
std::shared_ptr<Target> take_target(const TargetGroup& group, BalancerState& state, std::string_view own_zone,
                                    int64_t now_ms, TriedTargets& tried);

// Retry budget (Finagle's idea): each request deposits budget_percent/100 of a token, a retry spends one; a
// few retries per second are always allowed so that a quiet gateway can still retry.
bool retry_allowed(const RetryConfig& cfg, BalancerState& state, int64_t now_ms);
void retry_deposit(const RetryConfig& cfg, BalancerState& state);

}  // namespace cumulo::gateway
