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
// A listener handed down by the parent for the same address (see kInheritedListenersEnv) is used instead of a
// new socket: a process started in a network namespace keeps its admin API on the host that way.
Fd listen_tcp(const SocketAddress& addr, bool reuse_port, int backlog = 4096);

// Listening sockets a parent bound before it started this process, as a comma-separated list of descriptor
// numbers ("3,4"). `cumulo up` in network mode binds each process's admin address on the host's loopback and
// then starts the process inside its own network namespace: a socket stays in the namespace it was made in.
inline constexpr char kInheritedListenersEnv[] = "CUMULO_LISTEN_FDS";

// A duplicate (non-blocking, close-on-exec) of the inherited listener bound to exactly `addr`, or an invalid
// Fd when there is none. The inherited descriptors themselves are made close-on-exec when they are looked at,
// so that they are not handed on to this process's own children.
Fd inherited_listener(const SocketAddress& addr);

// Binds `addr` (a listener for a child to inherit: blocking, NOT close-on-exec; the caller closes it once the
// child has started). Throws like listen_tcp.
Fd listen_tcp_for_child(const SocketAddress& addr, int backlog = 4096);

// Whether a listener could be opened on `addr` now: tries listen_tcp and closes the socket again at once.
// When it cannot, *why (if given) says why, in listen_tcp's words. For start-up checks that turn a taken port
// into one clear message instead of a crash loop later.
bool address_free(const SocketAddress& addr, std::string* why = nullptr);

// Accepts one connection on a non-blocking listener, as a non-blocking close-on-exec socket, retrying on
// EINTR and on connections aborted while queued (ECONNABORTED). Returns the socket, or -1 with *error set to
// 0 when none is pending (EAGAIN) or to errno when accepting failed (out of descriptors or memory: the
// connections stay queued, and the caller logs and backs off as it sees fit).
int accept_nonblocking(int listen_fd, int* error);

// Starts a non-blocking connect. Returns the socket (connect in progress or done), or an invalid Fd with
// *error set to errno.
Fd connect_tcp(const SocketAddress& addr, int* error);

void set_nodelay(int fd);
// The pending error of a socket (SO_ERROR), 0 when none.
int socket_error(int fd);
std::string errno_text(int err);

// Where `ip netns add NAME` keeps a network namespace: /run/netns/NAME.
std::string network_namespace_path(std::string_view name);
// That file opened close-on-exec, for setns(2) (in a child before exec, or on a thread of its own); an empty
// Fd with errno set when it cannot be.
Fd open_network_namespace(std::string_view name);

}  // namespace cumulo::core
