// A VPC made of real namespaces (needs root): the policy enforced by the router, out of the members' reach;
// a reload that keeps established connections; clean-up of everything the stack made and nothing else.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <random>
#include <sstream>

#include "core/net.h"
#include "net/net.h"
#include "unit/net/namespaces.h"

namespace cumulo::net {

// For gtest's messages: "denied" instead of the enum's bytes.
void PrintTo(Reach reach, std::ostream* os) {
  *os << reach_name(reach);
}

namespace {

using namespace std::chrono_literals;

constexpr auto kProbeTimeout = 700ms;

using test_namespaces::remove_namespaces_of_dead_runs;
using test_namespaces::run;
using test_namespaces::shell;

IngressRule rule(std::string from, int port) {
  return IngressRule{std::move(from), PortRange{port, port}, Protocol::kTcp, "test"};
}

SecurityGroupSpec group(std::string name, SubnetKind kind, std::vector<IngressRule> ingress) {
  SecurityGroupSpec g;
  g.name = std::move(name);
  g.subnet = kind;
  g.ingress = std::move(ingress);
  g.location = "test";
  return g;
}

// gateway (public, 80 from outside); web (private, 8080 from gateway, egress only to the database); database
// (private, 3306 from web).
NetworkSpec three_tiers(const std::string& stack) {
  NetworkSpec s;
  s.stack = stack;
  s.zones = {"a"};
  s.groups = {group("gateway", SubnetKind::kPublic, {rule("outside", 80)}),
              group("web", SubnetKind::kPrivate, {rule("gateway", 8080)}),
              group("database", SubnetKind::kPrivate, {rule("web", 3306)})};
  s.groups[1].egress_restricted = true;
  s.groups[1].egress = {"database"};
  return s;
}

// What the router dropped as spoofed: the kernel's reverse path filter (IPReversePathFilter in
// /proc/net/netstat) and the ruleset's fib rule, whichever caught it first.
uint64_t antispoof_drops(const std::string& router_ns) {
  uint64_t total = 0;
  std::string netstat = shell("ip netns exec " + router_ns + " cat /proc/net/netstat");
  // Two "TcpExt:" lines: the names, then the values in the same order.
  size_t names = netstat.find("TcpExt:");
  size_t values = netstat.find("TcpExt:", names + 1);
  if (names != std::string::npos && values != std::string::npos) {
    std::istringstream n(netstat.substr(names, netstat.find('\n', names) - names));
    std::istringstream v(netstat.substr(values, netstat.find('\n', values) - values));
    for (std::string name, value; n >> name && v >> value;)
      if (name == "IPReversePathFilter") total += std::stoull(value);
  }
  std::string chain = shell("ip netns exec " + router_ns + " nft list chain inet cumulo forward");
  size_t fib = chain.find("fib saddr . iif oif missing counter packets ");
  if (fib != std::string::npos) total += std::stoull(chain.substr(fib + 44));
  return total;
}

core::Fd listen_in(const std::string& ns, uint32_t address, uint16_t port) {
  core::Fd fd;
  auto r = run_in_namespace(ns, [&] {
    fd =
        core::listen_tcp(*core::SocketAddress::parse(ipv4_text(address) + ":" + std::to_string(port)), false);
  });
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return fd;
}

// A blocking TCP connection made from inside `ns`; the socket stays in that namespace.
core::Fd connect_from(const std::string& ns, uint32_t address, uint16_t port) {
  core::Fd fd;
  auto r = run_in_namespace(ns, [&] {
    core::Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(address);
    if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) fd = std::move(s);
  });
  EXPECT_TRUE(r);
  return fd;
}

core::Fd accept_one(int listen_fd) {
  pollfd p{listen_fd, POLLIN, 0};
  if (::poll(&p, 1, 2000) != 1) return core::Fd();
  int err = 0;
  return core::Fd(core::accept_nonblocking(listen_fd, &err));
}

void drain_accept_queue(int listen_fd) {
  int err = 0;
  for (int fd; (fd = core::accept_nonblocking(listen_fd, &err)) >= 0;) ::close(fd);
}

// Sends `text` on `from` and reads it back on `to` (within a second).
bool carries(int from, int to, const std::string& text) {
  if (::send(from, text.data(), text.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(text.size())) return false;
  std::string got;
  while (got.size() < text.size()) {
    pollfd p{to, POLLIN, 0};
    if (::poll(&p, 1, 1000) != 1) return false;
    char buf[256];
    ssize_t n = ::recv(to, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) return false;
    got.append(buf, static_cast<size_t>(n));
  }
  return got == text;
}

class VpcTest : public testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) FAIL() << "the VPC tests make network namespaces: run unit_net as root";
    if (!run("command -v nft")) FAIL() << "nft is missing: apt-get install -y nftables";
    static bool swept = false;
    if (!swept) remove_namespaces_of_dead_runs();
    swept = true;
    static int counter = 0;
    stack_ = "ut" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  }
  void TearDown() override {
    vpc_.reset();
    (void)remove_stack_network(stack_);
    EXPECT_TRUE(stack_namespaces(stack_).empty());
  }

  void make(const NetworkSpec& spec) {
    auto plan = make_plan(spec);
    ASSERT_TRUE(plan) << plan.error().message;
    auto vpc = Vpc::create(std::move(*plan));
    ASSERT_TRUE(vpc) << vpc.error().message;
    vpc_ = std::move(*vpc);
  }
  Member attach(const std::string& group, const std::string& name) {
    auto m = vpc_->attach(group, "a", name);
    EXPECT_TRUE(m) << m.error().message;
    return m ? *m : Member{};
  }
  Reach probe(const std::string& ns, const Member& to, uint16_t port) {
    return probe_tcp(ns, to.address, port, kProbeTimeout);
  }

  std::string stack_;
  std::unique_ptr<Vpc> vpc_;
};

