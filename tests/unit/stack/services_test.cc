// The stack's own services beside its groups: the object store (one node per zone, buckets served through
// gateway routes) and CDN edges, from the stack file to the configs written for them.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "core/config.h"
#include "stack/internal/db_config.h"
#include "stack/internal/gateway_config.h"
#include "stack/internal/objstore_config.h"
#include "stack/stack_file.h"

namespace cumulo::stack {
namespace {

using namespace std::chrono_literals;

const std::string kBase = R"(name: s
zones: [a, b]
gateway: {listen: 127.0.0.1:8080, admin: 127.0.0.1:9901}
groups:
  - {name: web, launch_template: {command: [app, "{port}"]}}
)";

StackSpec parse(const std::string& extra) {
  return parse_stack(core::ConfigNode::load_string(kBase + extra, "stack.yaml"));
}

std::string error_of(const std::string& extra) {
  try {
    parse(extra);
  } catch (const core::ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(StackServices, ObjectStoreHasANodePerZoneAndDefaults) {
  StackSpec s = parse(R"(object_store:
  listen: {b: 127.0.0.1:9001}
  buckets:
    - {name: assets, public: true, route: /static/}
    - {name: uploads}
)");
  ASSERT_TRUE(s.object_store.enabled);
  ASSERT_EQ(s.object_store.nodes.size(), 2u);
  EXPECT_EQ(s.object_store.nodes[0].zone, "a");
  EXPECT_EQ(s.object_store.nodes[0].listen, "") << "picked at start";
  EXPECT_EQ(s.object_store.nodes[1].listen, "127.0.0.1:9001");
  EXPECT_EQ(s.object_store.replication_ack, "all");
  ASSERT_EQ(s.object_store.buckets.size(), 2u);
  EXPECT_EQ(s.object_store.buckets[0].cache_control, "public, max-age=3600")
      << "routed buckets get a default";
  EXPECT_EQ(s.object_store.buckets[1].cache_control, "");
  EXPECT_FALSE(parse("").object_store.enabled);
}

TEST(StackServices, BadObjectStoreAndEdgesNameLineAndProblem) {
  EXPECT_NE(error_of("object_store:\n  buckets: [{name: Bad_Name}]\n").find("stack.yaml:7"),
            std::string::npos);
  EXPECT_NE(error_of("object_store:\n  buckets: [{name: assets, route: /s/}]\n").find("public: true"),
            std::string::npos);
  EXPECT_NE(error_of("object_store:\n  buckets: [{name: assets, public: true, route: static}]\n").find("'/'"),
            std::string::npos);
  EXPECT_NE(error_of("object_store:\n  buckets: [{name: assets, public: true, route: /}]\n").find("'/'"),
            std::string::npos)
      << "the root is the site's, not a bucket's";
  EXPECT_NE(error_of("object_store:\n  listen: {c: 127.0.0.1:9000}\n  buckets: []\n").find("zone 'c'"),
            std::string::npos);
  EXPECT_NE(error_of("object_store:\n  replication: {ack: some}\n  buckets: []\n").find("expected all"),
            std::string::npos);
  EXPECT_NE(error_of("edges:\n  - {name: x, listen: 127.0.0.1:8081, shield: y}\n").find("no edge named 'y'"),
            std::string::npos);
  EXPECT_NE(error_of("edges:\n  - {name: x, listen: 127.0.0.1:8081, shield: y}\n"
                     "  - {name: y, listen: 127.0.0.1:8082, shield: x}\n")
                .find("loop"),
            std::string::npos);
  EXPECT_NE(error_of("edges:\n  - {name: x, listen: 127.0.0.1:8081, admin: 0.0.0.0:9911}\n").find("loopback"),
            std::string::npos);
  EXPECT_NE(error_of("edges:\n  - {name: x, listen: 127.0.0.1:8081}\n  - {name: x, listen: 127.0.0.1:8082}\n")
                .find("twice"),
            std::string::npos);
}

TEST(StackServices, GatewayConfigRoutesABucketToTheStoreNodes) {
  StackSpec s = parse(R"(object_store:
  buckets:
    - {name: assets, public: true, route: /static/, cache_control: "max-age=60", cache_ttl: 5s}
)");
  s.object_store.nodes[0].listen = "127.0.0.1:9000";
  s.object_store.nodes[1].listen = "127.0.0.1:9001";
  core::ConfigNode root =
      core::ConfigNode::load_string(internal::render_gateway_config(s, {}), "gateway.yaml");
  auto routes = root["routes"].items();
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_EQ(routes[1]["path_prefix"].as_string(), "/static/");
  EXPECT_EQ(routes[1]["bucket"].as_string(), "assets");
  EXPECT_EQ(routes[1]["default_cache_control"].as_string(), "max-age=60");
  EXPECT_EQ(routes[1]["cache"]["default_ttl"].as_duration(), 5s);
  auto groups = root["target_groups"].items();
  ASSERT_EQ(groups.size(), 2u);
  const auto store = std::find_if(groups.begin(), groups.end(), [&](const core::ConfigNode& g) {
    return g["name"].as_string() == routes[1]["target_group"].as_string();
  });
  ASSERT_NE(store, groups.end());
  EXPECT_TRUE((*store)["zone_aware"].as_bool());
  auto targets = (*store)["targets"].items();
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[0]["address"].as_string(), "127.0.0.1:9000");
  EXPECT_EQ(targets[1]["zone"].as_string(), "b");
}

TEST(StackServices, EdgeConfigCachesEverythingFromTheGatewayOrItsShield) {
  StackSpec s = parse(R"(edges:
  - {name: near, listen: 0.0.0.0:8081, cache: {max_bytes: 64MiB, default_ttl: 10s}}
  - {name: far, listen: 127.0.0.1:8082, shield: near}
)");
  s.edges[0].admin = "127.0.0.1:9911";
  s.edges[1].admin = "127.0.0.1:9912";
  core::ConfigNode near =
      core::ConfigNode::load_string(internal::render_edge_config(s, s.edges[0]), "near.yaml");
  EXPECT_EQ(near["target_groups"].items()[0]["targets"].items()[0]["address"].as_string(), "127.0.0.1:8080");
  EXPECT_TRUE(near["routes"].items()[0]["cache"]["enabled"].as_bool());
  EXPECT_EQ(near["routes"].items()[0]["cache"]["default_ttl"].as_duration(), 10s);
  EXPECT_EQ(near["cache"]["max_bytes"].as_int(), 64 << 20);
  EXPECT_EQ(near["admin"]["listen"].as_string(), "127.0.0.1:9911");
  core::ConfigNode far =
      core::ConfigNode::load_string(internal::render_edge_config(s, s.edges[1]), "far.yaml");
  EXPECT_EQ(far["target_groups"].items()[0]["targets"].items()[0]["address"].as_string(), "127.0.0.1:8081")
      << "the shield's wildcard listener, reached through loopback";
}

TEST(StackServices, StoreConfigNamesItsZoneDataUsersAndBuckets) {
  StackSpec s = parse(R"(object_store:
  users: [{name: admin, access_key: AKADMIN, secret_key: "s3cr3t-key"}]
  buckets: [{name: assets, public: true}, {name: private-files}]
)");
  s.object_store.nodes[0].listen = "127.0.0.1:9000";
  s.object_store.nodes[1].listen = "127.0.0.1:9001";
  core::ConfigNode root = core::ConfigNode::load_string(
      internal::render_store_config(s, s.object_store.nodes[0], {"/data/a", "/keys/master.key"}),
      "store.yaml");
  EXPECT_EQ(root["listen"].as_string(), "127.0.0.1:9000");
  EXPECT_EQ(root["data_dir"].as_string(), "/data/a");
  EXPECT_EQ(root["master_key_file"].as_string(), "/keys/master.key");
  EXPECT_EQ(root["users"].items()[0]["secret_key"].as_string(), "s3cr3t-key");
  auto buckets = root["buckets"].items();
  ASSERT_EQ(buckets.size(), 2u);
  EXPECT_TRUE(buckets[0]["public"].as_bool());
  EXPECT_FALSE(buckets[1]["public"].as_bool());
  EXPECT_EQ(root["replication"]["zone"].as_string(), "a");
  EXPECT_EQ(root["replication"]["ack"].as_string(), "all");
  auto peers = root["replication"]["peers"].items();
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0]["zone"].as_string(), "b");
  EXPECT_EQ(peers[0]["url"].as_string(), "http://127.0.0.1:9001");
}

