// HTTPS through http::Server with certificates made for the test by the openssl command, checked with curl
// and with a plain OpenSSL client (which can look at the certificate the server chose).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "core/event_loop.h"
#include "http/server.h"
#include "http/transport.h"

namespace cumulo::http {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "cumulo-tls-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A self-signed P-256 certificate (fast to make) with the given subject CN and DNS names.
TlsCertificate make_certificate(const fs::path& dir, const std::string& stem, const std::string& cn,
                                const std::string& dns_names) {
  TlsCertificate c{(dir / (stem + ".crt")).string(), (dir / (stem + ".key")).string()};
  std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -keyout '" +
      c.key_file + "' -out '" + c.cert_file + "' -subj '/CN=" + cn +
      "' -addext 'subjectAltName=" + dns_names + "' >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("openssl req failed: " + cmd);
  return c;
}

class HttpsServer {
 public:
  HttpsServer(TlsServerContext* tls, Handler handler) {
    ServerOptions opts;
    opts.listen = *core::SocketAddress::parse("127.0.0.1:0");
    opts.tls = tls;
    server_ = std::make_unique<Server>(loop_, std::move(opts), std::move(handler));
    server_->start();
    port_ = server_->local_address().port();
    thread_ = std::thread([this] { loop_.run(); });
  }
  ~HttpsServer() {
    loop_.post([this] {
      server_.reset();
      loop_.stop();
    });
    thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  core::EventLoop loop_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
  std::thread thread_;
};

int connect_blocking(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

struct Handshake {
  bool ok = false;
  std::string subject_cn;
  std::string alpn;
  std::string response;
};

// A blocking OpenSSL client that offers h2 and http/1.1 and reports what the server chose.
Handshake tls_connect(uint16_t port, const char* sni, bool send_request) {
  Handshake h;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  int fd = connect_blocking(port);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (sni) SSL_set_tlsext_host_name(ssl, sni);
  static const unsigned char kAlpn[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_set_alpn_protos(ssl, kAlpn, sizeof kAlpn);
  if (SSL_connect(ssl) == 1) {
    h.ok = true;
    if (X509* cert = SSL_get1_peer_certificate(ssl)) {
      char cn[256] = {};
      X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
      h.subject_cn = cn;
      X509_free(cert);
    }
    const unsigned char* proto = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(ssl, &proto, &len);
    h.alpn.assign(reinterpret_cast<const char*>(proto), len);
    if (send_request) {
      std::string req = "GET /over-tls HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
      SSL_write(ssl, req.data(), static_cast<int>(req.size()));
      char buf[4096];
      for (;;) {
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n <= 0) break;
        h.response.append(buf, static_cast<size_t>(n));
      }
    }
  }
  ERR_clear_error();
  SSL_free(ssl);
  ::close(fd);
  SSL_CTX_free(ctx);
  return h;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = make_certificate(dir_.path(), "a", "a.test", "DNS:a.test,DNS:www.a.test");
    b_ = make_certificate(dir_.path(), "b", "wild.b.test", "DNS:*.b.test");
  }
  TempDir dir_;
  TlsCertificate a_, b_;
};

TEST_F(TlsTest, ServesHttpsToCurl) {
  auto tls = TlsServerContext::create({a_});
  HttpsServer srv(tls.get(), [](Request& req, Responder respond) {
    respond(Response::text(200, "secure " + req.path + " " + req.body + "\n"));
  });
  std::string cmd =
      "curl -sk --max-time 10 -X POST --data-binary payload https://127.0.0.1:" + std::to_string(srv.port()) +
      "/hello 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int rc = ::pclose(p);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "secure /hello payload\n");
}

std::string run_command(const std::string& cmd, int* rc) {
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  if (!p) return out;
  char buf[65536];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  *rc = ::pclose(p);
  return out;
}

TEST_F(TlsTest, LargeBodiesBothWays) {
  constexpr uint64_t kDown = 20 * 1024 * 1024;
  constexpr size_t kUp = 6 * 1024 * 1024;
  auto tls = TlsServerContext::create({a_});
  HttpsServer srv(tls.get(), [](Request& req, Responder respond) {
    if (req.method == "POST") {
      bool all_x = req.body.find_first_not_of('x') == std::string::npos;
      respond(Response::text(200, std::to_string(req.body.size()) + (all_x ? " x" : " corrupt")));
      return;
    }
    Response r;
    r.content_length = kDown;
    r.body_producer = [offset = uint64_t{0}](char* buf, size_t cap) mutable {
      size_t n = static_cast<size_t>(std::min<uint64_t>(cap, kDown - offset));
      for (size_t i = 0; i < n; ++i) buf[i] = static_cast<char>((offset + i) % 251);
      offset += n;
      return n;
    };
    respond(std::move(r));
  });
  std::string base = "https://127.0.0.1:" + std::to_string(srv.port());
  int rc = -1;
  std::string down = run_command("curl -sk --max-time 30 " + base + "/down", &rc);
  EXPECT_EQ(rc, 0);
  ASSERT_EQ(down.size(), kDown);
  bool pattern_ok = true;
  for (size_t i = 0; i < down.size() && pattern_ok; ++i) pattern_ok = down[i] == static_cast<char>(i % 251);
  EXPECT_TRUE(pattern_ok);

  fs::path upload = dir_.path() / "upload.bin";
  {
    FILE* f = std::fopen(upload.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::string chunk(kUp, 'x');
    std::fwrite(chunk.data(), 1, chunk.size(), f);
    std::fclose(f);
  }
  std::string up =
      run_command("curl -sk --max-time 30 --data-binary @'" + upload.string() + "' " + base + "/up", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(up, std::to_string(kUp) + " x");
}

TEST_F(TlsTest, SniPicksTheMatchingCertificate) {
  auto tls = TlsServerContext::create({a_, b_});
  HttpsServer srv(tls.get(), [](Request& req, Responder respond) { respond(Response::text(200, req.path)); });

  struct Case {
    const char* sni;
    const char* expected_cn;
  } cases[] = {
      {"a.test", "a.test"},          {"WWW.A.TEST", "a.test"},  // names compare case-insensitively
      {"x.b.test", "wild.b.test"},                              // wildcard
      {"b.test", "a.test"},           // "*.b.test" does not cover b.test itself: default
      {"y.x.b.test", "a.test"},       // nor two labels
      {"unknown.example", "a.test"},  // default
      {nullptr, "a.test"},            // no SNI: default
  };
  for (const auto& c : cases) {
    Handshake h = tls_connect(srv.port(), c.sni, false);
    ASSERT_TRUE(h.ok) << (c.sni ? c.sni : "(no SNI)");
    EXPECT_EQ(h.subject_cn, c.expected_cn) << (c.sni ? c.sni : "(no SNI)");
    EXPECT_EQ(h.alpn, "http/1.1");
  }
  Handshake h = tls_connect(srv.port(), "x.b.test", true);
  EXPECT_EQ(h.response.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << h.response;
  EXPECT_NE(h.response.find("/over-tls"), std::string::npos);
}

TEST_F(TlsTest, ClientContextVerifiesNameAgainstCa) {
  auto tls = TlsServerContext::create({a_});
  HttpsServer srv(tls.get(), [](Request&, Responder respond) { respond(Response::text(200, "verified")); });

  auto client = TlsClientContext::create(a_.cert_file);
  {
    auto t = client->wrap(connect_blocking(srv.port()), "a.test");  // blocking socket: calls wait
    std::string req = "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    ASSERT_EQ(t->write(req.data(), req.size()), static_cast<ssize_t>(req.size())) << t->error_text();
    std::string resp;
    char buf[4096];
    ssize_t n;
    while ((n = t->read(buf, sizeof buf)) > 0) resp.append(buf, static_cast<size_t>(n));
    EXPECT_EQ(n, 0) << t->error_text();
    EXPECT_TRUE(t->secure());
    EXPECT_NE(resp.find("\r\n\r\nverified"), std::string::npos) << resp;
  }
  {
    auto t = client->wrap(connect_blocking(srv.port()), "other.test");
    std::string req = "GET / HTTP/1.1\r\nHost: other.test\r\n\r\n";
    EXPECT_EQ(t->write(req.data(), req.size()), kIoError);
    EXPECT_NE(t->error_text().find("TLS handshake failed: certificate verify failed"), std::string::npos)
        << t->error_text();
  }
}

TEST_F(TlsTest, PlainHttpToTlsPortFailsTheHandshake) {
  auto tls = TlsServerContext::create({a_});
  HttpsServer srv(tls.get(), [](Request&, Responder respond) { respond(Response::text(200, "no")); });
  int fd = connect_blocking(srv.port());
  ASSERT_GE(fd, 0);
  std::string req = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  char buf[256];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);  // the server drops the connection (maybe after a TLS alert)
  EXPECT_LE(n, 64);
  ::close(fd);
}

TEST_F(TlsTest, UnusableFilesNameTheFile) {
  TlsCertificate missing{(dir_.path() / "missing.crt").string(), a_.key_file};
  try {
    TlsServerContext::create({missing});
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.crt"), std::string::npos) << e.what();
  }
  TlsCertificate mismatched{a_.cert_file, b_.key_file};
  try {
    TlsServerContext::create({mismatched});
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("b.key"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cumulo::http