TEST_F(VpcTest, EnforcesThePolicyOutOfTheMembersReach) {
  const std::string sysctls =
      "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/all/rp_filter "
      "/proc/sys/net/ipv4/icmp_ratelimit /proc/sys/net/ipv4/icmp_ratemask";
  const std::string host_sysctls = shell(sysctls);
  ASSERT_NO_FATAL_FAILURE(make(three_tiers(stack_)));
  // The router's sysctls are set in the router, and the host's are left as they were.
  EXPECT_EQ(shell("ip netns exec " + vpc_->plan().router_ns + " " + sysctls), "1\n1\n0\n0\n");
  EXPECT_EQ(shell(sysctls), host_sysctls);
  const std::string outside = vpc_->plan().outside_ns;
  Member gw = attach("gateway", "gw-1");
  Member web = attach("web", "web-1");
  Member db = attach("database", "db-1");
  ASSERT_EQ(ipv4_text(gw.address), "10.20.0.2");
  ASSERT_EQ(ipv4_text(web.address), "10.20.1.2");
  ASSERT_EQ(ipv4_text(db.address), "10.20.1.3");
  EXPECT_EQ(gw.ns, "cu-" + stack_ + ".gw-1");
  core::Fd gw_listener = listen_in(gw.ns, gw.address, 80);
  core::Fd web_listener = listen_in(web.ns, web.address, 8080);
  core::Fd db_listener = listen_in(db.ns, db.address, 3306);

  EXPECT_EQ(probe(outside, gw, 80), Reach::kConnected);
  EXPECT_EQ(probe(outside, gw, 81), Reach::kDenied);
  EXPECT_EQ(probe(outside, web, 8080), Reach::kDenied);
  EXPECT_EQ(probe(outside, db, 3306), Reach::kDenied);
  EXPECT_EQ(probe(gw.ns, web, 8080), Reach::kConnected);
  EXPECT_EQ(probe(web.ns, db, 3306), Reach::kConnected);
  EXPECT_EQ(probe(gw.ns, db, 3306), Reach::kDenied);
  EXPECT_EQ(probe(web.ns, gw, 80), Reach::kDenied);  // web's egress is restricted to the database
  EXPECT_EQ(probe_tcp(web.ns, vpc_->plan().outside_address, 443, kProbeTimeout), Reach::kDenied);
  // The router itself answers nobody: its input chain drops.
  EXPECT_EQ(probe_tcp(gw.ns, vpc_->plan().subnets[0].router_address, 22, kProbeTimeout), Reach::kTimeout);

  // An instance that is root in its own namespace and flushes its rules gains nothing: they are not there.
  ASSERT_TRUE(run("ip netns exec " + gw.ns + " nft flush ruleset"));
  EXPECT_EQ(probe(gw.ns, db, 3306), Reach::kDenied);

  // Taking the web member's address does not make the gateway member the web tier: the router drops
  // packets whose source is not routed back through the link they came in by.
  const std::string g = ipv4_text(vpc_->plan().subnets[0].router_address);
  ASSERT_TRUE(run("ip -n " + gw.ns + " addr flush dev eth0"));
  ASSERT_TRUE(run("ip -n " + gw.ns + " addr add " + ipv4_text(web.address) + "/32 dev eth0"));
  ASSERT_TRUE(run("ip -n " + gw.ns + " route replace default via " + g + " dev eth0 onlink"));
  // The router does not answer ARP from a spoofed source either; a member that is root pins the router's
  // hardware address itself, and its packets reach the router.
  std::string link = shell("ip -n " + vpc_->plan().router_ns + " -o link show " + gw.router_interface);
  size_t ether = link.find("link/ether ");
  ASSERT_NE(ether, std::string::npos) << link;
  const std::string mac = link.substr(ether + 11, 17);
  ASSERT_TRUE(run("ip -n " + gw.ns + " neigh replace " + g + " lladdr " + mac + " dev eth0 nud permanent"));
  // (A forwarded SYN would time out too, the answer going to the real web member: the drop counters tell.)
  const uint64_t dropped_before = antispoof_drops(vpc_->plan().router_ns);
  EXPECT_EQ(probe(gw.ns, db, 3306), Reach::kTimeout);
  EXPECT_GT(antispoof_drops(vpc_->plan().router_ns), dropped_before);
  EXPECT_EQ(probe(gw.ns, web, 8080), Reach::kRefused);  // its own address now: local, and nothing listens
  ASSERT_TRUE(run("ip -n " + gw.ns + " addr flush dev eth0"));
  ASSERT_TRUE(run("ip -n " + gw.ns + " addr add " + ipv4_text(gw.address) + "/32 dev eth0"));
  ASSERT_TRUE(run("ip -n " + gw.ns + " route replace default via " + g + " dev eth0 onlink"));
  EXPECT_EQ(probe(gw.ns, web, 8080), Reach::kConnected);

  // The whole matrix agrees with the policy.
  std::vector<std::pair<std::string, uint16_t>> listening{{"gw-1", 80}, {"web-1", 8080}, {"db-1", 3306}};
  auto rows = check(vpc_->plan(), vpc_->members(), listening, kProbeTimeout);
  EXPECT_EQ(rows.size(),
            3u * 3u + 3u * 2u * 3u);  // outside to 3 members, each member to the 2 others; 3 ports
  for (const CheckRow& r : rows) EXPECT_TRUE(r.ok) << render_matrix(rows);
  std::printf("%s", render_matrix(rows).c_str());

  // A reload that moves web's port from 8080 to 8081 and lets the gateway reach the database: the established
  // connection keeps working, new connections follow the new rules.
  drain_accept_queue(web_listener.get());
  core::Fd client = connect_from(gw.ns, web.address, 8080);
  ASSERT_TRUE(client);
  core::Fd server = accept_one(web_listener.get());
  ASSERT_TRUE(server);
  ASSERT_TRUE(carries(client.get(), server.get(), "before"));
  NetworkSpec changed = three_tiers(stack_);
  changed.groups[1].ingress[0].ports = {8081, 8081};
  changed.groups[2].ingress.push_back(rule("gateway", 3306));
  auto plan = make_plan(changed);
  ASSERT_TRUE(plan);
  auto reloaded = vpc_->reload(std::move(*plan));
  ASSERT_TRUE(reloaded) << reloaded.error().message;
  EXPECT_TRUE(carries(client.get(), server.get(), "after the reload"));
  EXPECT_TRUE(carries(server.get(), client.get(), "and back"));
  EXPECT_EQ(probe(gw.ns, web, 8080), Reach::kDenied);
  EXPECT_EQ(probe(gw.ns, web, 8081), Reach::kRefused);  // allowed now, nothing listens
  EXPECT_EQ(probe(gw.ns, db, 3306), Reach::kConnected);
  rows = check(vpc_->plan(), vpc_->members(), listening, kProbeTimeout);
  for (const CheckRow& r : rows) EXPECT_TRUE(r.ok) << render_matrix(rows);

  // Destroy removes every namespace of the stack.
  EXPECT_NE(shell("ip netns list").find("cu-" + stack_ + ".router"), std::string::npos);
  client.reset();
  server.reset();
  vpc_->destroy();
  EXPECT_TRUE(stack_namespaces(stack_).empty());
  EXPECT_EQ(shell("ip netns list").find("cu-" + stack_ + "."), std::string::npos) << shell("ip netns list");
}

