// The demo web application behind the example stacks: it says which instance and zone answered, and has knobs
// for what the gateway, health checks and autoscaling are tested with (failing health, CPU burn, slow
// answers, large downloads and uploads). With --backend it is also the web tier of a two-tier stack: requests
// under /app/ go to the application tier behind the stack's internal load balancer. Single-threaded on one event
// loop.
#include <openssl/evp.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>

#include "core/event_loop.h"
#include "core/log.h"
#include "core/net.h"
#include "core/signals.h"
#include "http/client.h"
#include "http/server.h"
#include "guestbook.h"

namespace {

using namespace cumulo;
using namespace std::chrono_literals;

constexpr const char* kComponent = "webapp";
constexpr core::Millis kDrainTime{3000};  // after SIGTERM, in-flight requests get this long
constexpr uint64_t kMaxWaitMs = 600'000;
constexpr std::string_view kAppPrefix = "/app/";
constexpr std::chrono::milliseconds kBackendTimeout{10'000};

// Byte i of /bytes is i % 251 (a prime, so the pattern never lines up with buffer sizes). The table holds the
// pattern from every phase, so each fill is one memcpy.
const std::array<char, 251 + 16 * 1024>& byte_pattern() {
  static const auto table = [] {
    std::array<char, 251 + 16 * 1024> t{};
    for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<char>(i % 251);
    return t;
  }();
  return table;
}

std::optional<uint64_t> parse_uint(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return out;
}

// Counts and hashes an upload as it streams in, so an upload of any size costs no memory.
class UploadSink final : public http::BodySink {
 public:
  UploadSink() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1)
      throw std::runtime_error("cannot initialise SHA-256");
  }
  ~UploadSink() override { EVP_MD_CTX_free(ctx_); }

  // http::BodySink
  void data(std::string_view bytes) override {
    EVP_DigestUpdate(ctx_, bytes.data(), bytes.size());
    bytes_ += bytes.size();
  }

  uint64_t bytes() const { return bytes_; }
  std::string hex_digest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * len);
    for (unsigned i = 0; i < len; ++i) {
      out.push_back(kHex[md[i] >> 4]);
      out.push_back(kHex[md[i] & 15]);
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
  uint64_t bytes_ = 0;
};

class WebApp {
 public:
  WebApp(core::EventLoop& loop, std::string id, std::string zone)
      : loop_(loop), id_(std::move(id)), zone_(std::move(zone)) {
    hello_ = "hello from " + id_ + " in zone " + zone_ + "\n";
  }

  void handle(http::Request& req, http::Responder respond) {
    const std::string& path = req.path;
    const std::string& m = req.method;
    if (path == "/") {
      if (m != "GET" && m != "HEAD") return reply(respond, not_allowed("GET, HEAD"));
      return reply(respond, http::Response::text(200, hello_));
    }
    if (path == "/healthz") {
      if (m != "GET" && m != "HEAD") return reply(respond, not_allowed("GET, HEAD"));
      return reply(respond,
                   healthy_ ? http::Response::text(200, "ok") : http::Response::text(503, "unhealthy"));
    }
    if (path == "/healthz/fail" || path == "/healthz/ok") {
      if (m != "POST") return reply(respond, not_allowed("POST"));
      healthy_ = path == "/healthz/ok";
      core::log_info(kComponent, healthy_ ? "health set to ok" : "health set to failing", {{"id", id_}});
      return reply(respond,
                   http::Response::text(200, healthy_ ? "healthz now ok\n" : "healthz now failing\n"));
    }
    if (path == "/guestbook" && guestbook_) return guestbook_->handle(req, std::move(respond));
    if (path == "/burn") return burn(req, respond);
    if (path == "/slow") return slow(req, respond);
    if (path == "/bytes") return bytes(req, respond);
    if (path == "/upload") return upload(req, respond);
    if (path == "/echo") return echo(req, respond);
    if (path.starts_with(kAppPrefix)) return backend_ ? proxy(req, respond) : app(req, respond);
    reply(respond, http::Response::text(404, "no route for " + path + "\n"));
  }

