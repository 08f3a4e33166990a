#include "objstore/internal/replication.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "core/log.h"
#include "core/net.h"
#include "core/text.h"
#include "http/wire/h1.h"
#include "http/wire/response_reader.h"
#include "objstore/internal/auth.h"
#include "objstore/wire/sigv4.h"

namespace cumulo::objstore {

namespace {

constexpr const char* kComponent = "objstore.replication";
constexpr std::string_view kPrefix = "/_cumulo/replication/";
constexpr std::string_view kChangeHeader = "x-cumulo-change";
constexpr size_t kFeedBatch = 64;
constexpr int kIoTimeoutS = 30;
constexpr core::Millis kBehindLogInterval{10'000};
// A peer that is down (or not reached yet) when a write arrives is tried once at once, instead of at its
// next retry_interval: a write right after a start, or right after the peer came back, must not be
// answered without it only because the last attempt predates the peer's listener. The attempt is bounded by
// the connect timeout and the wait for its outcome by the probe window (and ack_timeout).
constexpr int kConnectTimeoutS = 1;
constexpr core::Millis kProbeWindow{1'500};

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------------------------------------------------
// A blocking HTTP/1.1 connection to a peer, for a sender thread (the feed is pushed in order, one request at
// a time, so nothing is gained from the event loop here; the store's loop never waits on it).

class PeerConnection {
 public:
  explicit PeerConnection(std::atomic<int>& fd_slot) : fd_slot_(fd_slot) {}
  ~PeerConnection() { close(); }

  bool connect(const core::SocketAddress& to, std::string& err) {
    close();
    int fd = ::socket(to.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      err = std::string("socket: ") + std::strerror(errno);
      return false;
    }
    timeval tv{kIoTimeoutS, 0};
    timeval ctv{kConnectTimeoutS, 0};  // connect() honours SO_SNDTIMEO
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &ctv, sizeof ctv);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd, to.sa(), to.length) != 0) {
      err = std::string("connect: ") + std::strerror(errno);
      ::close(fd);
      return false;
    }
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    fd_ = fd;
    fd_slot_.store(fd);
    return true;
  }

  void close() {
    if (fd_ >= 0) {
      fd_slot_.store(-1);
      ::close(fd_);
      fd_ = -1;
    }
  }
  bool open() const { return fd_ >= 0; }

  bool send_all(std::string_view data, std::string& err) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err = std::string("send: ") + (n < 0 ? std::strerror(errno) : "connection closed");
        return false;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one response with the project's response reader (http/wire/response_reader.h, as http::Client
  // does): interim 1xx responses skipped, a body framed by Content-Length, chunked or the end of the
  // connection. False (with err) on an I/O error or a response the reader refuses; keep_alive is false when
  // the connection cannot carry another request.
  bool read_response(http::Method method, int& status, std::string& body, bool& keep_alive,
                     std::string& err) {
    http::ResponseReader reader(kMaxResponseBytes);
    reader.start(method);
    std::string in;
    char tmp[16384];
    for (;;) {
      size_t used = 0;
      http::ResponseReader::Step st = reader.feed(in, used);
      in.erase(0, used);
      if (st == http::ResponseReader::Step::kDone) break;
      if (st == http::ResponseReader::Step::kFailed) {
        err = reader.error().message;
        return false;
      }
      std::string why;
      if (!recv_some(tmp, sizeof tmp, in, why)) {
        if (why == kClosedByPeer && reader.finish_at_close() == http::ResponseReader::Step::kDone) break;
        err = std::move(why);
        return false;
      }
    }
    status = reader.status();
    body = std::move(reader.body());
    // Bytes after the response: the peer and this side disagree on framing, so the connection goes.
    keep_alive = reader.keep_alive() && in.empty();
    return true;
  }

 private:
  static constexpr std::string_view kClosedByPeer = "connection closed by the peer";
  // The endpoint answers with a line of text or a small JSON document.
  static constexpr size_t kMaxResponseBytes = 1 << 20;

  bool recv_some(char* tmp, size_t cap, std::string& into, std::string& err) {
    for (;;) {
      ssize_t n = ::recv(fd_, tmp, cap, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err = n == 0 ? std::string(kClosedByPeer)
                     : (errno == EAGAIN ? "no response within " + std::to_string(kIoTimeoutS) + " s"
                                        : std::string("recv: ") + std::strerror(errno));
        return false;
      }
      into.append(tmp, static_cast<size_t>(n));
      return true;
    }
  }

