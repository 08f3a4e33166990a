// net::Netlink on real namespaces (needs root): addresses and routes changed through rtnetlink, in the
// namespace the socket was opened for whatever thread calls, and an elastic address moved between two holders
// while a client in a third namespace connects to it.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/net.h"
#include "net/net.h"
#include "unit/net/namespaces.h"

namespace cumulo::net {

// For gtest's messages.
void PrintTo(const InterfaceAddress& a, std::ostream* os) {
  *os << a.interface << " " << ipv4_text(a.address) << "/" << a.prefix;
}
void PrintTo(const RouteTarget& t, std::ostream* os) {
  *os << (t.via != 0 ? "via " + ipv4_text(t.via) + " " : "") << "dev " << t.interface;
}

namespace {

using test_namespaces::run;
using test_namespaces::shell;

// The elastic address of these tests (TEST-NET-2, RFC 5737).
const uint32_t kElastic = *parse_ipv4("198.51.100.10");
constexpr uint16_t kPort = 8080;

uint32_t ip(const char* text) {
  return *parse_ipv4(text);
}

std::string error_of(const Result<void>& r) {
  return r ? "" : r.error().message;
}

// The namespaces of a keeper's world: a router linked by a veth to each of two holders (a and b) and to a
// client, on subnets 10.99.1.0/24 (a), 10.99.2.0/24 (b) and 10.99.3.0/24 (client), the router the .1 of each.
class NetlinkTest : public testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) FAIL() << "the Netlink tests make network namespaces: run unit_net as root";
    static bool swept = false;
    if (!swept) test_namespaces::remove_namespaces_of_dead_runs();
    swept = true;
    static int counter = 0;
    stack_ = "ut" + std::to_string(::getpid()) + "-nl" + std::to_string(counter++);
    router_ = "cu-" + stack_ + ".router";
    a_ = "cu-" + stack_ + ".a";
    b_ = "cu-" + stack_ + ".b";
    client_ = "cu-" + stack_ + ".client";
    for (const std::string& ns : {router_, a_, b_, client_})
      ASSERT_TRUE(run("ip netns add " + ns + " && ip -n " + ns + " link set lo up")) << ns;
    ASSERT_TRUE(run("ip netns exec " + router_ + " sysctl -qw net.ipv4.ip_forward=1"));
    int subnet = 1;
    for (auto [ns, router_if] : {std::pair{a_, "ra"}, std::pair{b_, "rb"}, std::pair{client_, "rc"}}) {
      const std::string net = "10.99." + std::to_string(subnet++) + ".";
      ASSERT_TRUE(
          run("ip -n " + router_ + " link add " + router_if + " type veth peer name eth0 netns " + ns));
      ASSERT_TRUE(run("ip -n " + router_ + " addr add " + net + "1/24 dev " + router_if + " && ip -n " +
                      router_ + " link set " + router_if + " up"));
      ASSERT_TRUE(run("ip -n " + ns + " addr add " + net + "2/24 dev eth0 && ip -n " + ns +
                      " link set eth0 up && ip -n " + ns + " route add default via " + net + "1"));
    }
  }
  void TearDown() override {
    (void)remove_stack_network(stack_);
    EXPECT_TRUE(stack_namespaces(stack_).empty());
  }

  std::unique_ptr<Netlink> open(const std::string& ns) {
    auto nl = Netlink::open(ns);
    EXPECT_TRUE(nl) << nl.error().message;
    return nl ? std::move(*nl) : nullptr;
  }

  // A listener on every address of `ns` (so on the elastic one whenever the namespace holds it).
  core::Fd listen_in(const std::string& ns) {
    core::Fd fd;
    auto r = run_in_namespace(ns, [&] {
      fd = core::listen_tcp(*core::SocketAddress::parse("0.0.0.0:" + std::to_string(kPort)), false);
    });
    EXPECT_TRUE(r) << error_of(r);
    return fd;
  }

  // A TCP connection from the client namespace to the elastic address (blocking, so it is established or
  // failed on return).
  core::Fd connect_to_elastic() {
    core::Fd fd;
    auto r = run_in_namespace(client_, [&] {
      core::Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      timeval timeout{2, 0};
      ::setsockopt(s.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(kPort);
      sa.sin_addr.s_addr = htonl(kElastic);
      if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) fd = std::move(s);
    });
    EXPECT_TRUE(r) << error_of(r);
    return fd;
  }

  // Whether a connection waits on `listen_fd` within `timeout_ms`; takes it.
  static bool accepts(int listen_fd, int timeout_ms) {
    pollfd p{listen_fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return false;
    int err = 0;
    int fd = core::accept_nonblocking(listen_fd, &err);
    if (fd >= 0) ::close(fd);
    return fd >= 0;
  }

  std::string stack_, router_, a_, b_, client_;
};

