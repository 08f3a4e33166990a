// A session driven without sockets: the client is a FakeClientTransport, the targets are FakeUpstreams whose
// connections the test accepts, answers and resets, and time is a FakeSessionClock.
#include "gateway/internal/session.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <optional>
#include <vector>

#include "cache/store.h"
#include "core/metrics.h"
#include "gateway/internal/identity.h"
#include "gateway/internal/worker.h"
#include "support/fake_upstream.h"

namespace cumulo::gateway {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kGet = "GET /page HTTP/1.1\r\nHost: site.test\r\n\r\n";

struct Scenario {
  int targets = 2;
  int attempts = 2;
  bool cache = false;
  milliseconds connect{2000};
  milliseconds first_byte{5000};
  std::string monitor_uri = "";
};

class SessionTest : public ::testing::Test {
 protected:
  void build(const Scenario& s) {
    auto config = std::make_shared<GatewayConfig>();
    config->monitor_uri = s.monitor_uri;
    auto group = std::make_shared<TargetGroup>();
    group->config.name = "web";
    group->config.retries.attempts = s.attempts;
    group->balancer.resize(1);
    for (int i = 0; i < s.targets; ++i) {
      auto t = std::make_shared<Target>();
      t->group = "web";
      t->address_text = "10.0.0." + std::to_string(i + 1) + ":80";
      t->address = *core::SocketAddress::parse(t->address_text);
      t->health->health.store(health::Health::kHealthy);
      core::Labels l{{"target", t->address_text}};
      for (int c = 0; c < 6; ++c) {
        core::Labels lc = l;
        lc.emplace_back("code", std::to_string(c));
        t->metrics.responses[c] = &registry_.counter("target_responses", "", lc);
      }
      t->metrics.bytes_in = &registry_.counter("target_bytes_in", "", l);
      t->metrics.bytes_out = &registry_.counter("target_bytes_out", "", l);
      t->metrics.connect_failures = &registry_.counter("target_connect_failures", "", l);
      t->metrics.retries = &registry_.counter("target_retries", "", l);
      t->metrics.latency = &registry_.histogram("target_latency", "", l);
      group->targets.push_back(t);
    }
    auto snapshot = std::make_shared<Snapshot>();
    snapshot->config = config;
    if (s.cache) snapshot->cache = store_ = std::make_shared<cache::Store>(1 << 20, cache_disk_, 64 << 20);
    Route r;
    r.config.name = "all";
    r.config.target_group = "web";
    r.config.timeouts.connect = s.connect;
    r.config.timeouts.first_byte = s.first_byte;
    r.config.cache.enabled = s.cache;
    r.group = group;
    for (int c = 0; c < 6; ++c)
      r.metrics.responses[c] = &registry_.counter("route_responses", "", {{"code", std::to_string(c)}});
    for (int c = 0; c < 4; ++c)
      r.metrics.cache_results[c] = &registry_.counter("route_cache", "", {{"result", std::to_string(c)}});
    r.metrics.cache_bytes = &registry_.counter("route_cache_bytes", "");
    r.metrics.latency = &registry_.histogram("route_latency", "");
    r.metrics.bytes_out = &registry_.counter("route_bytes_out", "");
    snapshot->routes.push_back(std::move(r));
    snapshot->groups["web"] = group;
    group_ = group;
    worker_ = std::make_unique<Worker>(0, shared_, loop_);
    worker_->set_snapshot(snapshot);
    listener_.port_text = "8080";
    open_session();
  }
  // Another client connection the worker accepts, on a wire of its own (the test's client_ from then on).
  void accept_client() {
    client_ = std::make_shared<fakes::FakeClientTransport::Wire>();
    open_session();
  }
  void open_session() {
    auto session = std::make_unique<Session>(*worker_, upstreams_, clock_,
                                             std::make_unique<fakes::FakeClientTransport>(client_), listener_,
                                             *core::SocketAddress::parse("192.0.2.7:50000"));
    session_ = session.get();
    worker_->add_session(std::move(session));
  }

