// cluster::Client against a real etcd (Debian's etcd-server), which each test starts itself: one member on
// 127.0.0.1 ports from the kernel, its data in a fresh directory, stopped by PID. Run by
// tests/integration/test_cluster.py (one pytest case per test here); alone:
//   build/release/cluster_etcd_test            (etcd from PATH, or CUMULO_ETCD=/path/to/etcd)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cluster/cluster.h"
#include "core/event_loop.h"
#include "core/net.h"
#include "http/client.h"

namespace cumulo::cluster {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

uint16_t free_port() {
  core::Fd probe = core::listen_tcp(*core::SocketAddress::parse("127.0.0.1:0"), false);
  return core::SocketAddress::from_fd_local(probe.get())->port();
}

// One etcd member; the same ports and data directory across restarts.
class Etcd {
 public:
  Etcd() {
    const char* tmp = std::getenv("CUMULO_TEST_TMP");
    std::string base = tmp && *tmp ? tmp : fs::temp_directory_path().string();
    std::string templ = base + "/etcd-XXXXXX";
    dir_ = mkdtemp(templ.data()) ? templ : "";
    if (dir_.empty()) throw std::runtime_error("mkdtemp in " + base + " failed");
    client_port_ = free_port();
    peer_port_ = free_port();
    start();
  }
  ~Etcd() {
    kill_now();
    if (!std::getenv("CUMULO_TEST_TMP")) fs::remove_all(dir_);
  }

  std::string endpoint() const { return "127.0.0.1:" + std::to_string(client_port_); }

  void start() {
    const char* bin = std::getenv("CUMULO_ETCD");
    std::string etcd = bin && *bin ? bin : "etcd";
    std::string client_url = "http://" + endpoint();
    std::string peer_url = "http://127.0.0.1:" + std::to_string(peer_port_);
    std::vector<std::string> args = {etcd,
                                     "--name=test",
                                     "--data-dir=" + dir_ + "/data",
                                     "--listen-client-urls=" + client_url,
                                     "--advertise-client-urls=" + client_url,
                                     "--listen-peer-urls=" + peer_url,
                                     "--initial-advertise-peer-urls=" + peer_url,
                                     "--initial-cluster=test=" + peer_url,
                                     "--log-outputs=stderr"};
    std::string log = dir_ + "/etcd.log";
    pid_ = fork();
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp(argv[0], argv.data());
      _exit(127);
    }
    // Ready when it answers /health with a leader.
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error(
            "etcd exited at start (is etcd-server installed? apt-get install -y etcd-server); "
            "its log: " +
            log);
      }
      auto r = http::fetch_blocking("GET", "http://" + endpoint() + "/health", {}, {}, 1s);
      if (r.ok() && r.status == 200 && r.body.find("true") != std::string::npos) return;
      std::this_thread::sleep_for(50ms);
    }
    throw std::runtime_error("etcd did not become healthy within 20 s; its log: " + log);
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void pause() { ::kill(pid_, SIGSTOP); }
  void resume() { ::kill(pid_, SIGCONT); }

 private:
  std::string dir_;
  uint16_t client_port_ = 0;
  uint16_t peer_port_ = 0;
  pid_t pid_ = -1;
};

// The client's loop runs on its own thread for the whole test (a loop runs once); the test thread hands it
// work and waits for answers. Objects of the loop (watches, keepers, campaigns) are made and destroyed there.
class EtcdTest : public ::testing::Test {
 protected:
  EtcdTest() {
    thread_ = std::thread([this] { loop.run(); });
    client = on_loop([&] { return std::make_unique<Client>(loop, Options{{etcd.endpoint()}, 2000ms}); });
  }
  ~EtcdTest() override {
    on_loop([&] {
      owned_.clear();
      client.reset();
      return 0;
    });
    loop.stop();
    thread_.join();
  }

