#include "core/config.h"

#include <gtest/gtest.h>

#include "objstore/internal/s3_config.h"

namespace cumulo::objstore {
namespace {

constexpr const char* kMinimal = R"(data_dir: /var/lib/s3
master_key_file: /etc/s3.key
users:
  - {name: admin, access_key: AKADMIN, secret_key: secret-secret}
)";

TEST(S3Config, Defaults) {
  S3Config c = parse_s3_config_string(kMinimal);
  EXPECT_EQ(c.listen, "127.0.0.1:9000");
  EXPECT_EQ(c.domains, std::vector<std::string>{"s3.localhost"});
  EXPECT_EQ(c.clock_skew, std::chrono::minutes(15));
  EXPECT_EQ(c.max_object_bytes, 5ull << 40);
  ASSERT_NE(c.user_by_access_key("AKADMIN"), nullptr);
  EXPECT_EQ(c.user_by_access_key("AKADMIN")->name, "admin");
}

TEST(S3Config, Full) {
  S3Config c = parse_s3_config_string(std::string(kMinimal) + R"(listen: 127.0.0.1:9100
region: eu-west-1
domains: [s3.example.test]
buckets:
  - {name: assets, public: true}
limits:
  max_object_bytes: 1GiB
  clock_skew: 5m
)");
  EXPECT_EQ(c.region, "eu-west-1");
  ASSERT_EQ(c.buckets.size(), 1u);
  EXPECT_TRUE(c.buckets[0].is_public);
  EXPECT_EQ(c.buckets[0].owner, "admin");
  EXPECT_EQ(c.max_object_bytes, 1ull << 30);
}

void expect_error(const std::string& text, const std::string& needle) {
  try {
    parse_s3_config_string(text, "s3.yaml");
    ADD_FAILURE() << "no error for:\n" << text;
  } catch (const core::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).rfind("s3.yaml:", 0), 0u) << e.what();
  }
}

TEST(S3Config, Errors) {
  expect_error(std::string(kMinimal) + "listn: x\n", "listn");
  expect_error("master_key_file: k\nusers: [{name: a, access_key: AKA, secret_key: 12345678}]\n", "data_dir");
  expect_error(std::string(kMinimal) + "buckets: [{name: Bad_Name}]\n", "not a valid bucket name");
  expect_error(std::string(kMinimal) + "buckets: [{name: good, owner: nobody}]\n", "nobody");
  expect_error(std::string(kMinimal) + "limits: {clock_skew: 5}\n", "s3.yaml:5");
  expect_error("data_dir: d\nmaster_key_file: k\nusers: []\n", "at least one user");
  expect_error(std::string(kMinimal) + "listen: nowhere\n", "address");
}

TEST(S3Config, Replication) {
  S3Config plain = parse_s3_config_string(kMinimal);
  EXPECT_FALSE(plain.replication.enabled);
  S3Config c = parse_s3_config_string(std::string(kMinimal) + R"(replication:
  zone: a
  peers: [{zone: b, url: "http://localhost:9001/"}]
)");
  ASSERT_TRUE(c.replication.enabled);
  EXPECT_EQ(c.replication.zone, "a");
  ASSERT_EQ(c.replication.peers.size(), 1u);
  EXPECT_EQ(c.replication.peers[0].address, "127.0.0.1:9001");
  EXPECT_EQ(c.replication.ack, ReplicationAck::kAll);
  EXPECT_EQ(c.replication.on_peer_down, PeerDownPolicy::kDegrade);
  EXPECT_EQ(c.replication.ack_timeout, std::chrono::seconds(2));
  EXPECT_EQ(c.replication.user, "admin");
  S3Config d = parse_s3_config_string(std::string(kMinimal) + R"(replication:
  zone: eu-1
  peers: [{zone: eu-2, url: "http://127.0.0.1:9002"}]
  ack: one
  on_peer_down: fail
  ack_timeout: 500ms
  retry_interval: 250ms
)");
  EXPECT_EQ(d.replication.ack, ReplicationAck::kOne);
  EXPECT_EQ(d.replication.on_peer_down, PeerDownPolicy::kFail);
  EXPECT_EQ(d.replication.ack_timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(d.replication.retry_interval, std::chrono::milliseconds(250));
  std::string r = std::string(kMinimal) + "replication:\n";
  expect_error(r + "  zone: a\n", "peers");
  expect_error(r + "  zone: a\n  peers: [{zone: a, url: \"http://127.0.0.1:1\"}]\n", "one node per zone");
  expect_error(r + "  zone: a\n  peers: [{zone: b, url: \"https://127.0.0.1:1\"}]\n", "http://");
  expect_error(r + "  zone: a\n  peers: [{zone: b, url: \"http://example.org:1\"}]\n", "numeric");
  expect_error(r + "  zone: a\n  peers: [{zone: b, url: \"http://127.0.0.1:1\"}]\n  ack: some\n",
               "all or one");
  expect_error(r + "  zone: a\n  peers: [{zone: b, url: \"http://127.0.0.1:1\"}]\n  user: nobody\n",
               "nobody");
  expect_error(r + "  zone: a\n  peers: []\n  zonee: x\n", "zonee");
}

TEST(S3Config, Caches) {
  S3Config d = parse_s3_config_string(kMinimal);
  EXPECT_EQ(d.read_cache_max_bytes, 64ull << 20);
  EXPECT_EQ(d.read_cache_max_object_bytes, 1ull << 20);
  EXPECT_EQ(d.lookup_cache_entries, 65536u);
  S3Config c = parse_s3_config_string(std::string(kMinimal) +
                                      R"(read_cache: {max_bytes: 16MiB, max_object_bytes: 256KiB}
lookup_cache: {max_entries: 1000}
)");
  EXPECT_EQ(c.read_cache_max_bytes, 16ull << 20);
  EXPECT_EQ(c.read_cache_max_object_bytes, 256ull << 10);
  EXPECT_EQ(c.lookup_cache_entries, 1000u);
  S3Config off = parse_s3_config_string(std::string(kMinimal) +
                                        "read_cache: {max_bytes: 0}\nlookup_cache: {max_entries: 0}\n");
  EXPECT_EQ(off.read_cache_max_bytes, 0u);
  EXPECT_EQ(off.lookup_cache_entries, 0u);
  for (const char* bad : {"read_cache: {max_bytes: 1MiB, max_object_bytes: 2MiB}\n",
                          "read_cache: {size: 1MiB}\n", "lookup_cache: {max_entries: -1}\n"})
    EXPECT_THROW(parse_s3_config_string(std::string(kMinimal) + bad), core::ConfigError) << bad;
}

TEST(BucketNames, Rules) {
  for (const char* ok : {"abc", "my-bucket", "my.bucket", "a1b2c3"}) EXPECT_TRUE(valid_bucket_name(ok)) << ok;
  EXPECT_TRUE(valid_bucket_name(std::string(63, 'a')));
  for (const char* bad :
       {"ab", "ABC", "-abc", "abc-", "a..b", "a.-b", "a_b", "192.168.5.4", "xn--abc", "abc-s3alias", "a b"})
    EXPECT_FALSE(valid_bucket_name(bad)) << bad;
  EXPECT_FALSE(valid_bucket_name(std::string(64, 'a')));
}

}  // namespace
}  // namespace cumulo::objstore
