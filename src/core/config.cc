#include "core/config.h"

#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/text.h"

namespace cumulo::core {

struct ConfigNode::Doc {
  std::string source;
  YAML::Node root;
};

namespace {

struct Unit {
  std::string_view suffix;
  uint64_t factor;
};

// A non-negative decimal "DIGITS[.DIGITS]" followed by one of `units`, converted exactly (no floating point,
// so "1.1s" is 1100 ms and never 1099). Rejects fractions that are not a whole number of base units, and
// overflow.
std::optional<uint64_t> parse_with_unit(std::string_view text, std::initializer_list<Unit> units,
                                        uint64_t limit, bool bare_number_ok) {
  size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  std::string_view whole = text.substr(0, i);
  std::string_view frac;
  if (whole.empty()) return std::nullopt;
  if (i < text.size() && text[i] == '.') {
    size_t start = ++i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    frac = text.substr(start, i - start);
    if (frac.empty()) return std::nullopt;
  }
  std::string_view suffix = text.substr(i);

  uint64_t factor = 0;
  for (const Unit& u : units) {
    if (u.suffix == suffix) factor = u.factor;
  }
  if (factor == 0) return std::nullopt;

  uint64_t whole_value = 0;
  auto [end, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), whole_value);
  if (ec != std::errc() || end != whole.data() + whole.size()) return std::nullopt;

  while (!frac.empty() && frac.back() == '0') frac.remove_suffix(1);
  if (frac.size() > 18) return std::nullopt;  // cannot be a whole number of base units with our factors
  uint64_t frac_value = 0, frac_scale = 1;
  for (char c : frac) {
    frac_value = frac_value * 10 + static_cast<uint64_t>(c - '0');
    frac_scale *= 10;
  }
  unsigned __int128 frac_scaled = static_cast<unsigned __int128>(frac_value) * factor;
  if (frac_scaled % frac_scale != 0) return std::nullopt;

  uint64_t result = 0;
  if (__builtin_mul_overflow(whole_value, factor, &result)) return std::nullopt;
  if (__builtin_add_overflow(result, static_cast<uint64_t>(frac_scaled / frac_scale), &result))
    return std::nullopt;
  if (result > limit) return std::nullopt;
  if (suffix.empty() && !bare_number_ok && result != 0) return std::nullopt;
  return result;
}

std::string mark_location(const std::string& source, const YAML::Mark& m) {
  if (m.is_null()) return source;
  return source + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

[[noreturn]] void throw_at(const std::string& location, const std::string& path, std::string_view what) {
  std::string msg;
  if (!location.empty()) msg = location + ": ";
  if (!path.empty()) msg += path + ": ";
  msg += what;
  throw ConfigError(msg);
}

// How a value is shown after "got": the text itself (cut when long) or what kind of node it is.
std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar: {
      constexpr size_t kMaxShown = 64;
      const std::string& s = n.Scalar();
      if (s.size() <= kMaxShown) return "'" + s + "'";
      return "'" + s.substr(0, kMaxShown) + "...'";
    }
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "an empty value";
  }
}

std::string join(std::initializer_list<std::string_view> words) {
  std::string out;
  for (std::string_view w : words) {
    if (!out.empty()) out += ", ";
    out += w;
  }
  return out;
}

}  // namespace

std::string format_duration(std::chrono::milliseconds d) {
  const long long ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string yaml_quoted(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const size_t len = utf8_sequence_length(s, i);
      uint32_t cp = 0;
      if (len == 2) cp = (c & 0x1fu) << 6 | (static_cast<unsigned char>(s[i + 1]) & 0x3fu);
      if (len == 3)
        cp = (c & 0x0fu) << 12 | (static_cast<unsigned char>(s[i + 1]) & 0x3fu) << 6 |
             (static_cast<unsigned char>(s[i + 2]) & 0x3fu);
      // C1 controls are not printable in YAML (section 5.1), NEL, LS and PS were line breaks in YAML 1.1 and
      // a BOM may not stand inside a document (section 5.2): all escaped.
      if (len > 0 &&
          ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0xfeff || cp >= 0xfffe)) {
        out += "\\u";
        for (int shift = 12; shift >= 0; shift -= 4) out.push_back(kHex[cp >> shift & 15]);
        i += len;
        continue;
      }
      if (len > 0) {
        out.append(s.substr(i, len));
        i += len;
        continue;
      }
    }
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
      default:  // other controls, DEL, and each byte that is not UTF-8
        out += "\\x";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
    }
    ++i;
  }
  out.push_back('"');
  return out;
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  static constexpr uint64_t kMaxMillis = std::numeric_limits<std::chrono::milliseconds::rep>::max();
  auto v = parse_with_unit(
      text, {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}}, kMaxMillis,
      /*bare_number_ok=*/false);
  if (!v) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(*v));
}

