#include "db/internal/config.h"

#include <algorithm>
#include <set>

#include "core/log.h"
#include "core/net.h"
#include "db/internal/sql.h"

namespace cumulo::db {

namespace {

bool valid_identifier(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

// Passwords go into SQL string literals; quotes and backslashes are refused rather than escaped.
bool valid_password(const std::string& s) {
  return !s.empty() && s.size() <= 128 && std::none_of(s.begin(), s.end(), [](char c) {
    return c == '\'' || c == '\\' || c == '"' || c < 0x20;
  });
}

std::string loopback_address(const core::ConfigNode& n) {
  std::string text = n.as_string();
  auto a = core::SocketAddress::parse(text);
  if (!a) n.fail("expected HOST:PORT (numeric host or localhost), got '" + text + "'");
  return text;
}

UserSpec parse_user(const core::ConfigNode& n, bool with_databases) {
  if (with_databases) {
    n.check_keys({"name", "password", "databases"});
  } else {
    n.check_keys({"name", "password"});
  }
  UserSpec u;
  u.name = n.required("name").as_string();
  if (!valid_identifier(u.name)) n["name"].fail("expected a user name of letters, digits, '_' or '-'");
  u.password = n.required("password").as_string();
  if (!valid_password(u.password)) {
    n["password"].fail("expected a non-empty password without quotes, backslashes or control characters");
  }
  if (with_databases) {
    u.databases = n.required("databases").as_string_list();
    for (const auto& d : u.databases) {
      if (!valid_identifier(d) || d.find('-') != std::string::npos) {
        n["databases"].fail("expected database names of letters, digits and '_', got '" + d + "'");
      }
    }
  }
  return u;
}

// A MariaDB host pattern of an address or a network: digits, letters, '.', ':', '-', '_' and the '%' wildcard
// (it goes into a SQL string literal, so no quotes).
bool valid_host_pattern(const std::string& s) {
  return !s.empty() && s.size() <= 255 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == ':' || c == '-' || c == '_' || c == '%';
  });
}

// A namespace name as `ip netns` makes them ("cu-STACK.NAME").
bool valid_netns(const std::string& s) {
  return !s.empty() && s.size() <= 200 && s != "." && s != ".." &&
         std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '-' || c == '.';
         });
}

std::string quoted_host(const std::string& user, const std::string& host) {
  return sql_literal(user) + "@" + sql_literal(host);
}

}  // namespace

std::vector<std::string> user_setup_sql(const DbConfig& config) {
  std::vector<std::string> sql;
  const UserSpec& r = config.replication;
  std::vector<std::string> server_hosts;
  for (const InstanceSpec& i : config.instances) {
    if (std::find(server_hosts.begin(), server_hosts.end(), i.address) == server_hosts.end())
      server_hosts.push_back(i.address);
  }
  for (const std::string& host : server_hosts) {
    const std::string repl = quoted_host(r.name, host);
    sql.push_back("CREATE USER IF NOT EXISTS " + repl + " IDENTIFIED BY " + sql_literal(r.password));
    sql.push_back("ALTER USER " + repl + " IDENTIFIED BY " + sql_literal(r.password));
    sql.push_back("GRANT REPLICATION SLAVE ON *.* TO " + repl);
  }
  for (const UserSpec& u : config.users) {
    for (const std::string& d : u.databases) sql.push_back("CREATE DATABASE IF NOT EXISTS `" + d + "`");
    for (const std::string& host : config.allowed_hosts) {
      const std::string user = quoted_host(u.name, host);
      sql.push_back("CREATE USER IF NOT EXISTS " + user + " IDENTIFIED BY " + sql_literal(u.password));
      sql.push_back("ALTER USER " + user + " IDENTIFIED BY " + sql_literal(u.password));
      for (const std::string& d : u.databases) {
        sql.push_back("GRANT ALL PRIVILEGES ON `" + d + "`.* TO " + user);
      }
    }
  }
  return sql;
}

std::vector<std::string> stale_users_sql(const DbConfig& config,
                                         const std::vector<std::pair<std::string, std::string>>& existing) {
  std::set<std::pair<std::string, std::string>> wanted;
  for (const InstanceSpec& i : config.instances) wanted.insert({config.replication.name, i.address});
  std::set<std::string> names = {config.replication.name};
  for (const UserSpec& u : config.users) {
    names.insert(u.name);
    for (const std::string& host : config.allowed_hosts) wanted.insert({u.name, host});
  }
  std::vector<std::string> sql;
  for (const auto& [user, host] : existing) {
    // root is the manager's own account (over the Unix socket): never dropped, whatever users: says.
    if (user != "root" && names.count(user) && !wanted.count({user, host})) {
      sql.push_back("DROP USER IF EXISTS " + quoted_host(user, host));
    }
  }
  return sql;
}

