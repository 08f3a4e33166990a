// cluster::Client against fake etcd gateways (http::Server on loopback): which failures go to the next
// endpoint, and a watch that resumes after its stream ends and reports compaction. The real etcd is in
// tests/integration/test_cluster.py.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cluster/cluster.h"
#include "cluster/wire/etcd_json.h"
#include "core/event_loop.h"
#include "core/net.h"
#include "http/server.h"

namespace cumulo::cluster {
namespace {

using namespace std::chrono_literals;
using wire::json;

void run_loop(core::EventLoop& loop, std::chrono::milliseconds limit = 10s) {
  bool timed_out = false;
  core::Timer guard(loop, [&] {
    timed_out = true;
    loop.stop();
  });
  guard.arm(limit);
  loop.run();
  EXPECT_FALSE(timed_out) << "the event loop did not finish within " << limit.count() << " ms";
}

std::string closed_endpoint() {
  core::Fd probe = core::listen_tcp(*core::SocketAddress::parse("127.0.0.1:0"), false);
  return core::SocketAddress::from_fd_local(probe.get())->to_string();
}

// A fake etcd gateway: answers every request with `answer(path, body)` and records what it got.
class FakeEtcd {
 public:
  using Answer = std::function<http::Response(const std::string& path, const json& body)>;
  FakeEtcd(core::EventLoop& loop, Answer answer) : answer_(std::move(answer)) {
    http::ServerOptions o;
    o.listen = *core::SocketAddress::parse("127.0.0.1:0");
    server_ = std::make_unique<http::Server>(loop, o, [this](http::Request& req, http::Responder respond) {
      json body = json::parse(req.body, nullptr, false);
      requests.emplace_back(req.path, body);
      respond(answer_(req.path, body));
    });
    server_->start();
  }
  std::string endpoint() const { return server_->local_address().to_string(); }
  std::vector<std::pair<std::string, json>> requests;

 private:
  Answer answer_;
  std::unique_ptr<http::Server> server_;
};

http::Response ok_put(const std::string&, const json&) {
  return http::Response::json(200, R"({"header":{"revision":"7"}})");
}

http::Response unavailable(const std::string&, const json&) {
  return http::Response::json(
      503, R"({"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14})");
}

TEST(ClusterClient, AConnectFailureGoesToTheNextEndpointEvenForAPut) {
  core::EventLoop loop;
  FakeEtcd etcd(loop, ok_put);
  Client client(loop, Options{{closed_endpoint(), etcd.endpoint()}, 2000ms});
  core::Result<PutResult, core::Error> got = core::Err(core::Error{});
  client.put(
      std::string("k\0ey", 4), "value",
      [&](auto r) {
        got = std::move(r);
        loop.stop();
      },
      42);
  run_loop(loop);
  ASSERT_TRUE(got) << got.error().describe();
  EXPECT_EQ(got->header.revision, 7);
  ASSERT_EQ(etcd.requests.size(), 1u);
  EXPECT_EQ(etcd.requests[0].first, "/v3/kv/put");
  EXPECT_EQ(etcd.requests[0].second["key"], wire::base64_encode(std::string("k\0ey", 4)));
  EXPECT_EQ(etcd.requests[0].second["lease"], "42");
}

TEST(ClusterClient, AfterEtcdTookTheRequestOnlyReadsGoToTheNextEndpoint) {
  core::EventLoop loop;
  FakeEtcd sick(loop, unavailable);
  FakeEtcd well(loop, [](const std::string& path, const json&) {
    if (path == "/v3/kv/range")
      return http::Response::json(200,
                                  R"({"header":{"revision":"9"},"kvs":[{"key":"aw==","value":"dg=="}]})");
    return ok_put(path, {});
  });
  Client client(loop, Options{{sick.endpoint(), well.endpoint()}, 2000ms});
  std::vector<core::Error> errors;
  std::optional<GetResult> read;
  client.txn(TxnRequest{{Compare::missing("k")}, {Operation::put("k", "v")}, {}}, [&](auto r) {
    ASSERT_FALSE(r);
    errors.push_back(r.error());
    client.get("k", [&](auto g) {
      ASSERT_TRUE(g) << g.error().describe();
      read = std::move(g.value());
      loop.stop();
    });
  });
  run_loop(loop);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].kind, "unavailable");
  EXPECT_NE(errors[0].message.find("no leader"), std::string::npos) << errors[0].message;
  EXPECT_EQ(sick.requests.size(), 1u) << "the txn went to the first endpoint only";
  ASSERT_TRUE(read);
  ASSERT_TRUE(read->kv);
  EXPECT_EQ(read->kv->value, "v");
  // The read went to the endpoint after the one that failed the txn, and the one that failed was not asked
  // again.
  EXPECT_EQ(well.requests.size(), 1u);
  EXPECT_EQ(sick.requests.size(), 1u);
}

TEST(ClusterClient, EveryEndpointFailingGivesTheLastError) {
  core::EventLoop loop;
  Client client(loop, Options{{closed_endpoint(), closed_endpoint()}, 1000ms});
  std::optional<core::Error> err;
  client.range("/", {}, [&](auto r) {
    ASSERT_FALSE(r);
    err = r.error();
    loop.stop();
  });
  run_loop(loop);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->kind, "connect");
  EXPECT_NE(err->message.find("/v3/kv/range"), std::string::npos) << err->message;
  EXPECT_THROW(Client(loop, Options{{"etcd.example:2379"}, 1000ms}), std::invalid_argument);
  EXPECT_THROW(Client(loop, Options{}), std::invalid_argument);
}