  std::atomic<int>& fd_slot_;
  int fd_ = -1;
};

// Reads the fields of a peer's change header without exceptions: the first missing or mistyped field is kept
// and makes every later read a no-op returning an empty value, checked once at the end (the sticky-error
// cursor of dns/wire). A peer's bytes are input like any other: a bad header is a 400, not a throw.
class ChangeFields {
 public:
  explicit ChangeFields(const nlohmann::json& j) : j_(j) {
    if (!j.is_object()) error_ = "not a JSON object";
  }
  std::string text(const char* name) {
    const nlohmann::json* v = field(name);
    if (v && !v->is_string()) fail(name, "a string");
    return ok() ? v->get<std::string>() : std::string();
  }
  uint64_t unsigned_number(const char* name) {
    const nlohmann::json* v = field(name);
    if (v && !v->is_number_unsigned()) fail(name, "a non-negative integer");
    return ok() ? v->get<uint64_t>() : 0;
  }
  int64_t number(const char* name) {
    const nlohmann::json* v = field(name);
    if (v && !v->is_number_integer()) fail(name, "an integer");
    return ok() ? v->get<int64_t>() : 0;
  }
  // The array's elements; empty when the field is missing or not an array (then an error).
  const nlohmann::json& array(const char* name) {
    static const nlohmann::json kEmpty = nlohmann::json::array();
    const nlohmann::json* v = field(name);
    if (v && !v->is_array()) fail(name, "an array");
    return ok() ? *v : kEmpty;
  }
  void fail(std::string what) {
    if (ok()) error_ = std::move(what);
  }
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  const nlohmann::json* field(const char* name) {
    if (!ok()) return nullptr;
    auto it = j_.find(name);
    if (it == j_.end()) {
      error_ = std::string("no \"") + name + "\"";
      return nullptr;
    }
    return &*it;
  }
  void fail(const char* name, const char* expected) {
    if (ok()) error_ = std::string("\"") + name + "\" is not " + expected;
  }
  const nlohmann::json& j_;
  std::string error_;
};

enum class PeerState : int { kConnecting, kDown, kCatchingUp, kInSync };

const char* state_name(PeerState s) {
  switch (s) {
    case PeerState::kConnecting:
      return "connecting";
    case PeerState::kDown:
      return "down";
    case PeerState::kCatchingUp:
      return "catching_up";
    case PeerState::kInSync:
      return "in_sync";
  }
  return "?";
}

// The state of a request to the endpoint, from its head to its handler.
class EndpointCall final : public http::BodySink {
 public:
  enum class Kind { kStatus, kCursor, kApply, kError } kind = Kind::kError;
  int error_status = 404;
  std::string error_text;
  RemoteChange change;
  std::string op;
  std::string bucket, key;
  ObjectInfo object;
  std::vector<uint64_t> part_sizes;
  std::unique_ptr<DataWriter> writer;
  EVP_MD_CTX* part_md5 = nullptr;
  size_t part = 0;
  uint64_t in_part = 0;
  std::string part_md5s;  // raw
  uint64_t received = 0;
  S3Error write_error = S3Error::kNone;

  ~EndpointCall() override {
    if (part_md5) EVP_MD_CTX_free(part_md5);
  }

  void fail(int status, std::string text) {
    if (kind == Kind::kError) return;
    kind = Kind::kError;
    error_status = status;
    error_text = std::move(text);
    writer.reset();
  }

  // http::BodySink
  void data(std::string_view bytes) override {
    if (kind != Kind::kApply || !writer) return;
    received += bytes.size();
    if (received > object.size) return fail(400, "body longer than the object's size");
    if (S3Error e = writer->write(bytes); e != S3Error::kNone) {
      write_error = e;
      return fail(e == S3Error::kStorageFull ? 507 : 500, "cannot store the object here");
    }
    // The MD5 of each part (at the boundaries the origin's segments had), for a multipart ETag.
    while (!bytes.empty() && part < part_sizes.size()) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(bytes.size(), part_sizes[part] - in_part));
      EVP_DigestUpdate(part_md5, bytes.data(), take);
      in_part += take;
      bytes.remove_prefix(take);
      if (in_part == part_sizes[part]) {
        uint8_t d[16];
        unsigned int n = 0;
        EVP_DigestFinal_ex(part_md5, d, &n);
        part_md5s.append(reinterpret_cast<const char*>(d), 16);
        EVP_DigestInit_ex(part_md5, EVP_md5(), nullptr);
        ++part;
        in_part = 0;
      }
    }
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------------------

struct Replicator::Impl {
  struct Peer {
    S3ReplicationPeer config;
    core::SocketAddress address;
    std::thread thread;
    std::atomic<int> fd{-1};
    // Loop thread's view (updated by posts from the sender).
    PeerState state = PeerState::kConnecting;
    uint64_t acked = 0;
    int64_t behind_since_ms = 0;
    std::string last_error;
    uint64_t failures = 0;  // failed attempts reported so far (loop thread)
    // Set by the loop when a write finds the peer down: the sender tries again now.
    std::atomic<bool> retry_now{false};
  };
  static constexpr uint64_t kNoProbe = UINT64_MAX;
  struct Waiter {
    uint64_t seq;
    core::TimePoint deadline;
    std::function<void(bool)> done;
    // Per peer: its failure count when this write asked for an attempt (kNoProbe: none asked). The write
    // waits for the peer until that attempt has failed, or until probe_deadline.
    std::vector<uint64_t> probe;
    core::TimePoint probe_deadline{};
  };

