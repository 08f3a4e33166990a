// The stack file read by `cumulo up`: the zones, the auto scaling groups whose instances run in them, the
// gateway in front of them and the control API (docs/configuration.md, "Stack file"). Parsing validates
// everything that can be checked without starting a process, so that a typo is a file:line:col error and not
// a crash loop.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/config.h"
#include "scaling/scaling.h"

namespace cumulo::stack {

// Passed to each target group of the generated gateway config. Defaults are the gateway's, except the
// interval: a stack on one machine can afford to notice a dead instance within a couple of seconds.
struct HealthCheckSpec {
  std::string path = "/healthz";
  std::string expected_codes = "200-399";
  std::chrono::milliseconds interval{1000};
  std::chrono::milliseconds timeout{1000};
  int healthy_threshold = 2;
  int unhealthy_threshold = 2;
};

struct GatewaySpec {
  std::string listen;  // required, "127.0.0.1:8080"
  std::string admin = "127.0.0.1:9901";
  std::string zone;  // empty: the gateway has no zone and spreads over all of them
  // `zones:` one gateway in each of these zones' public subnets (network mode), named gateway-ZONE, in front
  // of the same target groups; the first takes `admin`, the others a free loopback port each. Empty: one
  // gateway, named gateway.
  std::vector<std::string> zones;
  int workers = 0;  // 0: the gateway's default (number of cores)
  std::string log_level = "info";
  std::string access_log = "off";  // "off", "-" or a path (made absolute when the config is written)
  std::string balance = "round_robin";
  std::chrono::milliseconds drain_timeout{30'000};
  HealthCheckSpec health_check;
  std::string listen_location;  // where `listen` and `admin` were written, for "port in use" errors
  std::string admin_location;
  // `tls:` an HTTPS listener beside `listen` (same routes): its address and one certificate, paths absolute.
  std::string tls_listen;  // empty: none
  std::string tls_cert;
  std::string tls_key;
  std::string tls_location;
  // Set by `cumulo up` for each gateway's config, not read from the stack file: the id its responses carry
  // (`cumulo-gateway` header) and the path it answers itself for the elastic IP keeper's checks.
  std::string server_id;
  std::string monitor_uri;
};

// A group's schema (min/max/desired, launch template, policies) belongs to the scaling component.
using scaling::expand_command;
using scaling::expand_placeholders;
using scaling::ExpandedCommand;
using scaling::GroupSpec;
using scaling::PlaceholderValues;
using scaling::resolve_executable;

struct ControlSpec {
  std::string listen = "127.0.0.1:9902";  // loopback only
  std::string location;
};

// A bucket the stack's object store creates at start, and optionally serves through the gateway.
struct BucketSpec {
  std::string name;
  bool is_public = false;     // anonymous GET/HEAD of its objects
  std::string route;          // a gateway path prefix ("/static/") that serves the bucket; empty: none
  std::string cache_control;  // given to objects served by the route that were stored without one
  bool cache = true;          // the gateway caches what the route serves
  std::chrono::milliseconds cache_ttl{60'000};  // for objects with no freshness of their own
};

struct StoreNodeSpec {
  std::string zone;
  std::string listen;  // empty until start: a free loopback port is taken then
};

struct S3UserSpec {
  std::string name;
  std::string access_key;
  std::string secret_key;
};

// `object_store:` one S3-compatible store node per zone, replicating to each other (docs/objstore.md).
struct ObjectStoreSpec {
  bool enabled = false;
  std::vector<StoreNodeSpec> nodes;  // one per stack zone, in the stack's zone order
  std::string master_key_file;       // empty: STATE_DIR/objstore/master.key, made at the first start
  std::vector<S3UserSpec> users;     // empty: one user "admin" with keys made at the first start
  std::string replication_ack = "all";
  std::string on_peer_down =
      "degrade";  // ack all and a zone's node down: degrade (answer, mark it behind) or fail
  std::vector<BucketSpec> buckets;
  std::string location;
};

// `edges:` CDN edges: gateways whose only origin is the stack's gateway (or another edge, their shield),
// caching what they serve.
struct EdgeSpec {
  std::string name;
  std::string listen;
  std::string admin;   // empty until start: a free loopback port is taken then
  std::string shield;  // another edge's name: this edge fetches through it (tiered caching)
  uint64_t cache_max_bytes = 256ull << 20;
  std::chrono::milliseconds default_ttl{0};
  int workers = 1;
  std::string location;
};

// `dns:` the authoritative DNS server (docs/dns.md), run with its own configuration file; its ALIAS records
// with `gateway: true` answer with the gateway's listen address.
struct DnsSpec {
  bool enabled = false;
  std::string config;  // a `cumulo dns` configuration file, made absolute
  std::string listen;  // UDP and TCP; overrides the file's listen addresses
  std::string admin;   // empty until start: a free loopback port is taken then
  std::string location;
};

// `database:` the database tier (docs/db.md): a MariaDB primary in one zone and replicas per zone, behind a
// writer and a reader endpoint, run by one `cumulo db run` process.
struct DatabaseUserSpec {
  std::string name;
  std::string password;
  std::vector<std::string> databases;
};

struct DatabaseInstancePlan {
  std::string name;  // "db-a-1"
  std::string zone;
  uint16_t port = 0;  // taken at start
  // Network mode: the server's own address and namespace (a member of the database_servers group).
  std::string address;
  std::string netns;
};

struct DatabaseSpec {
  bool enabled = false;
  std::string primary_zone;
  std::vector<std::pair<std::string, int>> replicas;  // zone -> count, in the stack's zone order
  std::string writer;
  std::string reader;
  std::string admin;  // empty until start: a free loopback port is taken then
  std::chrono::milliseconds lag_limit{5'000};
  std::chrono::milliseconds failover_after{2'000};
  std::vector<DatabaseUserSpec> users;
  std::vector<DatabaseInstancePlan> instances;  // filled at start: the primary first
  // Network mode: the endpoints' address, the only client host the servers create the users for.
  std::string endpoints_address;
  std::string replication_password;  // made at the first start, kept in the state directory
  std::string location;
};

// `internal_lb:` the internal load balancer: a second gateway, in a private subnet in network mode, with one
// listener that routes to the groups marked `internal: true` by their path prefixes (an internal ELB). Only
// the groups named in `from` reach it; the public gateway has no route to those groups.
struct InternalLbSpec {
  bool enabled = false;
  std::string listen;             // "0.0.0.0:8000"
  std::string admin;              // empty until start: a free loopback port is taken then
  std::string zone;               // its zone: the first of the stack's unless given
  std::vector<std::string> from;  // groups that may connect to it
  std::string location;
  std::string listen_location;
};

// `network:` (docs/network.md): the stack's VPC on this machine — a namespace per process, a router namespace
// that routes and filters between them, public and private subnets per zone, security groups as nftables
// rules. Absent: loopback mode, every process on 127.0.0.1 and nothing isolated.
struct NetworkRuleSpec {
  std::string from;  // a security group, "outside" or a CIDR
  std::string to;    // a security group
  int port_lo = 0;
  int port_hi = 0;
  std::string location;
};

struct NetworkEgressSpec {
  std::string group;
  std::vector<std::string>
      to;  // security groups its members may open connections to; "outside": the internet
  std::string location;
};

struct NetworkConfigSpec {
  bool enabled = false;
  std::string cidr = "10.20.0.0/16";
  int subnet_prefix = 24;
  std::string outside = "203.0.113.0/24";  // the stand-in internet, where outside clients run
  std::vector<std::string> ssh_from;       // CIDRs that may reach port 22 of the instances
  uint16_t instance_port = 8080;           // {port} of every instance: each has an address of its own
  std::vector<NetworkEgressSpec> egress;   // overrides of the default (a group reaches the stack's data tier)
  std::vector<NetworkRuleSpec> allow;      // ingress rules beside the ones the stack implies
  std::string location;
};

// `elastic_ips:` (docs/elastic-ips.md): stable public addresses, each held by one healthy gateway at a time
// and moved by the stack's elastic IP keeper. Network mode only.
struct ElasticIpSpec {
  std::string name;
  std::string address;                // "198.51.100.10"; given or assigned in order from 198.51.100.10
  std::vector<std::string> gateways;  // the gateway ids that may hold it, in order of preference
  std::string location;
};

struct StackSpec {
  std::string source;  // the file name, as given
  std::string name;
  std::vector<std::string> zones;
  ControlSpec control;
  GatewaySpec gateway;
  std::vector<GroupSpec> groups;
  ObjectStoreSpec object_store;
  std::vector<EdgeSpec> edges;
  DnsSpec dns;
  DatabaseSpec database;
  NetworkConfigSpec network;
  InternalLbSpec internal_lb;
  std::vector<ElasticIpSpec> elastic_ips;
};

// A gateway of the stack: "gateway" alone, or one "gateway-ZONE" per zone of `gateway.zones`.
struct GatewayInstance {
  std::string id;
  std::string zone;  // empty: no zone (the lone gateway without `gateway.zone`)
};
std::vector<GatewayInstance> gateway_instances(const StackSpec& stack);

// Throw core::ConfigError naming file, line, column and what was expected.
StackSpec load_stack_file(const std::string& path);
StackSpec parse_stack(const core::ConfigNode& root);

}  // namespace cumulo::stack
