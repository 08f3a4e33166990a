#include "dns/internal/server.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "core/event_loop.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/workers.h"

namespace cumulo::dns {

namespace type = wire::type;
using wire::Rcode;

namespace {

constexpr const char* kComponent = "dns";
constexpr int kBatch = 32;
constexpr size_t kUdpInBytes = 4096;
constexpr size_t kUdpOutBytes = 4096;
constexpr int kRoundsPerWakeup = 16;  // then other events of the loop get their turn
constexpr size_t kTcpMaxPendingOut = 1 << 20;

double mono_seconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

core::Fd bind_udp(const core::SocketAddress& addr, bool reuse_port) {
  int family = addr.sa()->sa_family;
  core::Fd fd(::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) throw std::runtime_error("udp socket: " + core::errno_text(errno));
  int one = 1;
  if (reuse_port) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  int rcvbuf = 4 << 20;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (::bind(fd.get(), addr.sa(), addr.length) != 0)
    throw std::runtime_error("udp " + addr.to_string() + ": " + core::errno_text(errno));
  return fd;
}

const char* const kTypeLabels[] = {"A",  "AAAA", "CNAME", "MX",  "TXT",  "SRV",  "CAA",
                                   "NS", "SOA",  "PTR",   "ANY", "AXFR", "other"};
constexpr int kTypeCount = 13;
int type_index(uint16_t t) {
  switch (t) {
    case type::kA:
      return 0;
    case type::kAAAA:
      return 1;
    case type::kCNAME:
      return 2;
    case type::kMX:
      return 3;
    case type::kTXT:
      return 4;
    case type::kSRV:
      return 5;
    case type::kCAA:
      return 6;
    case type::kNS:
      return 7;
    case type::kSOA:
      return 8;
    case type::kPTR:
      return 9;
    case type::kANY:
      return 10;
    case type::kAXFR:
      return 11;
    default:
      return 12;
  }
}
constexpr Rcode kRcodes[] = {Rcode::kNoError, Rcode::kFormErr, Rcode::kServFail, Rcode::kNxDomain,
                             Rcode::kNotImp,  Rcode::kRefused, Rcode::kBadVers,  Rcode::kNotAuth};
constexpr int kRcodeCount = 8;
int rcode_index(Rcode r) {
  for (int i = 0; i < kRcodeCount; ++i)
    if (kRcodes[i] == r) return i;
  return 2;
}

// The client as seen by rate limiting, AXFR allow-lists and the nearest policy.
ClientView view_of(const sockaddr_storage& ss) {
  ClientView v;
  if (ss.ss_family == AF_INET) {
    v.family = 1;
    std::memcpy(v.address, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, 4);
  } else if (ss.ss_family == AF_INET6) {
    v.family = 2;
    std::memcpy(v.address, &reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr, 16);
  }
  return v;
}

}  // namespace

// Response-rate limiting per client network (the /24 or /56 the address is in): a token bucket per network in
// a fixed hash table, so a flood of spoofed sources costs memory only up to the table size. Collisions share
// a bucket, which errs towards limiting.
class RateLimiter {
 public:
  RateLimiter(const RateLimitConfig& cfg, int workers)
      : cfg_(cfg), rate_(cfg.responses_per_second ? std::max(1u, cfg.responses_per_second / workers) : 0) {}
  bool enabled() const { return rate_ > 0; }
  // True when the response may go out.
  bool allow(const ClientView& c, double now) {
    uint64_t h = 1469598103934665603ull ^ c.family;
    int bits = c.family == 1 ? cfg_.ipv4_prefix : cfg_.ipv6_prefix;
    for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
      uint8_t b = c.address[i];
      if (bits < 8) b &= static_cast<uint8_t>(0xFF << (8 - bits));
      h = (h ^ b) * 1099511628211ull;
    }
    Bucket& bk = table_[h % kBuckets];
    if (bk.key != h) bk = Bucket{h, static_cast<double>(rate_), now};
    bk.tokens = std::min<double>(rate_, bk.tokens + (now - bk.stamp) * rate_);
    bk.stamp = now;
    if (bk.tokens >= 1) {
      bk.tokens -= 1;
      return true;
    }
    return false;
  }
  // For a limited response: true when this one slips out truncated (so a real client retries over TCP).
  bool slip() { return cfg_.slip > 0 && ++slipped_ % cfg_.slip == 0; }

