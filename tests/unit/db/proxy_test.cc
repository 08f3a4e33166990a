#include "db/internal/proxy.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <thread>

namespace cumulo::db {
namespace {

// A backend "instance": a listening socket whose accepted connections the test handles by hand.
struct FakeInstance {
  core::Fd listener = core::listen_tcp(*core::SocketAddress::parse("127.0.0.1:0"), false);
  core::SocketAddress address() const { return *core::SocketAddress::from_fd_local(listener.get()); }
  // The next connection accepted within `ms`, or an invalid Fd.
  core::Fd accept_within(int ms) {
    pollfd p{listener.get(), POLLIN, 0};
    if (::poll(&p, 1, ms) != 1) return core::Fd();
    return core::Fd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  }
};

core::Fd connect_blocking(const core::SocketAddress& a) {
  core::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::connect(fd.get(), a.sa(), a.length), 0);
  return fd;
}

std::string read_some(int fd, int ms = 2000) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, ms) != 1) return "<timeout>";
  char buf[256];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  return n <= 0 ? "<closed>" : std::string(buf, static_cast<size_t>(n));
}

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto any = *core::SocketAddress::parse("127.0.0.1:0");
    worker_ = std::make_unique<ProxyWorker>(loop_, any, any, std::chrono::milliseconds(3000));
    writer_ = worker_->local_address(EndpointKind::kWriter);
    reader_ = worker_->local_address(EndpointKind::kReader);
    thread_ = std::thread([this] { loop_.run(); });
  }
  void TearDown() override {
    on_loop([this] { worker_.reset(); });
    loop_.stop();
    thread_.join();
  }
  template <typename F>
  void on_loop(F f) {
    std::promise<void> done;
    loop_.post([&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }
  void route(std::string writer, std::vector<std::string> readers, std::vector<std::string> cut = {},
             bool hold = false) {
    Routes r;
    r.writer = writer;
    r.hold_writer = hold;
    r.cut = std::move(cut);
    r.reader = ReaderRoute(std::move(readers), writer);
    r.addresses = {{"a", a_.address()}, {"b", b_.address()}, {"c", c_.address()}};
    on_loop([&] { worker_->set_routes(r); });
  }

  core::EventLoop loop_;
  std::unique_ptr<ProxyWorker> worker_;
  core::SocketAddress writer_, reader_;
  std::thread thread_;
  FakeInstance a_, b_, c_;
};

TEST_F(ProxyTest, WriterGoesToThePrimaryAndRelaysBothWays) {
  route("a", {"b", "c"});
  core::Fd client = connect_blocking(writer_);
  core::Fd server = a_.accept_within(2000);
  ASSERT_TRUE(server);
  // The server speaks first, as MariaDB's handshake does.
  ASSERT_EQ(::send(server.get(), "hello", 5, 0), 5);
  EXPECT_EQ(read_some(client.get()), "hello");
  ASSERT_EQ(::send(client.get(), "query", 5, 0), 5);
  EXPECT_EQ(read_some(server.get()), "query");
  // A large transfer crosses several buffers.
  std::string big(300'000, 'x');
  std::thread sender(
      [&] { ASSERT_EQ(::send(server.get(), big.data(), big.size(), 0), static_cast<ssize_t>(big.size())); });
  size_t got = 0;
  while (got < big.size()) {
    std::string s = read_some(client.get());
    ASSERT_NE(s, "<timeout>");
    ASSERT_NE(s, "<closed>");
    got += s.size();
  }
  sender.join();
  EXPECT_EQ(got, big.size());
  ::close(server.release());
  EXPECT_EQ(read_some(client.get()), "<closed>");
}

TEST_F(ProxyTest, ReaderBalancesOverReplicasAndFallsBackToThePrimary) {
  route("a", {"b", "c"});
  std::vector<core::Fd> clients;
  for (int i = 0; i < 4; ++i) clients.push_back(connect_blocking(reader_));
  int on_b = 0, on_c = 0;
  for (int i = 0; i < 4; ++i) {
    if (b_.accept_within(200)) ++on_b;
    if (c_.accept_within(200)) ++on_c;
  }
  EXPECT_EQ(on_b, 2);
  EXPECT_EQ(on_c, 2);
  route("a", {});
  core::Fd late = connect_blocking(reader_);
  EXPECT_TRUE(a_.accept_within(2000));
}

TEST_F(ProxyTest, DemotedPrimaryConnectionsAreClosed) {
  route("a", {"b"});
  core::Fd client = connect_blocking(writer_);
  core::Fd server = a_.accept_within(2000);
  ASSERT_TRUE(server);
  core::Fd reader_client = connect_blocking(reader_);
  core::Fd reader_server = b_.accept_within(2000);
  ASSERT_TRUE(reader_server);
  // "c" is the new primary: writer connections to "a" are closed, the reader on "b" stays.
  route("c", {"b"});
  EXPECT_EQ(read_some(client.get()), "<closed>");
  ASSERT_EQ(::send(reader_server.get(), "ok", 2, 0), 2);
  EXPECT_EQ(read_some(reader_client.get()), "ok");
  // "b" stopped replicating: its reader connections are cut.
  route("c", {}, {"b"});
  EXPECT_EQ(read_some(reader_client.get()), "<closed>");
}

TEST_F(ProxyTest, AFailoverClosesWriterConnectionsAndNewOnesWait) {
  route("a", {});
  core::Fd client = connect_blocking(writer_);
  core::Fd server = a_.accept_within(2000);
  ASSERT_TRUE(server);
  route("", {});
  EXPECT_EQ(read_some(client.get()), "<closed>");
  core::Fd waiting = connect_blocking(writer_);
  EXPECT_FALSE(a_.accept_within(300));
  route("c", {});
  EXPECT_TRUE(c_.accept_within(2000));
}

TEST_F(ProxyTest, AnUnreachablePrimaryKeepsItsClientsWhileNewOnesWait) {
  route("a", {});
  core::Fd client = connect_blocking(writer_);
  core::Fd server = a_.accept_within(2000);
  ASSERT_TRUE(server);
  route("a", {}, {}, /*hold=*/true);
  core::Fd waiting = connect_blocking(writer_);
  EXPECT_FALSE(a_.accept_within(300));
  ASSERT_EQ(::send(server.get(), "still", 5, 0), 5);
  EXPECT_EQ(read_some(client.get()), "still");
  // Reachable again: the waiting client goes through.
  route("a", {});
  EXPECT_TRUE(a_.accept_within(2000));
}

TEST_F(ProxyTest, WriterClientsWaitForANewPrimary) {
  route("", {"b"});
  core::Fd client = connect_blocking(writer_);
  EXPECT_FALSE(a_.accept_within(300));
  route("c", {"b"});
  core::Fd server = c_.accept_within(2000);
  ASSERT_TRUE(server);
  ASSERT_EQ(::send(server.get(), "hi", 2, 0), 2);
  EXPECT_EQ(read_some(client.get()), "hi");
}

TEST_F(ProxyTest, RefusedBackendIsRetriedOnTheNextRoute) {
  // "a" has stopped listening (a dead primary not yet noticed): the client waits, then reaches "c".
  a_.listener.reset();
  route("a", {});
  core::Fd client = connect_blocking(writer_);
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  route("c", {});
  core::Fd server = c_.accept_within(2000);
  ASSERT_TRUE(server);
  ASSERT_EQ(::send(server.get(), "hi", 2, 0), 2);
  EXPECT_EQ(read_some(client.get()), "hi");
}

TEST_F(ProxyTest, WaitingClientsGiveUpAfterTheLimit) {
  route("", {});
  core::Fd client = connect_blocking(writer_);
  EXPECT_EQ(read_some(client.get(), 5000), "<closed>");
}

}  // namespace
}  // namespace cumulo::db
