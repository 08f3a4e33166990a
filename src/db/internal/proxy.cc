#include "db/internal/proxy.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/buffer.h"
#include "core/log.h"

namespace cumulo::db {

namespace {
constexpr std::string_view kComponent = "db";
constexpr core::Millis kRetryInterval{100};
}  // namespace

class ProxyConnection {
 public:
  ProxyConnection(ProxyWorker& w, core::Fd client, EndpointKind kind, core::TimePoint accepted)
      : worker_(w), client_(std::move(client)), kind_(kind), accepted_(accepted) {
    client_io_.conn = this;
    backend_io_.conn = this;
    backend_io_.backend = true;
  }

  EndpointKind kind() const { return kind_; }
  const std::string& backend_name() const { return backend_name_; }
  bool waiting() const { return !backend_; }
  core::TimePoint accepted() const { return accepted_; }

  void watch_client() { worker_.loop_.add(client_.get(), &client_io_); }

  // Starts the connect to the backend; false when it failed at once.
  bool connect(const std::string& name, const core::SocketAddress& addr) {
    int err = 0;
    backend_ = core::connect_tcp(addr, &err);
    if (!backend_) return false;
    core::set_nodelay(backend_.get());
    backend_name_ = name;
    worker_.loop_.add(backend_.get(), &backend_io_);
    return true;
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    if (client_) worker_.loop_.remove(client_.get());
    if (backend_) worker_.loop_.remove(backend_.get());
    client_.reset();
    backend_.reset();
    worker_.finished(this);
  }

 private:
  struct Side : core::IoHandler {
    ProxyConnection* conn = nullptr;
    bool backend = false;
    void on_io(uint32_t events) override { conn->on_io(backend, events); }
  };

  void on_io(bool backend_side, uint32_t events) {
    if (closed_) return;
    if (events & (core::kReadable | core::kHangup))
      (backend_side ? backend_readable_ : client_readable_) = true;
    if (backend_side && !connected_) {
      if (!(events & (core::kWritable | core::kHangup))) return;
      if (core::socket_error(backend_.get()) != 0) {
        // The backend refused (a server that just died, not yet seen by the monitor): nothing was relayed
        // yet, so the client waits for the next route instead of seeing its connection closed.
        worker_.loop_.remove(backend_.get());
        backend_.reset();
        backend_name_.clear();
        worker_.retry_later(*this);
        return;
      }
      connected_ = true;
    }
    pump();
  }

  // Moves bytes src -> buf -> dst until one side would block. False on an error (the connection closes).
  // Edge-triggered: a read shorter than the space offered emptied the socket, and new bytes bring a new
  // event, so `src_readable` saves the recv that would only say EAGAIN (one syscall per message and
  // direction).
  bool transfer(int src, core::Buffer& buf, int dst, bool& src_readable, bool& src_eof, bool& dst_shut) {
    for (;;) {
      if (!buf.empty()) {
        ssize_t n = ::send(dst, buf.data(), buf.size(), MSG_NOSIGNAL);
        if (n > 0) {
          buf.consume(static_cast<size_t>(n));
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          return true;
        } else if (n < 0 && errno == EINTR) {
          continue;
        } else {
          return false;
        }
        if (!buf.empty()) continue;
      }
      if (src_eof) {
        if (!dst_shut) {
          ::shutdown(dst, SHUT_WR);
          dst_shut = true;
        }
        return true;
      }
      if (!src_readable) return true;
      char* p = buf.write_ptr();
      size_t space = buf.write_space();
      if (space == 0) return true;
      ssize_t n = ::recv(src, p, space, 0);
      if (n > 0) {
        buf.commit(static_cast<size_t>(n));
        if (static_cast<size_t>(n) < space) src_readable = false;
      } else if (n == 0) {
        src_eof = true;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        src_readable = false;
        if (buf.empty()) buf.release();
        return true;
      } else if (errno != EINTR) {
        return false;
      }
    }
  }

  void pump() {
    if (!connected_) return;
    if (!transfer(client_.get(), up_, backend_.get(), client_readable_, client_eof_, backend_shut_) ||
        !transfer(backend_.get(), down_, client_.get(), backend_readable_, backend_eof_, client_shut_)) {
      close();
      return;
    }
    if (client_shut_ && backend_shut_) close();
  }

