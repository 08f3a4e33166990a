#include "stack/internal/db_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "stack/internal/control_api.h"

namespace cumulo::stack::internal {

namespace fs = std::filesystem;

void prepare_database_secret(DatabaseSpec& db, const std::string& state_dir) {
  const fs::path dir = fs::path(state_dir) / "db";
  fs::create_directories(dir);
  ::chmod(dir.c_str(), 0700);
  const fs::path file = dir / "replication-password";
  if (!fs::exists(file)) {
    const std::string token = random_token();
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || ::write(fd, token.data(), token.size()) != static_cast<ssize_t>(token.size())) {
      if (fd >= 0) ::close(fd);
      throw std::runtime_error("cannot write " + file.string());
    }
    ::close(fd);
  }
  std::ifstream in(file);
  std::getline(in, db.replication_password);
  if (db.replication_password.empty()) throw std::runtime_error("cannot read " + file.string());
}

namespace {
// Values are quoted as YAML double-quoted strings; names and passwords are checked by the tier's own parser.
std::string q(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}
}  // namespace

std::string render_db_config(const DatabaseSpec& db, const std::string& data_dir) {
  std::string y;
  y += "data_dir: " + q(data_dir) + "\n";
  y += "writer: " + q(db.writer) + "\n";
  y += "reader: " + q(db.reader) + "\n";
  y += "admin: " + q(db.admin) + "\n";
  y += "primary: " + q(db.instances.at(0).name) + "\n";
  y += "lag_limit: " + std::to_string(db.lag_limit.count()) + "ms\n";
  y += "failover_after: " + std::to_string(db.failover_after.count()) + "ms\n";
  y += "instances:\n";
  for (const DatabaseInstancePlan& i : db.instances) {
    y += "  - {name: " + q(i.name) + ", zone: " + q(i.zone) + ", port: " + std::to_string(i.port) + "}\n";
  }
  y += "replication: {name: repl, password: " + q(db.replication_password) + "}\n";
  if (!db.users.empty()) {
    y += "users:\n";
    for (const DatabaseUserSpec& u : db.users) {
      y += "  - name: " + q(u.name) + "\n    password: " + q(u.password) + "\n    databases: [";
      for (size_t k = 0; k < u.databases.size(); ++k) y += (k ? ", " : "") + q(u.databases[k]);
      y += "]\n";
    }
  }
  return y;
}

}  // namespace cumulo::stack::internal