TEST_F(VpcTest, ACheckThatDiffersFromThePolicySaysSo) {
  ASSERT_NO_FATAL_FAILURE(make(three_tiers(stack_)));
  Member gw = attach("gateway", "gw-1");
  Member web = attach("web", "web-1");
  core::Fd web_listener = listen_in(web.ns, web.address, 8080);
  // A plan that claims the outside reaches web: the router (with the real rules) disagrees.
  NetworkSpec claimed = three_tiers(stack_);
  claimed.groups[1].subnet = SubnetKind::kPublic;
  claimed.groups[1].ingress.push_back(rule("outside", 8080));
  auto plan = make_plan(claimed);
  ASSERT_TRUE(plan);
  auto rows = check(*plan, vpc_->members(), {{"web-1", 8080}}, kProbeTimeout);
  size_t bad = 0;
  for (const CheckRow& r : rows)
    if (!r.ok) {
      ++bad;
      EXPECT_EQ(r.from, "outside");
      EXPECT_EQ(r.to, "web-1");
    }
  EXPECT_GE(bad, 1u);
  std::string table = render_matrix(rows);
  EXPECT_EQ(table.find("MISMATCH"), table.find('\n') + 1) << table;  // mismatches first
  EXPECT_NE(table.find("differs from the policy"), std::string::npos);
}