  ProxyWorker& worker_;
  core::Fd client_;
  core::Fd backend_;
  EndpointKind kind_;
  core::TimePoint accepted_;
  std::string backend_name_;
  Side client_io_;
  Side backend_io_;
  core::Buffer up_;    // client -> backend
  core::Buffer down_;  // backend -> client
  bool connected_ = false;
  bool closed_ = false;
  bool client_readable_ = true, backend_readable_ = true;
  bool client_eof_ = false, backend_eof_ = false;
  bool client_shut_ = false, backend_shut_ = false;
};

void ProxyWorker::Listener::on_io(uint32_t) {
  worker->accept_from(*this);
}

ProxyWorker::ProxyWorker(core::EventLoop& loop, const core::SocketAddress& writer,
                         const core::SocketAddress& reader, std::chrono::milliseconds wait_for_primary)
    : loop_(loop), wait_for_primary_(wait_for_primary), wait_timer_(loop, [this] { expire_waiting(); }) {
  writer_.worker = this;
  writer_.kind = EndpointKind::kWriter;
  writer_.fd = core::listen_tcp(writer, true);
  reader_.worker = this;
  reader_.kind = EndpointKind::kReader;
  reader_.fd = core::listen_tcp(reader, true);
  loop_.add(writer_.fd.get(), &writer_, core::kReadable);
  loop_.add(reader_.fd.get(), &reader_, core::kReadable);
}

ProxyWorker::~ProxyWorker() {
  stop_listening();
  std::vector<ProxyConnection*> all;
  for (auto& [p, c] : connections_) all.push_back(p);
  for (ProxyConnection* p : all) p->close();
}

void ProxyWorker::stop_listening() {
  for (Listener* l : {&writer_, &reader_}) {
    if (l->fd) {
      loop_.remove(l->fd.get());
      l->fd.reset();
    }
  }
}

core::SocketAddress ProxyWorker::local_address(EndpointKind kind) const {
  const Listener& l = kind == EndpointKind::kWriter ? writer_ : reader_;
  return core::SocketAddress::from_fd_local(l.fd.get()).value_or(core::SocketAddress{});
}

size_t ProxyWorker::waiting_connections() const {
  size_t n = 0;
  for (const auto& [p, c] : connections_) n += c->waiting() ? 1 : 0;
  return n;
}

void ProxyWorker::accept_from(Listener& l) {
  for (;;) {
    int err = 0;
    int fd = core::accept_nonblocking(l.fd.get(), &err);
    if (fd < 0) {
      if (err != 0) core::log_warn(kComponent, "accept failed", {{"error", core::errno_text(err)}});
      return;
    }
    core::set_nodelay(fd);
    auto conn = std::make_unique<ProxyConnection>(*this, core::Fd(fd), l.kind, loop_.now());
    ProxyConnection& c = *conn;
    connections_.emplace(&c, std::move(conn));
    c.watch_client();
    start_backend(c);
  }
}

void ProxyWorker::start_backend(ProxyConnection& c) {
  const bool writer = c.kind() == EndpointKind::kWriter;
  std::string name = writer ? (routes_.hold_writer ? std::string() : routes_.writer) : routes_.reader.next();
  if (name.empty()) {
    // No primary now (a failover is running): the client waits for the next one, up to wait_for_primary_.
    retry_later(c);
    return;
  }
  auto it = routes_.addresses.find(name);
  if (it == routes_.addresses.end()) {
    c.close();
  } else if (!c.connect(name, it->second)) {
    retry_later(c);
  }
}

void ProxyWorker::retry_later(ProxyConnection&) {
  if (!wait_timer_.armed()) wait_timer_.arm(kRetryInterval);
}

void ProxyWorker::expire_waiting() {
  std::vector<ProxyConnection*> expired, retry;
  const core::TimePoint now = loop_.update_now();
  for (auto& [p, c] : connections_) {
    if (!c->waiting()) continue;
    if (now - c->accepted() >= wait_for_primary_) {
      expired.push_back(p);
    } else {
      retry.push_back(p);
    }
  }
  for (ProxyConnection* p : expired) p->close();
  for (ProxyConnection* p : retry) start_backend(*p);
}

void ProxyWorker::set_routes(Routes routes) {
  routes_ = std::move(routes);
  std::vector<ProxyConnection*> waiting, victims;
  for (auto& [p, c] : connections_) {
    if (c->waiting()) {
      waiting.push_back(p);
    } else if (c->kind() == EndpointKind::kWriter ? c->backend_name() != routes_.writer
                                                  : std::find(routes_.cut.begin(), routes_.cut.end(),
                                                              c->backend_name()) != routes_.cut.end()) {
      victims.push_back(p);
    }
  }
  for (ProxyConnection* p : victims) p->close();
  for (ProxyConnection* p : waiting) {
    if (p->kind() == EndpointKind::kWriter && (routes_.writer.empty() || routes_.hold_writer)) continue;
    start_backend(*p);
  }
}

void ProxyWorker::finished(ProxyConnection* c) {
  auto it = connections_.find(c);
  if (it == connections_.end()) return;
  std::unique_ptr<ProxyConnection> owned = std::move(it->second);
  connections_.erase(it);
  loop_.destroy_later(std::move(owned));
}

}  // namespace cumulo::db
