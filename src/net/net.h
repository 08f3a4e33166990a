// A stack's VPC on one machine: network namespaces, routed veth links and one nftables ruleset in a router
// namespace (docs/network.md, "How it works").
//
// What is guaranteed:
// - Every packet between two members (processes) of a stack, and between a member and the "outside" namespace
//   that stands for the internet, crosses the forward chain of the stack's router namespace: a member's only
//   interface is a point-to-point veth whose other end is in the router. Members cannot change the router's
//   rules, so a member that flushes its own namespace's ruleset, or takes another address, gains nothing.
// - The router's ruleset is the one `router_ruleset` renders from a Plan, and `allowed` answers what it
//   enforces: the two follow the same order of tests (plan.cc), and `check` compares them path by path on
//   real namespaces.
// - A ruleset is replaced in one nftables transaction: connections that were established stay up.
// - Nothing is made in the host's namespace: every namespace of stack S is named `cu-S.*`, and removing them
//   (`remove_stack_network`) removes every link, address, route and rule the stack had, and nothing else.
//
// Planning (`make_plan`, `router_ruleset`, `allowed`) is pure code. `Vpc`, `remove_stack_network`,
// `probe_tcp`, `run_in_namespace` and `check` need root (CAP_SYS_ADMIN and CAP_NET_ADMIN), iproute2's `ip`
// and nftables' `nft`.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/net.h"
#include "core/result.h"

namespace cumulo::net {

template <typename T>
using Result = core::Result<T, core::Error>;

// An IPv4 prefix; `base` is in host byte order with the host bits cleared.
struct Ipv4Cidr {
  uint32_t base = 0;
  int prefix = 32;

  // "10.20.0.0/16", or an address alone as a /32. Host bits set ("10.20.0.1/16") are refused: they are
  // usually a typo for another prefix. nullopt on anything else.
  static std::optional<Ipv4Cidr> parse(std::string_view text);
  std::string str() const;  // "10.20.0.0/16"
  bool contains(uint32_t address) const;
  bool contains(const Ipv4Cidr& other) const;
  bool overlaps(const Ipv4Cidr& other) const;
  uint64_t size() const { return uint64_t{1} << (32 - prefix); }
  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  uint32_t last() const { return base | ~mask(); }
  // The n-th address of the prefix (0 is the base); n must be below size().
  uint32_t host(uint32_t n) const { return base + n; }
  bool operator==(const Ipv4Cidr&) const = default;
};

std::string ipv4_text(uint32_t address);  // "10.20.0.2"
// Four decimal octets without leading zeros ("010.0.0.1" is refused: inet_aton would read it as octal).
std::optional<uint32_t> parse_ipv4(std::string_view text);

enum class SubnetKind { kPublic, kPrivate };
std::string_view subnet_kind_name(SubnetKind kind);  // "public", "private"

enum class Protocol { kTcp, kUdp };

// Ports lo..hi inclusive. int, not uint16_t, so that a stack file's 70000 reaches make_plan and is refused
// with its line.
struct PortRange {
  int lo = 0;
  int hi = 0;
  bool contains(int port) const { return port >= lo && port <= hi; }
};

// The name a rule gives to the internet: the outside namespace and its CIDR.
inline constexpr std::string_view kOutside = "outside";

struct IngressRule {
  std::string from;  // a group's name, "outside", or a CIDR ("198.51.100.0/24")
  PortRange ports;
  Protocol protocol = Protocol::kTcp;
  std::string location;  // "stack.yaml:12:5", named by every refusal of this rule
};

struct SecurityGroupSpec {
  std::string name;  // letters, digits, '-' and '_', at most 32; not "outside"
  SubnetKind subnet = SubnetKind::kPrivate;
  int max_members_per_zone = 1;  // the size of the group's address block in each zone
  std::vector<IngressRule> ingress;
  // When set, members may open connections only to the groups in `egress` (and to the outside when
  // `internet_egress`), whatever the destination's ingress allows.
  bool egress_restricted = false;
  std::vector<std::string> egress;
  // Whether members may open connections to the outside (the internet), any protocol and port.
  bool internet_egress = false;
  std::string location;
};

// An elastic IP (docs/elastic-ips.md): a /32 outside the VPC's subnets that the router routes to whichever
// member of `group` holds it. Rules name it through its group: it is one more destination address of the
// group, and a source address of the group when its holder answers from it.
struct ElasticAddress {
  std::string name;  // letters, digits, '-' and '_', at most 32
  uint32_t address = 0;
  std::string group;  // a public group
  std::string location;
};

struct NetworkSpec {
  std::string stack;              // letters, digits, '-' and '_', at most 64 (the stack file's rule)
  Ipv4Cidr cidr{0x0a140000, 16};  // 10.20.0.0/16
  int subnet_prefix = 24;
  Ipv4Cidr outside{0xcb007100, 24};  // 203.0.113.0/24 (TEST-NET-3, RFC 5737)
  std::vector<std::string> zones;    // at least one; per zone a public then a private subnet, in this order
  std::vector<SecurityGroupSpec> groups;
  std::vector<ElasticAddress> elastic_addresses;
  std::string location;  // of the network section, for refusals that belong to no rule or group
};

struct Subnet {
  std::string zone;
  SubnetKind kind = SubnetKind::kPrivate;
  Ipv4Cidr cidr;
  uint32_t router_address = 0;  // .1: the gateway of every member of the subnet
  bool operator==(const Subnet&) const = default;
};

// A group's addresses in one zone: first .. first + count - 1, inside the zone's subnet of the group's kind.
struct AddressBlock {
  std::string group, zone;
  uint32_t first = 0;
  uint32_t count = 0;
  bool operator==(const AddressBlock&) const = default;
};

struct Plan {
  NetworkSpec spec;
  std::vector<Subnet> subnets;          // zone by zone, public then private
  std::vector<AddressBlock> blocks;     // group by group (spec order), zone by zone
  std::string router_ns;                // "cu-STACK.router"
  std::string outside_ns;               // "cu-STACK.outside"
  uint32_t outside_address = 0;         // the outside namespace's address: outside CIDR .2
  uint32_t outside_router_address = 0;  // the router's side of the outside link: outside CIDR .1

