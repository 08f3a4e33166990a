// TLS over OpenSSL 3 with non-blocking sockets. The socket BIO is our own so that writes use MSG_NOSIGNAL (a
// vanished peer is an error code, never a SIGPIPE) and so that the errno of a failed call stays with the
// connection for error_text().
#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "core/net.h"
#include "core/text.h"
#include "http/transport.h"

namespace cumulo::http {

namespace {

// Largest TLS record payload: gathering iovecs up to this size costs one record instead of one per iovec.
constexpr size_t kMaxRecord = 16 * 1024;

constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// Drains OpenSSL's per-thread error queue into one line of reasons.
std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    char buf[256];
    if (!reason) {
      ERR_error_string_n(e, buf, sizeof buf);
      reason = buf;
    }
    if (!out.empty()) out += "; ";
    out += reason;
  }
  return out;
}

bool is_ip_literal(const std::string& name) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

// --- The socket BIO ---------------------------------------------------------------------------------------

struct BioState {
  int fd;
  int last_errno = 0;
};

int bio_write(BIO* b, const char* data, int len) {
  auto* st = static_cast<BioState*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  for (;;) {
    ssize_t n = ::send(st->fd, data, static_cast<size_t>(len), MSG_NOSIGNAL);
    if (n >= 0) return static_cast<int>(n);
    if (errno == EINTR) continue;
    st->last_errno = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(b);
    return -1;
  }
}

int bio_read(BIO* b, char* data, int len) {
  auto* st = static_cast<BioState*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  for (;;) {
    ssize_t n = ::recv(st->fd, data, static_cast<size_t>(len), 0);
    if (n >= 0) return static_cast<int>(n);
    if (errno == EINTR) continue;
    st->last_errno = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_read(b);
    return -1;
  }
}

long bio_ctrl(BIO* b, int cmd, long, void* ptr) {
  auto* st = static_cast<BioState*>(BIO_get_data(b));
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;  // nothing is buffered here
    case BIO_C_GET_FD:
      if (ptr) *static_cast<int*>(ptr) = st->fd;
      return st->fd;
    default:
      return 0;
  }
}

int bio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

BIO_METHOD* socket_bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "cumulo socket");
    if (!m) throw std::runtime_error("TLS: cannot create the socket BIO method: " + openssl_errors());
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    return m;
  }();
  return method;
}

// --- The transport -----------------------------------------------------------------------------------------

class TlsTransport final : public Transport {
 public:
  TlsTransport(int fd, SSL_CTX* ctx, bool server) : Transport(fd), bio_state_{fd} {
    ssl_ = SSL_new(ctx);
    BIO* bio = ssl_ ? BIO_new(socket_bio_method()) : nullptr;
    if (!bio) {
      if (ssl_) SSL_free(ssl_);
      ::close(fd_);
      throw std::runtime_error("TLS: cannot create a connection: " + openssl_errors());
    }
    BIO_set_data(bio, &bio_state_);
    SSL_set_bio(ssl_, bio, bio);  // the SSL owns the BIO from here
    if (server) {
      SSL_set_accept_state(ssl_);
    } else {
      SSL_set_connect_state(ssl_);
    }
  }

  ~TlsTransport() override {
    SSL_free(ssl_);
    ::close(fd_);
  }

  SSL* ssl() { return ssl_; }

  ssize_t read(char* buf, size_t len) override {
    ERR_clear_error();
    size_t n = 0;
    int rc = SSL_read_ex(ssl_, buf, len, &n);
    if (rc == 1) return static_cast<ssize_t>(n);
    return fail(rc, "read");
  }

  ssize_t write(const char* buf, size_t len) override {
    ERR_clear_error();
    size_t n = 0;
    int rc = SSL_write_ex(ssl_, buf, len, &n);
    if (rc == 1) return static_cast<ssize_t>(n);
    return fail(rc, "write");
  }

  // Small iovecs are gathered into one record. A retry after kWouldBlock passes the same pending bytes
  // (callers keep them until written), so the gathered prefix is the same and OpenSSL's retry rule (same
  // data, length not smaller) holds; SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows the copy to live elsewhere.
  ssize_t writev(const iovec* iov, int count) override {
    if (count == 1 || iov[0].iov_len >= kMaxRecord)
      return write(static_cast<const char*>(iov[0].iov_base), iov[0].iov_len);
    thread_local char gather[kMaxRecord];
    size_t used = 0;
    for (int i = 0; i < count && used < kMaxRecord; ++i) {
      size_t n = std::min(iov[i].iov_len, kMaxRecord - used);
      std::memcpy(gather + used, iov[i].iov_base, n);
      used += n;
    }
    return write(gather, used);
  }