  const S3Config& config;
  const S3ReplicationConfig& rc;
  Storage& storage;
  core::EventLoop& loop;
  std::vector<std::unique_ptr<Peer>> peers;
  std::vector<Waiter> waiters;
  core::Timer wait_timer;
  core::Timer report_timer;
  std::unique_ptr<ChangeFeed> status_feed;  // loop thread: counts for the status

  std::mutex mu;
  std::condition_variable cv;
  uint64_t notified_seq = 0;  // guarded by mu
  bool stopping = false;      // guarded by mu
  std::atomic<bool> alive{true};
  // Whether a peer is down, for refusing_writes() on any worker; kept by the loop thread with each state.
  std::atomic<bool> peer_down{false};
  void update_peers_down() {
    bool down = false;
    for (const auto& p : peers) down = down || p->state == PeerState::kDown;
    peer_down.store(down, std::memory_order_relaxed);
  }

  Impl(const S3Config& c, Storage& s, core::EventLoop& l)
      : config(c),
        rc(c.replication),
        storage(s),
        loop(l),
        wait_timer(l, [this] { expire_waiters(); }),
        report_timer(l, [this] { report(); }) {
    for (const auto& p : rc.peers) {
      auto peer = std::make_unique<Peer>();
      peer->config = p;
      peer->address = *core::SocketAddress::parse(p.address);
      peer->behind_since_ms = wall_ms();
      peers.push_back(std::move(peer));
    }
  }

  // ---- loop thread -------------------------------------------------------------------------------------

  void set_state(Peer& p, PeerState s, uint64_t acked, std::string error) {
    PeerState before = p.state;
    if (acked > p.acked) p.acked = acked;
    if (!error.empty()) p.last_error = std::move(error);
    if (s == PeerState::kDown) ++p.failures;
    if (s == before) {
      resolve_waiters();
      return;
    }
    p.state = s;
    update_peers_down();
    const std::string& zone = p.config.zone;
    if (s == PeerState::kInSync) {
      p.behind_since_ms = 0;
      core::log_info(kComponent, "peer in sync", {{"peer", zone}, {"acked_seq", p.acked}});
    } else {
      if (before == PeerState::kInSync) p.behind_since_ms = wall_ms();
      if (s == PeerState::kDown)
        core::log_warn(kComponent, "peer down: its changes wait in the feed until it returns",
                       {{"peer", zone}, {"url", p.config.url}, {"error", p.last_error}});
      else if (s == PeerState::kCatchingUp)
        core::log_info(kComponent, "peer reachable, catching up",
                       {{"peer", zone}, {"acked_seq", p.acked}, {"last_seq", storage.last_change_seq()}});
    }
    resolve_waiters();
  }

  // Whether a write at `seq` still waits for this peer.
  bool must_wait_for(const Peer& p, uint64_t seq) const {
    if (p.acked >= seq) return false;
    if (rc.on_peer_down == PeerDownPolicy::kDegrade) return p.state == PeerState::kInSync;
    return true;
  }

  // The same for a waiting write, which also waits for a peer it asked to try (on_peer_down: degrade).
  bool waits_for(size_t i, const Waiter& w, core::TimePoint now) const {
    const Peer& p = *peers[i];
    if (must_wait_for(p, w.seq)) return true;
    if (p.acked >= w.seq || i >= w.probe.size() || w.probe[i] == kNoProbe) return false;
    return p.failures == w.probe[i] && now < w.probe_deadline;
  }

  bool waits(const Waiter& w, core::TimePoint now) const {
    for (size_t i = 0; i < peers.size(); ++i)
      if (waits_for(i, w, now)) return true;
    return false;
  }

  void resolve_waiters() {
    if (waiters.empty()) return;
    std::vector<Waiter> ready;
    core::TimePoint now = core::Clock::now();
    auto it = std::remove_if(waiters.begin(), waiters.end(), [&](Waiter& w) {
      if (waits(w, now)) return false;
      ready.push_back(std::move(w));
      return true;
    });
    waiters.erase(it, waiters.end());
    for (auto& w : ready) w.done(true);
    arm_wait_timer();
  }

