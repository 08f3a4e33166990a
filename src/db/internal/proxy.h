// The writer and reader endpoints: an L4 TCP proxy on the core event loop. Each worker loop owns a listener
// per endpoint (SO_REUSEPORT) and the connections it accepted; the endpoints process (endpoints.cc) hands
// every loop the routes through post() when routes.json changes (SIGHUP). Bytes are relayed through two
// pooled 64 KiB buffers per connection, with no allocation per read.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/event_loop.h"
#include "core/net.h"
#include "db/internal/topology.h"

namespace cumulo::db {

// The endpoints' routes. Applying them also closes what they no longer allow: writer connections to any
// backend but the writer (a demoted or fenced primary; all of them while a failover runs), and reader
// connections to a backend in `cut`.
struct Routes {
  std::string writer;        // instance name of the primary; empty while a failover runs (new clients wait)
  bool hold_writer = false;  // the primary is unreachable: new writer clients wait, connected ones stay
  ReaderRoute reader;
  std::vector<std::string> cut;  // instances whose reader connections are closed (they stopped replicating)
  std::map<std::string, core::SocketAddress> addresses;  // instance name -> its address
};

enum class EndpointKind { kWriter, kReader };

class ProxyConnection;

class ProxyWorker {
 public:
  // Listens on both addresses (port 0: the kernel picks; see local_address()).
  ProxyWorker(core::EventLoop& loop, const core::SocketAddress& writer, const core::SocketAddress& reader,
              std::chrono::milliseconds wait_for_primary);
  ~ProxyWorker();
  ProxyWorker(const ProxyWorker&) = delete;
  ProxyWorker& operator=(const ProxyWorker&) = delete;

  // Loop thread only.
  void set_routes(Routes routes);
  size_t open_connections() const { return connections_.size(); }
  size_t waiting_connections() const;
  core::SocketAddress local_address(EndpointKind kind) const;
  void stop_listening();

 private:
  friend class ProxyConnection;
  struct Listener : core::IoHandler {
    ProxyWorker* worker = nullptr;
    EndpointKind kind = EndpointKind::kWriter;
    core::Fd fd;
    void on_io(uint32_t events) override;
  };
  void accept_from(Listener& l);
  void start_backend(ProxyConnection& c);
  // Connects it again soon (to the route of that moment); it waits until wait_for_primary after its accept.
  void retry_later(ProxyConnection& c);
  void finished(ProxyConnection* c);
  void expire_waiting();

  core::EventLoop& loop_;
  std::chrono::milliseconds wait_for_primary_;
  Listener writer_;
  Listener reader_;
  Routes routes_;
  std::unordered_map<ProxyConnection*, std::unique_ptr<ProxyConnection>> connections_;
  core::Timer wait_timer_;
};

}  // namespace cumulo::db