  // Runs fn on the loop thread and waits for its result.
  template <typename F>
  auto on_loop(F fn) -> decltype(fn()) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto result = task.get_future();
    loop.post([&task] { task(); });
    return result.get();
  }
  // Makes an object of the loop (a watch, keeper, campaign, client) on the loop thread; it lives until drop()
  // or the end of the test, and is destroyed there too, before the test's client.
  template <typename T>
  T* keep(std::function<std::unique_ptr<T>()> make) {
    return on_loop([&] {
      std::shared_ptr<T> p = make();
      owned_.push_back(p);
      return p.get();
    });
  }
  void drop(const void* p) {
    on_loop([&] {
      std::erase_if(owned_, [p](const std::shared_ptr<void>& o) { return o.get() == p; });
      return 0;
    });
  }

  // One asynchronous call, started on the loop and waited for.
  template <typename T, typename Start>
  core::Result<T, core::Error> sync(Start start) {
    std::promise<core::Result<T, core::Error>> promise;
    auto future = promise.get_future();
    loop.post(
        [&] { start([&promise](core::Result<T, core::Error> r) { promise.set_value(std::move(r)); }); });
    if (future.wait_for(30s) != std::future_status::ready) {
      ADD_FAILURE() << "no answer within 30 s";
      std::abort();  // the callback still holds the promise: nothing safe is left to do
    }
    return future.get();
  }

  // Polls `done` on the loop thread until it holds, at most `limit`.
  bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 20s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (on_loop([&] { return done(); })) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  PutResult put(const std::string& k, const std::string& v, int64_t lease = 0) {
    auto r = sync<PutResult>([&](auto cb) { client->put(k, v, cb, lease); });
    EXPECT_TRUE(r) << r.error().describe();
    return r ? *r : PutResult{};
  }
  std::optional<KeyValue> get(const std::string& k, int64_t revision = 0) {
    auto r = sync<GetResult>([&](auto cb) { client->get(k, cb, revision); });
    EXPECT_TRUE(r) << r.error().describe();
    return r ? r->kv : std::nullopt;
  }
  Lease grant(int64_t ttl) {
    auto r = sync<Lease>([&](auto cb) { client->grant(ttl, cb); });
    EXPECT_TRUE(r) << r.error().describe();
    return r ? *r : Lease{};
  }

  Etcd etcd;
  core::EventLoop loop;
  std::unique_ptr<Client> client;

 private:
  std::vector<std::shared_ptr<void>> owned_;
  std::thread thread_;
};

TEST_F(EtcdTest, PutGetRangeDeleteWithBinaryKeysAndOldRevisions) {
  const std::string k1 = std::string("/t/\0bin\xff", 8);
  PutResult first = put(k1, std::string("v\0one", 5));
  PutResult second = put(k1, "two");
  EXPECT_EQ(second.header.revision, first.header.revision + 1);
  auto now = get(k1);
  ASSERT_TRUE(now);
  EXPECT_EQ(now->key, k1);
  EXPECT_EQ(now->value, "two");
  EXPECT_EQ(now->version, 2);
  EXPECT_EQ(now->create_revision, first.header.revision);
  EXPECT_EQ(now->mod_revision, second.header.revision);
  auto then = get(k1, first.header.revision);
  ASSERT_TRUE(then);
  EXPECT_EQ(then->value, std::string("v\0one", 5));
  EXPECT_FALSE(get("/t/missing"));

  put("/t/a", "1");
  put("/t/b", "2");
  put("/u/c", "3");
  auto range = sync<RangeResult>([&](auto cb) { client->range("/t/", {}, cb); });
  ASSERT_TRUE(range) << range.error().describe();
  ASSERT_EQ(range->kvs.size(), 3u);
  EXPECT_EQ(range->kvs[0].key, k1);  // "\0" sorts first
  EXPECT_EQ(range->kvs[1].key, "/t/a");
  EXPECT_EQ(range->kvs[2].key, "/t/b");
  RangeOptions limited;
  limited.limit = 1;
  limited.revision = second.header.revision;  // before /t/a and /t/b
  auto old = sync<RangeResult>([&](auto cb) { client->range("/t/", limited, cb); });
  ASSERT_TRUE(old);
  EXPECT_EQ(old->kvs.size(), 1u);
  EXPECT_EQ(old->count, 1);

  auto del = sync<DeleteResult>([&](auto cb) { client->del("/t/a", cb); });
  ASSERT_TRUE(del);
  EXPECT_EQ(del->deleted, 1);
  auto del_prefix = sync<DeleteResult>([&](auto cb) { client->del_prefix("/t/", cb); });
  ASSERT_TRUE(del_prefix);
  EXPECT_EQ(del_prefix->deleted, 2);
  EXPECT_TRUE(get("/u/c"));
}