  void arm_wait_timer() {
    if (waiters.empty()) {
      wait_timer.cancel();
      return;
    }
    core::TimePoint now = core::Clock::now();
    core::TimePoint first = waiters.front().deadline;
    for (const auto& w : waiters) {
      first = std::min(first, w.deadline);
      if (w.probe_deadline > now) first = std::min(first, w.probe_deadline);
    }
    wait_timer.arm_at(first);
  }

  void expire_waiters() {
    core::TimePoint now = core::Clock::now();
    std::vector<Waiter> late;
    auto it = std::remove_if(waiters.begin(), waiters.end(), [&](Waiter& w) {
      if (w.deadline > now) return false;
      late.push_back(std::move(w));
      return true;
    });
    waiters.erase(it, waiters.end());
    for (auto& w : late) {
      for (auto& p : peers) {
        if (!must_wait_for(*p, w.seq)) continue;
        if (rc.on_peer_down == PeerDownPolicy::kDegrade && p->state == PeerState::kInSync) {
          core::log_warn(
              kComponent, "peer did not confirm a write in time: answered without it, peer marked behind",
              {{"peer", p->config.zone}, {"seq", w.seq}, {"ack_timeout_ms", rc.ack_timeout.count()}});
          p->state = PeerState::kCatchingUp;
          update_peers_down();
          p->behind_since_ms = wall_ms();
        } else if (rc.on_peer_down == PeerDownPolicy::kFail) {
          core::log_warn(kComponent,
                         "peer did not confirm a write in time: answered 503 (on_peer_down: fail)",
                         {{"peer", p->config.zone}, {"seq", w.seq}, {"state", state_name(p->state)}});
        }
      }
      w.done(rc.on_peer_down == PeerDownPolicy::kDegrade);
    }
    resolve_waiters();  // also the writes whose probe window is over
    arm_wait_timer();
  }

  void report() {
    uint64_t last = storage.last_change_seq();
    for (auto& p : peers) {
      if (p->state == PeerState::kInSync || p->acked >= last) continue;
      uint64_t behind = status_feed ? status_feed->count_after(p->acked) : 0;
      core::log_warn(kComponent, "peer behind",
                     {{"peer", p->config.zone},
                      {"state", state_name(p->state)},
                      {"behind", behind},
                      {"lag_ms", p->behind_since_ms ? wall_ms() - p->behind_since_ms : 0},
                      {"acked_seq", p->acked},
                      {"last_seq", last}});
    }
    report_timer.arm(kBehindLogInterval);
  }

  // ---- sender threads ----------------------------------------------------------------------------------

  void post_state(Peer* p, PeerState s, uint64_t acked, std::string error = {}) {
    loop.post([this, p, s, acked, error = std::move(error)]() mutable {
      if (alive) set_state(*p, s, acked, std::move(error));
    });
  }

  // Waits until the feed grows past `seq`, a stop, or `timeout`. False when stopping.
  bool wait_feed(uint64_t seq, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, timeout, [&] { return stopping || notified_seq > seq; });
    return !stopping;
  }
  bool stopped() {
    std::lock_guard<std::mutex> lock(mu);
    return stopping;
  }

  std::string sign(std::string_view method, std::string_view target, std::string_view change_header,
                   const std::string& host) {
    const S3User* user = nullptr;
    for (const auto& u : config.users)
      if (u.name == rc.user) user = &u;
    std::string amz_date = format_amz_date(wall_ms() / 1000);
    std::string date = amz_date.substr(0, 8);
    std::string region = config.region.empty() ? "us-east-1" : config.region;
    HeaderPairs headers{
        {"host", host}, {"x-amz-content-sha256", std::string(kUnsignedPayload)}, {"x-amz-date", amz_date}};
    std::string signed_headers = "host;x-amz-content-sha256;x-amz-date";
    if (!change_header.empty()) {
      headers.emplace_back(std::string(kChangeHeader), std::string(change_header));
      signed_headers += ";" + std::string(kChangeHeader);
    }
    size_t q = target.find('?');
    std::string_view path = target.substr(0, q);
    std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
    auto creq = canonical_request(method, *canonical_uri(path), *canonical_query(query, false), headers,
                                  signed_headers, kUnsignedPayload);
    std::string scope = date + "/" + region + "/s3/aws4_request";
    std::string sts = string_to_sign(amz_date, scope, *creq);
    std::string sig = hmac_sha256_hex(derive_signing_key(user->secret_key, date, region, "s3"), sts);
    std::string out;
    out += "Host: " + host + "\r\n";
    out += "x-amz-content-sha256: " + std::string(kUnsignedPayload) + "\r\n";
    out += "x-amz-date: " + amz_date + "\r\n";
    if (!change_header.empty())
      out += std::string(kChangeHeader) + ": " + std::string(change_header) + "\r\n";
    out += "Authorization: AWS4-HMAC-SHA256 Credential=" + user->access_key + "/" + scope +
           ", SignedHeaders=" + signed_headers + ", Signature=" + sig + "\r\n";
    return out;
  }