  const SecurityGroupSpec* group(std::string_view name) const;
  const Subnet* subnet(std::string_view zone, SubnetKind kind) const;
  const AddressBlock* block(std::string_view group, std::string_view zone) const;
  // The group whose blocks (or elastic addresses) hold `address`, or nullptr.
  const SecurityGroupSpec* group_of(uint32_t address) const;
  const ElasticAddress* elastic_address(std::string_view name) const;
};

// Carves the subnets and the groups' address blocks and checks the rules. Refuses, naming the location of the
// rule or group at fault (or of the spec): a bad stack or group name, no zone or a repeated one, a VPC CIDR
// that overlaps the outside CIDR, subnets that do not fit the VPC, a subnet too small for the blocks of its
// groups, a rule naming an unknown group or a bad CIDR, a port out of 1..65535 or lo > hi, an egress entry
// naming an unknown group, and ingress from "outside" into a private group (the internet does not reach
// private subnets; an allow-list of CIDRs may, for SSH say); an elastic address that is inside the VPC or
// outside CIDR, repeated, or of an unknown or private group.
Result<Plan> make_plan(const NetworkSpec& spec);

// The complete `nft -f` input for the router namespace: `table inet cumulo`, deleted and made again in the
// same transaction, so that applying it replaces the previous ruleset atomically.
std::string router_ruleset(const Plan& plan);

// Whether the router lets a new connection from `from` (a group or "outside") to `to` (a group or "outside")
// on `port` through: the destination's ingress allows it, and an egress-restricted source lists the
// destination (the outside: `internet_egress`). A rule from a CIDR counts for a group when the CIDR holds
// every address of the group's blocks, and for the outside when it holds the outside namespace's address.
// Exactly what `router_ruleset` encodes.
bool allowed(const Plan& plan, std::string_view from, std::string_view to, uint16_t port,
             Protocol protocol = Protocol::kTcp);
// The same for one source address (a CIDR rule is decided by that address): what `check` expects.
bool allowed_from(const Plan& plan, std::string_view from, uint32_t from_address, std::string_view to,
                  uint16_t port, Protocol protocol = Protocol::kTcp);

// One process's place in the VPC.
struct Member {
  std::string name;  // letters, digits, '-' and '_', at most 64; not "router" or "outside"
  std::string ns;    // "cu-STACK.NAME"
  std::string group, zone;
  uint32_t address = 0;          // A/32 on eth0 in `ns`, default route via the subnet's router address
  std::string router_interface;  // the veth's end in the router namespace: "v" and 8 hex digits
};

// Owns the namespaces of one stack. Not thread-safe: used from the supervisor's thread.
class Vpc {
 public:
  // Removes what a previous run of the stack left (remove_stack_network), then makes the router and outside
  // namespaces, their link, and applies the ruleset.
  static Result<std::unique_ptr<Vpc>> create(Plan plan);
  ~Vpc();
  Vpc(const Vpc&) = delete;
  Vpc& operator=(const Vpc&) = delete;