TEST_F(VpcTest, AttachFillsTheBlockAndReusesAddresses) {
  NetworkSpec spec = three_tiers(stack_);
  spec.groups[0].max_members_per_zone = 2;
  ASSERT_NO_FATAL_FAILURE(make(spec));
  Member a = attach("gateway", "gw-1");
  Member b = attach("gateway", "gw-2");
  EXPECT_EQ(b.address, a.address + 1);
  EXPECT_NE(a.router_interface, b.router_interface);
  EXPECT_EQ(a.router_interface.size(), 9u);
  auto full = vpc_->attach("gateway", "a", "gw-3");
  ASSERT_FALSE(full);
  EXPECT_NE(full.error().message.find("are all taken"), std::string::npos) << full.error().message;
  EXPECT_FALSE(vpc_->attach("gateway", "a", "gw-1"));  // the name is taken
  EXPECT_FALSE(vpc_->attach("gateway", "z", "gw-9"));  // no such zone
  EXPECT_FALSE(vpc_->attach("nope", "a", "gw-9"));
  EXPECT_FALSE(vpc_->attach("gateway", "a", "router"));
  // Detached and attached again at once, under the same name: the lowest free address, a working link.
  ASSERT_TRUE(vpc_->detach("gw-1"));
  EXPECT_FALSE(vpc_->detach("gw-1"));
  Member again = attach("gateway", "gw-1");
  EXPECT_EQ(again.address, a.address);
  core::Fd l = listen_in(again.ns, again.address, 80);
  EXPECT_EQ(probe_tcp(vpc_->plan().outside_ns, again.address, 80, kProbeTimeout), Reach::kConnected);
  EXPECT_EQ(vpc_->members().size(), 2u);
}