  // One request without a body; the response body when the status is 2xx.
  bool exchange(PeerConnection& conn, Peer& p, std::string_view method, std::string_view target,
                std::string& body, std::string& err) {
    std::string req = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\n" +
                      sign(method, target, {}, p.config.address) + "Content-Length: 0\r\n\r\n";
    if (!conn.send_all(req, err)) return false;
    int status = 0;
    bool keep = true;
    if (!conn.read_response(http::method_from_string(method), status, body, keep, err)) return false;
    if (!keep) conn.close();
    if (status / 100 != 2) {
      err = "HTTP " + std::to_string(status) + ": " + body.substr(0, 300);
      return false;
    }
    return true;
  }

  // Pushes one row of the feed. False (with err) when the connection must be dropped and the row retried.
  bool ship(PeerConnection& conn, Peer& p, const Change& c, std::string& err) {
    nlohmann::json j;
    j["zone"] = rc.zone;
    j["seq"] = c.seq;
    j["origin"] = c.version.origin;
    j["version_ms"] = c.version.ms;
    j["bucket"] = c.bucket;
    j["key"] = c.key;
    j["owner"] = c.owner;
    uint64_t length = 0;
    if (c.key.empty()) {
      j["op"] = c.deleted ? "bucket-delete" : "bucket-create";
    } else if (c.deleted || !c.object) {
      j["op"] = "delete";
    } else {
      const ObjectInfo& o = *c.object;
      j["op"] = "put";
      j["size"] = o.size;
      j["etag"] = o.etag;
      j["content_type"] = o.content_type;
      nlohmann::json h = nlohmann::json::array();
      for (const auto& [k, v] : o.headers) h.push_back({k, v});
      j["headers"] = h;
      nlohmann::json parts = nlohmann::json::array();
      for (const auto& s : o.segments) parts.push_back(s.size);
      j["parts"] = parts;
      length = o.size;
    }
    std::string change = uri_encode(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), true);
    std::string target = std::string(kPrefix) + "apply";
    std::string head = "PUT " + target + " HTTP/1.1\r\n" + sign("PUT", target, change, p.config.address) +
                       "Content-Length: " + std::to_string(length) + "\r\n\r\n";
    if (!conn.send_all(head, err)) return false;
    if (length > 0) {
      auto reader = storage.reader(*c.object);
      std::string buf(256 * 1024, '\0');
      for (uint64_t off = 0; off < length;) {
        ssize_t n = reader->read(off, buf.data(), buf.size());
        if (n <= 0) {
          // Overwritten or deleted since the feed was read (a later row carries that), or damaged here.
          err = n == kSealedIoError ? "cannot read the object's data here"
                                    : "the object's data here fails its check";
          err += " (" + c.bucket + "/" + c.key + ")";
          conn.close();
          return false;
        }
        if (!conn.send_all(std::string_view(buf.data(), static_cast<size_t>(n)), err)) return false;
        off += static_cast<uint64_t>(n);
      }
    }
    int status = 0;
    std::string body;
    bool keep = true;
    if (!conn.read_response(http::Method::kPut, status, body, keep, err)) return false;
    if (!keep) conn.close();
    if (status / 100 != 2) {
      err = "peer refused " + c.bucket + "/" + c.key + ": HTTP " + std::to_string(status) + ": " +
            body.substr(0, 300);
      conn.close();
      return false;
    }
    return true;
  }

  // The pause before the next attempt: retry_interval, cut short by a stop or a write asking for an attempt.
  void wait_retry(Peer& p) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, rc.retry_interval, [&] { return stopping || p.retry_now.load(); });
    p.retry_now = false;
  }

  void sender(Peer* p) {
    auto feed = storage.open_feed();
    PeerConnection conn(p->fd);
    while (!stopped()) {
      std::string err, body;
      uint64_t cursor = 0;
      if (!conn.connect(p->address, err) ||
          !exchange(conn, *p, "GET", std::string(kPrefix) + "cursor?zone=" + rc.zone, body, err)) {
        conn.close();
        // Every failed attempt is reported (set_state logs only the transition): a write waiting for
        // the outcome of the attempt it asked for learns it at once.
        post_state(p, PeerState::kDown, 0, err);
        wait_retry(*p);
        continue;
      }
      auto j = nlohmann::json::parse(body, nullptr, false);
      if (j.is_object() && j["seq"].is_number_unsigned()) cursor = j["seq"].get<uint64_t>();
      post_state(p, PeerState::kCatchingUp, cursor);
      bool in_sync = false;
      while (conn.open() && !stopped()) {
        core::Result<std::vector<Change>, core::Error> batch = feed->after(cursor, kFeedBatch);
        if (!batch) {
          // The index here failed, not the peer: the connection stays, the read is tried again.
          core::log_warn(kComponent, "cannot read the change feed; trying again",
                         {{"peer", p->config.zone}, {"error", batch.error().describe()}});
          wait_retry(*p);
          continue;
        }
        const std::vector<Change>& rows = *batch;
        if (rows.empty()) {
          if (!in_sync) post_state(p, PeerState::kInSync, cursor);
          in_sync = true;
          wait_feed(cursor, std::chrono::seconds(1));
          continue;
        }
        bool failed = false;
        for (const Change& c : rows) {
          // Each node sends the changes made in its own zone to every peer (a full mesh): a change applied
          // here from a peer reached the others from its origin.
          if (c.version.origin == rc.zone && !ship(conn, *p, c, err)) {
            failed = true;
            break;
          }
          cursor = c.seq;
          // Confirmations as they come, so that writes waiting for them are answered at once.
          if (in_sync) post_state(p, PeerState::kInSync, cursor);
        }
        if (failed) break;
        if (!in_sync) post_state(p, PeerState::kCatchingUp, cursor);
      }
      conn.close();
      if (stopped()) break;
      if (!err.empty()) {
        post_state(p, PeerState::kDown, cursor, err);
        wait_retry(*p);
      }
    }
  }
};

