#include "core/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace cumulo::core {
namespace {

using std::chrono::milliseconds;

// The message of the ConfigError that fn throws, or a marker when it throws nothing.
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no ConfigError>";
}

TEST(ParseDuration, AcceptsEveryUnit) {
  EXPECT_EQ(parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(parse_duration("30s"), milliseconds(30'000));
  EXPECT_EQ(parse_duration("2m"), milliseconds(120'000));
  EXPECT_EQ(parse_duration("1h"), milliseconds(3'600'000));
  EXPECT_EQ(parse_duration("1d"), milliseconds(86'400'000));
  EXPECT_EQ(parse_duration("1.5s"), milliseconds(1500));
  EXPECT_EQ(parse_duration("1.1s"), milliseconds(1100));  // exact, not 1099 through floating point
  EXPECT_EQ(parse_duration("0.25m"), milliseconds(15'000));
  EXPECT_EQ(parse_duration("2.500s"), milliseconds(2500));
  EXPECT_EQ(parse_duration("0"), milliseconds(0));
  EXPECT_EQ(parse_duration("0s"), milliseconds(0));
  EXPECT_EQ(parse_duration("0ms"), milliseconds(0));
}

TEST(ParseDuration, Rejects) {
  for (const char* bad : {"",
                          "5",
                          "1.5",
                          "-1s",
                          "+1s",
                          "s",
                          "ms",
                          "1x",
                          "1 s",
                          " 1s",
                          "1s ",
                          "1S",
                          "1.s",
                          ".5s",
                          "1..5s",
                          "1.5ms",
                          "0.0001s",
                          "1e3ms",
                          "1s2",
                          "one",
                          "1sec",
                          "99999999999999999999ms",
                          "9223372036854775808ms",
                          "106751991167301d"}) {
    EXPECT_FALSE(parse_duration(bad).has_value()) << "'" << bad << "'";
  }
  EXPECT_EQ(parse_duration("9223372036854775807ms"), milliseconds(INT64_MAX));
}

TEST(FormatDuration, LargestExactUnit) {
  EXPECT_EQ(format_duration(milliseconds(1000)), "1s");
  EXPECT_EQ(format_duration(milliseconds(250)), "250ms");
  EXPECT_EQ(format_duration(milliseconds(1500)), "1500ms");
  EXPECT_EQ(format_duration(milliseconds(120'000)), "2m");
  EXPECT_EQ(format_duration(milliseconds(7'200'000)), "2h");
  EXPECT_EQ(format_duration(milliseconds(90'000)), "90s");
  EXPECT_EQ(format_duration(milliseconds(0)), "0s");
  for (int64_t ms : {0, 1, 999, 1000, 59'000, 60'000, 61'000, 3'600'000, 86'400'000, 90'061'001})
    EXPECT_EQ(parse_duration(format_duration(milliseconds(ms))), milliseconds(ms)) << ms;
}

TEST(YamlQuoted, ReadsBackAsTheSameString) {
  for (std::string_view s : {"",
                             "plain",
                             "off",
                             "yes",
                             "0x1F",
                             "~",
                             "- a: b",
                             "#not a comment",
                             "'single'",
                             "say \"hi\"",
                             "back\\slash",
                             "C:\\dir\\",
                             "two\nlines",
                             "cr\r",
                             "tab\tx",
                             "\x01\x1f\x7f",
                             "caf\xC3\xA9 \xF0\x9F\x98\x80",
                             "nel\xC2\x85",
                             "c1\xC2\x9F",
                             "ls\xE2\x80\xA8ps\xE2\x80\xA9",
                             "bom\xEF\xBB\xBF",
                             "  padded  "}) {
    const std::string quoted = yaml_quoted(s);
    auto root = ConfigNode::load_string("k: " + quoted + "\n", "t.yaml");
    EXPECT_EQ(root["k"].as_string(), s) << quoted;
  }
}

TEST(YamlQuoted, Escapes) {
  EXPECT_EQ(yaml_quoted("a\"b\\c\nd\te\x01"), R"("a\"b\\c\nd\te\x01")");
  EXPECT_EQ(yaml_quoted("\xC2\x85|\xE2\x80\xA8"), R"("\u0085|\u2028")");
  // Not UTF-8: YAML cannot carry the byte, so it becomes the code point of the same number.
  EXPECT_EQ(yaml_quoted("\xff"), R"("\xFF")");
  EXPECT_EQ(ConfigNode::load_string("k: " + yaml_quoted("\xff") + "\n", "t.yaml")["k"].as_string(),
            "\xC3\xBF");
}

TEST(ParseSize, AcceptsEveryUnit) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("512"), 512u);
  EXPECT_EQ(parse_size("512B"), 512u);
  EXPECT_EQ(parse_size("64KiB"), 64u * 1024);
  EXPECT_EQ(parse_size("1MiB"), 1u << 20);
  EXPECT_EQ(parse_size("2GiB"), 2ull << 30);
  EXPECT_EQ(parse_size("1TiB"), 1ull << 40);
  EXPECT_EQ(parse_size("10KB"), 10'000u);
  EXPECT_EQ(parse_size("10kB"), 10'000u);
  EXPECT_EQ(parse_size("10MB"), 10'000'000u);
  EXPECT_EQ(parse_size("10GB"), 10'000'000'000ull);
  EXPECT_EQ(parse_size("2TB"), 2'000'000'000'000ull);
  EXPECT_EQ(parse_size("64k"), 64u * 1024);
  EXPECT_EQ(parse_size("64K"), 64u * 1024);
  EXPECT_EQ(parse_size("1m"), 1u << 20);
  EXPECT_EQ(parse_size("1M"), 1u << 20);
  EXPECT_EQ(parse_size("1g"), 1u << 30);
  EXPECT_EQ(parse_size("1G"), 1u << 30);
  EXPECT_EQ(parse_size("1.5KiB"), 1536u);
  EXPECT_EQ(parse_size("18446744073709551615"), UINT64_MAX);
}

TEST(ParseSize, Rejects) {
  for (const char* bad : {"", "-1", "+1", "KiB", "1 KiB", "1kib", "1KIB", "1Kb", "1.5", "0.1KiB", "1x",
                          "1KiBs", "18446744073709551616", "16777216TiB", "1e3", "0x10", "one"}) {
    EXPECT_FALSE(parse_size(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(ConfigNode, ReadsScalarsOfEveryType) {
  auto root = ConfigNode::load_string(
      "name: edge\n"
      "workers: 4\n"
      "ratio: 0.75\n"
      "negative: -12\n"
      "tls: true\n"
      "compress: off\n"
      "timeout: 250ms\n"
      "max_body: 64KiB\n"
      "hosts: [a.example, b.example]\n"
      "one_host: c.example\n",
      "gw.yaml");
  EXPECT_EQ(root["name"].as_string(), "edge");
  EXPECT_EQ(root["workers"].as_int(1, 256), 4);
  EXPECT_DOUBLE_EQ(root["ratio"].as_double(), 0.75);
  EXPECT_EQ(root["negative"].as_int(), -12);
  EXPECT_DOUBLE_EQ(root["workers"].as_double(), 4.0);
  EXPECT_TRUE(root["tls"].as_bool());
  EXPECT_FALSE(root["compress"].as_bool());
  EXPECT_EQ(root["timeout"].as_duration(), milliseconds(250));
  EXPECT_EQ(root["max_body"].as_size(), 65536u);
  EXPECT_EQ(root["hosts"].as_string_list(), (std::vector<std::string>{"a.example", "b.example"}));
  EXPECT_EQ(root["one_host"].as_string_list(), (std::vector<std::string>{"c.example"}));
  EXPECT_EQ(root["workers"].path(), "workers");
  EXPECT_EQ(root["workers"].location(), "gw.yaml:2:10");
}

TEST(ConfigNode, DefaultsApplyOnlyToMissingKeys) {
  auto root = ConfigNode::load_string("workers: 8\ntimeout: soon\n", "gw.yaml");
  EXPECT_EQ(root.int_or("workers", 2), 8);
  EXPECT_EQ(root.int_or("threads", 2), 2);
  EXPECT_EQ(root.string_or("name", "default"), "default");
  EXPECT_DOUBLE_EQ(root.double_or("ratio", 0.5), 0.5);
  EXPECT_TRUE(root.bool_or("tls", true));
  EXPECT_EQ(root.duration_or("idle", milliseconds(60'000)), milliseconds(60'000));
  EXPECT_EQ(root.size_or("max_body", 1024), 1024u);
  EXPECT_EQ(root["tls"]["cert"].defined(), false);  // a missing section reads as empty
  EXPECT_EQ(root["tls"].string_or("cert", "none"), "none");
  EXPECT_EQ(error_of([&] { root.duration_or("timeout", milliseconds(1)); }),
            "gw.yaml:2:10: timeout: expected a duration like 250ms, 30s, 2m, got 'soon'");
  EXPECT_EQ(error_of([&] { root.int_or("workers", 2, 1, 4); }),
            "gw.yaml:1:10: workers: expected an integer from 1 to 4, got '8'");
}

TEST(ConfigNode, TypeErrorsSayWhereAndWhatWasExpected) {
  auto root = ConfigNode::load_string(
      "workers: many\n"
      "big: 99999999999999999999\n"
      "float: 1.5\n"
      "timeout: 5\n"
      "size: lots\n"
      "tls: maybe\n"
      "ratio: .nan\n"
      "listen: {port: 80}\n"
      "hosts: [a, [b]]\n"
      "empty:\n",
      "gw.yaml");
  EXPECT_EQ(error_of([&] { root["workers"].as_int(1, 256); }),
            "gw.yaml:1:10: workers: expected an integer from 1 to 256, got 'many'");
  EXPECT_EQ(error_of([&] { root["big"].as_int(); }),
            "gw.yaml:2:6: big: expected an integer, got '99999999999999999999'");
  EXPECT_EQ(error_of([&] { root["float"].as_int(0); }),
            "gw.yaml:3:8: float: expected an integer of at least 0, got '1.5'");
  EXPECT_EQ(error_of([&] { root["float"].as_int(INT64_MIN, 1); }),
            "gw.yaml:3:8: float: expected an integer of at most 1, got '1.5'");
  EXPECT_EQ(error_of([&] { root["timeout"].as_duration(); }),
            "gw.yaml:4:10: timeout: expected a duration like 250ms, 30s, 2m, got '5'");
  EXPECT_EQ(error_of([&] { root["size"].as_size(); }),
            "gw.yaml:5:7: size: expected a size like 512, 64KiB, 10MB, 1GiB, got 'lots'");
  EXPECT_EQ(error_of([&] { root["tls"].as_bool(); }),
            "gw.yaml:6:6: tls: expected true or false, got 'maybe'");
  EXPECT_EQ(error_of([&] { root["ratio"].as_double(); }),
            "gw.yaml:7:8: ratio: expected a number, got '.nan'");
  EXPECT_EQ(error_of([&] { root["listen"].as_string(); }),
            "gw.yaml:8:9: listen: expected a string, got a map");
  EXPECT_EQ(error_of([&] { root["listen"].as_int(); }),
            "gw.yaml:8:9: listen: expected an integer, got a map");
  EXPECT_EQ(error_of([&] { root["hosts"].as_string_list(); }),
            "gw.yaml:9:12: hosts[1]: expected a string, got a list");
  EXPECT_EQ(error_of([&] { root["hosts"]["x"]; }),
            "gw.yaml:9:8: hosts: expected a map with key 'x', got a list");
  EXPECT_EQ(error_of([&] { root["workers"].items(); }), "gw.yaml:1:10: workers: expected a list, got 'many'");
  EXPECT_EQ(error_of([&] { root["listen"].items(); }), "gw.yaml:8:9: listen: expected a list, got a map");
  EXPECT_EQ(error_of([&] { root["workers"].entries(); }),
            "gw.yaml:1:10: workers: expected a map, got 'many'");
  // An empty value is reported at its key (yaml-cpp would point at the next line).
  EXPECT_EQ(error_of([&] { root["empty"].as_string(); }),
            "gw.yaml:10:1: empty: expected a string, got an empty value");
}

TEST(ConfigNode, MissingKeysReportTheParentLocationAndPath) {
  auto root = ConfigNode::load_string(
      "target_groups:\n"
      "  - port: 80\n"
      "    health_check:\n"
      "      path: /healthz\n",
      "stack.yaml");
  auto groups = root.required("target_groups").items();
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].path(), "target_groups[0]");
  EXPECT_EQ(groups[0].location(), "stack.yaml:2:5");
  EXPECT_EQ(error_of([&] { groups[0].required("name"); }),
            "stack.yaml:2:5: target_groups[0]: missing key 'name'");
  ConfigNode missing = groups[0]["name"];
  EXPECT_FALSE(missing.defined());
  EXPECT_EQ(missing.location(), "stack.yaml:2:5");
  EXPECT_EQ(missing.path(), "target_groups[0].name");
  EXPECT_EQ(error_of([&] { missing.as_string(); }), "stack.yaml:2:5: target_groups[0]: missing key 'name'");
  EXPECT_EQ(error_of([&] { groups[0]["health_check"].required("timeout"); }),
            "stack.yaml:4:7: target_groups[0].health_check: missing key 'timeout'");
  EXPECT_EQ(error_of([&] { root.required("listeners"); }), "stack.yaml:1:1: missing key 'listeners'");
  EXPECT_EQ(groups[0]["health_check"]["path"].as_string(), "/healthz");
  EXPECT_EQ(groups[0]["health_check"]["path"].path(), "target_groups[0].health_check.path");
}

TEST(ConfigNode, UnknownKeysAreErrors) {
  auto root = ConfigNode::load_string(
      "target_groups:\n"
      "  - name: web\n"
      "    health_check:\n"
      "      path: /\n"
      "      intervall: 5s\n",
      "stack.yaml");
  auto group = root["target_groups"].items()[0];
  EXPECT_NO_THROW(group.check_keys({"name", "health_check", "port"}));
  EXPECT_EQ(error_of([&] {
              group["health_check"].check_keys({"path", "interval", "timeout"});
            }),
            "stack.yaml:5:7: target_groups[0].health_check: unknown key 'intervall' "
            "(expected one of: path, interval, timeout)");
  EXPECT_EQ(error_of([&] { root.check_keys({"listeners"}); }),
            "stack.yaml:1:1: unknown key 'target_groups' (expected one of: listeners)");
  // Nothing to check on a missing or empty section.
  EXPECT_NO_THROW(root["absent"].check_keys({}));
}

TEST(ConfigNode, DuplicateKeysAreErrors) {
  auto root = ConfigNode::load_string("port: 80\nname: a\nport: 81\n", "gw.yaml");
  EXPECT_EQ(error_of([&] { root["port"]; }), "gw.yaml:3:1: duplicate key 'port' (first at gw.yaml:1:1)");
  EXPECT_EQ(error_of([&] {
              root.check_keys({"port", "name"});
            }),
            "gw.yaml:3:1: duplicate key 'port' (first at gw.yaml:1:1)");
  EXPECT_EQ(error_of([&] { root.entries(); }), "gw.yaml:3:1: duplicate key 'port' (first at gw.yaml:1:1)");
}

TEST(ConfigNode, EntriesKeepDocumentOrder) {
  auto root = ConfigNode::load_string("routes:\n  zeta: 1\n  alpha: 2\n  mid: 3\n", "r.yaml");
  auto entries = root["routes"].entries();
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].first, "zeta");
  EXPECT_EQ(entries[1].first, "alpha");
  EXPECT_EQ(entries[2].first, "mid");
  EXPECT_EQ(entries[1].second.as_int(), 2);
  EXPECT_EQ(entries[1].second.path(), "routes.alpha");
  EXPECT_EQ(entries[1].second.location(), "r.yaml:3:10");
  EXPECT_EQ(error_of([&] { ConfigNode::load_string("? [a]\n: 1\n", "k.yaml").entries(); }).substr(0, 9),
            "k.yaml:1:");
}

TEST(ConfigNode, KindsAndEmptyValues) {
  auto root = ConfigNode::load_string("a: {x: 1}\nb: [1]\nc: text\nd:\ne: ~\n", "k.yaml");
  EXPECT_TRUE(root.is_map());
  EXPECT_TRUE(root["a"].is_map());
  EXPECT_TRUE(root["b"].is_sequence());
  EXPECT_TRUE(root["c"].is_scalar());
  EXPECT_TRUE(root["d"].is_null());
  EXPECT_TRUE(root["e"].is_null());
  EXPECT_TRUE(root["d"].defined());
  EXPECT_FALSE(root["f"].defined());
  EXPECT_FALSE(root["f"].is_null());
  // An empty section reads as an empty map or list.
  EXPECT_TRUE(root["d"].items().empty());
  EXPECT_TRUE(root["d"].entries().empty());
  EXPECT_EQ(root["d"].int_or("x", 7), 7);
  EXPECT_TRUE(root["e"].as_string_list().empty());
  EXPECT_EQ(error_of([&] { root["f"].items(); }), "k.yaml:1:1: missing key 'f'");

  auto empty = ConfigNode::load_string("", "empty.yaml");
  EXPECT_TRUE(empty.defined());
  EXPECT_EQ(empty.int_or("workers", 3), 3);
  EXPECT_EQ(empty.location(), "empty.yaml");
  EXPECT_EQ(error_of([&] { empty.required("x"); }), "empty.yaml: missing key 'x'");

  ConfigNode undefined;
  EXPECT_FALSE(undefined.defined());
  EXPECT_THROW(undefined.as_string(), ConfigError);
}

TEST(ConfigNode, CopiesAreIndependentHandles) {
  auto root = ConfigNode::load_string("a: 1\nb: 2\n", "c.yaml");
  ConfigNode a = root["a"];
  ConfigNode b = root["b"];
  ConfigNode copy(a);
  a = b;  // must not overwrite the document's node a referred to
  EXPECT_EQ(a.as_int(), 2);
  EXPECT_EQ(copy.as_int(), 1);
  EXPECT_EQ(root["a"].as_int(), 1);
  EXPECT_EQ(a.path(), "b");
}

TEST(ConfigNode, YamlSyntaxErrorsCarryTheLocation) {
  std::string err = error_of([] { ConfigNode::load_string("listen: [80, 81\nworkers: 2\n", "bad.yaml"); });
  EXPECT_EQ(err.rfind("bad.yaml:", 0), 0u) << err;
  EXPECT_NE(err.find(": invalid YAML: "), std::string::npos) << err;
  // "FILE:LINE:COL: " with a line and a column.
  std::string after = err.substr(9);
  size_t colon = after.find(':');
  ASSERT_NE(colon, std::string::npos);
  EXPECT_GT(std::stoi(after.substr(0, colon)), 0);
  EXPECT_GT(std::stoi(after.substr(colon + 1)), 0);

  err = error_of([] { ConfigNode::load_string("a: b: c\n", "bad.yaml"); });
  EXPECT_EQ(err.rfind("bad.yaml:1:", 0), 0u) << err;

  EXPECT_EQ(error_of([] { ConfigNode::load_string("a: 1\n---\nb: 2\n", "two.yaml"); }),
            "two.yaml:3:1: expected one YAML document, found more (remove the '---' separator)");
}

TEST(ConfigNode, LoadFile) {
  EXPECT_EQ(error_of([] { ConfigNode::load_file("/nonexistent-dir/gw.yaml"); }),
            "cannot read /nonexistent-dir/gw.yaml: No such file or directory");
  EXPECT_EQ(error_of([] { ConfigNode::load_file("/"); }), "cannot read /: Is a directory");

  char path[] = "/tmp/cumulo_config_test_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string text = "workers: 3\nlisten: \":8080\"\n";
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  auto root = ConfigNode::load_file(path);
  EXPECT_EQ(root["workers"].as_int(), 3);
  EXPECT_EQ(root["listen"].as_string(), ":8080");
  EXPECT_EQ(root["listen"].location(), std::string(path) + ":2:9");
  EXPECT_EQ(error_of([&] { root["listen"].as_int(); }),
            std::string(path) + ":2:9: listen: expected an integer, got ':8080'");
  unlink(path);
}

TEST(ConfigNode, FailUsesTheNodeLocation) {
  auto root = ConfigNode::load_string("listeners:\n  - port: 80\n", "s.yaml");
  auto l = root["listeners"].items()[0]["port"];
  EXPECT_EQ(error_of([&] { l.fail("port 80 needs root; use 8080"); }),
            "s.yaml:2:11: listeners[0].port: port 80 needs root; use 8080");
}

}  // namespace
}  // namespace cumulo::core
