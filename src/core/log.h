// Logs as JSON lines: {"ts":"2026-11-23T16:00:00.123Z","level":"info","component":"gateway","msg":"...",...}.
// The process log goes to stderr (or a file); the access log is a separate stream with per-thread buffering.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

namespace cumulo::core {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

struct LogField {
  using Value = std::variant<std::string_view, int64_t, double, bool>;
  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  LogField(std::string_view k, int v) : key(k), value(int64_t{v}) {}
  LogField(std::string_view k, unsigned v) : key(k), value(int64_t{v}) {}
  LogField(std::string_view k, long v) : key(k), value(int64_t{v}) {}
  LogField(std::string_view k, unsigned long v) : key(k), value(static_cast<int64_t>(v)) {}
  LogField(std::string_view k, long long v) : key(k), value(int64_t{v}) {}
  LogField(std::string_view k, double v) : key(k), value(v) {}
  LogField(std::string_view k, bool v) : key(k), value(v) {}
  std::string_view key;
  Value value;
};

// Appends JSON to a string without a DOM: the access log's hot path.
class JsonLine {
 public:
  explicit JsonLine(std::string& out) : out_(out) { out_.push_back('{'); }
  JsonLine& field(std::string_view key, std::string_view value);
  JsonLine& field(std::string_view key, int64_t value);
  // 6 significant digits; NaN and infinities, which JSON cannot say, as null.
  JsonLine& field(std::string_view key, double value);
  JsonLine& field(std::string_view key, bool value);
  // Without these, a string literal would pick the bool overload and an int would be ambiguous.
  JsonLine& field(std::string_view key, const char* value) { return field(key, std::string_view(value)); }
  template <typename T>
  requires(std::is_integral_v<T> && !std::is_same_v<T, bool> &&
           !std::is_same_v<T, int64_t>) JsonLine& field(std::string_view key, T value) {
    return field(key, static_cast<int64_t>(value));
  }
  JsonLine& field(const LogField& f);
  void finish() { out_ += "}\n"; }  // closes the object and ends the line

 private:
  void key(std::string_view k);
  std::string& out_;
  bool first_ = true;
};

// Appends s JSON-escaped (without quotes): ", \ and \n \r \t by their short forms, other control characters
// and DEL as \u00XX; each byte of invalid UTF-8 as \u00XX too (read as Latin-1), so a line is always valid
// JSON.
void json_escape_to(std::string& out, std::string_view s);
// "2026-11-23T16:00:00.123Z" for the current wall-clock time.
std::string utc_timestamp();

// Process log. Thread-safe; each call writes one whole line with one write(2).
void log_set_level(LogLevel min);
// "-" or "" means stderr. False when the file cannot be opened; the log then stays where it was.
bool log_set_file(const std::string& path);
bool log_enabled(LogLevel level);
void log(LogLevel level, std::string_view component, std::string_view msg, std::span<const LogField> fields);
inline void log(LogLevel level, std::string_view component, std::string_view msg,
                std::initializer_list<LogField> fields = {}) {
  log(level, component, msg, std::span<const LogField>(fields.begin(), fields.size()));
}
inline void log_info(std::string_view c, std::string_view m, std::initializer_list<LogField> f = {}) {
  log(LogLevel::kInfo, c, m, f);
}
inline void log_warn(std::string_view c, std::string_view m, std::initializer_list<LogField> f = {}) {
  log(LogLevel::kWarn, c, m, f);
}
inline void log_error(std::string_view c, std::string_view m, std::initializer_list<LogField> f = {}) {
  log(LogLevel::kError, c, m, f);
}
std::optional<LogLevel> parse_log_level(std::string_view s);  // "debug", "info", "warn", "error"

// Access log: lines are gathered per thread and written in blocks (when 32 KiB are pending, and by flush(),
// which the owner calls about every 100 ms from each worker loop), so logging costs no syscall per request.
class AccessLog {
 public:
  static bool open(
      const std::string& path);  // "-" means stdout; "" or "off" disables; false when it cannot open
  static bool enabled();
  static void append(std::string_view line);  // one complete JSON line ending in '\n'
  static void flush();                        // this thread's pending lines
  static void close();  // flushes this thread's lines; other threads must flush theirs before
};

}  // namespace cumulo::core
