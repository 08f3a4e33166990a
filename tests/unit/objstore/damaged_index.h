// Tests of what the store does when its SQLite index fails a read: rows written straight into the objects
// table (a listing reads nothing else), then one page of that table overwritten, so that the step that
// reaches it fails with SQLITE_CORRUPT. Used by storage_test.cc and api_test.cc.
#pragma once

#include <sqlite3.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace cumulo::objstore::index_faults {

// Runs `rows` statements made by row_sql(i, "key-0000i") in one transaction through a connection of its own,
// then checkpoints the WAL into the file. "" when done, else SQLite's message.
template <typename RowSql>
std::string add_rows(const std::string& db_path, int rows, RowSql row_sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open(db_path.c_str(), &db) != SQLITE_OK) return "cannot open " + db_path;
  std::string sql = "BEGIN;";
  for (int i = 0; i < rows; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "key-%05d", i);
    sql += row_sql(i, std::string(key));
  }
  sql += "COMMIT; PRAGMA wal_checkpoint(TRUNCATE);";
  char* err = nullptr;
  std::string out;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) out = err ? err : "sqlite error";
  sqlite3_free(err);
  sqlite3_close(db);
  return out;
}

// Objects "key-00000".."key-NNNNN" of `bucket`, without data files.
inline std::string add_index_rows(const std::string& db_path, const std::string& bucket, int rows) {
  return add_rows(db_path, rows, [&](int, const std::string& key) {
    return "INSERT INTO objects VALUES('" + bucket + "', '" + key + "', 1, '" + std::string(32, 'e') +
           "', 1, 'text/plain', '[]', '[]');";
  });
}

// Change feed rows 1..rows (deletes of "key-00000".. in `bucket`, from zone a).
inline std::string add_change_rows(const std::string& db_path, const std::string& bucket, int rows) {
  return add_rows(db_path, rows, [&](int i, const std::string& key) {
    return "INSERT INTO changes VALUES('" + bucket + "', '" + key + "', " + std::to_string(i + 1) +
           ", 1, 'a', 1);";
  });
}

// Overwrites the page two thirds into the file (a page of the table the rows above made the bulk of the file)
// with bytes no page starts with. False when the file is too small for that.
inline bool damage_index_page(const std::string& db_path) {
  constexpr std::streamoff kPage = 4096;  // SQLite's default page size
  std::fstream f(db_path, std::ios::in | std::ios::out | std::ios::binary);
  if (!f) return false;
  f.seekg(0, std::ios::end);
  const std::streamoff pages = f.tellg() / kPage;
  if (pages < 20) return false;
  f.seekp((pages * 2 / 3) * kPage);
  std::string garbage(kPage, '\xff');
  f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  return static_cast<bool>(f.flush());
}

}  // namespace cumulo::objstore::index_faults