bool has(const std::vector<InterfaceAddress>& list, const InterfaceAddress& a) {
  return std::find(list.begin(), list.end(), a) != list.end();
}

TEST_F(NetlinkTest, AddsListsAndRemovesAddressesIdempotently) {
  auto nl = open(a_);
  ASSERT_TRUE(nl);
  ASSERT_TRUE(nl->add_address("eth0", kElastic, 32));
  EXPECT_TRUE(nl->add_address("eth0", kElastic, 32)) << "adding an address that is there succeeds";
  auto list = nl->addresses();
  ASSERT_TRUE(list) << list.error().message;
  EXPECT_TRUE(has(*list, {"eth0", kElastic, 32}));
  EXPECT_TRUE(has(*list, {"eth0", ip("10.99.1.2"), 24}));
  EXPECT_TRUE(has(*list, {"lo", ip("127.0.0.1"), 8}));
  EXPECT_EQ(std::count_if(list->begin(), list->end(), [](const auto& a) { return a.address == kElastic; }),
            1);
  // What iproute2 sees: scope global, no prefix route, in this namespace and no other.
  const std::string shown = shell("ip -n " + a_ + " -o addr show dev eth0");
  EXPECT_NE(shown.find("inet 198.51.100.10/32 scope global noprefixroute eth0"), std::string::npos) << shown;
  EXPECT_EQ(shell("ip -n " + b_ + " -o addr show").find("198.51.100.10"), std::string::npos);

  // A shorter prefix does not route its subnet to the interface either.
  ASSERT_TRUE(nl->add_address("eth0", ip("192.0.2.5"), 24));
  EXPECT_EQ(shell("ip -n " + a_ + " route show 192.0.2.0/24"), "");
  EXPECT_TRUE(has(*nl->addresses(), {"eth0", ip("192.0.2.5"), 24}));
  ASSERT_TRUE(nl->remove_address("eth0", ip("192.0.2.5"), 24));

  ASSERT_TRUE(nl->remove_address("eth0", kElastic, 32));
  EXPECT_TRUE(nl->remove_address("eth0", kElastic, 32)) << "removing an address that is not there succeeds";
  list = nl->addresses();
  ASSERT_TRUE(list);
  EXPECT_FALSE(has(*list, {"eth0", kElastic, 32}));
  EXPECT_TRUE(has(*list, {"eth0", ip("10.99.1.2"), 24}));
}

TEST_F(NetlinkTest, ErrorsNameTheNamespaceTheOperationAndTheKernelsAnswer) {
  auto nl = open(a_);
  ASSERT_TRUE(nl);
  auto added = nl->add_address("eth9", kElastic, 32);
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error().kind, "network");
  EXPECT_EQ(added.error().message, a_ + ": add 198.51.100.10/32 on eth9: No such device");
  auto removed = nl->remove_address("eth9", kElastic, 32);
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().message, a_ + ": remove 198.51.100.10/32 from eth9: No such device");
  auto routed = nl->replace_route(kElastic, 32, ip("10.99.1.1"), "eth9");
  ASSERT_FALSE(routed);
  EXPECT_EQ(routed.error().message,
            a_ + ": replace route 198.51.100.10/32 via 10.99.1.1 dev eth9: No such device");
  EXPECT_FALSE(nl->add_address("", kElastic, 32));
  EXPECT_FALSE(nl->add_address("an-interface-name-too-long", kElastic, 32));
  EXPECT_FALSE(nl->add_address("eth0", kElastic, 33));

  // A next hop that no link reaches: the kernel's reason comes with its errno.
  auto unreachable = nl->replace_route(kElastic, 32, ip("10.200.0.1"), "eth0");
  ASSERT_FALSE(unreachable);
  EXPECT_EQ(
      unreachable.error().message.rfind(a_ + ": replace route 198.51.100.10/32 via 10.200.0.1 dev eth0: ", 0),
      0u)
      << unreachable.error().message;
  EXPECT_NE(unreachable.error().message.find(" ("), std::string::npos)
      << "the extended ack: " << unreachable.error().message;

  auto missing = Netlink::open("cu-" + stack_ + ".no-such-namespace");
  ASSERT_FALSE(missing);
  EXPECT_EQ(
      missing.error().message.rfind("cu-" + stack_ + ".no-such-namespace: open an rtnetlink socket: ", 0), 0u)
      << missing.error().message;
}