// ---------------------------------------------------------------------------------------------------------

Replicator::Replicator(const S3Config& config, Storage& storage, core::EventLoop& loop)
    : impl_(std::make_unique<Impl>(config, storage, loop)) {}

Replicator::~Replicator() {
  stop();
}

void Replicator::start() {
  Impl& m = *impl_;
  m.status_feed = m.storage.open_feed();
  m.storage.set_change_listener([&m](uint64_t seq) {
    {
      std::lock_guard<std::mutex> lock(m.mu);
      m.notified_seq = std::max(m.notified_seq, seq);
    }
    m.cv.notify_all();
  });
  for (auto& p : m.peers) {
    Impl::Peer* peer = p.get();
    p->thread = std::thread([&m, peer] { m.sender(peer); });
  }
  m.report_timer.arm(kBehindLogInterval);
  core::log_info(kComponent, "replicating",
                 {{"zone", m.rc.zone},
                  {"peers", m.peers.size()},
                  {"ack", m.rc.ack == ReplicationAck::kAll ? "all" : "one"},
                  {"on_peer_down", m.rc.on_peer_down == PeerDownPolicy::kFail ? "fail" : "degrade"},
                  {"last_seq", m.storage.last_change_seq()}});
}

void Replicator::stop() {
  Impl& m = *impl_;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    if (m.stopping) return;
    m.stopping = true;
  }
  m.alive = false;
  m.cv.notify_all();
  for (auto& p : m.peers) {
    int fd = p->fd.load();
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& p : m.peers)
    if (p->thread.joinable()) p->thread.join();
  m.storage.set_change_listener(nullptr);
  m.wait_timer.cancel();
  m.report_timer.cancel();
}

void Replicator::when_replicated(uint64_t seq, std::function<void(bool ok)> done) {
  Impl& m = *impl_;
  if (m.rc.ack == ReplicationAck::kOne || seq == 0) return done(true);
  if (core::EventLoop* here = core::EventLoop::current(); here && here != &m.loop) {
    // A worker's write: the waiters live on the replicator's loop; the answer goes back to the worker.
    m.loop.post([this, seq, here, done = std::move(done)]() mutable {
      when_replicated(seq, [here, done = std::move(done)](bool ok) { here->post([done, ok] { done(ok); }); });
    });
    return;
  }
  core::TimePoint now = core::Clock::now();
  Impl::Waiter w{seq, now + m.rc.ack_timeout, std::move(done), {}, {}};
  if (m.rc.on_peer_down == PeerDownPolicy::kDegrade) {
    // A peer down or not reached yet: ask its sender for an attempt now and wait for its outcome (bounded)
    // before answering without the peer.
    w.probe.assign(m.peers.size(), Impl::kNoProbe);
    bool asked = false;
    for (size_t i = 0; i < m.peers.size(); ++i) {
      Impl::Peer& p = *m.peers[i];
      if (p.acked >= seq || (p.state != PeerState::kDown && p.state != PeerState::kConnecting)) continue;
      w.probe[i] = p.failures;
      p.retry_now = true;
      asked = true;
    }
    if (asked) {
      w.probe_deadline = now + std::min<core::Millis>(kProbeWindow, m.rc.ack_timeout);
      {
        std::lock_guard<std::mutex> lock(m.mu);  // no lost wake-up between the sender's check and its wait
      }
      m.cv.notify_all();
    }
  }
  if (!m.waits(w, now)) return w.done(true);
  m.waiters.push_back(std::move(w));
  m.arm_wait_timer();
}