  void shutdown_write() override {
    if (SSL_is_init_finished(ssl_)) {
      ERR_clear_error();
      SSL_shutdown(ssl_);  // sends close_notify when the socket takes it; the peer's reply is not awaited
      ERR_clear_error();
    }
    ::shutdown(fd_, SHUT_WR);
  }

  bool secure() const override { return true; }

  std::string server_name() const override {
    const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
    return name ? name : "";
  }

  std::string error_text() const override { return error_; }

 private:
  ssize_t fail(int rc, const char* op) {
    int err = SSL_get_error(ssl_, rc);
    switch (err) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        return kWouldBlock;
      case SSL_ERROR_ZERO_RETURN:
        if (op[0] == 'r') return 0;
        error_ = "TLS write: the peer closed the connection";
        return kIoError;
      default:
        break;
    }
    bool in_handshake = !SSL_is_init_finished(ssl_);
    std::string why = openssl_errors();
    long verify = SSL_get_verify_result(ssl_);
    if (in_handshake && verify != X509_V_OK) {
      why = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
    }
    if (why.empty()) {
      why = bio_state_.last_errno ? core::errno_text(bio_state_.last_errno) : "connection closed by the peer";
    }
    error_ = in_handshake ? "TLS handshake failed: " + why : std::string("TLS ") + op + ": " + why;
    return kIoError;
  }

  SSL* ssl_ = nullptr;
  BioState bio_state_;
  std::string error_;
};

// --- Server side -------------------------------------------------------------------------------------------

struct CtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxDeleter>;

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kAlpnHttp11, sizeof kAlpnHttp11, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  // A client offering only h2 still gets HTTP/1.1 without ALPN rather than a failed handshake.
  return SSL_TLSEXT_ERR_NOACK;
}

// The DNS names a certificate is valid for: its DNS subjectAltNames, or its CN when it has none (RFC 6125
// section 6.4.4).
std::vector<std::string> certificate_names(X509* cert) {
  std::vector<std::string> names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type != GEN_DNS) continue;
      const ASN1_STRING* s = gn->d.dNSName;
      names.push_back(core::to_lower(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                                      static_cast<size_t>(ASN1_STRING_length(s)))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    X509_NAME* subject = X509_get_subject_name(cert);
    int idx = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
    if (idx >= 0) {
      unsigned char* utf8 = nullptr;
      int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx)));
      if (len > 0)
        names.push_back(
            core::to_lower(std::string_view(reinterpret_cast<char*>(utf8), static_cast<size_t>(len))));
      OPENSSL_free(utf8);
    }
  }
  return names;
}

// RFC 6125 section 6.4.3, restricted to the common form: "*" as the whole left-most label matches exactly one
// label ("*.example.com" matches "a.example.com", neither "example.com" nor "a.b.example.com").
bool wildcard_matches(std::string_view pattern, std::string_view host) {
  if (pattern.size() < 3 || pattern[0] != '*' || pattern[1] != '.') return false;
  auto dot = host.find('.');
  if (dot == std::string_view::npos || dot == 0) return false;
  return host.substr(dot) == pattern.substr(1);
}

class TlsServerContextImpl final : public TlsServerContext {
 public:
  explicit TlsServerContextImpl(const std::vector<TlsCertificate>& certificates) {
    if (certificates.empty())
      throw std::runtime_error("TLS: no certificate given; a server needs at least one");
    for (const auto& c : certificates) entries_.push_back(load(c));
  }

  std::unique_ptr<Transport> wrap(int fd) override {
    return std::make_unique<TlsTransport>(fd, entries_.front().ctx.get(), /*server=*/true);
  }

 private:
  struct Entry {
    CtxPtr ctx;
    std::vector<std::string> names;
  };

