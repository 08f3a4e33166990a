// The database tier's configuration (`cumulo db run -c FILE`; docs/configuration.md, "Database tier").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"

namespace cumulo::db {

struct InstanceSpec {
  std::string name;  // "db-a-1"
  std::string zone;  // "a"
  uint16_t port = 0;
};

struct UserSpec {
  std::string name;
  std::string password;
  std::vector<std::string> databases;  // the user gets ALL on each of them, nothing else
};

struct DbConfig {
  std::string source;
  std::string data_dir;          // one folder per instance under it, and the tier's own state
  std::string bin_dir = "/usr";  // mariadbd in sbin/, mariadb-install-db, mariadb, mariadb-dump in bin/
  std::string writer;            // listen addresses of the endpoints
  std::string reader;
  std::string admin;    // loopback HTTP: GET /status, POST /switchover
  std::string primary;  // the instance that starts as primary (at the first start)
  std::vector<InstanceSpec> instances;
  std::chrono::milliseconds lag_limit{5'000};
  std::chrono::milliseconds failover_after{2'000};
  std::chrono::milliseconds monitor_interval{250};
  // strict: while a replica is configured, no commit is acknowledged before one replica has it (the primary
  // waits as long as it takes), so a failover can always be made without losing an acknowledged commit.
  // fallback: after semi_sync_timeout without a replica's acknowledgement the primary acknowledges anyway;
  // writes go on when every replica is away, but a primary lost after such a commit is not failed over
  // automatically (the commit may exist only on it).
  enum class SemiSyncMode { kStrict, kFallback };
  SemiSyncMode semi_sync = SemiSyncMode::kStrict;
  std::chrono::milliseconds semi_sync_timeout{5'000};  // fallback only
  std::chrono::milliseconds connect_timeout{1'000};
  uint64_t buffer_pool_bytes = 64ull << 20;
  int workers = 1;  // proxy event loops
  UserSpec replication;
  std::vector<UserSpec> users;
  std::string log_level = "info";
  std::string log_file;  // empty: stderr
};

// Throw core::ConfigError naming file, line and column.
DbConfig parse_db_config(const core::ConfigNode& root);
DbConfig load_db_config(const std::string& path);

}  // namespace cumulo::db
