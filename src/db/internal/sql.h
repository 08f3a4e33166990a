// A blocking MariaDB client connection (libmariadb) for the tier's own administration and monitoring; never
// used on the proxy's event loops.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

struct st_mysql;

namespace cumulo::db {

using SqlRow = std::map<std::string, std::optional<std::string>>;  // column -> value (nullopt: NULL)

class SqlConnection {
 public:
  SqlConnection() = default;
  ~SqlConnection();
  SqlConnection(const SqlConnection&) = delete;
  SqlConnection& operator=(const SqlConnection&) = delete;

  // As root over the server's Unix socket (only the local OS user that owns the data directory reaches it).
  // `read_timeout` bounds each statement's wait for an answer (default: `timeout`); a statement that may
  // rightly take longer needs a connection of its own with a longer one.
  bool connect_socket(const std::string& socket_path, std::chrono::milliseconds timeout,
                      std::chrono::milliseconds read_timeout = std::chrono::milliseconds(0));
  // As a user over TCP.
  bool connect_tcp(const std::string& host, unsigned port, const std::string& user,
                   const std::string& password, const std::string& database,
                   std::chrono::milliseconds timeout);
  bool connected() const { return mysql_ != nullptr; }
  void close();

  bool exec(const std::string& sql);
  std::optional<std::vector<SqlRow>> query(const std::string& sql);
  // The first column of the first row, or nullopt (also for NULL and errors).
  std::optional<std::string> value(const std::string& sql);

  const std::string& error() const { return error_; }
  unsigned error_code() const { return error_code_; }

 private:
  void record_error();
  st_mysql* mysql_ = nullptr;
  std::string error_;
  unsigned error_code_ = 0;
};

// A column of a row as text; "" for NULL or a column the row lacks.
std::string column(const SqlRow& row, const char* name);

// 'text' as an SQL string literal. Not escaped: only names and passwords that the configuration checked (no
// quotes, no backslashes) and GTID positions go through it.
std::string sql_literal(const std::string& text);

// Once, before any thread uses libmariadb.
void sql_library_init();

}  // namespace cumulo::db