  void client_sends(std::string_view bytes) {
    client_->send.append(bytes);
    session_->on_io(core::kReadable);
  }
  fakes::FakeUpstreamConnection& conn(size_t n) {
    EXPECT_GT(upstreams_.connections.size(), n);
    return *upstreams_.connection(n);
  }
  // What the client has received since the last call.
  std::string take_received() {
    std::string r;
    r.swap(client_->received);
    return r;
  }
  static int count(std::string_view hay, std::string_view needle) {
    int n = 0;
    for (size_t p = hay.find(needle); p != std::string_view::npos; p = hay.find(needle, p + 1)) ++n;
    return n;
  }

  // The cache's own requests (Worker::fetch_for_cache), held until the test answers them.
  struct SentFetch {
    core::SocketAddress to;
    http::ClientRequest req;
    std::function<void(http::ClientResponse)> done;
  };
  void capture_fetches() {
    worker_->set_fetch_sender([this](const core::SocketAddress& to, http::ClientRequest req,
                                     std::function<void(http::ClientResponse)> d) {
      fetches_.push_back(SentFetch{to, std::move(req), std::move(d)});
    });
  }
  // Answers the oldest fetch still open.
  void answer_fetch(http::ClientResponse resp) {
    ASSERT_FALSE(fetches_.empty());
    SentFetch f = std::move(fetches_.front());
    fetches_.erase(fetches_.begin());
    f.done(std::move(resp));
  }
  static http::ClientResponse failed(std::string kind, core::Retry retry) {
    http::ClientResponse r;
    r.error.kind = std::move(kind);
    r.error.message = "as the test says";
    r.error.source = core::ErrorSource::kUpstream;
    r.error.retry = retry;
    return r;
  }
  Target& target_at(const core::SocketAddress& a) {
    for (auto& t : group_->targets)
      if (t->address.to_string() == a.to_string()) return *t;
    ADD_FAILURE() << "no target at " << a.to_string();
    return *group_->targets[0];
  }
  std::vector<SentFetch> fetches_;

  // Declared before the worker: sessions it destroys still use them.
  core::MetricsRegistry registry_;
  fakes::FakeSessionClock clock_;
  fakes::FakeUpstreams upstreams_;
  std::shared_ptr<fakes::FakeClientTransport::Wire> client_ =
      std::make_shared<fakes::FakeClientTransport::Wire>();
  WorkerShared shared_;
  core::EventLoop loop_;  // the worker's; the session's time comes from clock_
  ListenerRuntime listener_;
  std::shared_ptr<TargetGroup> group_;
  std::string cache_disk_;               // the cache's disk tier, when not empty
  std::shared_ptr<cache::Store> store_;  // outlives the worker, as a reloaded gateway's does
  std::unique_ptr<Worker> worker_;
  Session* session_ = nullptr;
};

TEST_F(SessionTest, ProxiesARequestAndKeepsBothConnectionsAlive) {
  build({});
  client_sends(kGet);
  ASSERT_EQ(upstreams_.connections.size(), 1u);
  conn(0).accept();
  EXPECT_EQ(conn(0).received.rfind("GET /page HTTP/1.1\r\n", 0), 0u) << conn(0).received;
  EXPECT_NE(conn(0).received.find("X-Forwarded-For: 192.0.2.7\r\n"), std::string::npos);
  conn(0).reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  std::string got = take_received();
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("\r\n\r\nok"), std::string::npos);
  EXPECT_EQ(upstreams_.idle(), 1u);  // back in the pool for the next request
  EXPECT_FALSE(conn(0).closed_by_gateway);
  EXPECT_FALSE(client_->write_shut);
}