TEST_F(EtcdTest, TxnComparesEachTargetAndRunsOneBranch) {
  Lease lease = grant(30);
  PutResult p = put("/x/k", "v1", lease.id);
  auto all_hold = sync<TxnResult>([&](auto cb) {
    client->txn(
        TxnRequest{{Compare::value_is("/x/k", Compare::Op::kEqual, "v1"),
                    Compare::version_is("/x/k", Compare::Op::kEqual, 1),
                    Compare::create_revision_is("/x/k", Compare::Op::kEqual, p.header.revision),
                    Compare::mod_revision_is("/x/k", Compare::Op::kLess, p.header.revision + 1),
                    Compare::lease_is("/x/k", Compare::Op::kEqual, lease.id), Compare::missing("/x/other")},
                   {Operation::put("/x/other", "o"), Operation::get("/x/k"), Operation::del("/x/k")},
                   {Operation::get("/x/k")}},
        cb);
  });
  ASSERT_TRUE(all_hold) << all_hold.error().describe();
  EXPECT_TRUE(all_hold->succeeded);
  ASSERT_EQ(all_hold->responses.size(), 3u);
  EXPECT_EQ(all_hold->responses[0].kind, Operation::Kind::kPut);
  ASSERT_EQ(all_hold->responses[1].kvs.size(), 1u);
  EXPECT_EQ(all_hold->responses[1].kvs[0].value, "v1");
  EXPECT_EQ(all_hold->responses[2].deleted, 1);
  EXPECT_EQ(all_hold->header.revision, p.header.revision + 1);  // one revision for the whole transaction

  auto one_fails = sync<TxnResult>([&](auto cb) {
    client->txn(
        TxnRequest{
            {Compare::missing("/x/other")}, {Operation::put("/x/other", "again")}, {Operation::range("/x/")}},
        cb);
  });
  ASSERT_TRUE(one_fails);
  EXPECT_FALSE(one_fails->succeeded);
  ASSERT_EQ(one_fails->responses.size(), 1u);
  ASSERT_EQ(one_fails->responses[0].kvs.size(), 1u);
  EXPECT_EQ(one_fails->responses[0].kvs[0].value, "o");

  // A put under a lease that does not exist: etcd refuses it.
  auto refused = sync<PutResult>([&](auto cb) { client->put("/x/z", "v", cb, 12345); });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, "lease_not_found") << refused.error().describe();
}

TEST_F(EtcdTest, ALeaseNotKeptAliveExpiresWithItsKeys) {
  Lease lease = grant(2);
  ASSERT_GT(lease.id, 0);
  EXPECT_EQ(lease.ttl_s, 2);
  put("/l/under", "x", lease.id);
  auto ttl = sync<LeaseTimeToLive>([&](auto cb) { client->time_to_live(lease.id, true, cb); });
  ASSERT_TRUE(ttl);
  EXPECT_EQ(ttl->granted_ttl_s, 2);
  EXPECT_EQ(ttl->keys, std::vector<std::string>{"/l/under"});
  auto start = std::chrono::steady_clock::now();
  bool gone = false;
  while (!gone && std::chrono::steady_clock::now() - start < 10s) {
    gone = !get("/l/under");
    if (!gone) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(gone);
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 1500ms);
  auto after = sync<LeaseTimeToLive>([&](auto cb) { client->time_to_live(lease.id, false, cb); });
  ASSERT_TRUE(after);
  EXPECT_EQ(after->ttl_s, -1);
  auto renewal = sync<Lease>([&](auto cb) { client->keep_alive(lease.id, cb); });
  ASSERT_TRUE(renewal) << renewal.error().describe();
  EXPECT_LE(renewal->ttl_s, 0) << "a renewal of an expired lease says it is gone";

  Lease revoked = grant(60);
  put("/l/revoked", "x", revoked.id);
  auto rv = sync<ResponseHeader>([&](auto cb) { client->revoke(revoked.id, cb); });
  ASSERT_TRUE(rv);
  EXPECT_FALSE(get("/l/revoked"));
  auto again = sync<ResponseHeader>([&](auto cb) { client->revoke(revoked.id, cb); });
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind, "lease_not_found");
}