 private:
  static constexpr size_t kBuckets = 4096;
  struct Bucket {
    uint64_t key = 0;
    double tokens = 0;
    double stamp = 0;
  };
  RateLimitConfig cfg_;
  uint32_t rate_;
  uint32_t slipped_ = 0;
  std::vector<Bucket> table_ = std::vector<Bucket>(kBuckets);
};

struct DnsServer::Worker {
  core::EventLoop& loop;  // the LoopThreads worker this one runs on
  Worker(int index, const ServerOptions& opts, const ZoneStore& store, core::EventLoop& l)
      : loop(l),
        options(opts),
        zones(store),
        answerer(0x9e3779b97f4a7c15ull * (index + 1)),
        rrl(opts.rate_limit, opts.workers),
        log_flush(loop, [this] {
          core::AccessLog::flush();
          log_flush.arm(core::Millis(100));
        }) {
    auto& reg = core::MetricsRegistry::global();
    std::string w = std::to_string(index);
    for (int i = 0; i < kTypeCount; ++i)
      by_type[i] = &reg.counter("cumulo_dns_queries_total", "DNS queries answered or dropped, by query type",
                                {{"type", kTypeLabels[i]}, {"worker", w}});
    for (int i = 0; i < kRcodeCount; ++i)
      by_rcode[i] = &reg.counter("cumulo_dns_responses_total", "DNS responses sent, by response code",
                                 {{"rcode", wire::rcode_name(kRcodes[i])}, {"worker", w}});
    dropped = &reg.counter("cumulo_dns_dropped_total",
                           "Packets dropped without an answer (not a query, too short)", {{"worker", w}});
    rate_limited =
        &reg.counter("cumulo_dns_rate_limited_total",
                     "Responses withheld by response-rate limiting (slipped ones included)", {{"worker", w}});
    truncated = &reg.counter("cumulo_dns_truncated_total", "UDP responses sent with TC set", {{"worker", w}});
    latency =
        &reg.histogram("cumulo_dns_query_seconds", "Time from receiving a query to sending its answer",
                       {{"worker", w}}, {1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 1e-2, 0.1});
    tcp_connections = &reg.gauge("cumulo_dns_tcp_connections", "Open TCP connections", {{"worker", w}});
  }

  struct UdpSocket : core::IoHandler {
    Worker* worker = nullptr;
    core::Fd fd;
    void on_io(uint32_t) override { worker->drain_udp(*this); }
  };
  struct TcpListener : core::IoHandler {
    Worker* worker = nullptr;
    core::Fd fd;
    void on_io(uint32_t) override { worker->accept_tcp(*this); }
  };
  struct TcpConn;

  void refresh_zones() {
    uint64_t v = zones.version();
    if (v != zones_version) {
      current = zones.get();
      zones_version = v;
    }
  }

