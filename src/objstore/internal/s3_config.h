// The object store's configuration (`cumulo s3 -c FILE`); schema in docs/configuration.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cumulo::objstore {

struct S3User {
  std::string name;
  std::string access_key;
  std::string secret_key;
};

struct S3BucketConfig {
  std::string name;
  std::string owner;       // a user's name
  bool is_public = false;  // anonymous GET/HEAD of its objects
};

// Replication across zones (docs/objstore.md#replication-across-zones): one store node per zone, each naming
// the nodes of the other zones as its peers.
struct S3ReplicationPeer {
  std::string zone;
  std::string url;      // "http://HOST:PORT": the peer's S3 listener
  std::string address;  // HOST:PORT of url, resolved at parse time
};

enum class ReplicationAck : uint8_t {
  kAll,  // a write is answered once it is durable in every zone
  kOne,  // once durable here; the peers catch up behind
};

enum class PeerDownPolicy : uint8_t {
  kDegrade,  // ack: all, a peer does not confirm in time: answer anyway, mark the peer behind, log it
  kFail,     // ... answer 503 ServiceUnavailable (and refuse writes while a peer is known down)
};

struct S3ReplicationConfig {
  bool enabled = false;
  std::string zone;
  std::vector<S3ReplicationPeer> peers;
  ReplicationAck ack = ReplicationAck::kAll;
  PeerDownPolicy on_peer_down = PeerDownPolicy::kDegrade;
  std::chrono::milliseconds ack_timeout{2'000};
  std::chrono::milliseconds retry_interval{1'000};
  std::string user;  // whose access key signs the requests between nodes
};

struct S3Config {
  std::string listen = "127.0.0.1:9000";
  std::string data_dir;
  std::string master_key_file;
  std::string region;                                // empty: any region a client signs with is accepted
  std::vector<std::string> domains{"s3.localhost"};  // virtual-host style: BUCKET.DOMAIN
  std::string log_level = "info";
  // Event loops serving requests, each on its own thread with its own listening socket (SO_REUSEPORT); 0: one
  // per CPU the process may run on.
  int workers = 0;
  std::string tls_cert;  // HTTPS when both are set
  std::string tls_key;
  std::vector<S3User> users;
  std::vector<S3BucketConfig> buckets;
  uint64_t max_object_bytes = 5ull << 40;
  uint64_t max_xml_bytes = 1 << 20;
  std::chrono::milliseconds clock_skew{15 * 60 * 1000};
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds idle_timeout{60'000};
  S3ReplicationConfig replication;
  // The GET path's caches (docs/objstore.md#caches); 0 disables each.
  size_t lookup_cache_entries = 65536;
  uint64_t read_cache_max_bytes = 64ull << 20;
  uint64_t read_cache_max_object_bytes = 1ull << 20;

  const S3User* user_by_access_key(const std::string& key) const;
  const S3BucketConfig* bucket_config(const std::string& name) const;
};

// Throws core::ConfigError with file:line:col.
S3Config parse_s3_config(const std::string& path);
S3Config parse_s3_config_string(const std::string& text, const std::string& source = "<config>");

// The S3 bucket naming rules ("Bucket naming rules", general purpose buckets).
bool valid_bucket_name(std::string_view name);

}  // namespace cumulo::objstore