TEST_F(NetlinkTest, ReplaceRouteMovesAPrefixFromOneNextHopToAnother) {
  auto nl = open(router_);
  ASSERT_TRUE(nl);
  auto none = nl->route(kElastic, 32);
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_EQ(*none, std::nullopt);

  ASSERT_TRUE(nl->replace_route(kElastic, 32, ip("10.99.1.2"), "ra"));
  EXPECT_EQ(nl->route(kElastic, 32).value(), (RouteTarget{ip("10.99.1.2"), "ra"}));
  EXPECT_EQ(shell("ip -n " + router_ + " route show 198.51.100.10/32"),
            "198.51.100.10 via 10.99.1.2 dev ra proto static \n");

  ASSERT_TRUE(nl->replace_route(kElastic, 32, ip("10.99.2.2"), "rb"));
  EXPECT_EQ(nl->route(kElastic, 32).value(), (RouteTarget{ip("10.99.2.2"), "rb"}));
  // Replaced, not added beside the first.
  EXPECT_EQ(shell("ip -n " + router_ + " route show 198.51.100.10/32"),
            "198.51.100.10 via 10.99.2.2 dev rb proto static \n");

  // Without a next hop: on the link, scope link.
  ASSERT_TRUE(nl->replace_route(kElastic, 32, 0, "ra"));
  EXPECT_EQ(nl->route(kElastic, 32).value(), (RouteTarget{0, "ra"}));
  EXPECT_EQ(shell("ip -n " + router_ + " route show 198.51.100.10/32"),
            "198.51.100.10 dev ra proto static scope link \n");

  // The exact route, not the longest match: no 198.51.100.0/24, though its .10 is routed; the connected route
  // of a subnet is found.
  EXPECT_EQ(nl->route(ip("198.51.100.0"), 24).value(), std::nullopt);
  EXPECT_EQ(nl->route(ip("10.99.3.0"), 24).value(), (RouteTarget{0, "rc"}));

  ASSERT_TRUE(nl->remove_route(kElastic, 32));
  EXPECT_EQ(nl->route(kElastic, 32).value(), std::nullopt);
  EXPECT_EQ(shell("ip -n " + router_ + " route show 198.51.100.10/32"), "");
  EXPECT_TRUE(nl->remove_route(kElastic, 32)) << "removing a route that is not there succeeds";
}

// The socket belongs to the namespace it was opened for: called from a thread in another namespace, it still
// acts there; opened with "" it belongs to the namespace of the thread that opened it.
TEST_F(NetlinkTest, ActsOnItsOwnNamespaceFromAThreadInAnother) {
  auto in_a = open(a_);
  ASSERT_TRUE(in_a);
  const std::string host_addresses = shell("ip -o addr show");
  Result<void> added = core::Err(core::Error{});
  ASSERT_TRUE(run_in_namespace(b_, [&] { added = in_a->add_address("eth0", kElastic, 32); }));
  ASSERT_TRUE(added) << error_of(added);
  EXPECT_NE(shell("ip -n " + a_ + " -o addr show dev eth0").find("198.51.100.10/32"), std::string::npos);
  EXPECT_EQ(shell("ip -n " + b_ + " -o addr show").find("198.51.100.10"), std::string::npos);
  EXPECT_EQ(shell("ip -o addr show"), host_addresses);

  std::unique_ptr<Netlink> in_b;
  ASSERT_TRUE(run_in_namespace(b_, [&] { in_b = open(""); }));
  ASSERT_TRUE(in_b);
  auto list = in_b->addresses();
  ASSERT_TRUE(list) << list.error().message;
  EXPECT_TRUE(has(*list, {"eth0", ip("10.99.2.2"), 24}));
  EXPECT_FALSE(has(*list, {"eth0", kElastic, 32}));
  // Its errors name the namespace as /proc does, since it has no name of its own here.
  auto failed = in_b->add_address("eth9", kElastic, 32);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().message.rfind("net:[", 0), 0u) << failed.error().message;
}