  // Answers one message into out; 0 means no reply. AXFR is handled by the TCP path before this.
  size_t handle(const uint8_t* pkt, size_t len, const sockaddr_storage& peer, bool tcp, uint8_t* out,
                size_t cap, const wire::Query** parsed = nullptr) {
    std::span<const uint8_t> packet(pkt, len);
    wire::ParseResult r = wire::parse_query(packet, query);
    if (parsed) *parsed = &query;
    wire::ResponseWriter w(out, cap);
    switch (r) {
      case wire::ParseResult::kDrop:
        dropped->inc();
        return 0;
      case wire::ParseResult::kFormErr:
        w.begin_error(query, packet, Rcode::kFormErr);
        break;
      case wire::ParseResult::kNotImp:
        w.begin_error(query, packet, Rcode::kNotImp);
        break;
      case wire::ParseResult::kBadVers:
        w.begin_error(query, packet, Rcode::kBadVers);
        break;
      case wire::ParseResult::kOk: {
        ClientView client = view_of(peer);
        client.subnet = query.client_subnet ? &*query.client_subnet : nullptr;
        size_t limit = tcp              ? wire::kMaxMessage
                       : query.has_edns ? std::min<size_t>(query.udp_payload, options.max_udp_payload)
                                        : wire::kMaxUdpPlain;
        w.begin(query, packet, std::min(limit, cap));
        if (query.qtype == type::kAXFR || query.qtype == type::kIXFR) {
          // Zone transfers go over TCP only (RFC 5936 section 4.2); IXFR is not offered.
          w.set_rcode(query.qtype == type::kAXFR && !tcp ? Rcode::kRefused : Rcode::kNotImp);
          w.set_authoritative(false);
        } else {
          answerer.answer(*current, query, client, w);
        }
        if (!tcp && rrl.enabled() && !rrl.allow(client, mono_seconds())) {
          rate_limited->inc();
          by_type[type_index(query.qtype)]->inc();
          if (!rrl.slip()) return 0;
          w.begin(query, packet, wire::kMaxUdpPlain);
          w.set_truncated(true);
        }
        break;
      }
    }
    size_t n = w.finish();
    by_type[type_index(query.qtype)]->inc();
    by_rcode[rcode_index(w.rcode())]->inc();
    if (w.truncated() && !tcp) truncated->inc();
    if (options.query_log) log_query(peer, tcp, w.rcode(), n);
    return n;
  }

  void log_query(const sockaddr_storage& peer, bool tcp, Rcode rcode, size_t size) {
    core::SocketAddress a;
    a.storage = peer;
    a.length = peer.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    std::string line;
    core::JsonLine j(line);
    j.field("ts", core::utc_timestamp())
        .field("client", a.to_string())
        .field("proto", tcp ? "tcp" : "udp")
        .field("name", query.qname_len ? wire::name_to_text(query.name()) : std::string("-"))
        .field("type", wire::type_name(query.qtype))
        .field("rcode", wire::rcode_name(rcode))
        .field("bytes", size);
    j.finish();
    core::AccessLog::append(line);
  }

  void drain_udp(UdpSocket& s) {
    refresh_zones();
    for (int round = 0; round < kRoundsPerWakeup; ++round) {
      for (int i = 0; i < kBatch; ++i) {
        in_iov[i] = {in_buf[i], kUdpInBytes};
        in_msgs[i].msg_hdr = {};
        in_msgs[i].msg_hdr.msg_name = &peers[i];
        in_msgs[i].msg_hdr.msg_namelen = sizeof peers[i];
        in_msgs[i].msg_hdr.msg_iov = &in_iov[i];
        in_msgs[i].msg_hdr.msg_iovlen = 1;
      }
      int n = ::recvmmsg(s.fd.get(), in_msgs, kBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) return;  // EAGAIN: drained; the next datagram brings a new edge
      double start = mono_seconds();
      int out_n = 0;
      for (int i = 0; i < n; ++i) {
        if (in_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
          dropped->inc();
          continue;
        }
        size_t len = handle(in_buf[i], in_msgs[i].msg_len, peers[i], false, out_buf[out_n], kUdpOutBytes);
        if (len == 0) continue;
        out_iov[out_n] = {out_buf[out_n], len};
        out_msgs[out_n].msg_hdr = {};
        out_msgs[out_n].msg_hdr.msg_name = &peers[i];
        out_msgs[out_n].msg_hdr.msg_namelen = in_msgs[i].msg_hdr.msg_namelen;
        out_msgs[out_n].msg_hdr.msg_iov = &out_iov[out_n];
        out_msgs[out_n].msg_hdr.msg_iovlen = 1;
        ++out_n;
      }
      int sent = 0;
      while (sent < out_n) {
        int k = ::sendmmsg(s.fd.get(), out_msgs + sent, static_cast<unsigned>(out_n - sent), 0);
        if (k <= 0) {
          if (k < 0 && errno == EINTR) continue;
          if (k < 0 && errno != EAGAIN)
            ++sent;  // skip the one the kernel refused (unreachable peer)
          else
            break;
          continue;
        }
        sent += k;
      }
      double elapsed = mono_seconds() - start;
      for (int i = 0; i < n; ++i) latency->observe(elapsed);
      if (n < kBatch) return;
    }
    // Still more waiting: come back after the loop's other events.
    UdpSocket* sp = &s;
    loop.post([this, sp] { drain_udp(*sp); });
  }

