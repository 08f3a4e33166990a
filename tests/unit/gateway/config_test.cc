#include "core/config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "gateway/internal/model.h"

namespace cumulo::gateway {
namespace {

class GatewayConfigTest : public ::testing::Test {
 protected:
  std::string write(const std::string& text) {
    path_ = std::filesystem::temp_directory_path() / ("gw-config-" + std::to_string(::getpid()) + ".yaml");
    std::ofstream(path_) << text;
    return path_.string();
  }
  void TearDown() override { std::filesystem::remove(path_); }
  std::string error_of(const std::string& text) {
    try {
      parse_gateway_config(write(text));
    } catch (const core::ConfigError& e) {
      return e.what();
    }
    return "";
  }
  std::filesystem::path path_;
};

const char* kValid = R"(zone: a
workers: 2
listeners:
  - name: public
    listen: 127.0.0.1:8080
routes:
  - name: api
    path_prefix: /api
    target_group: web
    timeouts: {connect: 250ms, first_byte: 5s}
  - name: default
    target_group: web
target_groups:
  - name: web
    balance: weighted
    zone_aware: true
    health_check: {path: /healthz, interval: 1s, expected_codes: "200,204"}
    retries: {attempts: 1}
    targets:
      - {address: 127.0.0.1:9001, zone: a, weight: 2}
      - {address: "[::1]:9002", zone: b}
)";

TEST_F(GatewayConfigTest, ParsesEveryPart) {
  GatewayConfig c = parse_gateway_config(write(kValid));
  EXPECT_EQ(c.zone, "a");
  EXPECT_EQ(c.workers, 2);
  ASSERT_EQ(c.routes.size(), 2u);
  EXPECT_EQ(c.routes[0].timeouts.connect.count(), 250);
  EXPECT_EQ(c.routes[0].timeouts.first_byte.count(), 5000);
  EXPECT_EQ(c.routes[1].path_prefix, "/");
  ASSERT_EQ(c.target_groups.size(), 1u);
  const auto& g = c.target_groups[0];
  EXPECT_EQ(g.balance, Balance::kWeighted);
  EXPECT_TRUE(g.has_health_check);
  EXPECT_TRUE(g.health_check.expects(204));
  EXPECT_FALSE(g.health_check.expects(201));
  EXPECT_EQ(g.retries.attempts, 1);
  ASSERT_EQ(g.targets.size(), 2u);
  EXPECT_EQ(g.targets[0].weight, 2);
  EXPECT_EQ(g.targets[1].weight, 1);
}

TEST_F(GatewayConfigTest, UnknownKeyNamesFileLineAndKey) {
  std::string text = kValid;
  text.replace(text.find("    balance: weighted"), 21, "    balanse: weighted");
  std::string e = error_of(text);
  EXPECT_NE(e.find("balanse"), std::string::npos) << e;
  EXPECT_NE(e.find(path_.string() + ":"), std::string::npos) << e;
}

TEST_F(GatewayConfigTest, RejectsBadValues) {
  auto with = [&](const std::string& from, const std::string& to) {
    std::string text = kValid;
    text.replace(text.find(from), from.size(), to);
    return error_of(text);
  };
  EXPECT_NE(with("interval: 1s", "interval: 5").find("duration"), std::string::npos);
  EXPECT_NE(with("balance: weighted", "balance: random").find("round_robin"), std::string::npos);
  EXPECT_NE(with("target_group: web\n    timeouts", "target_group: nope\n    timeouts").find("nope"),
            std::string::npos);
  EXPECT_NE(with("address: 127.0.0.1:9001", "address: 127.0.0.1").find("address"), std::string::npos);
  EXPECT_NE(with("workers: 2", "workers: 1000").find("workers"), std::string::npos);
  EXPECT_NE(with("expected_codes: \"200,204\"", "expected_codes: \"ok\"").find("expected_codes"),
            std::string::npos);
  EXPECT_NE(with("zone: a\n", "zone: a\nadmin: {listen: 0.0.0.0:9901}\n").find("loopback"),
            std::string::npos);
  EXPECT_NE(with("address: \"[::1]:9002\"", "address: 127.0.0.1:9001").find("twice"), std::string::npos);
}

TEST_F(GatewayConfigTest, BucketRouteNeedsAPrefixEndingInASlashAndAUsableName) {
  auto with = [&](const std::string& route) {
    std::string text = kValid;
    text.replace(text.find("    timeouts: {connect: 250ms"), 0, route);
    return text;
  };
  std::string ok = with("    bucket: assets\n    default_cache_control: \"public, max-age=60\"\n");
  ok.replace(ok.find("path_prefix: /api"), 17, "path_prefix: /api/");
  GatewayConfig c = parse_gateway_config(write(ok));
  EXPECT_EQ(c.routes[0].bucket, "assets");
  EXPECT_EQ(c.routes[0].default_cache_control, "public, max-age=60");
  EXPECT_TRUE(c.routes[1].bucket.empty());
  EXPECT_NE(error_of(with("    bucket: assets\n")).find("must end with '/'"), std::string::npos)
      << "path_prefix /api names no bucket root";
  std::string slash = with("    bucket: \"a/b\"\n");
  slash.replace(slash.find("path_prefix: /api"), 17, "path_prefix: /api/");
  EXPECT_NE(error_of(slash).find("bucket name"), std::string::npos);
}

TEST_F(GatewayConfigTest, CacheSlicesHaveASaneSize) {
  auto with = [&](const std::string& cache) {
    std::string text = kValid;
    text.replace(text.find("    timeouts: {connect: 250ms"), 0, "    cache: " + cache + "\n");
    return text;
  };
  GatewayConfig c = parse_gateway_config(write(with("{slice: true}")));
  EXPECT_TRUE(c.routes[0].cache.slice);
  EXPECT_EQ(c.routes[0].cache.slice_bytes, 1u << 20);
  EXPECT_FALSE(c.routes[1].cache.slice);
  c = parse_gateway_config(write(with("{slice: true, slice_bytes: 256KiB}")));
  EXPECT_EQ(c.routes[0].cache.slice_bytes, 256u << 10);
  EXPECT_NE(error_of(with("{slice: true, slice_bytes: 1KiB}")).find("64KiB to 64MiB"), std::string::npos);
  EXPECT_NE(error_of(with("{slice: true, slice_bytes: 128MiB}")).find("64KiB to 64MiB"), std::string::npos);
  // With the default 256 MiB cache, 64 MiB slices would leave room for four: refused.
  EXPECT_NE(error_of(with("{slice: true, slice_bytes: 64MiB}")).find("eighth of cache.max_bytes"),
            std::string::npos);
  EXPECT_NE(error_of(with("{slices: true}")).find("slices"), std::string::npos);
}

TEST_F(GatewayConfigTest, CacheDiskTier) {
  GatewayConfig c = parse_gateway_config(write(kValid));
  EXPECT_TRUE(c.cache_disk_path.empty());
  c = parse_gateway_config(
      write(std::string(kValid) + "cache: {disk_path: /var/cache/x, disk_max_bytes: 2GiB}\n"));
  EXPECT_EQ(c.cache_disk_path, "/var/cache/x");
  EXPECT_EQ(c.cache_disk_max_bytes, 2ull << 30);
  EXPECT_NE(
      error_of(std::string(kValid) + "cache: {disk_path: /x, disk_max_bytes: 1KiB}\n").find("at least 1MiB"),
      std::string::npos);
}

TEST_F(GatewayConfigTest, ServerIdAndMonitorUri) {
  GatewayConfig c = parse_gateway_config(write(kValid));
  EXPECT_EQ(c.server_id, "");
  EXPECT_EQ(c.monitor_uri, "");
  c = parse_gateway_config(
      write("server_id: gw-a.eu_1\nmonitor_uri: /_gateway/alive\n" + std::string(kValid)));
  EXPECT_EQ(c.server_id, "gw-a.eu_1");
  EXPECT_EQ(c.monitor_uri, "/_gateway/alive");
  c = parse_gateway_config(write("server_id: " + std::string(64, 'g') + "\n" + std::string(kValid)));
  EXPECT_EQ(c.server_id.size(), 64u);

  // Refusals name the file, the line and the column of the value.
  auto refused = [&](const std::string& line, const std::string& says) {
    std::string e = error_of(std::string(kValid) + line + "\n");
    EXPECT_NE(e.find(path_.string() + ":22:"), std::string::npos) << line << ": " << e;
    EXPECT_NE(e.find(says), std::string::npos) << line << ": " << e;
  };
  refused("server_id: \"gw a\"", "letters, digits");
  refused("server_id: \"gw=a\"", "letters, digits");
  refused("server_id: " + std::string(65, 'g'), "at most 64");
  refused("monitor_uri: alive", "starting with '/'");
  refused("monitor_uri: \"/alive?x=1\"", "no query");
  refused("monitor_uri: \"\"", "starting with '/'");
  refused("server_ids: gw-a", "server_ids");
}

TEST_F(GatewayConfigTest, MissingFileSaysSo) {
  try {
    parse_gateway_config("/nonexistent/gw.yaml");
    FAIL() << "no error";
  } catch (const core::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/gw.yaml"), std::string::npos);
  }
}

TEST(SnapshotMatch, ExactHostBeatsWildcardAndLongestPrefixWins) {
  Snapshot s;
  auto add = [&](std::string name, std::string host, std::string prefix) {
    Route r;
    r.config.name = std::move(name);
    r.config.host = std::move(host);
    r.config.path_prefix = std::move(prefix);
    s.routes.push_back(std::move(r));
  };
  add("any", "*", "/");
  add("api", "*", "/api/");
  add("shop", "shop.example.com", "/");
  add("sub", "*.example.com", "/");
  EXPECT_EQ(s.match("x.org", "/index.html")->config.name, "any");
  EXPECT_EQ(s.match("x.org", "/api/v1")->config.name, "api");
  EXPECT_EQ(s.match("SHOP.example.com:8080", "/api/v1")->config.name, "shop");
  EXPECT_EQ(s.match("www.example.com", "/")->config.name, "sub");
  EXPECT_EQ(s.match("example.com", "/")->config.name, "any");
  Snapshot empty;
  EXPECT_EQ(empty.match("x", "/"), nullptr);
}

}  // namespace
}  // namespace cumulo::gateway
