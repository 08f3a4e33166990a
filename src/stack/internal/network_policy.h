// What a stack's `network:` section means (docs/network.md): the security groups a stack implies, their
// subnets and rules, and where each process of the stack goes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "net/net.h"
#include "stack/stack_file.h"

namespace cumulo::stack::internal {

// The security groups of the stack's processes.
inline constexpr char kGatewayGroup[] = "gateway";
inline constexpr char kEdgeGroup[] = "edge";
inline constexpr char kStoreGroup[] = "object_store";
inline constexpr char kDatabaseGroup[] = "database";
inline constexpr char kDnsGroup[] = "dns";
inline constexpr char kInternalLbGroup[] = "internal_lb";
// The database tier's MariaDB servers, one member each; `database` is its endpoints (and manager), what the
// applications reach.
inline constexpr char kDatabaseServerGroup[] = "database_servers";
// The port of every database server in network mode (each has an address of its own).
inline constexpr uint16_t kDatabaseServerPort = 3306;
// The port of a store node the stack file gives none, in network mode (each node has an address of its own).
inline constexpr uint16_t kDefaultStorePort = 9000;

// The policy the stack implies, with the section's additions:
// - the gateway accepts its listener's port from outside and from the edges; edges their ports from outside;
// - each auto scaling group its instance port from the gateway (an internal group: from the internal load
//   balancer instead), and SSH (22) from `ssh_from`;
// - the internal load balancer, in a private subnet, its listener's port from the groups `internal_lb.from`
//   names, whose egress includes it;
// - the object store its ports from the gateway, every group and its own nodes (replication);
// - the database endpoints their ports from every group; the database servers their port from the endpoints
//   and from each other (replication), nothing else;
// - groups (the web tier) may open connections only to the stack's data tier (object store, database), or
//   to what `egress` names; nothing reaches the outside unless `egress` names "outside".
net::NetworkSpec network_policy(const StackSpec& stack);

// Throws core::ConfigError (FILE:LINE:COL: what) when the section does not fit the stack: a rule naming an
// unknown group, a group name taken by one of the stack's own security groups, a subnet too small for a
// group's max, overlapping CIDRs.
void check_network(const StackSpec& stack);

// What each member of a running stack listens on (its own address), for `cumulo net check`: the stack's
// addresses as `cumulo up` rewrote them for network mode, and each instance's port.
std::vector<std::pair<std::string, uint16_t>> listening_ports(const StackSpec& stack,
                                                              const std::vector<net::Member>& members);

// STATE_DIR/network.json, written by `cumulo up` in network mode: the stack file, the namespaces, the members
// and what they listen on.
std::string render_network_state(const StackSpec& stack, const net::Plan& plan,
                                 const std::vector<net::Member>& members);

// `cumulo net check`: probes every path of the full matrix from inside the namespaces of the running stack
// whose state is in STATE_DIR, prints it (allowed/denied, expected, observed) and returns 0 when every
// observation matches the policy, 1 when one differs, 2 when there is no running stack in network mode.
int run_net_check(const std::string& state_dir, bool json);

// The same check, for `cumulo up` after start: the rows, from the stack it runs.
std::vector<net::CheckRow> check_stack_network(const net::Plan& plan, const StackSpec& stack,
                                               const std::vector<net::Member>& members);

}  // namespace cumulo::stack::internal