  void accept_tcp(TcpListener& l);
  void close_conn(TcpConn* c);

  const ServerOptions& options;
  const ZoneStore& zones;
  std::shared_ptr<const ZoneSet> current;
  uint64_t zones_version = UINT64_MAX;
  Answerer answerer;
  RateLimiter rrl;
  wire::Query query;
  std::vector<std::unique_ptr<UdpSocket>> udp;
  std::vector<std::unique_ptr<TcpListener>> tcp;
  std::vector<TcpConn*> conns;
  core::Timer log_flush;

  core::Counter* by_type[kTypeCount]{};
  core::Counter* by_rcode[kRcodeCount]{};
  core::Counter* dropped = nullptr;
  core::Counter* rate_limited = nullptr;
  core::Counter* truncated = nullptr;
  core::Histogram* latency = nullptr;
  core::Gauge* tcp_connections = nullptr;

  mmsghdr in_msgs[kBatch]{};
  mmsghdr out_msgs[kBatch]{};
  iovec in_iov[kBatch]{};
  iovec out_iov[kBatch]{};
  sockaddr_storage peers[kBatch]{};
  uint8_t in_buf[kBatch][kUdpInBytes];
  uint8_t out_buf[kBatch][kUdpOutBytes];
  std::vector<uint8_t> tcp_out = std::vector<uint8_t>(wire::kMaxMessage);
};

// One TCP client: 2-byte length-prefixed messages (RFC 1035 section 4.2.2), answered in order, several per
// connection (RFC 7766 section 6.2.1), closed after tcp_idle_timeout without a query.
struct DnsServer::Worker::TcpConn : core::IoHandler {
  TcpConn(Worker& w, core::Fd f, const sockaddr_storage& p)
      : worker(w), fd(std::move(f)), peer(p), idle(w.loop, [this] { worker.close_conn(this); }) {}

  void on_io(uint32_t events) override {
    if (closed) return;
    // Reading also resumes on a writable event: it stops while too many answers wait for a slow reader.
    (void)events;
    read_some();
    if (!closed) flush();
  }