  std::unique_ptr<http::BodySink> sink_for(const http::Request& head) {
    if (head.path == "/upload" && (head.method == "POST" || head.method == "PUT"))
      return std::make_unique<UploadSink>();
    return nullptr;
  }

 private:
  struct SlowReply {
    SlowReply(core::EventLoop& loop, std::function<void()> fire) : timer(loop, std::move(fire)) {}
    core::Timer timer;
    http::Responder respond;
  };

  void reply(const http::Responder& respond, http::Response r) {
    r.headers.emplace_back("X-Instance-Id", id_);
    r.headers.emplace_back("X-Zone", zone_);
    respond(std::move(r));
  }

  static http::Response not_allowed(const char* allow) {
    http::Response r = http::Response::text(405, std::string("method not allowed; use ") + allow + "\n");
    r.headers.emplace_back("Allow", allow);
    return r;
  }

  // Reads ?NAME=N; answers 400 itself and returns nullopt when it is missing or bad.
  std::optional<uint64_t> number_param(const http::Request& req, const http::Responder& respond,
                                       const char* name, uint64_t max) {
    auto v = parse_uint(req.query_param(name));
    if (!v || *v > max) {
      reply(respond,
            http::Response::text(400, std::string("need ?") + name + "=N with N a whole number up to " +
                                          std::to_string(max) + "\n"));
      return std::nullopt;
    }
    return v;
  }

  // Burns CPU on the loop thread on purpose: this is what makes an instance look busy to autoscaling.
  void burn(http::Request& req, const http::Responder& respond) {
    auto ms = number_param(req, respond, "ms", kMaxWaitMs);
    if (!ms) return;
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(*ms);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    uint64_t rounds = 0;
    while (std::chrono::steady_clock::now() < until) {
      for (int i = 0; i < 1000; ++i) x ^= (x << 13) ^ (x >> 7) ^ (x << 17);
      ++rounds;
    }
    nlohmann::json j = {{"burned_ms", *ms}, {"rounds", rounds}, {"x", x & 0xff}, {"instance", id_}};
    reply(respond, http::Response::json(200, j.dump() + "\n"));
  }

  void slow(http::Request& req, const http::Responder& respond) {
    auto ms = number_param(req, respond, "ms", kMaxWaitMs);
    if (!ms) return;
    uint64_t key = next_slow_++;
    auto pending = std::make_unique<SlowReply>(loop_, [this, key, waited = *ms] {
      auto it = slow_.find(key);
      http::Responder respond = std::move(it->second->respond);
      loop_.destroy_later(std::move(it->second));  // this timer is running its callback right now
      slow_.erase(it);
      reply(respond, http::Response::text(200, "waited " + std::to_string(waited) + " ms\n"));
    });
    pending->respond = respond;
    pending->timer.arm(std::chrono::milliseconds(*ms));
    slow_.emplace(key, std::move(pending));
  }

  void bytes(http::Request& req, const http::Responder& respond) {
    auto n = number_param(req, respond, "n", uint64_t{1} << 40);
    if (!n) return;
    http::Response r;
    r.headers.emplace_back("Content-Type", "application/octet-stream");
    r.content_length = static_cast<int64_t>(*n);
    r.body_producer = [offset = uint64_t{0}, total = *n](char* buf, size_t cap) mutable -> size_t {
      size_t len = static_cast<size_t>(std::min<uint64_t>({cap, total - offset, 16 * 1024}));
      std::memcpy(buf, byte_pattern().data() + offset % 251, len);
      offset += len;
      return len;
    };
    reply(respond, std::move(r));
  }

