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

struct S3Config {
  std::string listen = "127.0.0.1:9000";
  std::string data_dir;
  std::string master_key_file;
  std::string region;                                // empty: any region a client signs with is accepted
  std::vector<std::string> domains{"s3.localhost"};  // virtual-host style: BUCKET.DOMAIN
  std::string log_level = "info";
  std::string tls_cert;  // HTTPS when both are set
  std::string tls_key;
  std::vector<S3User> users;
  std::vector<S3BucketConfig> buckets;
  uint64_t max_object_bytes = 5ull << 40;
  uint64_t max_xml_bytes = 1 << 20;
  std::chrono::milliseconds clock_skew{15 * 60 * 1000};
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds idle_timeout{60'000};

  const S3User* user_by_access_key(const std::string& key) const;
  const S3BucketConfig* bucket_config(const std::string& name) const;
};

// Throws core::ConfigError with file:line:col.
S3Config parse_s3_config(const std::string& path);
S3Config parse_s3_config_string(const std::string& text, const std::string& source = "<config>");

// The S3 bucket naming rules ("Bucket naming rules", general purpose buckets).
bool valid_bucket_name(std::string_view name);

}  // namespace cumulo::objstore