std::optional<uint64_t> parse_size(std::string_view text) {
  constexpr uint64_t kKi = 1024, kMi = kKi << 10, kGi = kMi << 10, kTi = kGi << 10;
  return parse_with_unit(text,
                         {{"", 1},
                          {"B", 1},
                          {"k", kKi},
                          {"K", kKi},
                          {"KiB", kKi},
                          {"m", kMi},
                          {"M", kMi},
                          {"MiB", kMi},
                          {"g", kGi},
                          {"G", kGi},
                          {"GiB", kGi},
                          {"t", kTi},
                          {"T", kTi},
                          {"TiB", kTi},
                          {"kB", 1000},
                          {"KB", 1000},
                          {"MB", 1000'000},
                          {"GB", 1000'000'000},
                          {"TB", 1000'000'000'000}},
                         std::numeric_limits<uint64_t>::max(), /*bare_number_ok=*/true);
}

ConfigNode ConfigNode::load_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ConfigError("cannot read " + path + ": " + std::strerror(errno));
  std::string text;
  char chunk[16384];
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throw ConfigError("cannot read " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    text.append(chunk, static_cast<size_t>(n));
  }
  ::close(fd);
  return load_string(text, path);
}

ConfigNode ConfigNode::load_string(std::string_view text, const std::string& source_name) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    throw_at(mark_location(source_name, e.mark), "", "invalid YAML: " + e.msg);
  }
  // A second document would be silently ignored, which hides mistakes such as a pasted '---'.
  if (docs.size() > 1) {
    throw_at(mark_location(source_name, docs[1].Mark()), "",
             "expected one YAML document, found more (remove the '---' separator)");
  }
  auto doc = std::make_shared<Doc>(Doc{source_name, docs.empty() ? YAML::Node() : docs[0]});
  auto root = std::make_unique<YAML::Node>(doc->root);
  return ConfigNode(doc, std::move(root), "", "");
}

ConfigNode::ConfigNode() = default;
ConfigNode::~ConfigNode() = default;

// YAML::Node::operator= writes through to the shared document, so nodes are only ever copy-constructed.
ConfigNode::ConfigNode(const ConfigNode& o)
    : doc_(o.doc_),
      node_(o.node_ ? std::make_unique<YAML::Node>(*o.node_) : nullptr),
      path_(o.path_),
      parent_location_(o.parent_location_),
      parent_path_(o.parent_path_),
      missing_key_(o.missing_key_) {}

ConfigNode& ConfigNode::operator=(const ConfigNode& o) {
  if (this != &o) {
    ConfigNode copy(o);
    std::swap(doc_, copy.doc_);
    std::swap(node_, copy.node_);
    std::swap(path_, copy.path_);
    std::swap(parent_location_, copy.parent_location_);
    std::swap(parent_path_, copy.parent_path_);
    std::swap(missing_key_, copy.missing_key_);
  }
  return *this;
}

ConfigNode::ConfigNode(std::shared_ptr<Doc> doc, std::unique_ptr<YAML::Node> node, std::string path,
                       std::string loc)
    : doc_(std::move(doc)),
      node_(std::move(node)),
      path_(std::move(path)),
      parent_location_(std::move(loc)) {}

bool ConfigNode::defined() const {
  return node_ && node_->IsDefined();
}
bool ConfigNode::is_map() const {
  return defined() && node_->IsMap();
}
bool ConfigNode::is_sequence() const {
  return defined() && node_->IsSequence();
}
bool ConfigNode::is_scalar() const {
  return defined() && node_->IsScalar();
}
bool ConfigNode::is_null() const {
  return defined() && node_->IsNull();
}

