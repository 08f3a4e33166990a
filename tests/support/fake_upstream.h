// Fakes for what a gateway session talks to: a client connection whose bytes the test writes and reads,
// targets whose connections the test accepts, answers, resets or leaves silent, and a clock the test moves.
// Nothing here opens a socket to anyone; the client side holds an eventfd only so that the session can
// register it.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gateway/internal/session.h"
#include "gateway/internal/upstream.h"
#include "http/transport.h"

namespace cumulo::fakes {

// The client's side of a session: `send` is what the client writes, `received` what the gateway wrote to it.
class FakeClientTransport final : public http::Transport {
 public:
  struct Wire {
    std::string send;
    std::string received;
    bool client_closed = false;  // reads end with 0 once `send` is used up
    bool write_shut = false;     // the gateway half-closed (lingering close)
  };
  explicit FakeClientTransport(std::shared_ptr<Wire> wire)
      : http::Transport(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)), wire_(std::move(wire)) {}
  ~FakeClientTransport() override { ::close(fd_); }

  // http::Transport
  ssize_t read(char* buf, size_t len) override {
    if (wire_->send.empty()) return wire_->client_closed ? 0 : http::kWouldBlock;
    size_t n = std::min(len, wire_->send.size());
    wire_->send.copy(buf, n);
    wire_->send.erase(0, n);
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* buf, size_t len) override {
    wire_->received.append(buf, len);
    return static_cast<ssize_t>(len);
  }
  ssize_t writev(const iovec* iov, int count) override {
    size_t n = 0;
    for (int i = 0; i < count; ++i) {
      wire_->received.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
      n += iov[i].iov_len;
    }
    return static_cast<ssize_t>(n);
  }
  void shutdown_write() override { wire_->write_shut = true; }
  bool secure() const override { return false; }
  std::string error_text() const override { return {}; }

 private:
  std::shared_ptr<Wire> wire_;
};

// One connection to a target. The session writes into `received`; the test decides what the target does.
class FakeUpstreamConnection final : public gateway::UpstreamConnection {
 public:
  explicit FakeUpstreamConnection(std::shared_ptr<gateway::Target> t) : UpstreamConnection(std::move(t)) {}

  // gateway::UpstreamConnection
  ssize_t read(char* buf, size_t len) override {
    if (to_gateway_.empty()) {
      if (reset_) {
        errno = ECONNRESET;
        return -1;
      }
      if (closed_) return 0;
      errno = EAGAIN;
      return -1;
    }
    size_t n = std::min(len, to_gateway_.size());
    to_gateway_.copy(buf, n);
    to_gateway_.erase(0, n);
    return static_cast<ssize_t>(n);
  }
  ssize_t writev(const iovec* iov, int count) override {
    if (reset_) {
      errno = ECONNRESET;
      return -1;
    }
    size_t n = 0;
    for (int i = 0; i < count; ++i) {
      received.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
      n += iov[i].iov_len;
    }
    return static_cast<ssize_t>(n);
  }
  int connect_error() override { return refused_ ? ECONNREFUSED : 0; }
  void close() override { closed_by_gateway = true; }

  // What the target does; each one tells the session, as a readiness event would.
  void accept() {
    writable = true;
    notify();
  }
  void refuse() {
    refused_ = true;
    hangup = true;
    notify();
  }
  void reply(std::string bytes) {
    to_gateway_ += bytes;
    readable = true;
    notify();
  }
  void reset() {
    reset_ = true;
    readable = writable = hangup = true;
    notify();
  }
  void hang_up() {
    closed_ = true;
    readable = true;
    notify();
  }

  std::string received;  // every byte the gateway sent on this connection
  bool closed_by_gateway = false;

 private:
  void notify() {
    if (owner) owner->on_upstream_io();
  }
  std::string to_gateway_;
  bool refused_ = false;
  bool reset_ = false;
  bool closed_ = false;
};

// The targets' side: every connection the session opened, in order, and a pool as small as the worker's.
class FakeUpstreams final : public gateway::Upstreams {
 public:
  // gateway::Upstreams
  std::unique_ptr<gateway::UpstreamConnection> take_idle(const gateway::Target& t) override {
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
      if ((*it)->target.get() != &t) continue;
      std::unique_ptr<gateway::UpstreamConnection> c = std::move(*it);
      idle_.erase(it);
      ++reuses;
      return c;
    }
    return nullptr;
  }
  std::unique_ptr<gateway::UpstreamConnection> connect(std::shared_ptr<gateway::Target> t,
                                                       int& err) override {
    if (refuse_at_once) {
      err = ECONNREFUSED;
      return nullptr;
    }
    auto c = std::make_unique<FakeUpstreamConnection>(std::move(t));
    connections.push_back(c.get());
    return c;
  }
  void give_back(std::unique_ptr<gateway::UpstreamConnection> c, int max_idle) override {
    if (static_cast<int>(idle_.size()) >= max_idle) return discard(std::move(c));
    idle_.push_back(std::move(c));
  }
  void discard(std::unique_ptr<gateway::UpstreamConnection> c) override {
    if (!c) return;
    c->owner = nullptr;
    c->close();
    closed_.push_back(std::move(c));  // kept so that a test can still read what it received
  }

  // The n-th connection opened (0 first), or nullptr.
  FakeUpstreamConnection* connection(size_t n) const {
    return n < connections.size() ? connections[n] : nullptr;
  }
  size_t idle() const { return idle_.size(); }

  bool refuse_at_once = false;
  std::vector<FakeUpstreamConnection*> connections;  // owned by the session, the idle list or the closed list
  int reuses = 0;

 private:
  std::vector<std::unique_ptr<gateway::UpstreamConnection>> idle_;
  std::vector<std::unique_ptr<gateway::UpstreamConnection>> closed_;
};

// Time that moves only when the test says; alarms fire from advance().
class FakeSessionClock final : public gateway::SessionClock {
 public:
  class FakeAlarm final : public gateway::Alarm {
   public:
    FakeAlarm(FakeSessionClock& clock, std::function<void()> fire) : clock_(clock), fire_(std::move(fire)) {
      clock_.alarms_.push_back(this);
    }
    ~FakeAlarm() override { std::erase(clock_.alarms_, this); }
    // gateway::Alarm
    void arm(core::Millis after) override {
      deadline_ = clock_.now_ + after;
      armed_ = true;
    }
    void cancel() override { armed_ = false; }

   private:
    friend class FakeSessionClock;
    FakeSessionClock& clock_;
    std::function<void()> fire_;
    core::TimePoint deadline_{};
    bool armed_ = false;
  };

  // gateway::SessionClock
  core::TimePoint now() override { return now_; }
  core::TimePoint update_now() override { return now_; }
  std::unique_ptr<gateway::Alarm> make_alarm(std::function<void()> fire) override {
    return std::make_unique<FakeAlarm>(*this, std::move(fire));
  }

  // Moves time on, firing each alarm that comes due (in deadline order; an alarm re-armed by another's firing
  // fires too if its new deadline has passed).
  void advance(core::Millis d) {
    core::TimePoint until = now_ + d;
    for (;;) {
      FakeAlarm* next = nullptr;
      for (FakeAlarm* a : alarms_)
        if (a->armed_ && a->deadline_ <= until && (!next || a->deadline_ < next->deadline_)) next = a;
      if (!next) break;
      now_ = std::max(now_, next->deadline_);
      next->armed_ = false;
      next->fire_();
    }
    now_ = until;
  }

 private:
  core::TimePoint now_ = core::TimePoint{} + std::chrono::hours(1000);
  std::vector<FakeAlarm*> alarms_;
};

}  // namespace cumulo::fakes
