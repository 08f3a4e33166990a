// The session's seam to everything but its client: connections to targets (connect, send, receive, close,
// reuse from a pool) and time (now, one timer). The worker implements it on its event loop and its pool of
// idle connections (worker.cc); tests/support/fake_upstream.h implements it with targets the test scripts and
// a clock the test moves. Each call is one I/O event or one request, never one byte.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <functional>
#include <memory>

#include "core/buffer.h"
#include "core/event_loop.h"
#include "gateway/internal/model.h"

namespace cumulo::gateway {

class Session;

// A connection to a target. Owned by its session while it carries a request, by the pool while idle. Whoever
// watches the connection sets the readiness flags and tells `owner` (Session::on_upstream_io); the session
// clears them when a call would block.
class UpstreamConnection {
 public:
  explicit UpstreamConnection(std::shared_ptr<Target> t) : target(std::move(t)) {}
  virtual ~UpstreamConnection() = default;
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  // As recv(2) and writev(2): a byte count, 0 (read: the target closed), or -1 with errno set.
  virtual ssize_t read(char* buf, size_t len) = 0;
  virtual ssize_t writev(const iovec* iov, int count) = 0;
  // Once a connect in progress reports writable or hang-up: 0, or the errno the connect ended with.
  virtual int connect_error() = 0;
  // Stops watching the connection and closes it; only its owner's discard calls it.
  virtual void close() = 0;

  std::shared_ptr<Target> target;
  core::Buffer in;
  Session* owner = nullptr;
  int64_t idle_since_ms = 0;
  bool connected = false;
  bool readable = false;
  bool writable = false;
  bool hangup = false;
  bool reused = false;  // carried an earlier request (a failure may be a stale keep-alive, not a dead target)
};

// Where a session gets connections to targets and gives them back.
class Upstreams {
 public:
  virtual ~Upstreams() = default;
  // An idle pooled connection to `t` that is still usable, or nullptr.
  virtual std::unique_ptr<UpstreamConnection> take_idle(const Target& t) = 0;
  // Starts a non-blocking connect (`connected` false until the session sees it writable); nullptr with `err`
  // set when it failed at once.
  virtual std::unique_ptr<UpstreamConnection> connect(std::shared_ptr<Target> t, int& err) = 0;
  // After a response that left the connection reusable; the pool may still close it (full, target draining).
  virtual void give_back(std::unique_ptr<UpstreamConnection> c, int max_idle) = 0;
  virtual void discard(std::unique_ptr<UpstreamConnection> c) = 0;
};

// A one-shot timer; destroying it cancels it.
class Alarm {
 public:
  virtual ~Alarm() = default;
  virtual void arm(core::Millis after) = 0;
  virtual void cancel() = 0;
};

class SessionClock {
 public:
  virtual ~SessionClock() = default;
  virtual core::TimePoint now() = 0;  // cheap: the time of the current loop iteration
  virtual core::TimePoint update_now() = 0;
  virtual std::unique_ptr<Alarm> make_alarm(std::function<void()> fire) = 0;
};

}  // namespace cumulo::gateway
