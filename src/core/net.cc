#include "core/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace cumulo::core {

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::optional<SocketAddress> SocketAddress::parse(std::string_view hp) {
  std::string_view host, port;
  if (!hp.empty() && hp.front() == '[') {
    auto close = hp.find(']');
    if (close == std::string_view::npos || close + 1 >= hp.size() || hp[close + 1] != ':')
      return std::nullopt;
    host = hp.substr(1, close - 1);
    port = hp.substr(close + 2);
  } else {
    auto colon = hp.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = hp.substr(0, colon);
    port = hp.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // IPv6 needs brackets
  }
  unsigned p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || end != port.data() + port.size() || p > 65535 || port.empty()) return std::nullopt;
  SocketAddress a;
  std::string h(host);
  if (h.empty()) h = "0.0.0.0";
  if (h == "localhost") h = "127.0.0.1";
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(p));
    a.length = sizeof(sockaddr_in);
    return a;
  }
  if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(p));
    a.length = sizeof(sockaddr_in6);
    return a;
  }
  return std::nullopt;
}

std::optional<SocketAddress> SocketAddress::from_fd_peer(int fd) {
  SocketAddress a;
  a.length = sizeof a.storage;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&a.storage), &a.length) != 0) return std::nullopt;
  return a;
}

std::optional<SocketAddress> SocketAddress::from_fd_local(int fd) {
  SocketAddress a;
  a.length = sizeof a.storage;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a.storage), &a.length) != 0) return std::nullopt;
  return a;
}

std::string SocketAddress::host() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf, sizeof buf);
  } else if (storage.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf, sizeof buf);
  }
  return buf;
}

uint16_t SocketAddress::port() const {
  if (storage.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (storage.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return 0;
}

std::string SocketAddress::to_string() const {
  if (storage.ss_family == AF_INET6) return "[" + host() + "]:" + std::to_string(port());
  return host() + ":" + std::to_string(port());
}

namespace {

bool same_address(const SocketAddress& a, const SocketAddress& b) {
  return a.storage.ss_family == b.storage.ss_family && a.length == b.length &&
         std::memcmp(&a.storage, &b.storage, a.length) == 0;
}

struct InheritedListener {
  int fd;
  SocketAddress address;
};

// Read at each call (listeners are made at start-up, not on a request path), so that what the environment
// says is what is used.
std::vector<InheritedListener> inherited_listeners() {
  std::vector<InheritedListener> out;
  const char* env = std::getenv(kInheritedListenersEnv);
  if (env == nullptr) return out;
  std::string_view list(env);
  while (!list.empty()) {
    const size_t comma = list.find(',');
    const std::string_view item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    int fd = -1;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), fd);
    if (ec != std::errc() || end != item.data() + item.size() || fd < 3) continue;
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) continue;
    std::optional<SocketAddress> local = SocketAddress::from_fd_local(fd);
    if (!local) continue;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    out.push_back({fd, *local});
  }
  return out;
}

// Zeroes what getsockname leaves out of a parsed address and the other way round (sin_zero, flow info).
SocketAddress canonical(const SocketAddress& a) {
  SocketAddress c;
  if (a.storage.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a.storage);
    auto* out = reinterpret_cast<sockaddr_in*>(&c.storage);
    out->sin_family = AF_INET;
    out->sin_port = in->sin_port;
    out->sin_addr = in->sin_addr;
    c.length = sizeof(sockaddr_in);
  } else if (a.storage.ss_family == AF_INET6) {
    const auto* in = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    auto* out = reinterpret_cast<sockaddr_in6*>(&c.storage);
    out->sin6_family = AF_INET6;
    out->sin6_port = in->sin6_port;
    out->sin6_addr = in->sin6_addr;
    c.length = sizeof(sockaddr_in6);
  }
  return c;
}

Fd bind_and_listen(const SocketAddress& addr, bool reuse_port, int backlog, int flags) {
  Fd fd(::socket(addr.storage.ss_family, SOCK_STREAM | flags, 0));
  if (!fd) throw std::runtime_error("socket for " + addr.to_string() + ": " + errno_text(errno));
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port) setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (addr.storage.ss_family == AF_INET6) setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd.get(), addr.sa(), addr.length) != 0)
    throw std::runtime_error("cannot listen on " + addr.to_string() + ": " + errno_text(errno) +
                             (errno == EADDRINUSE ? " (another process has this port; pick another)" : ""));
  if (::listen(fd.get(), backlog) != 0)
    throw std::runtime_error("listen on " + addr.to_string() + ": " + errno_text(errno));
  return fd;
}

}  // namespace

Fd inherited_listener(const SocketAddress& addr) {
  const SocketAddress want = canonical(addr);
  for (const InheritedListener& l : inherited_listeners()) {
    if (!same_address(canonical(l.address), want)) continue;
    Fd copy(fcntl(l.fd, F_DUPFD_CLOEXEC, 3));
    if (!copy) return copy;
    const int flags = fcntl(copy.get(), F_GETFL);
    if (flags >= 0) fcntl(copy.get(), F_SETFL, flags | O_NONBLOCK);
    return copy;
  }
  return Fd();
}

Fd listen_tcp_for_child(const SocketAddress& addr, int backlog) {
  return bind_and_listen(addr, false, backlog, 0);
}

Fd listen_tcp(const SocketAddress& addr, bool reuse_port, int backlog) {
  if (Fd inherited = inherited_listener(addr)) return inherited;
  return bind_and_listen(addr, reuse_port, backlog, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

bool address_free(const SocketAddress& addr, std::string* why) {
  try {
    listen_tcp(addr, false);  // closed again at once
    return true;
  } catch (const std::exception& e) {
    if (why) *why = e.what();
    return false;
  }
}

int accept_nonblocking(int listen_fd, int* error) {
  for (;;) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      *error = 0;
      return fd;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    *error = (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : errno;
    return -1;
  }
}

Fd connect_tcp(const SocketAddress& addr, int* error) {
  Fd fd(::socket(addr.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    *error = errno;
    return Fd();
  }
  set_nodelay(fd.get());
  if (::connect(fd.get(), addr.sa(), addr.length) != 0 && errno != EINPROGRESS) {
    *error = errno;
    return Fd();
  }
  *error = 0;
  return fd;
}

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

std::string errno_text(int err) {
  return std::strerror(err);
}

std::string network_namespace_path(std::string_view name) {
  return "/run/netns/" + std::string(name);
}

Fd open_network_namespace(std::string_view name) {
  return Fd(::open(network_namespace_path(name).c_str(), O_RDONLY | O_CLOEXEC));
}

}  // namespace cumulo::core
