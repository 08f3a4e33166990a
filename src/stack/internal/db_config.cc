#include "stack/internal/db_config.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "core/config.h"
#include "core/files.h"
#include "stack/internal/control_api.h"

namespace cumulo::stack::internal {

namespace fs = std::filesystem;

void prepare_database_secret(DatabaseSpec& db, const std::string& state_dir) {
  const fs::path dir = fs::path(state_dir) / "db";
  fs::create_directories(dir);
  ::chmod(dir.c_str(), 0700);
  const fs::path file = dir / "replication-password";
  if (!fs::exists(file)) core::write_secret_file(file.string(), random_token(), core::IfExists::kKeep);
  std::ifstream in(file);
  std::getline(in, db.replication_password);
  if (db.replication_password.empty()) throw std::runtime_error("cannot read " + file.string());
}

std::string render_db_config(const DatabaseSpec& db, const std::string& data_dir) {
  std::string y;
  if (!db.endpoints_address.empty()) {
    y +=
        "# Network mode: each server runs in a network namespace of its own (netns) in its zone's private\n"
        "# subnet and binds to its address there only; the replication user is created for the servers'\n"
        "# addresses, the application users for the endpoints' address alone (allowed_hosts): the endpoints\n"
        "# proxy every application connection, and the security groups let nothing else reach a server.\n";
  }
  y += "data_dir: " + core::yaml_quoted(data_dir) + "\n";
  y += "writer: " + core::yaml_quoted(db.writer) + "\n";
  y += "reader: " + core::yaml_quoted(db.reader) + "\n";
  y += "admin: " + core::yaml_quoted(db.admin) + "\n";
  y += "primary: " + core::yaml_quoted(db.instances.at(0).name) + "\n";
  y += "lag_limit: " + std::to_string(db.lag_limit.count()) + "ms\n";
  y += "failover_after: " + std::to_string(db.failover_after.count()) + "ms\n";
  y += "instances:\n";
  for (const DatabaseInstancePlan& i : db.instances) {
    y += "  - {name: " + core::yaml_quoted(i.name) + ", zone: " + core::yaml_quoted(i.zone) +
         ", port: " + std::to_string(i.port);
    if (!i.address.empty()) y += ", address: " + core::yaml_quoted(i.address);
    if (!i.netns.empty()) y += ", netns: " + core::yaml_quoted(i.netns);
    y += "}\n";
  }
  if (!db.endpoints_address.empty())
    y += "allowed_hosts: [" + core::yaml_quoted(db.endpoints_address) + "]\n";
  y += "replication: {name: repl, password: " + core::yaml_quoted(db.replication_password) + "}\n";
  if (!db.users.empty()) {
    y += "users:\n";
    for (const DatabaseUserSpec& u : db.users) {
      y += "  - name: " + core::yaml_quoted(u.name) + "\n    password: " + core::yaml_quoted(u.password) +
           "\n    databases: [";
      for (size_t k = 0; k < u.databases.size(); ++k)
        y += (k ? ", " : "") + core::yaml_quoted(u.databases[k]);
      y += "]\n";
    }
  }
  return y;
}

}  // namespace cumulo::stack::internal
