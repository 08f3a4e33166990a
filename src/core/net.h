// Sockets: addresses, listeners, non-blocking connects.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cumulo::core {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  // "127.0.0.1:8080", "[::1]:8080", "localhost:8080", ":8080" (all IPv4 addresses). Numeric hosts and
  // "localhost" only: no DNS lookups on the request path.
  static std::optional<SocketAddress> parse(std::string_view host_port);
  static std::optional<SocketAddress> from_fd_peer(int fd);
  static std::optional<SocketAddress> from_fd_local(int fd);
  std::string to_string() const;  // "127.0.0.1:8080", "[::1]:8080"
  std::string host() const;       // "127.0.0.1", "::1"
  uint16_t port() const;
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// A non-blocking listening TCP socket. With reuse_port several workers each own a listener on one address and
// the kernel spreads connections over them. Throws std::runtime_error naming the address on failure.
Fd listen_tcp(const SocketAddress& addr, bool reuse_port, int backlog = 4096);

// Starts a non-blocking connect. Returns the socket (connect in progress or done), or an invalid Fd with
// *error set to errno.
Fd connect_tcp(const SocketAddress& addr, int* error);

void set_nodelay(int fd);
// The pending error of a socket (SO_ERROR), 0 when none.
int socket_error(int fd);
std::string errno_text(int err);

}  // namespace cumulo::core
