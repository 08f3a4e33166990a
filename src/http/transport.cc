#include "http/transport.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "core/net.h"

namespace cumulo::http {

namespace {

class PlainTransport final : public Transport {
 public:
  explicit PlainTransport(int fd) : Transport(fd) {}
  ~PlainTransport() override {
    if (fd_ >= 0) ::close(fd_);
  }

  ssize_t read(char* buf, size_t len) override {
    for (;;) {
      ssize_t n = ::recv(fd_, buf, len, 0);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      return fail(errno, "read");
    }
  }

  ssize_t write(const char* buf, size_t len) override {
    for (;;) {
      // MSG_NOSIGNAL: a peer that went away must be an error code here, not a SIGPIPE for the process.
      ssize_t n = ::send(fd_, buf, len, MSG_NOSIGNAL);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      return fail(errno, "write");
    }
  }

  ssize_t writev(const iovec* iov, int count) override {
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = static_cast<size_t>(count);
    for (;;) {
      ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      return fail(errno, "write");
    }
  }

  void shutdown_write() override { ::shutdown(fd_, SHUT_WR); }
  bool secure() const override { return false; }
  std::string error_text() const override { return error_; }

 private:
  ssize_t fail(int err, const char* what) {
    if (err == EAGAIN || err == EWOULDBLOCK) return kWouldBlock;
    error_ = std::string(what) + ": " + core::errno_text(err);
    return kIoError;
  }

  std::string error_;
};

}  // namespace

std::unique_ptr<Transport> make_plain_transport(int fd) {
  return std::make_unique<PlainTransport>(fd);
}

}  // namespace cumulo::http