  void read_some() {
    char buf[16384];
    for (;;) {
      if (out.size() - out_off > kTcpMaxPendingOut) return;  // the client does not read: stop answering it
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n > 0) {
        in.append(buf, static_cast<size_t>(n));
        idle.arm(worker.options.tcp_idle_timeout);
        process();
        continue;
      }
      if (n == 0) {
        peer_closed = true;
        return;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN) peer_closed = true, in.clear();
      return;
    }
  }

  void process() {
    worker.refresh_zones();
    size_t pos = 0;
    while (in.size() - pos >= 2) {
      size_t len = static_cast<uint8_t>(in[pos]) << 8 | static_cast<uint8_t>(in[pos + 1]);
      if (in.size() - pos - 2 < len) break;
      const auto* msg = reinterpret_cast<const uint8_t*>(in.data() + pos + 2);
      double start = mono_seconds();
      if (!axfr(msg, len)) {
        size_t n = worker.handle(msg, len, peer, true, worker.tcp_out.data(), worker.tcp_out.size());
        if (n > 0) append(worker.tcp_out.data(), n);
      }
      worker.latency->observe(mono_seconds() - start);
      pos += 2 + len;
    }
    in.erase(0, pos);
  }

  // Zone transfer (RFC 5936): SOA, every record, SOA again, in as many messages as needed. True when the
  // message was an AXFR query (answered here, allowed or refused).
  bool axfr(const uint8_t* msg, size_t len) {
    wire::Query& q = worker.query;
    if (wire::parse_query({msg, len}, q) != wire::ParseResult::kOk || q.qtype != type::kAXFR) return false;
    const Zone* zone = worker.current->find(q.name());
    ClientView client = view_of(peer);
    bool allowed = false;
    for (const auto& net : worker.options.axfr_allow)
      allowed |= prefix_matches(net, client.family, client.address);
    uint8_t* out_buf = worker.tcp_out.data();
    const size_t cap = worker.tcp_out.size();
    worker.by_type[type_index(q.qtype)]->inc();
    if (!zone || zone->origin() != q.name() || !allowed) {
      wire::ResponseWriter w(out_buf, cap);
      w.begin(q, {msg, len}, cap);
      w.set_rcode(!zone || zone->origin() != q.name() ? Rcode::kNotAuth : Rcode::kRefused);
      w.set_authoritative(false);
      size_t n = w.finish();
      worker.by_rcode[rcode_index(w.rcode())]->inc();
      append(out_buf, n);
      if (zone && !allowed)
        core::log_warn(kComponent, "zone transfer refused: client not in axfr_allow",
                       {{"zone", wire::name_to_text(zone->origin())}, {"client", address_text()}});
      return true;
    }
    auto w = std::make_unique<wire::ResponseWriter>(out_buf, cap);
    w->begin(q, {msg, len}, cap);
    size_t messages = 1;
    auto emit = [&](std::string_view owner, uint16_t rtype, uint32_t ttl, std::string_view rdata) {
      if (w->add(wire::Section::kAnswer, owner, rtype, wire::kClassIN, ttl, rdata)) return;
      w->set_truncated(false);
      append(out_buf, w->finish());
      w->begin(q, {msg, len}, cap);
      ++messages;
      (void)w->add(wire::Section::kAnswer, owner, rtype, wire::kClassIN, ttl, rdata);
    };
    const RRset& soa = zone->soa();
    emit(zone->origin(), type::kSOA, soa.ttl, soa.endpoints[0].rdata);
    size_t records = 0;
    for (const auto& [name, node] : zone->sorted_nodes()) {
      for (const RRset& set : node->rrsets) {
        if (set.type == type::kSOA || set.type == kTypeAlias) continue;  // ALIAS is not a wire type
        for (const Endpoint& ep : set.endpoints) {
          emit(name, set.type, set.ttl, ep.rdata);
          ++records;
        }
      }
    }
    emit(zone->origin(), type::kSOA, soa.ttl, soa.endpoints[0].rdata);
    append(out_buf, w->finish());
    worker.by_rcode[0]->inc();
    core::log_info(kComponent, "zone transfer",
                   {{"zone", wire::name_to_text(zone->origin())},
                    {"client", address_text()},
                    {"serial", static_cast<int64_t>(zone->serial())},
                    {"records", records},
                    {"messages", messages}});
    return true;
  }

  std::string address_text() const {
    core::SocketAddress a;
    a.storage = peer;
    a.length = peer.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    return a.host();
  }

  void append(const uint8_t* data, size_t n) {
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n));
    out.append(reinterpret_cast<const char*>(data), n);
  }

  void flush() {
    while (out_off < out.size()) {
      ssize_t n = ::send(fd.get(), out.data() + out_off, out.size() - out_off, MSG_NOSIGNAL);
      if (n > 0) {
        out_off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      worker.close_conn(this);
      return;
    }
    if (out_off == out.size()) {
      out.clear();
      out_off = 0;
      if (peer_closed) {
        worker.close_conn(this);
        return;
      }
      if (!in.empty() && out.empty()) {
        // Reading paused for back-pressure may resume now.
      }
    }
  }

  Worker& worker;
  core::Fd fd;
  sockaddr_storage peer;
  core::Timer idle;
  std::string in;
  std::string out;
  size_t out_off = 0;
  bool peer_closed = false;
  bool closed = false;
};