  // A namespace for member `name` of `group` in `zone`, with the lowest free address of the group's block
  // there. Refused when the block is full, the name is taken, or the group or zone is unknown.
  Result<Member> attach(const std::string& group, const std::string& zone, const std::string& name);
  // Deletes the member's namespace (and with it the veth pair and the router's route to it).
  Result<void> detach(const std::string& name);
  // Applies `plan`'s ruleset in one transaction. Refused, with nothing changed, when the plan is of another
  // stack, its subnets differ, or a block of the current plan moved or went (new groups may be added).
  Result<void> reload(Plan plan);

  const Plan& plan() const { return plan_; }
  std::vector<Member> members() const { return members_; }
  // Removes every namespace of the stack; also done by the destructor. Idempotent.
  void destroy();

 private:
  explicit Vpc(Plan plan) : plan_(std::move(plan)) {}
  Result<void> build();

  Plan plan_;
  std::vector<Member> members_;
  bool destroyed_ = false;
};

// Deletes every namespace named `cu-STACK.*` (and so every veth pair, address, route and ruleset in them).
// Used at stop, and at start after a crash. Nothing else is touched.
Result<void> remove_stack_network(const std::string& stack);
// The names of the namespaces of `stack` that exist now (read from /run/netns).
std::vector<std::string> stack_namespaces(const std::string& stack);

// The outcome of a TCP connect. kDenied: the router rejected it (EHOSTUNREACH, ENETUNREACH, EACCES, EPERM);
// kRefused: it went through and nothing listens (ECONNREFUSED).
enum class Reach { kConnected, kRefused, kDenied, kTimeout, kError };
std::string_view reach_name(Reach reach);  // "connected", "refused", "denied", "timeout", "error"

// Connects from inside namespace `ns` to address:port and closes again.
Reach probe_tcp(const std::string& ns, uint32_t address, uint16_t port, std::chrono::milliseconds timeout);

// Runs `fn` on a short-lived thread that has entered namespace `ns` (setns applies to the calling thread
// only), and waits for it. Sockets `fn` opens belong to `ns` for their whole life. An exception of `fn` is
// rethrown here. Refused when the namespace cannot be entered.
Result<void> run_in_namespace(const std::string& ns, const std::function<void()>& fn);

// Starts non-blocking TCP connects (as core::connect_tcp) from inside namespace `ns`, on the calling thread:
// the thread enters `ns`, makes the socket and returns to the namespace it was in, and the socket stays in
// `ns` for its whole life. For an event loop's client whose connections must pass the router's rules from one
// member (http::ClientOptions::connect). Both namespaces are opened now; refused when either cannot be.
using ConnectFunction = std::function<core::Fd(const core::SocketAddress& to, int* error)>;
Result<ConnectFunction> connect_from(const std::string& ns);

struct CheckRow {
  std::string from, from_group;  // member names and groups; "outside" for the outside namespace
  std::string to, to_group;
  uint16_t port = 0;
  bool expected = false;  // allowed_from()
  bool listening = false;
  Reach observed = Reach::kError;
  // Allowed: connected (refused when nothing listens there). Denied: denied, not merely a timeout.
  bool ok = false;
};

// Probes the full matrix in parallel: from every member and from the outside namespace, to every other member
// (and to the outside namespace when `listening` names "outside"), on every port that an ingress rule names
// (both ends of a range) and every port in `listening` (member name, port).
std::vector<CheckRow> check(const Plan& plan, const std::vector<Member>& members,
                            const std::vector<std::pair<std::string, uint16_t>>& listening,
                            std::chrono::milliseconds timeout);
// The rows as a table for a terminal, the differing rows first marked "MISMATCH", then a summary line.
std::string render_matrix(const std::vector<CheckRow>& rows);

// Addresses and routes of one namespace through rtnetlink, for moves that must be fast and start no process:
// an elastic IP taken by one gateway namespace and routed to it from the router (docs/network.md,
// "Elastic IP moves: rtnetlink directly").

// An IPv4 address on an interface, as the kernel reports it.
struct InterfaceAddress {
  std::string interface;
  uint32_t address = 0;
  int prefix = 32;
  bool operator==(const InterfaceAddress&) const = default;
};

// Where a route points: the next hop (0: none, directly on the link) and the interface ("" for a route
// without one: blackhole, unreachable, or multipath).
struct RouteTarget {
  uint32_t via = 0;
  std::string interface;
  bool operator==(const RouteTarget&) const = default;
};

// Addresses and routes of one network namespace through rtnetlink (libmnl): a NETLINK_ROUTE socket made
// inside the namespace (run_in_namespace), which stays there for its life, so each call is one request and
// the kernel's answer (two with the lookup of the interface's index by name), with no process started, from
// any thread in any namespace. Not thread-safe. Calls block, but only for as long as the kernel takes to
// answer: rtnetlink handles a request inside the sending call.
//
// An interface, abstract so that code that moves addresses can be tested with a fake, without root; open()
// makes the real one. Changes need CAP_NET_ADMIN in the namespace, and a named namespace CAP_SYS_ADMIN to
// enter. The socket holds its namespace: one deleted with `ip netns delete` lives on, with its interfaces,
// until the socket is closed.
//
// Errors are kind "network", their message "NAMESPACE: OPERATION: what the kernel said", as
// "cu-s.gateway-a: add 198.51.100.10/32 on eth0: No such device", with the kernel's extended ack in
// parentheses when it sends one.
class Netlink {
 public:
  // "": the caller's namespace (named "net:[INODE]" in errors). Refused when the namespace cannot be entered.
  static Result<std::unique_ptr<Netlink>> open(const std::string& ns);
  virtual ~Netlink() = default;

  // Scope global, IFA_F_NOPREFIXROUTE. Idempotent: adding an address that is there, or removing one that is
  // not, succeeds.
  virtual Result<void> add_address(const std::string& interface, uint32_t address, int prefix) = 0;
  virtual Result<void> remove_address(const std::string& interface, uint32_t address, int prefix) = 0;
  // Every IPv4 address of the namespace, in the kernel's order.
  virtual Result<std::vector<InterfaceAddress>> addresses() = 0;
  // NLM_F_CREATE|NLM_F_REPLACE in the main table: one atomic change of where `destination/prefix` goes, never
  // a moment without a route. RTPROT_STATIC; scope universe with a next hop (`via`), link scope without one.
  virtual Result<void> replace_route(uint32_t destination, int prefix, uint32_t via,
                                     const std::string& interface) = 0;
  // The main table's route to `destination/prefix`, whatever points it has. Absent: success.
  virtual Result<void> remove_route(uint32_t destination, int prefix) = 0;
  // The main table's route to exactly `destination/prefix`, if there is one (not the longest match).
  virtual Result<std::optional<RouteTarget>> route(uint32_t destination, int prefix) = 0;
};

}  // namespace cumulo::net