TEST(StackServices, DatabaseConfigSaysWhereEachServerRuns) {
  StackSpec s = parse(R"(database:
  primary_zone: a
  replicas: {b: 1}
  writer: 127.0.0.1:3306
  reader: 127.0.0.1:3307
  users: [{name: app, password: pw, databases: [app]}]
)");
  DatabaseSpec& db = s.database;
  db.admin = "127.0.0.1:3308";
  db.replication_password = "r";
  db.instances[0].port = 13306;
  db.instances[1].port = 13307;
  // Loopback mode: no addresses, namespaces or hosts, the tier's defaults (127.0.0.1) hold.
  std::string y = internal::render_db_config(db, "/d");
  EXPECT_EQ(y.find("address"), std::string::npos) << y;
  EXPECT_EQ(y.find("netns"), std::string::npos) << y;
  EXPECT_EQ(y.find("allowed_hosts"), std::string::npos) << y;
  EXPECT_EQ(y.find("Network mode"), std::string::npos) << y;

  db.endpoints_address = "10.20.1.5";
  db.instances[0] = {"db-a-1", "a", 3306, "10.20.1.6", "cu-s.db-a-1"};
  db.instances[1] = {"db-b-1", "b", 3306, "10.20.2.5", "cu-s.db-b-1"};
  y = internal::render_db_config(db, "/d");
  EXPECT_EQ(y.rfind("# Network mode: each server runs in a network namespace of its own", 0), 0u) << y;
  EXPECT_NE(y.find(R"({name: "db-a-1", zone: "a", port: 3306, address: "10.20.1.6", netns: "cu-s.db-a-1"})"),
            std::string::npos)
      << y;
  EXPECT_NE(y.find(R"(allowed_hosts: ["10.20.1.5"])"), std::string::npos) << y;
}

}  // namespace
}  // namespace cumulo::stack