TEST_F(SessionTest, ResetBeforeAnyResponseByteRetriesAnIdempotentRequestOnAnotherTarget) {
  build({});
  client_sends(kGet);
  conn(0).accept();
  conn(0).reset();
  ASSERT_EQ(upstreams_.connections.size(), 2u);
  EXPECT_NE(conn(0).target, conn(1).target);
  EXPECT_TRUE(conn(0).closed_by_gateway);
  EXPECT_TRUE(take_received().empty());  // the client saw nothing of the failure
  conn(1).accept();
  EXPECT_EQ(count(conn(1).received, "GET /page HTTP/1.1\r\n"), 1);
  conn(1).reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  std::string got = take_received();
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_EQ(conn(0).target->metrics.retries->value(), 1);
}

TEST_F(SessionTest, NoRetryOfAPostWhoseBytesReachedTheTarget) {
  build({});
  client_sends("POST /form HTTP/1.1\r\nHost: site.test\r\nContent-Length: 5\r\n\r\nhello");
  conn(0).accept();
  EXPECT_NE(conn(0).received.find("\r\n\r\nhello"), std::string::npos);
  conn(0).reset();
  EXPECT_EQ(upstreams_.connections.size(), 1u);  // not sent again: it may have had effects
  std::string got = take_received();
  EXPECT_EQ(got.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("Connection: close"), std::string::npos);
  EXPECT_TRUE(client_->write_shut);
}

TEST_F(SessionTest, NoRetryOfABodilessPostWhoseHeadReachedTheTarget) {
  build({});
  client_sends("POST /poke HTTP/1.1\r\nHost: site.test\r\nContent-Length: 0\r\n\r\n");
  conn(0).accept();
  EXPECT_EQ(conn(0).received.rfind("POST /poke HTTP/1.1\r\n", 0), 0u);
  conn(0).hang_up();
  EXPECT_EQ(upstreams_.connections.size(), 1u);
  EXPECT_EQ(take_received().rfind("HTTP/1.1 502 Bad Gateway\r\n", 0), 0u);
}

TEST_F(SessionTest, NoRetryOfAnIdempotentPutOnceItsBodyWasSent) {
  build({});
  client_sends("PUT /doc HTTP/1.1\r\nHost: site.test\r\nContent-Length: 3\r\n\r\nabc");
  conn(0).accept();
  conn(0).reset();
  EXPECT_EQ(upstreams_.connections.size(), 1u);  // the body is gone from the buffer: it cannot be sent again
  EXPECT_EQ(take_received().rfind("HTTP/1.1 502 Bad Gateway\r\n", 0), 0u);
}

