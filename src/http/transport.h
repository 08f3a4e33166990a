// A byte stream over a socket: plain TCP or TLS. Owns the socket. Non-blocking: every call returns at once.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <memory>
#include <string>
#include <vector>

namespace cumulo::http {

// Return values of read/write besides a byte count (>0) and 0 (read: orderly close by the peer).
inline constexpr ssize_t kWouldBlock = -1;  // try again on the next readiness event
inline constexpr ssize_t kIoError = -2;     // the connection is broken; error_text() says why

class Transport {
 public:
  virtual ~Transport() = default;
  virtual ssize_t read(char* buf, size_t len) = 0;
  virtual ssize_t write(const char* buf, size_t len) = 0;
  virtual ssize_t writev(const iovec* iov, int count) = 0;
  virtual void shutdown_write() = 0;
  virtual bool secure() const = 0;
  // TLS: the server name the client asked for (SNI), empty otherwise.
  virtual std::string server_name() const { return {}; }
  virtual std::string error_text() const = 0;
  int fd() const { return fd_; }

 protected:
  explicit Transport(int fd) : fd_(fd) {}
  int fd_;
};

std::unique_ptr<Transport> make_plain_transport(int fd);

struct TlsCertificate {
  std::string cert_file;  // PEM, leaf first then chain
  std::string key_file;   // PEM
};

// Server-side TLS (TLS 1.2 and 1.3 only). With several certificates the one whose names (SAN or CN, wildcards
// as in RFC 6125) match the client's SNI is used; the first is the default.
class TlsServerContext {
 public:
  // Throws std::runtime_error naming the file and OpenSSL's reason when a certificate or key cannot be used.
  static std::unique_ptr<TlsServerContext> create(const std::vector<TlsCertificate>& certificates);
  virtual ~TlsServerContext() = default;
  // Wraps an accepted socket; the handshake runs inside the first reads and writes.
  virtual std::unique_ptr<Transport> wrap(int fd) = 0;
};

// Client-side TLS; verification off unless ca_file is given. Only tests use it so far: health checks and
// upstreams are plain HTTP (no component creates one).
class TlsClientContext {
 public:
  static std::unique_ptr<TlsClientContext> create(const std::string& ca_file = {});
  virtual ~TlsClientContext() = default;
  virtual std::unique_ptr<Transport> wrap(int fd, const std::string& server_name) = 0;
};

}  // namespace cumulo::http