TEST_F(VpcTest, ReloadRefusesMovedBlocks) {
  ASSERT_NO_FATAL_FAILURE(make(three_tiers(stack_)));
  NetworkSpec moved = three_tiers(stack_);
  moved.groups[1].max_members_per_zone = 2;  // web's block grows, database's moves up by one
  auto plan = make_plan(moved);
  ASSERT_TRUE(plan);
  auto r = vpc_->reload(std::move(*plan));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("group 'web' in zone a moved"), std::string::npos) << r.error().message;
  NetworkSpec added = three_tiers(stack_);
  added.groups.push_back(group("cache", SubnetKind::kPrivate, {rule("web", 11211)}));
  plan = make_plan(added);
  ASSERT_TRUE(plan);
  EXPECT_TRUE(vpc_->reload(std::move(*plan)));
  EXPECT_TRUE(vpc_->attach("cache", "a", "cache-1"));
}

TEST_F(VpcTest, RemovesLeftoversOfTheStackAndNothingElse) {
  const std::string leftover = "cu-" + stack_ + ".gw-1";
  const std::string other_stack = "cu-" + stack_ + "-db.router";  // stack "<stack>-db", not this one
  ASSERT_TRUE(run("ip netns add " + leftover));
  ASSERT_TRUE(run("ip netns add " + other_stack));
  ASSERT_NO_FATAL_FAILURE(make(three_tiers(stack_)));
  auto names = stack_namespaces(stack_);
  EXPECT_EQ(names, (std::vector<std::string>{"cu-" + stack_ + ".outside", "cu-" + stack_ + ".router"}));
  EXPECT_NE(shell("ip netns list").find(other_stack), std::string::npos);
  vpc_.reset();
  EXPECT_NE(shell("ip netns list").find(other_stack), std::string::npos);
  EXPECT_TRUE(run("ip netns delete " + other_stack));
}

// Random policies over four groups (rules from groups, from CIDRs and from outside, egress restriction,
// internet egress), each checked path by path on real namespaces: the ruleset the router runs and allowed()
// must agree everywhere.
TEST_F(VpcTest, RandomPoliciesAgreeWithTheRouter) {
  std::mt19937 rng(20261207);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  const std::vector<std::string> names{"g0", "g1", "g2", "g3"};
  const std::vector<int> ports{22, 80, 3306, 8080};
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    NetworkSpec spec;
    spec.stack = stack_ + "r" + std::to_string(round);
    spec.zones = {"a"};
    for (const std::string& name : names) {
      SecurityGroupSpec g = group(name, pick(2) == 0 ? SubnetKind::kPublic : SubnetKind::kPrivate, {});
      g.max_members_per_zone = 2;
      g.internet_egress = pick(3) == 0;
      g.egress_restricted = pick(2) == 0;
      for (const std::string& other : names)
        if (pick(2) == 0) g.egress.push_back(other);
      spec.groups.push_back(g);
    }
    for (SecurityGroupSpec& g : spec.groups) {
      for (int n = pick(4); n > 0; --n) {
        std::string from;
        switch (pick(4)) {
          case 0:
            from = g.subnet == SubnetKind::kPublic ? "outside" : names[static_cast<size_t>(pick(4))];
            break;
          case 1:
            from = "10.20.0.0/24";  // every public group
            break;
          case 2:
            from = "10.20.1.2/31";  // the first private group's two addresses
            break;
          default:
            from = names[static_cast<size_t>(pick(4))];
        }
        IngressRule r = rule(from, ports[static_cast<size_t>(pick(4))]);
        if (pick(3) == 0) r.ports.hi = r.ports.lo + 1;
        g.ingress.push_back(r);
      }
    }
    auto plan = make_plan(spec);
    ASSERT_TRUE(plan) << plan.error().message;
    auto vpc = Vpc::create(std::move(*plan));
    ASSERT_TRUE(vpc) << vpc.error().message;
    std::vector<core::Fd> listeners;
    std::vector<std::pair<std::string, uint16_t>> listening;
    for (const std::string& name : names) {
      auto m = (*vpc)->attach(name, "a", name + "-1");
      ASSERT_TRUE(m) << m.error().message;
      for (int port : ports) {
        listeners.push_back(listen_in(m->ns, m->address, static_cast<uint16_t>(port)));
        listening.emplace_back(m->name, static_cast<uint16_t>(port));
      }
    }
    listeners.push_back(listen_in((*vpc)->plan().outside_ns, (*vpc)->plan().outside_address, 443));
    listening.emplace_back("outside", 443);
    auto rows = check((*vpc)->plan(), (*vpc)->members(), listening, kProbeTimeout);
    size_t bad = 0;
    for (const CheckRow& r : rows) bad += r.ok ? 0 : 1;
    EXPECT_EQ(bad, 0u) << router_ruleset((*vpc)->plan()) << render_matrix(rows);
    listeners.clear();
    (*vpc)->destroy();
    EXPECT_TRUE(stack_namespaces(spec.stack).empty());
  }
}