TEST_F(EtcdTest, LeaseKeeperKeepsALeaseAliveAndReportsItsLossOnce) {
  Lease lease = grant(2);
  put("/k/alive", "x", lease.id);
  int lost = 0;
  core::Error why;
  LeaseKeeper* keeper = keep<LeaseKeeper>([&] {
    return std::make_unique<LeaseKeeper>(loop, *client, lease, [&](core::Error e) {
      ++lost;
      why = e;
    });
  });
  std::this_thread::sleep_for(5s);  // two and a half ttls
  EXPECT_TRUE(get("/k/alive"));
  EXPECT_GE(on_loop([&] { return keeper->renewals(); }), 5);
  EXPECT_EQ(on_loop([&] { return lost; }), 0);
  EXPECT_GT(on_loop([&] { return keeper->expires_at(); }), core::Clock::now() + 1s);
  // Revoked behind its back: the next renewal says so.
  ASSERT_TRUE(sync<ResponseHeader>([&](auto cb) { client->revoke(lease.id, cb); }));
  wait_until([&] { return lost > 0; }, 3s);
  drop(nullptr);
  EXPECT_EQ(lost, 1);
  EXPECT_EQ(why.kind, "lease_not_found") << why.describe();
  EXPECT_TRUE(on_loop([&] { return keeper->lost(); }));
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(on_loop([&] { return lost; }), 1) << "told once";

  // Renewals that fail for a whole ttl (etcd stopped): lost locally, when the lease would have expired.
  Lease second = grant(2);
  int lost2 = 0;
  core::Error why2;
  Client* fast = keep<Client>([&] {
    return std::make_unique<Client>(loop, Options{{etcd.endpoint()}, 300ms});
  });
  LeaseKeeper* keeper2 = keep<LeaseKeeper>([&] {
    return std::make_unique<LeaseKeeper>(loop, *fast, second, [&](core::Error e) {
      ++lost2;
      why2 = e;
    });
  });
  std::this_thread::sleep_for(1s);
  core::TimePoint expected = on_loop([&] { return keeper2->expires_at(); });
  etcd.pause();
  wait_until([&] { return lost2 > 0; }, 5s);
  etcd.resume();
  drop(nullptr);
  EXPECT_EQ(lost2, 1);
  EXPECT_EQ(why2.kind, "lease_expired") << why2.describe();
  auto late = core::Clock::now() - expected;
  EXPECT_LT(late, 500ms) << "lost when the lease would have expired, not later";
  drop(keeper2);  // before its client
}

