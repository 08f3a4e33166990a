#include "db/internal/sql.h"

#include <mysql.h>

#include <mutex>

namespace cumulo::db {

std::string column(const SqlRow& row, const char* name) {
  auto it = row.find(name);
  return it != row.end() && it->second ? *it->second : std::string();
}

std::string sql_literal(const std::string& text) {
  return "'" + text + "'";
}

void sql_library_init() {
  static std::once_flag once;
  std::call_once(once, [] { mysql_library_init(0, nullptr, nullptr); });
}

SqlConnection::~SqlConnection() {
  close();
}

void SqlConnection::close() {
  if (mysql_) mysql_close(mysql_);
  mysql_ = nullptr;
}

void SqlConnection::record_error() {
  if (mysql_) {
    error_ = mysql_error(mysql_);
    error_code_ = mysql_errno(mysql_);
  }
}

namespace {
// libmariadb counts these timeouts in whole seconds.
unsigned whole_seconds(std::chrono::milliseconds t) {
  return static_cast<unsigned>(std::max<long long>(1, (t.count() + 999) / 1000));
}

MYSQL* make_handle(std::chrono::milliseconds timeout, std::chrono::milliseconds read_timeout) {
  MYSQL* m = mysql_init(nullptr);
  if (!m) return nullptr;
  unsigned secs = whole_seconds(timeout);
  unsigned read_secs = whole_seconds(read_timeout.count() > 0 ? read_timeout : timeout);
  mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &secs);
  mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &read_secs);
  mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &secs);
  return m;
}
}  // namespace

bool SqlConnection::connect_socket(const std::string& socket_path, std::chrono::milliseconds timeout,
                                   std::chrono::milliseconds read_timeout) {
  close();
  mysql_ = make_handle(timeout, read_timeout);
  if (!mysql_) {
    error_ = "out of memory";
    return false;
  }
  if (!mysql_real_connect(mysql_, nullptr, "root", nullptr, nullptr, 0, socket_path.c_str(), 0)) {
    record_error();
    close();
    return false;
  }
  return true;
}

bool SqlConnection::connect_tcp(const std::string& host, unsigned port, const std::string& user,
                                const std::string& password, const std::string& database,
                                std::chrono::milliseconds timeout) {
  close();
  mysql_ = make_handle(timeout, timeout);
  if (!mysql_) {
    error_ = "out of memory";
    return false;
  }
  unsigned proto = MYSQL_PROTOCOL_TCP;
  mysql_optionsv(mysql_, MYSQL_OPT_PROTOCOL, &proto);
  if (!mysql_real_connect(mysql_, host.c_str(), user.c_str(), password.c_str(),
                          database.empty() ? nullptr : database.c_str(), port, nullptr, 0)) {
    record_error();
    close();
    return false;
  }
  return true;
}

bool SqlConnection::exec(const std::string& sql) {
  if (!mysql_) {
    error_ = "not connected";
    return false;
  }
  if (mysql_real_query(mysql_, sql.data(), sql.size()) != 0) {
    record_error();
    return false;
  }
  // Drain any result so the connection is ready for the next statement.
  do {
    if (MYSQL_RES* r = mysql_store_result(mysql_)) mysql_free_result(r);
  } while (mysql_next_result(mysql_) == 0);
  return true;
}

std::optional<std::vector<SqlRow>> SqlConnection::query(const std::string& sql) {
  if (!mysql_) {
    error_ = "not connected";
    return std::nullopt;
  }
  if (mysql_real_query(mysql_, sql.data(), sql.size()) != 0) {
    record_error();
    return std::nullopt;
  }
  MYSQL_RES* res = mysql_store_result(mysql_);
  std::vector<SqlRow> rows;
  if (!res) {
    if (mysql_field_count(mysql_) != 0) {
      record_error();
      return std::nullopt;
    }
    return rows;
  }
  unsigned n = mysql_num_fields(res);
  MYSQL_FIELD* fields = mysql_fetch_fields(res);
  while (MYSQL_ROW row = mysql_fetch_row(res)) {
    unsigned long* lengths = mysql_fetch_lengths(res);
    SqlRow r;
    for (unsigned i = 0; i < n; ++i) {
      if (row[i]) {
        r[fields[i].name] = std::string(row[i], lengths[i]);
      } else {
        r[fields[i].name] = std::nullopt;
      }
    }
    rows.push_back(std::move(r));
  }
  mysql_free_result(res);
  return rows;
}

std::optional<std::string> SqlConnection::value(const std::string& sql) {
  auto rows = query(sql);
  if (!rows || rows->empty() || (*rows)[0].empty()) return std::nullopt;
  return (*rows)[0].begin()->second;
}

}  // namespace cumulo::db
