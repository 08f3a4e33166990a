#include "core/log.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace cumulo::core {
namespace {

std::string escaped(std::string_view s) {
  std::string out;
  json_escape_to(out, s);
  return out;
}

// A fresh directory under /tmp, removed with its files at the end of the test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/cumulo_log_test_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    for (const auto& f : files_) unlink(f.c_str());
    rmdir(path_.c_str());
  }
  std::string file(const std::string& name) {
    files_.push_back(path_ + "/" + name);
    return files_.back();
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) {
      lines.push_back(text.substr(start));  // an unterminated line: the tests below flag it
      break;
    }
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

TEST(JsonEscape, QuotesBackslashesAndControls) {
  EXPECT_EQ(escaped("plain text"), "plain text");
  EXPECT_EQ(escaped("say \"hi\""), "say \\\"hi\\\"");
  EXPECT_EQ(escaped("C:\\path"), "C:\\\\path");
  EXPECT_EQ(escaped("a\nb\rc\td"), "a\\nb\\rc\\td");
  EXPECT_EQ(escaped(std::string_view("\x00\x01\x1f\x7f", 4)), "\\u0000\\u0001\\u001f\\u007f");
  EXPECT_EQ(escaped("\b\f"), "\\u0008\\u000c");
  EXPECT_EQ(escaped(""), "");
}