void DnsServer::Worker::accept_tcp(TcpListener& l) {
  for (;;) {
    sockaddr_storage peer{};
    socklen_t plen = sizeof peer;
    int fd = ::accept4(l.fd.get(), reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;
    }
    if (static_cast<int>(conns.size()) >= options.tcp_max_connections) {
      ::close(fd);  // RFC 7766 section 6.2.2: a server may close connections to protect itself
      continue;
    }
    core::set_nodelay(fd);
    auto* c = new TcpConn(*this, core::Fd(fd), peer);
    conns.push_back(c);
    tcp_connections->add(1);
    c->idle.arm(options.tcp_idle_timeout);
    loop.add(fd, c);
  }
}

void DnsServer::Worker::close_conn(TcpConn* c) {
  if (c->closed) return;
  c->closed = true;
  c->idle.cancel();
  loop.remove(c->fd.get());
  c->fd.reset();
  std::erase(conns, c);
  tcp_connections->add(-1);
  loop.destroy_later(std::unique_ptr<TcpConn>(c));
}

DnsServer::DnsServer(ServerOptions options, const ZoneStore& zones)
    : options_(std::move(options)), zones_(zones) {}

DnsServer::~DnsServer() {
  stop();
}

void DnsServer::start() {
  loops_ = std::make_unique<core::LoopThreads>(static_cast<size_t>(options_.workers));
  for (int i = 0; i < options_.workers; ++i)
    workers_.push_back(std::make_unique<Worker>(i, options_, zones_, loops_->loop(static_cast<size_t>(i))));
  for (const std::string& text : options_.listen) {
    auto addr = core::SocketAddress::parse(text);
    if (!addr) throw std::runtime_error("bad listen address " + text);
    // Port 0: the kernel picks the UDP port, TCP must get the same one; a few tries cover a TCP clash.
    for (int attempt = 0;; ++attempt) {
      core::SocketAddress a = *addr;
      try {
        std::vector<core::Fd> udp_fds, tcp_fds;
        udp_fds.push_back(bind_udp(a, true));
        if (a.port() == 0) a = *core::SocketAddress::from_fd_local(udp_fds[0].get());
        tcp_fds.push_back(core::listen_tcp(a, true));
        for (int i = 1; i < options_.workers; ++i) {
          udp_fds.push_back(bind_udp(a, true));
          tcp_fds.push_back(core::listen_tcp(a, true));
        }
        for (int i = 0; i < options_.workers; ++i) {
          auto u = std::make_unique<Worker::UdpSocket>();
          u->worker = workers_[i].get();
          u->fd = std::move(udp_fds[i]);
          workers_[i]->udp.push_back(std::move(u));
          auto t = std::make_unique<Worker::TcpListener>();
          t->worker = workers_[i].get();
          t->fd = std::move(tcp_fds[i]);
          workers_[i]->tcp.push_back(std::move(t));
        }
        bound_.push_back(a);
        break;
      } catch (const std::runtime_error&) {
        if (addr->port() != 0 || attempt >= 5) throw;
      }
    }
  }
  for (auto& w : workers_) {
    for (auto& u : w->udp) w->loop.add(u->fd.get(), u.get(), core::kReadable);
    for (auto& t : w->tcp) w->loop.add(t->fd.get(), t.get(), core::kReadable);
  }
  if (options_.query_log)
    for (auto& w : workers_) w->log_flush.arm(core::Millis(100));
  // Each worker's query log lines are buffered on its thread: the last ones are written as it ends.
  loops_->start([](size_t) { core::AccessLog::flush(); });
}

void DnsServer::stop() {
  if (loops_) loops_->stop();
  for (auto& w : workers_) {
    for (Worker::TcpConn* c : std::vector<Worker::TcpConn*>(w->conns)) {
      w->loop.remove(c->fd.get());
      delete c;
    }
    w->conns.clear();
  }
  workers_.clear();
  loops_.reset();
}

}  // namespace cumulo::dns