TEST_F(SessionTest, RefusedConnectMovesOnToAnotherTarget) {
  build({});
  client_sends(kGet);
  conn(0).refuse();
  ASSERT_EQ(upstreams_.connections.size(), 2u);
  EXPECT_EQ(conn(0).target->metrics.connect_failures->value(), 1);
  conn(1).accept();
  conn(1).reply("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(take_received().rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
}

TEST_F(SessionTest, ConnectTimeoutMovesOnToAnotherTarget) {
  build({.connect = 100ms});
  client_sends(kGet);
  clock_.advance(99ms);
  EXPECT_EQ(upstreams_.connections.size(), 1u);
  clock_.advance(1ms);
  ASSERT_EQ(upstreams_.connections.size(), 2u);
  EXPECT_TRUE(conn(0).received.empty());
  conn(1).accept();
  conn(1).reply("HTTP/1.1 204 No Content\r\n\r\n");
  EXPECT_EQ(take_received().rfind("HTTP/1.1 204 No Content\r\n", 0), 0u);
}

TEST_F(SessionTest, ConnectTimeoutWithoutRetriesLeftAnswers504) {
  build({.targets = 1, .attempts = 0, .connect = 100ms});
  client_sends(kGet);
  clock_.advance(100ms);
  EXPECT_EQ(upstreams_.connections.size(), 1u);
  std::string got = take_received();
  EXPECT_EQ(got.rfind("HTTP/1.1 504 Gateway Timeout\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("connect timed out"), std::string::npos);
}

TEST_F(SessionTest, FirstByteTimeoutAnswers504AndDoesNotRetry) {
  build({.first_byte = 1000ms});
  client_sends(kGet);
  conn(0).accept();
  clock_.advance(999ms);
  EXPECT_TRUE(client_->received.empty());
  clock_.advance(1ms);
  std::string got = take_received();
  EXPECT_EQ(got.rfind("HTTP/1.1 504 Gateway Timeout\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("timeouts.first_byte"), std::string::npos);
  EXPECT_EQ(upstreams_.connections.size(), 1u);
}

// A cache directory holding /page (fresh for a minute), and nothing of it in any store's memory.
class SessionDiskTest : public SessionTest {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("cumulo-session-disk-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    cache::Store writer(1 << 20, dir_.string(), 64 << 20);
    auto o = std::make_shared<cache::Object>();
    o->key = "site.test/page";
    o->reason = "OK";
    o->headers = "Cache-Control: max-age=60\r\n";
    o->body = "from disk";
    o->times.request_time = o->times.response_time = o->times.date_value = ::time(nullptr);
    o->times.freshness_lifetime = 60;
    writer.insert(o);
    cache_disk_ = dir_.string();
  }
  void TearDown() override {
    worker_.reset();
    store_.reset();  // its writer thread finishes before the directory goes
    std::filesystem::remove_all(dir_);
  }
  // Runs what was posted to the worker's loop (the disk read's answer among it) once the read is done.
  void run_posted() {
    store_->flush_disk();
    loop_.post([this] { loop_.stop(); });
    loop_.run();
  }
  std::filesystem::path dir_;
};

TEST_F(SessionDiskTest, AHitOnDiskIsReadOffTheWorkerAndServedOnItsLoop) {
  build({.targets = 1, .cache = true});
  client_sends(kGet);
  // Nothing yet: the file is read on the disk tier's thread, and its answer waits for the worker's loop.
  EXPECT_EQ(take_received(), "");
  EXPECT_EQ(upstreams_.connections.size(), 0u);
  run_posted();
  std::string got = take_received();
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("X-Cache: HIT\r\n"), std::string::npos) << got;
  EXPECT_NE(got.find("\r\n\r\nfrom disk"), std::string::npos) << got;
  EXPECT_EQ(upstreams_.connections.size(), 0u);
  EXPECT_EQ(store_->stats().disk_reads, 1u);
  // Kept in memory again: the next request is answered at once.
  client_sends(kGet);
  EXPECT_NE(take_received().find("\r\n\r\nfrom disk"), std::string::npos);
  EXPECT_EQ(store_->stats().disk_reads, 1u);
}

TEST_F(SessionDiskTest, AMissOnDiskGoesToTheOrigin) {
  build({.targets = 1, .cache = true});
  client_sends("GET /other HTTP/1.1\r\nHost: site.test\r\n\r\n");
  conn(0).accept();
  conn(0).reply("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_NE(take_received().find("X-Cache: MISS\r\n"), std::string::npos);
  EXPECT_EQ(store_->stats().disk_reads, 0u);
}

TEST_F(SessionDiskTest, ASessionGoneBeforeItsDiskReadEndsIsNotTouched) {
  build({.targets = 1, .cache = true});
  client_sends(kGet);
  EXPECT_EQ(take_received(), "");
  worker_.reset();  // the session goes with its worker while the read is queued or under way
  session_ = nullptr;
  run_posted();  // the answer reaches the loop and finds no one (AddressSanitizer would see a touch)
  EXPECT_EQ(store_->stats().disk_reads, 1u);
  EXPECT_EQ(client_->received, "");
  EXPECT_EQ(store_->stats().objects, 1u);  // still kept for the next request
}

TEST_F(SessionTest, SecondGetIsServedFromTheCacheWithoutAskingTheTarget) {
  build({.cache = true});
  client_sends(kGet);
  conn(0).accept();
  conn(0).reply("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\r\nhello");
  std::string first = take_received();
  EXPECT_NE(first.find("X-Cache: MISS\r\n"), std::string::npos) << first;

  client_sends(kGet);
  std::string second = take_received();
  EXPECT_EQ(second.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << second;
  EXPECT_NE(second.find("X-Cache: HIT\r\n"), std::string::npos) << second;
  EXPECT_NE(second.find("\r\n\r\nhello"), std::string::npos);
  EXPECT_EQ(upstreams_.connections.size(), 1u);
  EXPECT_EQ(upstreams_.reuses, 0);
  EXPECT_EQ(count(conn(0).received, "GET /page"), 1);
}

TEST_F(SessionTest, StaleEntryIsRevalidatedAnd304ServesTheStoredBody) {
  build({.targets = 1, .cache = true});
  client_sends(kGet);
  conn(0).accept();
  conn(0).reply(
      "HTTP/1.1 200 OK\r\nCache-Control: max-age=0\r\nETag: \"v1\"\r\nContent-Length: 5\r\n\r\nhello");
  take_received();
  ASSERT_EQ(upstreams_.idle(), 1u);

  client_sends(kGet);
  EXPECT_EQ(upstreams_.reuses, 1);  // the pooled connection carries the conditional request
  std::string_view second_request = std::string_view(conn(0).received).substr(conn(0).received.rfind("GET "));
  EXPECT_NE(second_request.find("If-None-Match: \"v1\"\r\n"), std::string_view::npos) << second_request;
  EXPECT_TRUE(client_->received.empty());
  conn(0).reply("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n");
  std::string got = take_received();
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("X-Cache: REVALIDATED\r\n"), std::string::npos) << got;
  EXPECT_NE(got.find("Content-Length: 5\r\n"), std::string::npos);
  EXPECT_NE(got.find("\r\n\r\nhello"), std::string::npos);
}

TEST_F(SessionTest, TargetFailingTheRevalidationServesTheStaleEntryWhenStaleIfErrorAllows) {
  build({.targets = 1, .cache = true});
  client_sends(kGet);
  conn(0).accept();
  conn(0).reply(
      "HTTP/1.1 200 OK\r\nCache-Control: max-age=0, stale-if-error=600\r\nETag: \"v1\"\r\n"
      "Content-Length: 5\r\n\r\nhello");
  take_received();

  client_sends(kGet);
  ASSERT_EQ(upstreams_.reuses, 1);
  conn(0).reset();  // on a reused connection: retried, but the group has no other target
  std::string got = take_received();
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("X-Cache: STALE\r\n"), std::string::npos) << got;
  EXPECT_NE(got.find("\r\n\r\nhello"), std::string::npos);
}

// ---- the cache's own requests (fetch.h) ----

TEST_F(SessionTest, CacheFetchTriesAnotherTargetAfterARefusedConnectAndCountsBoth) {
  build({});
  capture_fetches();
  const Snapshot& snap = *worker_->snapshot();
  http::ClientRequest req;
  req.target = "/slice";
  std::optional<http::ClientResponse> got;
  ASSERT_TRUE(worker_->fetch_for_cache(worker_->snapshot(), &snap.routes[0], req,
                                       [&](http::ClientResponse r) { got = std::move(r); }));
  ASSERT_EQ(fetches_.size(), 1u);
  Target& first = target_at(fetches_[0].to);
  EXPECT_EQ(first.in_flight.load(), 1);
  answer_fetch(failed("connect", core::Retry::kSafe));
  ASSERT_EQ(fetches_.size(), 1u) << "tried again";
  Target& second = target_at(fetches_[0].to);
  EXPECT_NE(&first, &second);
  EXPECT_EQ(fetches_[0].req.target, "/slice");
  http::ClientResponse ok;
  ok.status = 200;
  ok.body = "abc";
  answer_fetch(ok);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, "abc");
  EXPECT_EQ(first.in_flight.load(), 0);
  EXPECT_EQ(second.in_flight.load(), 0);
  EXPECT_EQ(first.metrics.connect_failures->value(), 1u);
  EXPECT_EQ(first.metrics.retries->value(), 1u);
  EXPECT_EQ(first.metrics.responses[0]->value(), 1u);
  EXPECT_EQ(second.metrics.responses[2]->value(), 1u);
  EXPECT_EQ(second.metrics.bytes_in->value(), 3u);
}

TEST_F(SessionTest, CacheFetchDoesNotRetryWhatIsNotSafeToRetry) {
  build({});
  capture_fetches();
  std::optional<http::ClientResponse> got;
  ASSERT_TRUE(worker_->fetch_for_cache(worker_->snapshot(), &worker_->snapshot()->routes[0], {},
                                       [&](http::ClientResponse r) { got = std::move(r); }));
  Target& t = target_at(fetches_[0].to);
  answer_fetch(failed("timeout", core::Retry::kNo));
  EXPECT_TRUE(fetches_.empty());
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->error.kind, "timeout");
  EXPECT_EQ(t.metrics.responses[0]->value(), 1u);
  EXPECT_EQ(t.metrics.retries->value(), 0u);
  EXPECT_EQ(t.metrics.connect_failures->value(), 0u);  // no answer in time is no connect failure
  EXPECT_EQ(t.in_flight.load(), 0);
}

TEST_F(SessionTest, CacheFetchFeedsOutlierDetectionUntilTheTargetIsEjected) {
  build({.targets = 1, .attempts = 0});
  capture_fetches();
  group_->config.outlier.consecutive_5xx = 2;
  const Snapshot& snap = *worker_->snapshot();
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(
        worker_->fetch_for_cache(worker_->snapshot(), &snap.routes[0], {}, [](http::ClientResponse) {}));
    http::ClientResponse r;
    r.status = 503;
    answer_fetch(r);
  }
  EXPECT_EQ(group_->targets[0]->outlier.ejections(), 1);
  EXPECT_EQ(group_->targets[0]->metrics.responses[5]->value(), 2u);
  // Ejected: the only target is unavailable, so nothing is sent.
  EXPECT_FALSE(
      worker_->fetch_for_cache(worker_->snapshot(), &snap.routes[0], {}, [](http::ClientResponse) {}));
  EXPECT_TRUE(fetches_.empty());
}

TEST_F(SessionTest, StaleWhileRevalidateRefreshesThroughTheTargetsAndStoresTheParsedAnswer) {
  build({.targets = 1, .cache = true});
  capture_fetches();
  client_sends(kGet);
  conn(0).accept();
  conn(0).reply(
      "HTTP/1.1 200 OK\r\nCache-Control: max-age=0, stale-while-revalidate=600\r\nETag: \"v1\"\r\n"
      "Content-Length: 5\r\n\r\nhello");
  take_received();

  client_sends(kGet);  // stale: served at once, refreshed in the background
  std::string got = take_received();
  EXPECT_NE(got.find("\r\n\r\nhello"), std::string::npos) << got;
  ASSERT_EQ(fetches_.size(), 1u);
  EXPECT_EQ(fetches_[0].req.target, "/page");
  bool conditional = false;
  for (const auto& [name, value] : fetches_[0].req.headers)
    conditional = conditional || (name == "If-None-Match" && value == "\"v1\"");
  EXPECT_TRUE(conditional);
  EXPECT_EQ(group_->targets[0]->in_flight.load(), 1);
  http::ClientResponse fresh;
  fresh.status = 200;
  fresh.headers = {{"Cache-Control", "max-age=600"},
                   {"ETag", "\"v2\""},
                   {"Transfer-Encoding", "chunked"},
                   {"Content-Type", "text/plain"}};
  fresh.body = "world!";
  answer_fetch(fresh);
  EXPECT_EQ(group_->targets[0]->in_flight.load(), 0);
  EXPECT_EQ(group_->targets[0]->metrics.responses[2]->value(), 2u);  // the session's and the refresh's

  client_sends(kGet);
  got = take_received();
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("X-Cache: HIT\r\n"), std::string::npos) << got;
  EXPECT_NE(got.find("ETag: \"v2\"\r\n"), std::string::npos) << got;
  EXPECT_NE(got.find("Content-Length: 6\r\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("Transfer-Encoding"), std::string::npos) << got;
  EXPECT_NE(got.find("\r\n\r\nworld!"), std::string::npos) << got;
  EXPECT_EQ(upstreams_.connections.size(), 1u);  // the third request never reached the target
}

// ---- who answered (cumulo-gateway), monitor_uri, draining without stopping ----

class SessionIdentityTest : public SessionTest {
 protected:
  void identify(std::string_view server_id, const Leases& leases) {
    worker_->set_identity_field(
        std::make_shared<const std::string>(render_identity_field(server_id, leases)));
  }
  static std::string head_of(std::string_view response) {
    return std::string(response.substr(0, response.find("\r\n\r\n") + 2));
  }
  int64_t sessions() const { return shared_.sessions.load(); }
};

TEST_F(SessionIdentityTest, ProxiedAnswersCarryTheFieldAndATargetsOwnIsDropped) {
  build({.targets = 1});
  identify("gateway-a", {{"web", 7}, {"api", 3}});
  client_sends(kGet);
  conn(0).accept();
  // A gateway behind this one names itself too: the client must see only the gateway that answered it.
  conn(0).reply("HTTP/1.1 200 OK\r\ncumulo-gateway: inner-b\r\nContent-Length: 2\r\n\r\nok");
  std::string head = head_of(take_received());
  EXPECT_EQ(count(head, "cumulo-gateway:"), 1) << head;
  EXPECT_NE(head.find("\r\ncumulo-gateway: gateway-a api=3 web=7\r\n"), std::string::npos) << head;

  identify("gateway-a", {});  // a lease deleted: the next response says so
  client_sends(kGet);
  conn(0).reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  std::string got = take_received();
  head = head_of(got);
  EXPECT_NE(head.find("\r\ncumulo-gateway: gateway-a\r\n"), std::string::npos) << got;
}

TEST_F(SessionIdentityTest, NoServerIdNoField) {
  build({});
  client_sends(kGet);
  conn(0).accept();
  conn(0).reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_EQ(take_received().find("cumulo-gateway"), std::string::npos);
}

TEST_F(SessionIdentityTest, GatewaysOwnErrorsCarryTheField) {
  build({.targets = 0});
  identify("gateway-a", {{"web", 2}});
  client_sends(kGet);  // no target at all: 503
  std::string got = take_received();
  EXPECT_EQ(got.rfind("HTTP/1.1 503 ", 0), 0u) << got;
  EXPECT_NE(head_of(got).find("\r\ncumulo-gateway: gateway-a web=2\r\n"), std::string::npos) << got;
}

TEST_F(SessionIdentityTest, CachedObjectsAreStoredWithoutItAndServedWithTheCurrentOne) {
  build({.cache = true});
  identify("gateway-a", {{"web", 1}});
  client_sends(kGet);
  conn(0).accept();
  conn(0).reply(
      "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\ncumulo-gateway: inner-b\r\nContent-Length: "
      "5\r\n\r\nhello");
  std::string first = head_of(take_received());
  EXPECT_NE(first.find("\r\ncumulo-gateway: gateway-a web=1\r\n"), std::string::npos) << first;
  EXPECT_EQ(count(first, "cumulo-gateway"), 1) << first;

  identify("gateway-b", {{"web", 2}});  // as if another gateway (or this one after a lease move) served it
  client_sends(kGet);
  std::string second = head_of(take_received());
  EXPECT_NE(second.find("X-Cache: HIT\r\n"), std::string::npos) << second;
  EXPECT_NE(second.find("\r\ncumulo-gateway: gateway-b web=2\r\n"), std::string::npos) << second;
  EXPECT_EQ(count(second, "cumulo-gateway"), 1) << second;
}

TEST_F(SessionIdentityTest, MonitorUriIsAnsweredWithoutATargetAndKeepsTheConnection) {
  build({.targets = 1, .monitor_uri = "/_gw/alive"});
  identify("gateway-a", {});
  client_sends("GET /_gw/alive?from=keeper HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got = take_received();
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("\r\ncumulo-gateway: gateway-a\r\n"), std::string::npos) << got;
  EXPECT_NE(got.find("Content-Length: 3\r\n"), std::string::npos) << got;
  EXPECT_EQ(got.substr(got.size() - 7), "\r\n\r\nok\n") << got;
  EXPECT_EQ(got.find("Connection: close"), std::string::npos) << got;
  EXPECT_TRUE(upstreams_.connections.empty());  // never routed
  EXPECT_EQ(registry_.counter("route_responses", "", {{"code", "2"}}).value(), 0u);
  EXPECT_FALSE(client_->write_shut);

  // The connection goes on: a pipelined HEAD of it and a routed request behind it.
  client_sends("HEAD /_gw/alive HTTP/1.1\r\nHost: x\r\n\r\n" + std::string(kGet));
  got = take_received();
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_EQ(got.substr(got.size() - 4), "\r\n\r\n") << got;  // HEAD: no body
  ASSERT_EQ(upstreams_.connections.size(), 1u);
  conn(0).accept();
  conn(0).reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_EQ(take_received().rfind("HTTP/1.1 200 OK\r\n", 0), 0u);

  // Another method, or a longer path, is routed like anything else.
  client_sends("POST /_gw/alive HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  std::string sent;
  for (auto* c : upstreams_.connections) sent += c->received;
  EXPECT_EQ(count(sent, "POST /_gw/alive"), 1) << sent;
}

TEST_F(SessionIdentityTest, DrainingAnswersMonitor503WithConnectionClose) {
  build({.monitor_uri = "/_gw/alive"});
  worker_->set_draining(true);
  EXPECT_EQ(sessions(), 0);  // the session was idle: closed at once
  accept_client();           // a connection accepted while draining is served
  client_sends("GET /_gw/alive HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got = take_received();
  EXPECT_EQ(got.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("Connection: close\r\n"), std::string::npos) << got;
  EXPECT_EQ(got.substr(got.size() - 9), "draining\n") << got;
  EXPECT_TRUE(client_->write_shut);
}

TEST_F(SessionIdentityTest, DrainClosesIdleConnectionsAtOnceAndServesNewOnesOnce) {
  build({.targets = 1});
  client_sends(kGet);
  conn(0).accept();
  conn(0).reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_EQ(take_received().find("Connection: close"), std::string::npos);
  EXPECT_EQ(sessions(), 1);  // idle between requests
  worker_->set_draining(true);
  EXPECT_EQ(sessions(), 0);
  EXPECT_TRUE(client_->write_shut);

  accept_client();  // accepted while draining: served, once
  client_sends(kGet);
  conn(0).reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  std::string got = take_received();
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("Connection: close\r\n"), std::string::npos) << got;
  EXPECT_TRUE(client_->write_shut);
}

TEST_F(SessionIdentityTest, DrainClosesAfterTheCurrentResponseAndOffRestoresKeepAlive) {
  build({});
  client_sends(kGet);
  conn(0).accept();
  worker_->set_draining(true);  // a request in flight: its response is the connection's last
  EXPECT_EQ(sessions(), 1);
  conn(0).reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  std::string got = take_received();
  EXPECT_NE(head_of(got).find("Connection: close\r\n"), std::string::npos) << got;
  EXPECT_TRUE(client_->write_shut);

  worker_->set_draining(false);
  accept_client();
  client_sends(kGet);
  conn(1).accept();
  conn(1).reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  got = take_received();
  EXPECT_EQ(got.find("Connection: close"), std::string::npos) << got;
  EXPECT_FALSE(client_->write_shut);
}

}  // namespace
}  // namespace cumulo::gateway