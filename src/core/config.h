// Strict YAML configuration reading shared by every component: each value keeps its file:line:column, unknown
// keys are errors (they are typos), durations and sizes take units.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace YAML {
class Node;
}

namespace cumulo::core {

// "FILE:LINE:COL: what" (line and column 1-based). Start-up code prints what() and exits 2.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses "250ms", "30s", "2m", "1h", "1d", "1.5s", "0" (zero needs no unit). No unit otherwise is an error.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
// The inverse: "1s", "250ms", "2m", "2h" in the largest unit that states the value exactly ("0s" for zero),
// so that parse_duration(format_duration(d)) == d.
std::string format_duration(std::chrono::milliseconds d);
// Parses "512", "64KiB", "1MiB", "2GiB", "1TiB", "10KB"/"10MB"/"10GB" (powers of 1000), "64k"/"1m"/"1g"
// (1024).
std::optional<uint64_t> parse_size(std::string_view text);

// A YAML double-quoted scalar (YAML 1.2 section 7.3.1) holding exactly `s`, for writing configuration files:
// values such as `off`, `yes` or `0x1F` stay strings, and quotes, backslashes, line breaks and other
// characters YAML cannot carry raw are escaped. Bytes that are not UTF-8 become \xXX, which YAML reads as
// U+00XX: a YAML stream is Unicode and cannot hold them as they are.
std::string yaml_quoted(std::string_view s);

class ConfigNode {
 public:
  static ConfigNode load_file(
      const std::string& path);  // throws ConfigError ("cannot read FILE: reason" too)
  static ConfigNode load_string(std::string_view text, const std::string& source_name = "<config>");

  ConfigNode();  // undefined node
  ~ConfigNode();
  ConfigNode(const ConfigNode&);
  ConfigNode& operator=(const ConfigNode&);

  bool defined() const;  // false for a missing key
  bool is_map() const;
  bool is_sequence() const;
  bool is_scalar() const;
  bool is_null() const;
  std::string location() const;  // "FILE:LINE:COL", or "FILE" for a missing key's parent-less node
  const std::string& path() const {
    return path_;
  }  // key path for messages, e.g. "target_groups[0].health_check"

  // Map access. A missing key gives an undefined node (whose location is its parent's).
  ConfigNode operator[](std::string_view key) const;
  ConfigNode required(
      std::string_view key) const;        // missing: "FILE:L:C: target_groups[0]: missing key 'name'"
  std::vector<ConfigNode> items() const;  // sequence elements; a scalar or map here is an error
  std::vector<std::pair<std::string, ConfigNode>> entries() const;  // map entries in document order
  // Throws naming the first key not in `allowed` and listing the allowed ones.
  void check_keys(std::initializer_list<std::string_view> allowed) const;

  // Scalars; a wrong type or out-of-range value throws with this node's location and what was expected.
  std::string as_string() const;
  int64_t as_int(int64_t min = INT64_MIN, int64_t max = INT64_MAX) const;
  double as_double() const;
  bool as_bool() const;
  std::chrono::milliseconds as_duration() const;
  uint64_t as_size() const;
  std::vector<std::string> as_string_list() const;  // a sequence of scalars, or a single scalar

  // With defaults when the key is missing (a present but ill-typed value still throws).
  std::string string_or(std::string_view key, std::string_view def) const;
  int64_t int_or(std::string_view key, int64_t def, int64_t min = INT64_MIN, int64_t max = INT64_MAX) const;
  double double_or(std::string_view key, double def) const;
  bool bool_or(std::string_view key, bool def) const;
  std::chrono::milliseconds duration_or(std::string_view key, std::chrono::milliseconds def) const;
  uint64_t size_or(std::string_view key, uint64_t def) const;

  [[noreturn]] void fail(std::string_view what) const;  // throws ConfigError at this node

 private:
  struct Doc;
  ConfigNode(std::shared_ptr<Doc> doc, std::unique_ptr<YAML::Node> node, std::string path, std::string loc);
  [[noreturn]] void fail_missing() const;
  void expect_map(std::string_view wanted) const;  // a null node counts as an empty map
  std::string key_path(std::string_view key) const;
  std::string checked_key(const YAML::Node& key) const;
  const std::string& scalar(std::string_view expected) const;

  std::shared_ptr<Doc> doc_;  // shared: every node of a document keeps the document alive
  std::unique_ptr<YAML::Node> node_;
  std::string path_;
  std::string parent_location_;  // a missing key's parent, or the key of a map value (shown for empty values)
  // For a missing key: where it was looked up, so the message reads "parent: missing key 'name'".
  std::string parent_path_;
  std::string missing_key_;
};

}  // namespace cumulo::core