  Entry load(const TlsCertificate& c) {
    ERR_clear_error();
    CtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) throw std::runtime_error("TLS: cannot create a context: " + openssl_errors());
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                       SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
    // RELEASE_BUFFERS: an idle keep-alive connection keeps no record buffers (about 34 KiB each).
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                    SSL_MODE_RELEASE_BUFFERS);
    static const unsigned char kSessionContext[] = "cumulo";
    SSL_CTX_set_session_id_context(ctx.get(), kSessionContext, sizeof kSessionContext - 1);
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), c.cert_file.c_str()) != 1)
      throw std::runtime_error("TLS: cannot use certificate file '" + c.cert_file + "': " + openssl_errors() +
                               " (expected PEM, leaf certificate first)");
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), c.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      throw std::runtime_error("TLS: cannot use key file '" + c.key_file + "': " + openssl_errors() +
                               " (expected an unencrypted PEM private key)");
    if (SSL_CTX_check_private_key(ctx.get()) != 1)
      throw std::runtime_error("TLS: key file '" + c.key_file + "' does not match certificate '" +
                               c.cert_file + "': " + openssl_errors());
    SSL_CTX_set_alpn_select_cb(ctx.get(), select_alpn, nullptr);
    SSL_CTX_set_tlsext_servername_callback(ctx.get(), on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx.get(), this);
    auto names = certificate_names(SSL_CTX_get0_certificate(ctx.get()));
    return Entry{std::move(ctx), std::move(names)};
  }

  SSL_CTX* find(std::string_view host) const {
    for (const auto& e : entries_)
      for (const auto& n : e.names)
        if (n == host) return e.ctx.get();
    for (const auto& e : entries_)
      for (const auto& n : e.names)
        if (wildcard_matches(n, host)) return e.ctx.get();
    return nullptr;
  }

  static int on_servername(SSL* ssl, int*, void* arg) {
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name) return SSL_TLSEXT_ERR_OK;  // no SNI: the default certificate
    auto* self = static_cast<TlsServerContextImpl*>(arg);
    std::string host = core::to_lower(name);
    if (!host.empty() && host.back() == '.') host.pop_back();
    SSL_CTX* ctx = self->find(host);
    // An unknown name gets the default certificate, as HAProxy does; the client decides whether to trust it.
    if (ctx && ctx != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, ctx);
    return SSL_TLSEXT_ERR_OK;
  }

  std::vector<Entry> entries_;
};

// --- Client side -------------------------------------------------------------------------------------------

class TlsClientContextImpl final : public TlsClientContext {
 public:
  explicit TlsClientContextImpl(const std::string& ca_file) : verify_(!ca_file.empty()) {
    ERR_clear_error();
    ctx_.reset(SSL_CTX_new(TLS_client_method()));
    if (!ctx_) throw std::runtime_error("TLS: cannot create a client context: " + openssl_errors());
    SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_2_VERSION);
    SSL_CTX_set_options(ctx_.get(),
                        SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                     SSL_MODE_RELEASE_BUFFERS);
    if (verify_) {
      if (SSL_CTX_load_verify_locations(ctx_.get(), ca_file.c_str(), nullptr) != 1)
        throw std::runtime_error("TLS: cannot load CA file '" + ca_file + "': " + openssl_errors() +
                                 " (expected PEM certificates)");
      SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    } else {
      SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_NONE, nullptr);
    }
  }

  std::unique_ptr<Transport> wrap(int fd, const std::string& server_name) override {
    auto t = std::make_unique<TlsTransport>(fd, ctx_.get(), /*server=*/false);
    SSL* ssl = t->ssl();
    SSL_set_alpn_protos(ssl, kAlpnHttp11, sizeof kAlpnHttp11);
    if (!server_name.empty()) {
      bool ip = is_ip_literal(server_name);
      // RFC 6066 section 3: SNI carries host names only, never address literals.
      if (!ip) SSL_set_tlsext_host_name(ssl, server_name.c_str());
      if (verify_) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        if (ip) {
          X509_VERIFY_PARAM_set1_ip_asc(param, server_name.c_str());
        } else {
          X509_VERIFY_PARAM_set1_host(param, server_name.c_str(), 0);
        }
      }
    }
    return t;
  }

 private:
  CtxPtr ctx_;
  bool verify_;
};

}  // namespace

std::unique_ptr<TlsServerContext> TlsServerContext::create(const std::vector<TlsCertificate>& certificates) {
  return std::make_unique<TlsServerContextImpl>(certificates);
}

std::unique_ptr<TlsClientContext> TlsClientContext::create(const std::string& ca_file) {
  return std::make_unique<TlsClientContextImpl>(ca_file);
}

}  // namespace cumulo::http