  void upload(http::Request& req, const http::Responder& respond) {
    if (req.method != "POST" && req.method != "PUT") return reply(respond, not_allowed("POST, PUT"));
    auto* sink = static_cast<UploadSink*>(req.body_sink);
    if (!sink) return reply(respond, http::Response::text(500, "upload sink missing\n"));
    nlohmann::json j = {{"bytes", sink->bytes()}, {"sha256", sink->hex_digest()}};
    reply(respond, http::Response::json(200, j.dump() + "\n"));
  }

  void echo(http::Request& req, const http::Responder& respond) {
    nlohmann::json headers = nlohmann::json::object();
    for (const auto& [name, value] : req.headers) headers[lower(name)].push_back(value);
    nlohmann::json j = {
        {"method", req.method},         {"target", req.target}, {"path", req.path},
        {"query", req.query},           {"headers", headers},   {"body_length", req.body.size()},
        {"peer", req.peer.to_string()}, {"instance", id_},      {"zone", zone_}};
    reply(respond, http::Response::json(200, j.dump() + "\n"));
  }

  // The application tier's own answer (an instance started without --backend).
  void app(http::Request& req, const http::Responder& respond) {
    if (req.method != "GET" && req.method != "HEAD") return reply(respond, not_allowed("GET, HEAD"));
    reply(respond, http::Response::text(200, "hello from " + id_ + " in zone " + zone_ + " (" + req.method +
                                                 " " + req.target + ")\n"));
  }

  // The web tier as a reverse proxy: the request goes to the backend as it came (method, target, body), the
  // answer comes back with its status, body and Content-Type, and X-Via names this instance.
  void proxy(http::Request& req, const http::Responder& respond) {
    http::ClientRequest out;
    out.method = req.method;
    out.target = req.target;
    out.body = req.body;
    out.timeout = kBackendTimeout;
    if (auto type = req.header("Content-Type"); !type.empty()) out.headers.emplace_back("Content-Type", type);
    // The chain the gateway started, with the hop that reached this instance (de facto X-Forwarded-For).
    const std::string_view chain = req.header("X-Forwarded-For");
    out.headers.emplace_back("X-Forwarded-For",
                             (chain.empty() ? std::string() : std::string(chain) + ", ") + req.peer.host());
    backend_client_->request(*backend_, std::move(out), [this, respond](http::ClientResponse in) {
      if (!in.ok()) {
        core::log_warn(kComponent, "backend failed",
                       {{"backend", backend_->to_string()}, {"error", in.error.message}});
        http::Response r = http::Response::text(
            502, "bad gateway: the backend " + backend_->to_string() + " did not answer (" + in.error.message +
                     ")\n");
        r.headers.emplace_back("X-Via", id_);
        return reply(respond, std::move(r));
      }
      http::Response r;
      r.status = in.status;
      r.body = std::move(in.body);
      if (auto type = in.header("Content-Type"); !type.empty()) r.headers.emplace_back("Content-Type", type);
      r.headers.emplace_back("X-Via", id_);
      reply(respond, std::move(r));
    });
  }

  core::EventLoop& loop_;
  std::string id_;
  std::string zone_;
  std::string hello_;
  bool healthy_ = true;

 public:
  std::unique_ptr<webapp::Guestbook> guestbook_;  // with --db-writer and --db-reader
  // With --backend: where /app/ goes, and the pooled client that takes it there on this loop.
  std::optional<core::SocketAddress> backend_;
  std::unique_ptr<http::Client> backend_client_;