// A chunked answer whose pieces the test pushes.
struct Stream {
  std::vector<std::string> queue;
  bool ended = false;
  std::function<void()> wake;
  void push(std::string s) {
    queue.push_back(std::move(s));
    if (wake) wake();
  }
  void end() {
    ended = true;
    if (wake) wake();
  }
  static http::Response response(std::shared_ptr<Stream> self) {
    http::Response r;
    r.headers.emplace_back("Content-Type", "application/json");
    r.body_waker = [self](std::function<void()> w) { self->wake = std::move(w); };
    r.body_producer = [self](char* buf, size_t cap) -> size_t {
      if (self->queue.empty()) return self->ended ? 0 : http::kBodyNotYet;
      std::string& f = self->queue.front();
      size_t n = std::min(cap, f.size());
      std::memcpy(buf, f.data(), n);
      f.erase(0, n);
      if (f.empty()) self->queue.erase(self->queue.begin());
      return n;
    };
    return r;
  }
};

TEST(ClusterWatch, ResumesAfterTheStreamEndsAndReportsCompaction) {
  core::EventLoop loop;
  std::vector<std::shared_ptr<Stream>> streams;
  FakeEtcd etcd(loop, [&](const std::string&, const json&) {
    streams.push_back(std::make_shared<Stream>());
    auto s = streams.back();
    if (streams.size() == 1) {
      // Created at revision 10, then one event at 11 cut in the middle of a string, then the end.
      s->push(
          "{\"result\":{\"header\":{\"revision\":\"10\"},\"created\":true}}\n{\"result\":{\"header\":{\"rev");
      s->push(
          "ision\":\"11\"},\"events\":[{\"kv\":{\"key\":\"L3AvYQ==\",\"mod_revision\":\"11\",\"value\":\"MQ=="
          "\"}}]}}\n");
      s->end();
    } else {
      s->push("{\"result\":{\"header\":{\"revision\":\"12\"},\"created\":true}}\n");
      s->push(
          "{\"result\":{\"header\":{\"revision\":\"12\"},\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":"
          "\"L3AvYQ==\","
          "\"mod_revision\":\"12\"}}]}}{\"result\":{\"canceled\":true,\"compact_revision\":\"30\"}}");
    }
    return Stream::response(s);
  });
  Client client(loop, Options{{etcd.endpoint()}, 2000ms});
  std::vector<WatchEvent> events;
  std::optional<WatchError> error;
  WatchRequest req;
  req.key = "/p/";
  req.prefix = true;
  std::unique_ptr<Watch> watch = client.watch(
      req, [&](WatchResponse r) { events.insert(events.end(), r.events.begin(), r.events.end()); },
      [&](WatchError e) {
        error = e;
        watch.reset();  // allowed inside the callback
        loop.stop();
      });
  run_loop(loop);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, WatchEvent::Type::kPut);
  EXPECT_EQ(events[0].kv.key, "/p/a");
  EXPECT_EQ(events[0].kv.value, "1");
  EXPECT_EQ(events[1].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(events[1].kv.mod_revision, 12);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->error.kind, "compacted");
  EXPECT_EQ(error->compact_revision, 30);
  ASSERT_EQ(etcd.requests.size(), 2u);
  const json& first = etcd.requests[0].second["create_request"];
  EXPECT_EQ(first["key"], wire::base64_encode("/p/"));
  EXPECT_EQ(first["range_end"], wire::base64_encode("/p0"));
  EXPECT_FALSE(first.contains("start_revision"));
  // The second connection resumes after the last event delivered: no event lost, none repeated.
  EXPECT_EQ(etcd.requests[1].second["create_request"]["start_revision"], "12");
}

TEST(ClusterWatch, DestroyingAWatchClosesItsStream) {
  core::EventLoop loop;
  std::shared_ptr<Stream> stream;
  FakeEtcd etcd(loop, [&](const std::string&, const json&) {
    stream = std::make_shared<Stream>();
    stream->push("{\"result\":{\"header\":{\"revision\":\"3\"},\"created\":true}}\n");
    return Stream::response(stream);
  });
  Client client(loop, Options{{etcd.endpoint()}, 2000ms});
  int callbacks = 0;
  auto watch = client.watch(
      WatchRequest{"k"}, [&](WatchResponse) { ++callbacks; }, [&](WatchError) { ++callbacks; });
  core::Timer stop(loop, [&] {
    EXPECT_EQ(watch->next_revision(), 4);
    EXPECT_EQ(watch->connections(), 1);
    watch.reset();
    stream->push("{\"result\":{\"header\":{\"revision\":\"4\"},\"events\":[{\"kv\":{\"key\":\"aw==\"}}]}}");
  });
  stop.arm(100ms);
  core::Timer end(loop, [&] { loop.stop(); });
  end.arm(200ms);
  run_loop(loop);
  EXPECT_EQ(callbacks, 0);
}

}  // namespace
}  // namespace cumulo::cluster
