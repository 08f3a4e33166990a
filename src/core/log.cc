#include "core/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <ctime>
#include <mutex>

#include "core/text.h"

namespace cumulo::core {

namespace {

constexpr std::string_view kLevelNames[] = {"debug", "info", "warn", "error"};
constexpr char kHex[] = "0123456789abcdef";

void append_u00(std::string& out, unsigned char c) {
  out += "\\u00";
  out.push_back(kHex[c >> 4]);
  out.push_back(kHex[c & 0xf]);
}

// Writes all of data, resuming after short writes and signals. A failed log write has nowhere to be reported.
void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

int open_append(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

// Process log. Writers read g_log_fd without a lock: log_set_file() never closes a descriptor a writer may
// hold, it dup2()s the new file onto the same number, so a concurrent write lands in either the old or the
// new file.
std::atomic<int> g_min_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_log_fd{STDERR_FILENO};
std::mutex g_log_setup_mu;  // serialises log_set_file() calls only
int g_log_private_fd = -1;  // our own descriptor once a file was set; then g_log_fd == g_log_private_fd

// Access log. The mutex is held for each block write: it keeps two threads' blocks whole even where write(2)
// is not atomic (pipes beyond PIPE_BUF, short writes), and lets close() never pull the descriptor out from
// under a writer. It is taken about once per 32 KiB or per flush interval, never per request.
constexpr size_t kAccessFlushBytes = 32 * 1024;
std::mutex g_access_mu;
int g_access_fd = -1;  // guarded by g_access_mu
bool g_access_owns_fd = false;
std::atomic<bool> g_access_enabled{false};

void access_write(std::string& pending) {
  if (pending.empty()) return;
  {
    std::lock_guard lock(g_access_mu);
    if (g_access_fd >= 0) write_all(g_access_fd, pending);
  }
  pending.clear();
}

struct AccessBuffer {
  std::string pending;
  AccessBuffer() { pending.reserve(kAccessFlushBytes + 4096); }
  // A worker thread that exits hands in what it gathered since its last flush.
  ~AccessBuffer() { access_write(pending); }
};

AccessBuffer& access_buffer() {
  thread_local AccessBuffer buffer;
  return buffer;
}

}  // namespace

void json_escape_to(std::string& out, std::string_view s) {
  size_t run = 0;  // start of the bytes copied as they are
  size_t i = 0;
  auto flush_run = [&] { out.append(s.data() + run, i - run); };
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      size_t len = utf8_sequence_length(s, i);
      if (len > 0) {
        i += len;
        continue;
      }
    }
    flush_run();
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        append_u00(out, c);  // other controls, DEL, and each byte of invalid UTF-8 (read as Latin-1)
    }
    run = ++i;
  }
  flush_run();
}

std::string utc_timestamp() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  // The calendar part changes once a second; formatting it is the costly half.
  thread_local time_t cached_sec = -1;
  thread_local char cached[24];
  if (ts.tv_sec != cached_sec) {
    tm t{};
    gmtime_r(&ts.tv_sec, &t);
    strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &t);
    cached_sec = ts.tv_sec;
  }
  std::string out(cached);
  long ms = ts.tv_nsec / 1'000'000;
  out.push_back('.');
  out.push_back(static_cast<char>('0' + ms / 100));
  out.push_back(static_cast<char>('0' + ms / 10 % 10));
  out.push_back(static_cast<char>('0' + ms % 10));
  out.push_back('Z');
  return out;
}

void JsonLine::key(std::string_view k) {
  if (!first_) out_.push_back(',');
  first_ = false;
  out_.push_back('"');
  json_escape_to(out_, k);
  out_ += "\":";
}

JsonLine& JsonLine::field(std::string_view k, std::string_view value) {
  key(k);
  out_.push_back('"');
  json_escape_to(out_, value);
  out_.push_back('"');
  return *this;
}

JsonLine& JsonLine::field(std::string_view k, int64_t value) {
  key(k);
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, value);
  out_.append(buf, res.ptr);
  return *this;
}