TEST(JsonEscape, ValidUtf8PassesThrough) {
  EXPECT_EQ(escaped("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf");
}

TEST(JsonEscape, InvalidUtf8BytesAreEscapedOneByOne) {
  EXPECT_EQ(escaped("a\xff"
                    "b"),
            "a\\u00ffb");
  EXPECT_EQ(escaped("\xc3"), "\\u00c3");                                   // truncated at the end
  EXPECT_EQ(escaped("\xc3x"), "\\u00c3x");                                 // continuation missing
  EXPECT_EQ(escaped("\xc0\xaf"), "\\u00c0\\u00af");                        // overlong '/'
  EXPECT_EQ(escaped("\xe0\x80\xaf"), "\\u00e0\\u0080\\u00af");             // overlong 3-byte form
  EXPECT_EQ(escaped("\xed\xa0\x80"), "\\u00ed\\u00a0\\u0080");             // UTF-16 surrogate
  EXPECT_EQ(escaped("\xf4\x90\x80\x80"), "\\u00f4\\u0090\\u0080\\u0080");  // above U+10FFFF
  EXPECT_EQ(escaped("\x80\xe2\x82\xac"), "\\u0080\xe2\x82\xac");  // stray continuation, then a valid euro
}

TEST(JsonEscape, EveryByteStringBecomesValidJson) {
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  all += "\xe2\x82";  // and a truncated sequence at the very end
  std::string doc = "\"" + escaped(all) + "\"";
  EXPECT_TRUE(nlohmann::json::accept(doc)) << doc;
}

TEST(JsonLine, WritesTypedFields) {
  std::string out;
  JsonLine j(out);
  j.field("s", "quote\" and \\")
      .field("i", int64_t{-42})
      .field("max", int64_t{INT64_MAX})
      .field("d", 0.1)
      .field("big", 1234567.0)
      .field("third", 1.0 / 3)
      .field("whole", 3.0)
      .field("nan", std::nan(""))
      .field("inf", HUGE_VAL)
      .field("t", true)
      .field("f", false)
      .field(LogField("lf_int", 7))
      .field(LogField("lf_str", std::string("x")))
      .field(LogField("lf_u", 9ul))
      .field(LogField("lf_bool", true));
  j.finish();
  EXPECT_EQ(
      out,
      "{\"s\":\"quote\\\" and \\\\\",\"i\":-42,\"max\":9223372036854775807,\"d\":0.1,\"big\":1.23457e+06,"
      "\"third\":0.333333,\"whole\":3,\"nan\":null,\"inf\":null,\"t\":true,\"f\":false,\"lf_int\":7,"
      "\"lf_str\":\"x\",\"lf_u\":9,\"lf_bool\":true}\n");
  auto doc = nlohmann::json::parse(out);
  EXPECT_EQ(doc["s"], "quote\" and \\");
  EXPECT_EQ(doc["max"], INT64_MAX);
  EXPECT_TRUE(doc["nan"].is_null());
}

TEST(JsonLine, LiteralsAndPlainIntegersPickTheRightOverload) {
  std::string out;
  JsonLine(out)
      .field("method", "GET")
      .field("status", 200)
      .field("bytes", uint64_t{1234})
      .field("u", 7u)
      .finish();
  EXPECT_EQ(out, "{\"method\":\"GET\",\"status\":200,\"bytes\":1234,\"u\":7}\n");
}

TEST(JsonLine, EmptyObject) {
  std::string out;
  JsonLine(out).finish();
  EXPECT_EQ(out, "{}\n");
}

TEST(Log, TimestampFormat) {
  std::string ts = utc_timestamp();
  EXPECT_TRUE(std::regex_match(ts, std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)"))) << ts;
}

TEST(Log, ParseLevel) {
  EXPECT_EQ(parse_log_level("debug"), LogLevel::kDebug);
  EXPECT_EQ(parse_log_level("info"), LogLevel::kInfo);
  EXPECT_EQ(parse_log_level("warn"), LogLevel::kWarn);
  EXPECT_EQ(parse_log_level("error"), LogLevel::kError);
  EXPECT_FALSE(parse_log_level("INFO").has_value());
  EXPECT_FALSE(parse_log_level("verbose").has_value());
  EXPECT_FALSE(parse_log_level("").has_value());
}

TEST(Log, WritesJsonLinesToTheChosenFile) {
  TempDir dir;
  std::string path = dir.file("process.log");
  ASSERT_TRUE(log_set_file(path));
  log_set_level(LogLevel::kInfo);
  EXPECT_FALSE(log_enabled(LogLevel::kDebug));
  EXPECT_TRUE(log_enabled(LogLevel::kError));
  log(LogLevel::kDebug, "gateway", "not shown");
  log_info("gateway", "listening", {{"port", 8080}, {"tls", false}, {"addr", "0.0.0.0"}, {"load", 0.5}});
  log_warn("dns", "zone \"a\"\nreloaded");
  log_set_level(LogLevel::kError);
  log_warn("dns", "suppressed");
  log_error("db", "failover", {{"from", std::string("db-1")}});
  log_set_level(LogLevel::kInfo);

  // Re-pointing the log elsewhere moves later lines there and keeps earlier ones.
  std::string second = dir.file("second.log");
  ASSERT_TRUE(log_set_file(second));
  log_info("core", "rotated");
  EXPECT_FALSE(log_set_file(dir.file("missing-dir/x.log")));
  log_info("core", "still here");
  ASSERT_TRUE(log_set_file("-"));

  auto lines = lines_of(read_all(path));
  ASSERT_EQ(lines.size(), 3u);
  auto first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first["level"], "info");
  EXPECT_EQ(first["component"], "gateway");
  EXPECT_EQ(first["msg"], "listening");
  EXPECT_EQ(first["port"], 8080);
  EXPECT_EQ(first["tls"], false);
  EXPECT_EQ(first["addr"], "0.0.0.0");
  EXPECT_EQ(first["load"], 0.5);
  EXPECT_TRUE(first["ts"].is_string());
  EXPECT_EQ(lines[0].rfind("{\"ts\":\"", 0), 0u);  // ts first, for people reading the raw file
  EXPECT_EQ(nlohmann::json::parse(lines[1])["msg"], "zone \"a\"\nreloaded");
  EXPECT_EQ(nlohmann::json::parse(lines[1])["level"], "warn");
  EXPECT_EQ(nlohmann::json::parse(lines[2])["level"], "error");
  EXPECT_EQ(nlohmann::json::parse(lines[2])["from"], "db-1");

  auto later = lines_of(read_all(second));
  ASSERT_EQ(later.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(later[0])["msg"], "rotated");
  EXPECT_EQ(nlohmann::json::parse(later[1])["msg"], "still here");
}

TEST(Log, ConcurrentLinesStayWhole) {
  TempDir dir;
  std::string path = dir.file("concurrent.log");
  ASSERT_TRUE(log_set_file(path));
  constexpr int kThreads = 4, kLines = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      std::string pad(100 + 50 * t, 'x');
      for (int i = 0; i < kLines; ++i) log_info("test", pad, {{"thread", t}, {"i", i}});
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(log_set_file("-"));
  auto lines = lines_of(read_all(path));
  ASSERT_EQ(lines.size(), size_t{kThreads} * kLines);
  for (const auto& l : lines) ASSERT_TRUE(nlohmann::json::accept(l)) << l;
}

TEST(AccessLog, TwoThreadsWriteOnlyWholeLines) {
  TempDir dir;
  std::string path = dir.file("access.log");
  ASSERT_TRUE(AccessLog::open(path));
  ASSERT_TRUE(AccessLog::enabled());
  constexpr int kLines = 20'000;
  auto worker = [](int id) {
    for (int i = 0; i < kLines; ++i) {
      std::string line;
      JsonLine j(line);
      // Lengths vary so that 32 KiB blocks end at different places in each thread.
      j.field("worker", int64_t{id})
          .field("seq", int64_t{i})
          .field("path", std::string(static_cast<size_t>(i % 300), 'p'));
      j.finish();
      AccessLog::append(line);
      if (i % 5000 == 4999) AccessLog::flush();
    }
    // The rest is written when the thread exits.
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  AccessLog::close();
  EXPECT_FALSE(AccessLog::enabled());

  std::string text = read_all(path);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::map<int64_t, int64_t> next_seq;
  size_t count = 0;
  for (const auto& l : lines_of(text)) {
    nlohmann::json doc;
    ASSERT_NO_THROW(doc = nlohmann::json::parse(l)) << l.substr(0, 200);
    int64_t w = doc["worker"], seq = doc["seq"];
    EXPECT_EQ(seq, next_seq[w]) << "worker " << w;  // each thread's lines arrive whole and in order
    next_seq[w] = seq + 1;
    ++count;
  }
  EXPECT_EQ(count, 2u * kLines);
  EXPECT_EQ(next_seq[0], kLines);
  EXPECT_EQ(next_seq[1], kLines);
}

TEST(AccessLog, BuffersUntilFlushAndFlushesOnClose) {
  TempDir dir;
  std::string path = dir.file("buffered.log");
  ASSERT_TRUE(AccessLog::open(path));
  AccessLog::append("{\"a\":1}\n");
  EXPECT_EQ(read_all(path), "");  // no syscall per line
  AccessLog::flush();
  EXPECT_EQ(read_all(path), "{\"a\":1}\n");
  AccessLog::append("{\"b\":2}\n");
  AccessLog::close();
  EXPECT_EQ(read_all(path), "{\"a\":1}\n{\"b\":2}\n");
  AccessLog::append("{\"c\":3}\n");  // closed: dropped
  AccessLog::flush();
  EXPECT_EQ(read_all(path), "{\"a\":1}\n{\"b\":2}\n");
}

TEST(AccessLog, WritesABlockOnce32KiBArePending) {
  TempDir dir;
  std::string path = dir.file("block.log");
  ASSERT_TRUE(AccessLog::open(path));
  std::string line = "{\"pad\":\"" + std::string(1000, 'z') + "\"}\n";
  size_t appended = 0;
  while (appended + line.size() < 32 * 1024) {
    AccessLog::append(line);
    appended += line.size();
  }
  EXPECT_EQ(read_all(path).size(), 0u);
  AccessLog::append(line);
  EXPECT_EQ(read_all(path).size(), appended + line.size());
  AccessLog::close();
}

TEST(AccessLog, OpenChoices) {
  TempDir dir;
  EXPECT_FALSE(AccessLog::open(dir.file("no-such-dir/access.log")));
  EXPECT_TRUE(AccessLog::open("off"));
  EXPECT_FALSE(AccessLog::enabled());
  AccessLog::append("{\"dropped\":true}\n");
  EXPECT_TRUE(AccessLog::open(""));
  EXPECT_FALSE(AccessLog::enabled());
  EXPECT_TRUE(AccessLog::open("-"));
  EXPECT_TRUE(AccessLog::enabled());
  AccessLog::close();
  EXPECT_FALSE(AccessLog::enabled());
}

}  // namespace
}  // namespace cumulo::core