// What the feature is for: the elastic address moved from holder a to holder b (b takes it, the router points
// it at b, a lets it go) and back with a route on the link alone; each time a client in a third namespace
// reaches the new holder, and only it.
TEST_F(NetlinkTest, AConnectToTheMovedAddressReachesTheNewHolder) {
  auto router = open(router_), a = open(a_), b = open(b_);
  ASSERT_TRUE(router && a && b);
  core::Fd listener_a = listen_in(a_), listener_b = listen_in(b_);
  ASSERT_TRUE(listener_a && listener_b);

  ASSERT_TRUE(a->add_address("eth0", kElastic, 32));
  ASSERT_TRUE(router->replace_route(kElastic, 32, ip("10.99.1.2"), "ra"));
  core::Fd first = connect_to_elastic();
  ASSERT_TRUE(first) << "no connection to the first holder";
  EXPECT_TRUE(accepts(listener_a.get(), 2000));
  EXPECT_FALSE(accepts(listener_b.get(), 0));

  ASSERT_TRUE(b->add_address("eth0", kElastic, 32));
  ASSERT_TRUE(router->replace_route(kElastic, 32, ip("10.99.2.2"), "rb"));
  ASSERT_TRUE(a->remove_address("eth0", kElastic, 32));
  core::Fd second = connect_to_elastic();
  ASSERT_TRUE(second) << "no connection to the new holder";
  EXPECT_TRUE(accepts(listener_b.get(), 2000));
  EXPECT_FALSE(accepts(listener_a.get(), 0));

  // Back to a, routed on the link (the router finds the holder by ARP).
  ASSERT_TRUE(a->add_address("eth0", kElastic, 32));
  ASSERT_TRUE(router->replace_route(kElastic, 32, 0, "ra"));
  ASSERT_TRUE(b->remove_address("eth0", kElastic, 32));
  core::Fd third = connect_to_elastic();
  ASSERT_TRUE(third) << "no connection to the holder reached on the link";
  EXPECT_TRUE(accepts(listener_a.get(), 2000));
  EXPECT_FALSE(accepts(listener_b.get(), 0));
}

// How long a move's three calls take, for docs/network.md: printed, not asserted (the machine is shared).
TEST_F(NetlinkTest, HowLongAMoveTakes) {
  auto router = open(router_), a = open(a_), b = open(b_);
  ASSERT_TRUE(router && a && b);
  ASSERT_TRUE(a->add_address("eth0", kElastic, 32));
  ASSERT_TRUE(router->replace_route(kElastic, 32, ip("10.99.1.2"), "ra"));
  using Clock = std::chrono::steady_clock;
  Clock::duration add{}, replace{}, remove{};
  constexpr int kMoves = 500;
  Netlink* holder = a.get();
  Netlink* taker = b.get();
  for (int i = 0; i < kMoves; ++i) {
    const bool to_b = taker == b.get();
    auto t0 = Clock::now();
    ASSERT_TRUE(taker->add_address("eth0", kElastic, 32));
    auto t1 = Clock::now();
    ASSERT_TRUE(
        router->replace_route(kElastic, 32, ip(to_b ? "10.99.2.2" : "10.99.1.2"), to_b ? "rb" : "ra"));
    auto t2 = Clock::now();
    ASSERT_TRUE(holder->remove_address("eth0", kElastic, 32));
    auto t3 = Clock::now();
    add += t1 - t0;
    replace += t2 - t1;
    remove += t3 - t2;
    std::swap(holder, taker);
  }
  auto us = [](Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count() / kMoves; };
  std::printf(
      "%d moves, mean per call: add_address %.1f us, replace_route %.1f us, remove_address %.1f us; "
      "a move %.1f us\n",
      kMoves, us(add), us(replace), us(remove), us(add + replace + remove));
}

}  // namespace
}  // namespace cumulo::net