std::string ConfigNode::location() const {
  // yaml-cpp marks an empty value at the token after it, often the next line; its key is where to look.
  if (defined() && !(node_->IsNull() && !parent_location_.empty()))
    return mark_location(doc_->source, node_->Mark());
  if (!parent_location_.empty()) return parent_location_;
  return doc_ ? doc_->source : std::string();
}

void ConfigNode::fail(std::string_view what) const {
  throw_at(location(), path_, what);
}

void ConfigNode::fail_missing() const {
  if (missing_key_.empty()) fail("missing value");
  throw_at(location(), parent_path_, "missing key '" + missing_key_ + "'");
}

void ConfigNode::expect_map(std::string_view wanted) const {
  if (is_map() || is_null() || !defined()) return;
  fail("expected a map" + std::string(wanted) + ", got " + describe(*node_));
}

std::string ConfigNode::key_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

ConfigNode ConfigNode::operator[](std::string_view key) const {
  expect_map(" with key '" + std::string(key) + "'");
  // A linear scan: config maps are small, and it lets a repeated key be an error instead of a silent pick.
  std::optional<YAML::Node> value, first_key;
  if (is_map()) {
    for (auto it = node_->begin(); it != node_->end(); ++it) {
      if (!it->first.IsScalar() || it->first.Scalar() != key) continue;
      if (value) {
        throw_at(mark_location(doc_->source, it->first.Mark()), path_,
                 "duplicate key '" + std::string(key) + "' (first at " +
                     mark_location(doc_->source, first_key->Mark()) + ")");
      }
      value.emplace(it->second);
      first_key.emplace(it->first);
    }
  }
  if (value) {
    return ConfigNode(doc_, std::make_unique<YAML::Node>(*value), key_path(key),
                      mark_location(doc_->source, first_key->Mark()));
  }
  ConfigNode missing(doc_, nullptr, key_path(key), location());
  missing.parent_path_ = path_;
  missing.missing_key_ = std::string(key);
  return missing;
}

ConfigNode ConfigNode::required(std::string_view key) const {
  ConfigNode child = (*this)[key];
  if (!child.defined()) child.fail_missing();
  return child;
}

std::vector<ConfigNode> ConfigNode::items() const {
  if (!defined()) fail_missing();
  std::vector<ConfigNode> out;
  if (is_null()) return out;
  if (!is_sequence()) fail("expected a list, got " + describe(*node_));
  out.reserve(node_->size());
  size_t i = 0;
  for (auto it = node_->begin(); it != node_->end(); ++it, ++i) {
    out.push_back(
        ConfigNode(doc_, std::make_unique<YAML::Node>(*it), path_ + "[" + std::to_string(i) + "]", ""));
  }
  return out;
}

std::vector<std::pair<std::string, ConfigNode>> ConfigNode::entries() const {
  if (!defined()) fail_missing();
  expect_map("");
  std::vector<std::pair<std::string, ConfigNode>> out;
  if (is_null()) return out;
  for (auto it = node_->begin(); it != node_->end(); ++it) {
    std::string key = checked_key(it->first);
    std::string key_loc = mark_location(doc_->source, it->first.Mark());
    for (const auto& [seen, node] : out) {
      // A value's parent_location_ is its key's location.
      if (seen == key)
        throw_at(key_loc, path_, "duplicate key '" + key + "' (first at " + node.parent_location_ + ")");
    }
    out.emplace_back(key, ConfigNode(doc_, std::make_unique<YAML::Node>(it->second), key_path(key), key_loc));
  }
  return out;
}

std::string ConfigNode::checked_key(const YAML::Node& key) const {
  if (!key.IsScalar()) {
    throw_at(mark_location(doc_->source, key.Mark()), path_, "expected a plain key, got " + describe(key));
  }
  return key.Scalar();
}