 private:
  uint64_t next_slow_ = 0;
  std::unordered_map<uint64_t, std::unique_ptr<SlowReply>> slow_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cumulo demo web application: answers with its instance id and zone"};
  std::string listen;
  int port = -1;
  std::string zone = "local";
  std::string id;
  auto* listen_opt =
      app.add_option("--listen", listen, "address to listen on, HOST:PORT (default 127.0.0.1:8080)");
  auto* port_opt =
      app.add_option("--port", port, "shorthand for --listen 127.0.0.1:PORT")->check(CLI::Range(0, 65535));
  listen_opt->excludes(port_opt);
  app.add_option("--zone", zone, "zone this instance reports (default local)");
  app.add_option("--id", id, "instance id this instance reports (default web-PID)");
  webapp::GuestbookOptions db;
  app.add_option("--db-writer", db.writer, "database writer endpoint HOST:PORT: enables /guestbook");
  app.add_option("--db-reader", db.reader, "database reader endpoint HOST:PORT (default: the writer)");
  app.add_option("--db-user", db.user, "database user (default app)");
  app.add_option("--db-name", db.database, "database name (default app)");
  app.add_option("--db-password", db.password, "database password (default: $CUMULO_DB_PASSWORD)");
  std::string backend;
  app.add_option("--backend", backend,
                 "HOST:PORT of the application tier (the stack's {internal_lb}): requests under /app/ go there");
  CLI11_PARSE(app, argc, argv);
  if (db.password.empty() && std::getenv("CUMULO_DB_PASSWORD")) db.password = std::getenv("CUMULO_DB_PASSWORD");
  if (db.reader.empty()) db.reader = db.writer;

  if (port >= 0) listen = "127.0.0.1:" + std::to_string(port);
  if (listen.empty()) listen = "127.0.0.1:8080";
  if (id.empty()) id = "web-" + std::to_string(::getpid());
  std::optional<core::SocketAddress> backend_address;
  if (!backend.empty()) {
    backend_address = core::SocketAddress::parse(backend);
    if (!backend_address || backend_address->port() == 0) {
      std::fprintf(stderr, "cumulo-webapp: --backend '%s' is not HOST:PORT with a numeric host or localhost\n",
                   backend.c_str());
      return 2;
    }
  }
  auto address = core::SocketAddress::parse(listen);
  if (!address) {
    std::fprintf(stderr, "cumulo-webapp: --listen '%s' is not HOST:PORT with a numeric host or localhost\n",
                 listen.c_str());
    return 2;
  }
  // SIGTERM and SIGINT arrive as readable bytes on the loop rather than as asynchronous handlers.
  const sigset_t stop_signals = core::block_signals({SIGTERM, SIGINT});

  try {
    core::EventLoop loop;
    WebApp webapp(loop, id, zone);
    if (!db.writer.empty()) webapp.guestbook_ = std::make_unique<webapp::Guestbook>(loop, db);
    if (backend_address) {
      webapp.backend_ = backend_address;
      webapp.backend_client_ = std::make_unique<http::Client>(loop);
    }
    http::ServerOptions opts;
    opts.listen = *address;
    opts.body_sink_for = [&webapp](const http::Request& head) { return webapp.sink_for(head); };
    http::Server server(loop, opts, [&webapp](http::Request& req, http::Responder respond) {
      webapp.handle(req, std::move(respond));
    });
    server.start();

    bool draining = false;
    core::TimePoint drain_deadline{};
    core::Timer drain_check(loop, [&] {
      if (server.open_connections() == 0 || loop.now() >= drain_deadline) {
        loop.stop();
        return;
      }
      drain_check.arm(core::Millis(20));
    });
    core::SignalWatcher signals(loop, stop_signals, [&](int signo) {
      if (draining) {
        loop.stop();  // a second signal: no more patience
        return;
      }
      draining = true;
      core::log_info(kComponent, "shutting down", {{"signal", strsignal(signo)}, {"id", id}});
      server.shutdown();
      drain_deadline = loop.now() + kDrainTime;
      drain_check.arm(core::Millis(0));
    });
    core::log_info(kComponent, "listening",
                   {{"listen", server.local_address().to_string()},
                    {"id", id},
                    {"zone", zone},
                    {"pid", static_cast<int64_t>(::getpid())}});
    loop.run();
    // Proxied requests still waiting end (with a 502) while their connections' server is still there.
    webapp.backend_client_.reset();
    core::log_info(kComponent, "stopped", {{"id", id}});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cumulo-webapp: %s\n", e.what());
    return 1;
  }
  return 0;
}