bool Replicator::refusing_writes() const {
  return impl_->rc.on_peer_down == PeerDownPolicy::kFail && impl_->peer_down.load(std::memory_order_relaxed);
}

std::string Replicator::status_json() {
  Impl& m = *impl_;
  uint64_t last = m.storage.last_change_seq();
  nlohmann::json j;
  j["zone"] = m.rc.zone;
  j["ack"] = m.rc.ack == ReplicationAck::kAll ? "all" : "one";
  j["on_peer_down"] = m.rc.on_peer_down == PeerDownPolicy::kFail ? "fail" : "degrade";
  j["last_seq"] = last;
  j["peers"] = nlohmann::json::array();
  int64_t now = wall_ms();
  for (const auto& p : m.peers) {
    uint64_t behind = p->acked >= last ? 0 : (m.status_feed ? m.status_feed->count_after(p->acked) : 0);
    nlohmann::json e;
    e["zone"] = p->config.zone;
    e["url"] = p->config.url;
    e["state"] = state_name(p->state);
    e["acked_seq"] = p->acked;
    e["behind"] = behind;
    e["lag_ms"] = behind == 0 || p->behind_since_ms == 0 ? 0 : now - p->behind_since_ms;
    e["last_error"] = p->last_error;
    e["applied_from_peer_seq"] = m.storage.peer_cursor(p->config.zone);
    j["peers"].push_back(std::move(e));
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

bool Replicator::is_endpoint(const http::Request& head) {
  return head.path.compare(0, kPrefix.size(), kPrefix) == 0;
}

std::unique_ptr<http::BodySink> Replicator::begin(const http::Request& head, int64_t now_s) {
  Impl& m = *impl_;
  auto c = std::make_unique<EndpointCall>();
  std::string_view what = std::string_view(head.path).substr(kPrefix.size());
  if (what == "status" && (head.method == "GET" || head.method == "HEAD")) {
    c->kind = EndpointCall::Kind::kStatus;  // anonymous, like a health check: counts only
    return c;
  }
  AuthResult auth = authenticate(head, m.config, now_s);
  if (auth.error != S3Error::kNone || !auth.user || auth.user->name != m.rc.user) {
    c->error_status = 403;
    c->error_text = "replication requests must be signed by the replication user '" + m.rc.user + "'" +
                    (auth.detail.empty() ? "" : ": " + auth.detail);
    return c;
  }
  if (what == "cursor" && head.method == "GET") {
    c->kind = EndpointCall::Kind::kCursor;
    return c;
  }
  if (what != "apply" || head.method != "PUT") {
    c->error_text = "no such replication resource";
    return c;
  }
  std::string decoded;
  nlohmann::json j;
  if (percent_decode(head.header(kChangeHeader), decoded)) j = nlohmann::json::parse(decoded, nullptr, false);
  c->kind = EndpointCall::Kind::kApply;
  ChangeFields f(j);
  c->change.from_zone = f.text("zone");
  c->change.from_seq = f.unsigned_number("seq");
  c->change.version.ms = f.number("version_ms");
  c->change.version.origin = f.text("origin");
  c->change.owner = f.text("owner");
  c->op = f.text("op");
  c->bucket = f.text("bucket");
  c->key = f.text("key");
  if (c->op == "put") {
    ObjectInfo& o = c->object;
    o.bucket = c->bucket;
    o.key = c->key;
    o.size = f.unsigned_number("size");
    o.etag = f.text("etag");
    o.content_type = f.text("content_type");
    for (const auto& h : f.array("headers")) {
      if (!h.is_array() || h.size() != 2 || !h[0].is_string() || !h[1].is_string()) {
        f.fail("a header is not a [name, value] pair of strings");
        break;
      }
      o.headers.emplace_back(h[0].get<std::string>(), h[1].get<std::string>());
    }
    uint64_t total = 0;
    for (const auto& part : f.array("parts")) {
      if (!part.is_number_unsigned() || part.get<uint64_t>() > UINT64_MAX - total) {
        f.fail("a part size is not a non-negative integer, or they overflow");
        break;
      }
      total += c->part_sizes.emplace_back(part.get<uint64_t>());
    }
    if (f.ok() && (total != o.size || c->part_sizes.empty())) f.fail("parts do not add up to the size");
  } else if (f.ok() && c->op != "delete" && c->op != "bucket-create" && c->op != "bucket-delete") {
    f.fail("unknown op '" + c->op + "'");
  }
  if (!f.ok()) {
    c->fail(400, std::string("bad ") + std::string(kChangeHeader) + " header: " + f.error());
    return c;
  }
  if (c->change.from_zone == m.rc.zone) {
    c->fail(400,
            "a change from this node's own zone '" + m.rc.zone + "': two nodes configured with one zone?");
    return c;
  }
  if (c->op == "put") {
    StorageResult<std::unique_ptr<DataWriter>> writer = m.storage.begin_write();
    if (!writer) {
      c->fail(writer.error() == S3Error::kStorageFull ? 507 : 500, "cannot store the object here");
      return c;
    }
    c->writer = std::move(writer).value();
    c->part_md5 = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c->part_md5, EVP_md5(), nullptr);
  }
  return c;
}

bool Replicator::handle(http::Request& request, http::Responder& respond) {
  auto* c = dynamic_cast<EndpointCall*>(request.body_sink);
  if (!c) return false;
  Impl& m = *impl_;
  auto text = [](int status, std::string body) {
    return http::Response::text(status, std::move(body) + "\n");
  };
  switch (c->kind) {
    case EndpointCall::Kind::kError:
      if (c->error_status >= 500)
        core::log_warn(kComponent, "applying a peer's change failed", {{"error", c->error_text}});
      respond(text(c->error_status, c->error_text));
      return true;
    case EndpointCall::Kind::kStatus:
      if (core::EventLoop* here = core::EventLoop::current(); here && here != &m.loop) {
        // The peers' state belongs to the replicator's loop.
        m.loop.post([this, here, respond] {
          here->post([respond, body = status_json()] { respond(http::Response::json(200, body)); });
        });
      } else {
        respond(http::Response::json(200, status_json()));
      }
      return true;
    case EndpointCall::Kind::kCursor: {
      std::string zone(request.query_param("zone"));
      respond(http::Response::json(200, nlohmann::json{{"seq", m.storage.peer_cursor(zone)}}.dump() + "\n"));
      return true;
    }
    case EndpointCall::Kind::kApply:
      break;
  }
  if (c->op == "delete" || c->op == "bucket-create" || c->op == "bucket-delete") {
    S3Error e = c->op == "delete" ? m.storage.apply_delete(c->bucket, c->key, c->change)
                                  : m.storage.apply_bucket(c->bucket, c->op == "bucket-delete", c->change);
    if (e != S3Error::kNone) {
      core::log_warn(kComponent, "applying a peer's change failed",
                     {{"peer", c->change.from_zone}, {"op", c->op}, {"bucket", c->bucket}, {"key", c->key}});
      respond(text(e == S3Error::kStorageFull ? 507 : 500, "cannot apply the change here"));
    } else {
      respond(text(200, "applied"));
    }
    return true;
  }
  // An object: the whole body arrived, and its MD5s must give the origin's ETag (the data crossed the
  // network in plaintext, outside any sealed file's check).
  if (c->received != c->object.size) {
    respond(text(400, "body shorter than the object's size"));
    return true;
  }
  std::string etag;
  bool multipart = c->object.etag.find('-') != std::string::npos;
  if (!multipart) {
    etag = hex_encode(reinterpret_cast<const uint8_t*>(c->writer->md5().data()), 16);
  } else {
    uint8_t d[16];
    unsigned int n = 0;
    EVP_Digest(c->part_md5s.data(), c->part_md5s.size(), d, &n, EVP_md5(), nullptr);
    etag = hex_encode(d, 16) + "-" + std::to_string(c->part_sizes.size());
  }
  if (etag != c->object.etag) {
    core::log_warn(kComponent, "a peer's object does not match its ETag: refused",
                   {{"peer", c->change.from_zone},
                    {"bucket", c->bucket},
                    {"key", c->key},
                    {"etag", c->object.etag},
                    {"computed", etag}});
    respond(text(400, "BadDigest: the data does not match the ETag " + c->object.etag));
    return true;
  }
  core::EventLoop* loop = core::EventLoop::current();
  http::Responder reply = respond;
  std::string zone = c->change.from_zone, bucket = c->bucket, key = c->key;
  m.storage.apply_object_async(
      std::move(c->writer), std::move(c->object), std::move(c->change),
      [loop, reply, zone, bucket, key](S3Error e, const ObjectInfo&) {
        loop->post([reply, e, zone, bucket, key] {
          if (e == S3Error::kNone) return reply(http::Response::text(200, "applied\n"));
          core::log_warn(kComponent, "applying a peer's object failed",
                         {{"peer", zone}, {"bucket", bucket}, {"key", key}, {"code", s3_error_info(e).code}});
          reply(
              http::Response::text(e == S3Error::kStorageFull ? 507 : 500, "cannot store the object here\n"));
        });
      });
  return true;
}

}  // namespace cumulo::objstore