JsonLine& JsonLine::field(std::string_view k, double value) {
  key(k);
  if (!std::isfinite(value)) {
    out_ += "null";  // JSON has no NaN or Infinity
    return *this;
  }
  // Locale-independent, unlike printf("%g"), which writes a decimal comma in some locales.
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::general, 6);
  out_.append(buf, res.ptr);
  return *this;
}

JsonLine& JsonLine::field(std::string_view k, bool value) {
  key(k);
  out_ += value ? "true" : "false";
  return *this;
}

JsonLine& JsonLine::field(const LogField& f) {
  std::visit([&](const auto& v) { field(f.key, v); }, f.value);
  return *this;
}

void log_set_level(LogLevel min) {
  g_min_level.store(static_cast<int>(min), std::memory_order_relaxed);
}

bool log_set_file(const std::string& path) {
  std::lock_guard lock(g_log_setup_mu);
  int fd = (path.empty() || path == "-") ? STDERR_FILENO : open_append(path);
  if (fd < 0) return false;
  if (g_log_private_fd < 0) {
    if (fd == STDERR_FILENO) return true;  // still on stderr
    g_log_private_fd = fd;
  } else {
    // Atomically re-points the descriptor writers already hold (log rotation, or back to stderr).
    int rc;
    do {
      rc = ::dup2(fd, g_log_private_fd);
    } while (rc < 0 && errno == EINTR);
    if (fd != STDERR_FILENO) ::close(fd);
    if (rc < 0) return false;
  }
  g_log_fd.store(g_log_private_fd, std::memory_order_release);
  return true;
}

bool log_enabled(LogLevel level) {
  return static_cast<int>(level) >= g_min_level.load(std::memory_order_relaxed);
}

void log(LogLevel level, std::string_view component, std::string_view msg, std::span<const LogField> fields) {
  if (!log_enabled(level)) return;
  std::string line;
  line.reserve(160);
  JsonLine json(line);
  json.field("ts", utc_timestamp());
  json.field("level", kLevelNames[static_cast<int>(level)]);
  json.field("component", component);
  json.field("msg", msg);
  for (const LogField& f : fields) json.field(f);
  json.finish();
  write_all(g_log_fd.load(std::memory_order_acquire), line);
}

std::optional<LogLevel> parse_log_level(std::string_view s) {
  for (size_t i = 0; i < std::size(kLevelNames); ++i) {
    if (s == kLevelNames[i]) return static_cast<LogLevel>(i);
  }
  return std::nullopt;
}

bool AccessLog::open(const std::string& path) {
  int fd = -1;
  bool owns = false;
  if (path == "-") {
    fd = STDOUT_FILENO;
  } else if (!path.empty() && path != "off") {
    fd = open_append(path);
    if (fd < 0) return false;
    owns = true;
  }
  std::lock_guard lock(g_access_mu);
  if (g_access_owns_fd) ::close(g_access_fd);
  g_access_fd = fd;
  g_access_owns_fd = owns;
  g_access_enabled.store(fd >= 0, std::memory_order_relaxed);
  return true;
}

bool AccessLog::enabled() {
  return g_access_enabled.load(std::memory_order_relaxed);
}

void AccessLog::append(std::string_view line) {
  if (!enabled()) return;
  std::string& pending = access_buffer().pending;
  pending += line;
  if (pending.size() >= kAccessFlushBytes) access_write(pending);
}

void AccessLog::flush() {
  access_write(access_buffer().pending);
}

// Only the calling thread's lines can be flushed here; worker threads flush their own before this (the owner
// stops the workers first), and lines a thread appends afterwards are dropped.
void AccessLog::close() {
  flush();
  std::lock_guard lock(g_access_mu);
  g_access_enabled.store(false, std::memory_order_relaxed);
  if (g_access_owns_fd) ::close(g_access_fd);
  g_access_fd = -1;
  g_access_owns_fd = false;
}

}  // namespace cumulo::core
