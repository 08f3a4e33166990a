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
  // Where the server listens (--bind-address) and what the other servers replicate from; the replication user
  // is created for each instance's address. Network mode gives each server an address of its own.
  std::string address = "127.0.0.1";
  // The network namespace (/run/netns/NAME) the server runs in; empty: the manager's own.
  std::string netns;
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
  // The client hosts the users are created for (MariaDB host patterns: '10.20.1.5', '10.20.%'). The endpoints
  // proxy the applications' connections, so the servers see the endpoints' address.
  std::vector<std::string> allowed_hosts = {"127.0.0.1"};
  std::string log_level = "info";
  std::string log_file;  // empty: stderr
};

// The statements that give a server the configured users and their empty databases: the replication user
// for each instance's address, every other user for each of `allowed_hosts`.
std::vector<std::string> user_setup_sql(const DbConfig& config);
// DROP USER for each of `existing` (user, host: what mysql.user holds) that is one of the configured users at
// a host it is no longer created for: a server keeps no account for an address that may not connect (one of
// an earlier run in loopback mode, say).
std::vector<std::string> stale_users_sql(const DbConfig& config,
                                         const std::vector<std::pair<std::string, std::string>>& existing);

// Throw core::ConfigError naming file, line and column.
DbConfig parse_db_config(const core::ConfigNode& root);
DbConfig load_db_config(const std::string& path);

}  // namespace cumulo::db