DbConfig parse_db_config(const core::ConfigNode& root) {
  root.check_keys({"data_dir",        "bin_dir",          "writer",    "reader",
                   "admin",           "primary",          "instances", "lag_limit",
                   "failover_after",  "monitor_interval", "semi_sync", "semi_sync_timeout",
                   "connect_timeout", "buffer_pool",      "workers",   "replication",
                   "users",           "allowed_hosts",    "log_level", "log_file"});
  DbConfig c;
  c.data_dir = root.required("data_dir").as_string();
  c.bin_dir = root.string_or("bin_dir", c.bin_dir);
  c.writer = loopback_address(root.required("writer"));
  c.reader = loopback_address(root.required("reader"));
  c.admin = loopback_address(root.required("admin"));
  // Ports are taken per network namespace: the endpoints and the admin API in the manager's, each server in
  // its own (or the manager's, without `netns`).
  std::set<std::pair<std::string, uint16_t>> ports;
  for (const char* key : {"writer", "reader", "admin"}) {
    uint16_t p = core::SocketAddress::parse(root[key].as_string())->port();
    if (p != 0 && !ports.insert({"", p}).second)
      root[key].fail("port " + std::to_string(p) + " is used twice");
  }
  auto list = root.required("instances");
  std::set<std::string> names;
  for (const auto& n : list.items()) {
    n.check_keys({"name", "zone", "port", "address", "netns"});
    InstanceSpec i;
    i.name = n.required("name").as_string();
    if (!valid_identifier(i.name)) n["name"].fail("expected a name of letters, digits, '_' or '-'");
    if (!names.insert(i.name).second) n["name"].fail("instance '" + i.name + "' is named twice");
    i.zone = n.string_or("zone", "-");
    i.port = static_cast<uint16_t>(n.required("port").as_int(1, 65535));
    if (n["address"].defined()) {
      i.address = n["address"].as_string();
      const auto a = core::SocketAddress::parse(i.address + ":1");
      if (!a || a->host() != i.address || i.address.find(':') != std::string::npos) {
        n["address"].fail("expected a numeric IPv4 address, got '" + i.address + "'");
      }
    }
    if (n["netns"].defined()) {
      i.netns = n["netns"].as_string();
      if (!valid_netns(i.netns)) n["netns"].fail("expected a network namespace name, got '" + i.netns + "'");
    }
    if (!ports.insert({i.netns, i.port}).second) {
      n["port"].fail("port " + std::to_string(i.port) + " is used twice" +
                     (i.netns.empty() ? "" : " in network namespace " + i.netns));
    }
    c.instances.push_back(i);
  }
  if (c.instances.empty()) list.fail("expected at least one instance");
  c.primary = root.required("primary").as_string();
  if (!names.count(c.primary)) {
    root["primary"].fail("expected the name of one of the instances, got '" + c.primary + "'");
  }
  c.lag_limit = root.duration_or("lag_limit", c.lag_limit);
  c.failover_after = root.duration_or("failover_after", c.failover_after);
  c.monitor_interval = root.duration_or("monitor_interval", c.monitor_interval);
  if (c.monitor_interval.count() < 10) root["monitor_interval"].fail("expected at least 10ms");
  const std::string mode = root.string_or("semi_sync", "strict");
  if (mode == "strict") {
    c.semi_sync = DbConfig::SemiSyncMode::kStrict;
    if (root["semi_sync_timeout"].defined()) {
      root["semi_sync_timeout"].fail(
          "semi_sync_timeout applies only with `semi_sync: fallback`; with strict semi-sync (the default) "
          "the primary never acknowledges a commit that no replica has");
    }
  } else if (mode == "fallback") {
    c.semi_sync = DbConfig::SemiSyncMode::kFallback;
  } else {
    root["semi_sync"].fail("expected strict or fallback, got '" + mode + "'");
  }
  c.semi_sync_timeout = root.duration_or("semi_sync_timeout", c.semi_sync_timeout);
  if (c.semi_sync_timeout.count() < 1) root["semi_sync_timeout"].fail("expected at least 1ms");
  c.connect_timeout = root.duration_or("connect_timeout", c.connect_timeout);
  if (c.connect_timeout.count() < 1000)
    root["connect_timeout"].fail("expected at least 1s (MariaDB counts seconds)");
  c.buffer_pool_bytes = root.size_or("buffer_pool", c.buffer_pool_bytes);
  if (c.buffer_pool_bytes < (8ull << 20)) root["buffer_pool"].fail("expected at least 8MiB");
  c.workers = static_cast<int>(root.int_or("workers", c.workers, 1, 64));
  c.replication = parse_user(root.required("replication"), false);
  for (const auto& n : root["users"].defined() ? root["users"].items() : std::vector<core::ConfigNode>{}) {
    UserSpec u = parse_user(n, true);
    if (u.name == c.replication.name ||
        std::any_of(c.users.begin(), c.users.end(), [&](const UserSpec& o) { return o.name == u.name; })) {
      n["name"].fail("user '" + u.name + "' is defined twice");
    }
    c.users.push_back(std::move(u));
  }
  if (root["allowed_hosts"].defined()) {
    c.allowed_hosts = root["allowed_hosts"].as_string_list();
    if (c.allowed_hosts.empty()) root["allowed_hosts"].fail("expected at least one host");
    for (const std::string& h : c.allowed_hosts) {
      if (!valid_host_pattern(h)) {
        root["allowed_hosts"].fail("expected MariaDB host patterns such as '10.20.1.5' or '10.20.%', got '" +
                                   h + "'");
      }
    }
  }
  c.log_level = root.string_or("log_level", c.log_level);
  if (!core::parse_log_level(c.log_level)) root["log_level"].fail("expected debug, info, warn or error");
  c.log_file = root.string_or("log_file", "");
  return c;
}

DbConfig load_db_config(const std::string& path) {
  DbConfig c = parse_db_config(core::ConfigNode::load_file(path));
  c.source = path;
  return c;
}

}  // namespace cumulo::db