TEST_F(EtcdTest, WatchSeesPutsAndDeletesAndResumesAcrossAnEtcdRestart) {
  std::vector<WatchEvent> events;
  std::optional<WatchError> error;
  WatchRequest req;
  req.key = "/w/";
  req.prefix = true;
  req.prev_kv = true;
  Watch* watch = keep<Watch>([&] {
    return client->watch(
        req, [&](WatchResponse r) { events.insert(events.end(), r.events.begin(), r.events.end()); },
        [&](WatchError e) { error = e; });
  });
  ASSERT_TRUE(wait_until([&] { return watch->next_revision() != 0; }));  // created
  put("/w/a", "1");
  put("/w/b", "2");
  put("/other", "no");
  ASSERT_TRUE(sync<DeleteResult>([&](auto cb) { client->del("/w/a", cb); }));
  ASSERT_TRUE(wait_until([&] { return events.size() >= 3; }));
  drop(nullptr);  // a round trip through the loop: what it wrote is seen here
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type, WatchEvent::Type::kPut);
  EXPECT_EQ(events[0].kv.key, "/w/a");
  EXPECT_EQ(events[1].kv.value, "2");
  EXPECT_EQ(events[2].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(events[2].kv.key, "/w/a");
  ASSERT_TRUE(events[2].prev_kv);
  EXPECT_EQ(events[2].prev_kv->value, "1");

  // etcd restarts; a write lands while the watch is reconnecting (the watch cannot be there yet), and one
  // after.
  etcd.stop();
  std::this_thread::sleep_for(300ms);
  etcd.start();
  put("/w/c", "3");
  EXPECT_TRUE(wait_until([&] { return events.size() >= 4; }));
  put("/w/d", "4");
  EXPECT_TRUE(wait_until([&] { return events.size() >= 5; }));
  std::this_thread::sleep_for(200ms);  // nothing more comes
  EXPECT_GE(on_loop([&] { return watch->connections(); }), 2);
  drop(watch);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[3].kv.key, "/w/c");
  EXPECT_EQ(events[4].kv.key, "/w/d");
  std::set<int64_t> revisions;
  for (const auto& e : events) revisions.insert(e.kv.mod_revision);
  EXPECT_EQ(revisions.size(), events.size()) << "no event twice";
  EXPECT_FALSE(error);
}

TEST_F(EtcdTest, AWatchFromACompactedRevisionReportsCompaction) {
  PutResult a = put("/c/k", "1");
  put("/c/k", "2");
  PutResult c = put("/c/k", "3");
  ASSERT_TRUE(sync<ResponseHeader>([&](auto cb) { client->compact(c.header.revision, cb); }));
  auto old = sync<GetResult>([&](auto cb) { client->get("/c/k", cb, a.header.revision); });
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().kind, "compacted");

  std::vector<WatchEvent> events;
  std::optional<WatchError> error;
  WatchRequest req;
  req.key = "/c/k";
  req.start_revision = a.header.revision;
  Watch* watch = keep<Watch>([&] {
    return client->watch(
        req, [&](WatchResponse r) { events.insert(events.end(), r.events.begin(), r.events.end()); },
        [&](WatchError e) { error = e; });
  });
  wait_until([&] { return error.has_value(); });
  drop(watch);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->error.kind, "compacted") << error->error.describe();
  EXPECT_EQ(error->compact_revision, c.header.revision);
  EXPECT_TRUE(events.empty());

  // From a revision still there: the history since then.
  req.start_revision = c.header.revision;
  keep<Watch>([&] {
    return client->watch(
        req, [&](WatchResponse r) { events.insert(events.end(), r.events.begin(), r.events.end()); },
        [&](WatchError e) { error = e; });
  });
  wait_until([&] { return !events.empty(); });
  drop(nullptr);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kv.value, "3");
}

