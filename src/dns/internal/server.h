// The DNS server's data path: worker threads, each with its own event loop, UDP sockets (SO_REUSEPORT,
// recvmmsg/sendmmsg batches) and TCP listeners (length-prefixed messages, several per connection, idle
// timeout), answering from the current ZoneSet snapshot without locks.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/net.h"
#include "core/workers.h"
#include "dns/internal/config.h"
#include "dns/internal/zone.h"

namespace cumulo::dns {

// The published zones. Writers (the admin API, on the main thread) publish a new snapshot; workers compare
// the version once per batch and take the mutex only when it moved.
class ZoneStore {
 public:
  void publish(std::shared_ptr<const ZoneSet> zones) {
    std::lock_guard lock(mu_);
    current_ = std::move(zones);
    version_.fetch_add(1, std::memory_order_release);
  }
  std::shared_ptr<const ZoneSet> get() const {
    std::lock_guard lock(mu_);
    return current_;
  }
  uint64_t version() const { return version_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const ZoneSet> current_;
  std::atomic<uint64_t> version_{0};
};

struct ServerOptions {
  std::vector<std::string> listen;
  int workers = 1;
  uint16_t max_udp_payload = 1232;
  std::chrono::milliseconds tcp_idle_timeout{10'000};
  int tcp_max_connections = 1024;
  RateLimitConfig rate_limit;
  std::vector<NetworkRegion> axfr_allow;
  bool query_log = false;
};

class DnsServer {
 public:
  DnsServer(ServerOptions options, const ZoneStore& zones);
  ~DnsServer();
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // Binds every address (UDP and TCP on the same port; port 0 takes one free for both) and starts the
  // workers. Throws std::runtime_error naming the address.
  void start();
  void stop();  // joins the workers
  std::vector<core::SocketAddress> bound() const { return bound_; }

  struct Worker;

 private:
  ServerOptions options_;
  const ZoneStore& zones_;
  std::vector<core::SocketAddress> bound_;
  std::unique_ptr<core::LoopThreads> loops_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace cumulo::dns