TEST(RunInNamespace, RefusesAnUnknownNamespace) {
  bool ran = false;
  auto r = run_in_namespace("cu-no-such-namespace.x", [&] { ran = true; });
  ASSERT_FALSE(r);
  EXPECT_FALSE(ran);
  EXPECT_NE(r.error().message.find("/run/netns/cu-no-such-namespace.x"), std::string::npos);
  EXPECT_EQ(probe_tcp("cu-no-such-namespace.x", 0x7f000001, 1, 100ms), Reach::kError);
}

// connect_from: the socket is made in the named namespace (its own loopback answers, the host's does not) and
// the calling thread is back in its own namespace afterwards; an unknown namespace is refused up front.
TEST_F(VpcTest, ConnectFromMakesTheSocketInTheNamespace) {
  const std::string ns = "cu-" + stack_ + ".member";
  ASSERT_TRUE(run("ip netns add " + ns + " && ip -n " + ns + " link set lo up"));
  core::Fd inside;
  ASSERT_TRUE(run_in_namespace(
      ns, [&] { inside = core::listen_tcp(*core::SocketAddress::parse("127.0.0.1:0"), false); }));
  const uint16_t port = core::SocketAddress::from_fd_local(inside.get())->port();
  auto own_namespace = [] {
    char buf[64] = {};
    return ::readlink("/proc/thread-self/ns/net", buf, sizeof buf - 1) > 0 ? std::string(buf) : std::string();
  };
  const std::string before = own_namespace();

  Result<ConnectFunction> connect = ::cumulo::net::connect_from(ns);
  ASSERT_TRUE(connect) << connect.error().message;
  int error = 0;
  core::Fd fd = (*connect)(*core::SocketAddress::parse("127.0.0.1:" + std::to_string(port)), &error);
  ASSERT_TRUE(fd) << error;
  pollfd p{fd.get(), POLLOUT, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  int so_error = -1;
  socklen_t len = sizeof so_error;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len);
  EXPECT_EQ(so_error, 0) << "connected to the namespace's own loopback";
  EXPECT_EQ(own_namespace(), before);
  // The same port on the host's loopback: nothing listens there (a listener made here would be another one).
  core::Fd host_fd =
      core::connect_tcp(*core::SocketAddress::parse("127.0.0.1:" + std::to_string(port)), &error);
  if (host_fd) {
    pollfd h{host_fd.get(), POLLOUT, 0};
    ::poll(&h, 1, 2000);
    ::getsockopt(host_fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len);
    EXPECT_EQ(so_error, ECONNREFUSED);
  }
  EXPECT_FALSE(::cumulo::net::connect_from("cu-no-such-namespace.x"));
}

}  // namespace
}  // namespace cumulo::net
