#include "db/internal/config.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace cumulo::db {
namespace {

constexpr const char* kBase = R"(data_dir: /tmp/x
writer: 127.0.0.1:3306
reader: 127.0.0.1:3307
admin: 127.0.0.1:3308
primary: db-a
instances:
  - {name: db-a, zone: a, port: 13306}
  - {name: db-b, zone: b, port: 13307}
replication: {name: repl, password: secret}
)";

DbConfig parse(const std::string& extra) {
  return parse_db_config(core::ConfigNode::load_string(kBase + extra, "db.yaml"));
}

std::string error_of(const std::string& text) {
  try {
    parse_db_config(core::ConfigNode::load_string(text, "db.yaml"));
  } catch (const core::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(DbConfig, DefaultsAndValues) {
  DbConfig c = parse(
      "lag_limit: 3s\nfailover_after: 500ms\nusers:\n  - {name: app, password: pw, databases: [app, "
      "shop]}\n");
  EXPECT_EQ(c.instances.size(), 2u);
  EXPECT_EQ(c.instances[1].zone, "b");
  EXPECT_EQ(c.instances[1].port, 13307);
  EXPECT_EQ(c.primary, "db-a");
  EXPECT_EQ(c.lag_limit, std::chrono::seconds(3));
  EXPECT_EQ(c.failover_after, std::chrono::milliseconds(500));
  EXPECT_EQ(c.semi_sync, DbConfig::SemiSyncMode::kStrict);
  EXPECT_EQ(c.users.at(0).databases, (std::vector<std::string>{"app", "shop"}));
  EXPECT_EQ(c.workers, 1);
}

TEST(DbConfig, LoopbackByDefault) {
  DbConfig c = parse("users:\n  - {name: app, password: pw, databases: [app]}\n");
  EXPECT_EQ(c.instances[0].address, "127.0.0.1");
  EXPECT_EQ(c.instances[0].netns, "");
  EXPECT_EQ(c.allowed_hosts, (std::vector<std::string>{"127.0.0.1"}));
  const std::vector<std::string> sql = user_setup_sql(c);
  EXPECT_EQ(sql, (std::vector<std::string>{
                     "CREATE USER IF NOT EXISTS 'repl'@'127.0.0.1' IDENTIFIED BY 'secret'",
                     "ALTER USER 'repl'@'127.0.0.1' IDENTIFIED BY 'secret'",
                     "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'",
                     "CREATE DATABASE IF NOT EXISTS `app`",
                     "CREATE USER IF NOT EXISTS 'app'@'127.0.0.1' IDENTIFIED BY 'pw'",
                     "ALTER USER 'app'@'127.0.0.1' IDENTIFIED BY 'pw'",
                     "GRANT ALL PRIVILEGES ON `app`.* TO 'app'@'127.0.0.1'",
                 }));
}

constexpr const char* kNetworked = R"(data_dir: /tmp/x
writer: 10.20.1.5:3306
reader: 10.20.1.5:3307
admin: 127.0.0.1:3308
primary: db-a
instances:
  - {name: db-a, zone: a, port: 3306, address: 10.20.1.6, netns: cu-s.db-a}
  - {name: db-b, zone: b, port: 3306, address: 10.20.2.6, netns: cu-s.db-b}
allowed_hosts: [10.20.1.5, "10.20.%"]
replication: {name: repl, password: secret}
users:
  - {name: app, password: pw, databases: [app]}
)";

TEST(DbConfig, ServersInNamespacesOfTheirOwn) {
  DbConfig c = parse_db_config(core::ConfigNode::load_string(kNetworked, "db.yaml"));
  EXPECT_EQ(c.instances[1].address, "10.20.2.6");
  EXPECT_EQ(c.instances[1].netns, "cu-s.db-b");
  EXPECT_EQ(c.instances[1].port, 3306) << "one port per namespace";
  EXPECT_EQ(c.allowed_hosts, (std::vector<std::string>{"10.20.1.5", "10.20.%"}));
  const std::vector<std::string> sql = user_setup_sql(c);
  auto has = [&](const std::string& s) { return std::find(sql.begin(), sql.end(), s) != sql.end(); };
  EXPECT_TRUE(has("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'10.20.1.6'"));
  EXPECT_TRUE(has("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'10.20.2.6'"));
  EXPECT_TRUE(has("GRANT ALL PRIVILEGES ON `app`.* TO 'app'@'10.20.1.5'"));
  EXPECT_TRUE(has("GRANT ALL PRIVILEGES ON `app`.* TO 'app'@'10.20.%'"));
  for (const std::string& s : sql) EXPECT_EQ(s.find("127.0.0.1"), std::string::npos) << s;
}

TEST(DbConfig, UsersForHostsNoLongerAllowedAreDropped) {
  DbConfig c = parse_db_config(core::ConfigNode::load_string(kNetworked, "db.yaml"));
  const std::vector<std::pair<std::string, std::string>> existing = {
      {"root", "localhost"}, {"app", "127.0.0.1"},   {"app", "10.20.1.5"}, {"repl", "127.0.0.1"},
      {"repl", "10.20.1.6"}, {"other", "127.0.0.1"}, {"app", "10.20.%"}};
  EXPECT_EQ(stale_users_sql(c, existing),
            (std::vector<std::string>{"DROP USER IF EXISTS 'app'@'127.0.0.1'",
                                      "DROP USER IF EXISTS 'repl'@'127.0.0.1'"}));
  EXPECT_TRUE(stale_users_sql(parse(""), {{"repl", "127.0.0.1"}, {"root", "localhost"}}).empty());
}

TEST(DbConfig, AddressesHostsAndNamespacesAreChecked) {
  const std::string text = kNetworked;
  auto with = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    t.replace(t.find(from), from.size(), to);
    return error_of(t);
  };
  std::string e = with("address: 10.20.2.6", "address: db.example");
  EXPECT_NE(e.find("expected a numeric IPv4 address"), std::string::npos) << e;
  e = with("netns: cu-s.db-b", "netns: cu-s.db-a");
  EXPECT_NE(e.find("used twice in network namespace cu-s.db-a"), std::string::npos) << e;
  e = with("netns: cu-s.db-b", "netns: ../x");
  EXPECT_NE(e.find("expected a network namespace name"), std::string::npos) << e;
  e = with(R"("10.20.%")", R"("10.20.%' OR 1")");
  EXPECT_NE(e.find("expected MariaDB host patterns"), std::string::npos) << e;
  e = with(R"([10.20.1.5, "10.20.%"])", "[]");
  EXPECT_NE(e.find("expected at least one host"), std::string::npos) << e;
  // Without namespaces, the servers share the manager's ports as before.
  e = error_of(std::string(kBase).replace(std::string(kBase).find("13307"), 5, "13306"));
  EXPECT_NE(e.find("port 13306 is used twice"), std::string::npos) << e;
}

TEST(DbConfig, SemiSyncIsStrictUnlessFallbackIsAskedFor) {
  DbConfig c = parse("semi_sync: fallback\nsemi_sync_timeout: 300ms\n");
  EXPECT_EQ(c.semi_sync, DbConfig::SemiSyncMode::kFallback);
  EXPECT_EQ(c.semi_sync_timeout, std::chrono::milliseconds(300));
  EXPECT_EQ(parse("semi_sync: fallback\n").semi_sync_timeout, std::chrono::seconds(5));
  std::string e = error_of(std::string(kBase) + "semi_sync_timeout: 2s\n");
  EXPECT_NE(e.find("only with `semi_sync: fallback`"), std::string::npos) << e;
  e = error_of(std::string(kBase) + "semi_sync: sometimes\n");
  EXPECT_NE(e.find("expected strict or fallback"), std::string::npos) << e;
}

TEST(DbConfig, UnknownKeysAreErrors) {
  std::string e = error_of(std::string(kBase) + "lag_limt: 3s\n");
  EXPECT_NE(e.find("lag_limt"), std::string::npos) << e;
  EXPECT_NE(e.find("db.yaml:"), std::string::npos) << e;
}

TEST(DbConfig, PrimaryMustBeAnInstance) {
  std::string text = kBase;
  text.replace(text.find("primary: db-a"), 13, "primary: db-z");
  std::string e = error_of(text);
  EXPECT_NE(e.find("db-z"), std::string::npos) << e;
}

TEST(DbConfig, PortsMayNotRepeat) {
  std::string text = kBase;
  text.replace(text.find("port: 13307"), 11, "port: 13306");
  EXPECT_NE(error_of(text).find("used twice"), std::string::npos);
  std::string text2 = kBase;
  text2.replace(text2.find("port: 13307"), 11, "port: 3306");
  EXPECT_NE(error_of(text2).find("used twice"), std::string::npos);
}

TEST(DbConfig, PasswordsWithQuotesAreRefused) {
  std::string text = kBase;
  text.replace(text.find("password: secret"), 16, "password: \"a'b\"");
  EXPECT_NE(error_of(text).find("without quotes"), std::string::npos);
}

TEST(DbConfig, BadDurationsAndMissingKeys) {
  EXPECT_NE(error_of(std::string(kBase) + "lag_limit: 3\n").find("lag_limit"), std::string::npos);
  std::string text = kBase;
  text.erase(text.find("replication:"));
  EXPECT_NE(error_of(text).find("replication"), std::string::npos);
  EXPECT_NE(error_of(std::string(kBase) + "users:\n  - {name: app, password: pw, databases: [bad-name]}\n")
                .find("bad-name"),
            std::string::npos);
}

}  // namespace
}  // namespace cumulo::db