TEST_F(EtcdTest, ElectionOneWinsTheOtherAfterTheFirstLeaseIsRevokedAndTheDeposedIsFenced) {
  const std::string role = "/cumulo/s/roles/controller";
  Lease la = grant(30);
  Lease lb = grant(30);
  std::optional<core::Result<Leadership, core::Error>> a_won, b_won;
  keep<Campaign>([&] {
    return std::make_unique<Campaign>(*client, role, "host-a", la.id, [&](auto r) { a_won.emplace(r); });
  });
  wait_until([&] { return a_won.has_value(); });
  keep<Campaign>([&] {
    return std::make_unique<Campaign>(*client, role, "host-b", lb.id, [&](auto r) { b_won.emplace(r); });
  });
  std::this_thread::sleep_for(500ms);
  drop(nullptr);
  ASSERT_TRUE(a_won && *a_won) << (a_won ? a_won->error().describe() : "no result");
  EXPECT_FALSE(b_won) << "the second campaigner waits";
  Leadership a_lead = a_won->value();
  EXPECT_EQ(a_lead.value, "host-a");
  EXPECT_EQ(a_lead.lease, la.id);

  auto who = sync<std::optional<Leadership>>([&](auto cb) { leader(*client, role, cb); });
  ASSERT_TRUE(who && *who);
  EXPECT_EQ((*who)->value, "host-a");
  EXPECT_EQ((*who)->term, a_lead.term);

  auto write =
      sync<GuardedResult>([&](auto cb) { guarded_put(*client, a_lead, "/cumulo/s/assign/h1", "a", cb); });
  ASSERT_TRUE(write);
  EXPECT_TRUE(write->succeeded);
  EXPECT_TRUE(write->still_leader);

  // The second campaigner's one-shot attempt loses too, and says who holds it.
  auto lost = sync<CampaignResult>([&](auto cb) { campaign(*client, role, "host-c", lb.id, cb); });
  ASSERT_TRUE(lost);
  EXPECT_FALSE(lost->won);
  EXPECT_EQ(lost->leader.value, "host-a");

  ASSERT_TRUE(sync<ResponseHeader>([&](auto cb) { client->revoke(la.id, cb); }));
  wait_until([&] { return b_won.has_value(); });
  drop(nullptr);
  ASSERT_TRUE(b_won && *b_won) << (b_won ? b_won->error().describe() : "no result");
  Leadership b_lead = b_won->value();
  EXPECT_EQ(b_lead.value, "host-b");
  EXPECT_GT(b_lead.term, a_lead.term);

  // The deposed holder's write is refused and tells it so; the new one's goes through.
  auto fenced =
      sync<GuardedResult>([&](auto cb) { guarded_put(*client, a_lead, "/cumulo/s/assign/h1", "stale", cb); });
  ASSERT_TRUE(fenced);
  EXPECT_FALSE(fenced->succeeded);
  EXPECT_FALSE(fenced->still_leader);
  EXPECT_EQ(get("/cumulo/s/assign/h1")->value, "a");
  auto ok =
      sync<GuardedResult>([&](auto cb) { guarded_put(*client, b_lead, "/cumulo/s/assign/h1", "b", cb); });
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok->succeeded);
  // A guarded transaction whose own compare fails: not succeeded, but still leader.
  auto own = sync<GuardedResult>([&](auto cb) {
    guarded_txn(*client, b_lead,
                TxnRequest{{Compare::value_is("/cumulo/s/assign/h1", Compare::Op::kEqual, "x")},
                           {Operation::put("/cumulo/s/assign/h1", "never")},
                           {}},
                cb);
  });
  ASSERT_TRUE(own);
  EXPECT_FALSE(own->succeeded);
  EXPECT_TRUE(own->still_leader);
  EXPECT_TRUE(own->txn.responses.empty()) << "the guard's read is not handed to the caller";

  // The deposed one cannot resign for the new one; the new one can.
  auto bad_resign = sync<bool>([&](auto cb) { resign(*client, a_lead, cb); });
  ASSERT_TRUE(bad_resign);
  EXPECT_FALSE(*bad_resign);
  auto resigned = sync<bool>([&](auto cb) { resign(*client, b_lead, cb); });
  ASSERT_TRUE(resigned);
  EXPECT_TRUE(*resigned);
  auto none = sync<std::optional<Leadership>>([&](auto cb) { leader(*client, role, cb); });
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
}

TEST_F(EtcdTest, ADeadFirstEndpointIsSkipped) {
  std::string dead = "127.0.0.1:" + std::to_string(free_port());
  Client* two = keep<Client>([&] {
    return std::make_unique<Client>(loop, Options{{dead, etcd.endpoint()}, 2000ms});
  });
  auto p = sync<PutResult>([&](auto cb) { two->put("/e/k", "v", cb); });
  ASSERT_TRUE(p) << p.error().describe();
  auto g = sync<GetResult>([&](auto cb) { two->get("/e/k", cb); });
  ASSERT_TRUE(g && g->kv);
  EXPECT_EQ(g->kv->value, "v");
}

}  // namespace
}  // namespace cumulo::cluster