void ConfigNode::check_keys(std::initializer_list<std::string_view> allowed) const {
  if (!defined() || is_null()) return;
  expect_map("");
  std::vector<std::pair<std::string, std::string>> seen;  // key, its location
  for (auto it = node_->begin(); it != node_->end(); ++it) {
    std::string key = checked_key(it->first);
    std::string loc = mark_location(doc_->source, it->first.Mark());
    bool known = false;
    for (std::string_view a : allowed) known = known || a == key;
    if (!known) throw_at(loc, path_, "unknown key '" + key + "' (expected one of: " + join(allowed) + ")");
    for (const auto& [k, first] : seen) {
      if (k == key) throw_at(loc, path_, "duplicate key '" + key + "' (first at " + first + ")");
    }
    seen.emplace_back(std::move(key), std::move(loc));
  }
}

const std::string& ConfigNode::scalar(std::string_view expected) const {
  if (!defined()) fail_missing();
  if (!node_->IsScalar()) fail("expected " + std::string(expected) + ", got " + describe(*node_));
  return node_->Scalar();
}

std::string ConfigNode::as_string() const {
  return scalar("a string");
}

int64_t ConfigNode::as_int(int64_t min, int64_t max) const {
  std::string expected = "an integer";
  if (min != INT64_MIN && max != INT64_MAX) {
    expected += " from " + std::to_string(min) + " to " + std::to_string(max);
  } else if (min != INT64_MIN) {
    expected += " of at least " + std::to_string(min);
  } else if (max != INT64_MAX) {
    expected += " of at most " + std::to_string(max);
  }
  std::string_view s = scalar(expected);
  std::string_view digits = s;
  if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || v < min || v > max) {
    fail("expected " + expected + ", got " + describe(*node_));
  }
  return v;
}

double ConfigNode::as_double() const {
  std::string_view s = scalar("a number");
  std::string_view digits = s;
  if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
  double v = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || !std::isfinite(v)) {
    fail("expected a number, got " + describe(*node_));
  }
  return v;
}

bool ConfigNode::as_bool() const {
  const std::string s = to_lower(scalar("true or false"));
  // YAML 1.1 spellings too: people write them and yaml-cpp's own conversion accepts them.
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  fail("expected true or false, got " + describe(*node_));
}

std::chrono::milliseconds ConfigNode::as_duration() const {
  static constexpr std::string_view kExpected = "a duration like 250ms, 30s, 2m";
  auto v = parse_duration(scalar(kExpected));
  if (!v) fail("expected " + std::string(kExpected) + ", got " + describe(*node_));
  return *v;
}

uint64_t ConfigNode::as_size() const {
  static constexpr std::string_view kExpected = "a size like 512, 64KiB, 10MB, 1GiB";
  auto v = parse_size(scalar(kExpected));
  if (!v) fail("expected " + std::string(kExpected) + ", got " + describe(*node_));
  return *v;
}

std::vector<std::string> ConfigNode::as_string_list() const {
  if (!defined()) fail_missing();
  if (is_null()) return {};
  if (is_scalar()) return {node_->Scalar()};
  if (!is_sequence()) fail("expected a list of strings, got " + describe(*node_));
  std::vector<std::string> out;
  for (const ConfigNode& item : items()) out.push_back(item.as_string());
  return out;
}

std::string ConfigNode::string_or(std::string_view key, std::string_view def) const {
  ConfigNode c = (*this)[key];
  return c.defined() ? c.as_string() : std::string(def);
}

int64_t ConfigNode::int_or(std::string_view key, int64_t def, int64_t min, int64_t max) const {
  ConfigNode c = (*this)[key];
  return c.defined() ? c.as_int(min, max) : def;
}

double ConfigNode::double_or(std::string_view key, double def) const {
  ConfigNode c = (*this)[key];
  return c.defined() ? c.as_double() : def;
}

bool ConfigNode::bool_or(std::string_view key, bool def) const {
  ConfigNode c = (*this)[key];
  return c.defined() ? c.as_bool() : def;
}

std::chrono::milliseconds ConfigNode::duration_or(std::string_view key, std::chrono::milliseconds def) const {
  ConfigNode c = (*this)[key];
  return c.defined() ? c.as_duration() : def;
}

uint64_t ConfigNode::size_or(std::string_view key, uint64_t def) const {
  ConfigNode c = (*this)[key];
  return c.defined() ? c.as_size() : def;
}

}  // namespace cumulo::core
