// The namespaces, links and ruleset of one stack, made with iproute2 and nftables (docs/network.md).
#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "core/log.h"
#include "net/internal/command.h"
#include "net/internal/names.h"
#include "net/net.h"

namespace cumulo::net {

namespace {

using internal::ip_batch;
using internal::run_command;

bool valid_name(std::string_view name) {
  return internal::valid_name(name, 64);
}

core::Error refused(std::string message) {
  return core::Error{"network", std::move(message), core::ErrorSource::kClient, core::Retry::kNo};
}

// FNV-1a: the router's end of a member's veth is "v" and 8 hex digits of it (IFNAMSIZ allows 15 characters,
// fewer than a member's name may have).
uint32_t fnv1a(std::string_view s) {
  uint32_t h = 2166136261u;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return h;
}

std::string interface_name(std::string_view member, int salt) {
  std::string key(member);
  if (salt > 0) key += "#" + std::to_string(salt);
  char buf[16];
  std::snprintf(buf, sizeof buf, "v%08x", fnv1a(key));
  return buf;
}

// Writes a sysctl of the calling thread's network namespace (/proc/sys/net follows the thread's namespace).
bool write_sysctl(const std::string& path, const char* value) {
  std::ofstream f(path);
  f << value;
  f.flush();
  return static_cast<bool>(f);
}

// A point-to-point link from the router to namespace `ns`: `router_if` in the router with `gateway`/32 and a
// route to `address`; eth0 in `ns` with `address`/32 and a default route to `gateway`. `routed` is what the
// router routes through the link: the member's address, or the outside CIDR.
Result<void> link(const Plan& plan, const std::string& ns, const std::string& router_if, uint32_t gateway,
                  uint32_t address, const std::string& routed) {
  const std::string g = ipv4_text(gateway);
  auto r =
      ip_batch(plan.router_ns, "link add " + router_if + " type veth peer name eth0 netns " + ns + "\n" +
                                   "addr add " + g + "/32 dev " + router_if + "\n" + "link set " + router_if +
                                   " up\n" + "route add " + routed + " dev " + router_if + "\n");
  if (!r) return r;
  return ip_batch(ns, "link set lo up\naddr add " + ipv4_text(address) + "/32 dev eth0\nlink set eth0 up\n" +
                          "route add default via " + g + " dev eth0 onlink\n");
}

Result<void> apply_ruleset(const Plan& plan) {
  auto r = run_command({"ip", "netns", "exec", plan.router_ns, "nft", "-f", "-"}, router_ruleset(plan));
  if (!r) return core::Err(r.error());
  return {};
}

}  // namespace

std::vector<std::string> stack_namespaces(const std::string& stack) {
  std::vector<std::string> out;
  const std::string prefix = internal::namespace_prefix(stack);
  DIR* dir = ::opendir("/run/netns");
  if (dir == nullptr) return out;
  while (dirent* e = ::readdir(dir)) {
    std::string_view name(e->d_name);
    if (name.size() > prefix.size() && name.substr(0, prefix.size()) == prefix) out.emplace_back(name);
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

Result<void> remove_stack_network(const std::string& stack) {
  if (!valid_name(stack)) return core::Err(refused("stack name '" + stack + "' is not one cumulo makes"));
  std::string failures;
  for (const std::string& ns : stack_namespaces(stack)) {
    auto r = run_command({"ip", "netns", "delete", ns});
    if (!r) failures += (failures.empty() ? "" : "; ") + r.error().message;
  }
  if (!failures.empty())
    return core::Err(core::Error{"network", "removing the namespaces of stack " + stack + ": " + failures,
                                 core::ErrorSource::kInternal, core::Retry::kNo});
  return {};
}

Result<std::unique_ptr<Vpc>> Vpc::create(Plan plan) {
  std::unique_ptr<Vpc> vpc(new Vpc(std::move(plan)));
  auto r = vpc->build();
  if (!r) {
    vpc->destroy();
    return core::Err(r.error());
  }
  return vpc;
}

Result<void> Vpc::build() {
  const Plan& p = plan_;
  if (auto r = remove_stack_network(p.spec.stack); !r) return r;
  for (const std::string& ns : {p.router_ns, p.outside_ns})
    if (auto r = run_command({"ip", "netns", "add", ns}); !r) return core::Err(r.error());
  // rp_filter=1 (strict): a packet whose source address is not routed back through the interface it came in
  // by is dropped, so a member that takes another address gets nowhere. The value for an interface is the
  // higher of "all" and its own, and "default" is what new interfaces start with.
  //
  // icmp_ratemask=0 and icmp_ratelimit=0: each denied connection gets its ICMP "administratively prohibited"
  // at once. The kernel's defaults let about 6 a second through per peer and 1000 a second (bursts of 50) in
  // all, and the others would look like timeouts to a client (and to `check`). The router only answers
  // sources that passed the reverse path test, so the answers go back to the member or outside address that
  // sent the packet.
  std::string sysctl_failure;
  auto in_router = run_in_namespace(p.router_ns, [&] {
    for (auto [path, value] : {std::pair{"/proc/sys/net/ipv4/ip_forward", "1"},
                               std::pair{"/proc/sys/net/ipv4/conf/all/rp_filter", "1"},
                               std::pair{"/proc/sys/net/ipv4/conf/default/rp_filter", "1"},
                               std::pair{"/proc/sys/net/ipv4/icmp_ratelimit", "0"},
                               std::pair{"/proc/sys/net/ipv4/icmp_ratemask", "0"}})
      if (!write_sysctl(path, value)) sysctl_failure += std::string(path) + " ";
  });
  if (!in_router) return in_router;
  if (!sysctl_failure.empty())
    return core::Err(core::Error{"network", "cannot write " + sysctl_failure + "in namespace " + p.router_ns,
                                 core::ErrorSource::kInternal, core::Retry::kNo});
  if (auto r = ip_batch(p.router_ns, "link set lo up\n"); !r) return r;
  // The ruleset goes in before any member is linked: no moment without it.
  if (auto r = apply_ruleset(p); !r) return r;
  return link(p, p.outside_ns, "outside", p.outside_router_address, p.outside_address, p.spec.outside.str());
}

Vpc::~Vpc() {
  destroy();
}

void Vpc::destroy() {
  if (destroyed_) return;
  destroyed_ = true;
  members_.clear();
  if (auto r = remove_stack_network(plan_.spec.stack); !r)
    core::log_warn("net", "removing the stack's namespaces failed", {{"error", r.error().message}});
}

Result<Member> Vpc::attach(const std::string& group, const std::string& zone, const std::string& name) {
  if (destroyed_) return core::Err(refused("the network of stack " + plan_.spec.stack + " was destroyed"));
  if (!valid_name(name) || name == "router" || name == kOutside)
    return core::Err(
        refused("member name '" + name +
                "': expected letters, digits, '-' and '_', at most 64, not 'router' or 'outside'"));
  for (const Member& m : members_)
    if (m.name == name) return core::Err(refused("member '" + name + "' is attached already"));
  const SecurityGroupSpec* g = plan_.group(group);
  if (g == nullptr) return core::Err(refused("member '" + name + "': no security group '" + group + "'"));
  const AddressBlock* block = plan_.block(group, zone);
  const Subnet* subnet = plan_.subnet(zone, g->subnet);
  if (block == nullptr || subnet == nullptr)
    return core::Err(refused("member '" + name + "': no zone '" + zone + "' in the network"));
  uint32_t address = 0;
  for (uint32_t i = 0; i < block->count && address == 0; ++i) {
    uint32_t a = block->first + i;
    if (std::none_of(members_.begin(), members_.end(), [&](const Member& m) { return m.address == a; }))
      address = a;
  }
  if (address == 0)
    return core::Err(core::Error{"network",
                                 "member '" + name + "': the " + std::to_string(block->count) +
                                     " addresses of group '" + group + "' in zone " + zone +
                                     " are all taken: raise its max members per zone",
                                 core::ErrorSource::kClient, core::Retry::kNo});
  Member m{name, internal::namespace_prefix(plan_.spec.stack) + name, group, zone, address, {}};
  for (int salt = 0; m.router_interface.empty(); ++salt) {
    std::string candidate = interface_name(name, salt);
    if (candidate != "outside" && std::none_of(members_.begin(), members_.end(), [&](const Member& o) {
          return o.router_interface == candidate;
        }))
      m.router_interface = candidate;
  }
  if (auto r = run_command({"ip", "netns", "add", m.ns}); !r) return core::Err(r.error());
  auto r = link(plan_, m.ns, m.router_interface, subnet->router_address, address, ipv4_text(address) + "/32");
  if (!r) {
    (void)run_command({"ip", "-n", plan_.router_ns, "link", "del", m.router_interface});
    (void)run_command({"ip", "netns", "delete", m.ns});
    return core::Err(r.error());
  }
  members_.push_back(m);
  return m;
}

Result<void> Vpc::detach(const std::string& name) {
  auto it = std::find_if(members_.begin(), members_.end(), [&](const Member& m) { return m.name == name; });
  if (it == members_.end()) return core::Err(refused("no member '" + name + "' to detach"));
  // Deleting the router's end removes the pair at once; a namespace's own clean-up runs later, and a member
  // attached again under the same name needs the interface name free.
  auto del = run_command({"ip", "-n", plan_.router_ns, "link", "del", it->router_interface});
  auto r = run_command({"ip", "netns", "delete", it->ns});
  members_.erase(it);
  if (!del) return core::Err(del.error());
  if (!r) return core::Err(r.error());
  return {};
}

Result<void> Vpc::reload(Plan plan) {
  if (destroyed_) return core::Err(refused("the network of stack " + plan_.spec.stack + " was destroyed"));
  if (plan.spec.stack != plan_.spec.stack)
    return core::Err(
        refused("reload: a plan of stack " + plan.spec.stack + " for stack " + plan_.spec.stack));
  if (plan.subnets != plan_.subnets || plan.spec.outside != plan_.spec.outside)
    return core::Err(refused("reload of stack " + plan_.spec.stack +
                             ": the subnets changed; that takes a restart of the stack's network"));
  for (const AddressBlock& b : plan_.blocks) {
    const AddressBlock* now = plan.block(b.group, b.zone);
    if (now == nullptr || !(*now == b))
      return core::Err(
          refused("reload of stack " + plan_.spec.stack + ": the addresses of group '" + b.group +
                  "' in zone " + b.zone +
                  " moved or went (groups may only be added after the existing ones); that takes a "
                  "restart of the stack's network"));
  }
  if (auto r = apply_ruleset(plan); !r) return r;
  plan_ = std::move(plan);
  return {};
}

}  // namespace cumulo::net
