#include "stack/stack_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "core/log.h"
#include "core/net.h"

namespace cumulo::stack {

namespace {

constexpr std::string_view kPlaceholders[] = {"port", "zone", "instance_id", "bin_dir"};

bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// Scans text for placeholders. Calls on_text for literal runs and on_placeholder for each name; returns an
// error message, or an empty string when the text is well formed. One scanner for checking and expanding, so
// the two cannot disagree about what a placeholder is.
template <typename OnText, typename OnPlaceholder>
std::string scan_placeholders(std::string_view text, OnText on_text, OnPlaceholder on_placeholder) {
  size_t i = 0;
  while (i < text.size()) {
    size_t special = text.find_first_of("{}", i);
    if (special == std::string_view::npos) {
      on_text(text.substr(i));
      break;
    }
    on_text(text.substr(i, special - i));
    char c = text[special];
    if (special + 1 < text.size() && text[special + 1] == c) {  // "{{" or "}}"
      on_text(text.substr(special, 1));
      i = special + 2;
      continue;
    }
    if (c == '}') return "unpaired '}' (write '}}' for a literal brace)";
    size_t close = text.find('}', special + 1);
    if (close == std::string_view::npos) return "unpaired '{' (write '{{' for a literal brace)";
    std::string_view name = text.substr(special + 1, close - special - 1);
    if (std::find(std::begin(kPlaceholders), std::end(kPlaceholders), name) == std::end(kPlaceholders)) {
      return "unknown placeholder {" + std::string(name) +
             "} (expected one of: {port}, {zone}, {instance_id}, {bin_dir}; write '{{' for a literal brace)";
    }
    on_placeholder(name);
    i = close + 1;
  }
  return {};
}

// Fails at node when its text has a malformed or unknown placeholder; tells whether it uses {port}.
bool check_placeholders(const core::ConfigNode& node, const std::string& text) {
  bool uses_port = false;
  std::string error = scan_placeholders(
      text, [](std::string_view) {}, [&](std::string_view name) { uses_port |= name == "port"; });
  if (!error.empty()) node.fail(error);
  return uses_port;
}

core::SocketAddress parse_address(const core::ConfigNode& node, std::string_view what) {
  std::string text = node.as_string();
  auto addr = core::SocketAddress::parse(text);
  if (!addr) node.fail("expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080, got '" + text + "'");
  if (addr->port() == 0) node.fail(std::string(what) + " needs a fixed port, not 0");
  return *addr;
}

bool is_loopback(const core::SocketAddress& addr) {
  std::string host = addr.host();
  return host.rfind("127.", 0) == 0 || host == "::1";
}

// "200", "200-299", "200,204,300-399", codes 100..599.
bool valid_expected_codes(std::string_view text) {
  if (text.empty()) return false;
  auto code = [](std::string_view s) -> std::optional<int> {
    if (s.size() != 3 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    int v = std::atoi(std::string(s).c_str());
    if (v < 100 || v > 599) return std::nullopt;
    return v;
  };
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item = text.substr(start, comma == std::string_view::npos ? comma : comma - start);
    size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      if (!code(item)) return false;
    } else {
      auto lo = code(item.substr(0, dash)), hi = code(item.substr(dash + 1));
      if (!lo || !hi || *lo > *hi) return false;
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return true;
}

HealthCheckSpec parse_health_check(const core::ConfigNode& node) {
  HealthCheckSpec hc;
  if (!node.defined()) return hc;
  node.check_keys(
      {"path", "expected_codes", "interval", "timeout", "healthy_threshold", "unhealthy_threshold"});
  hc.path = node.string_or("path", hc.path);
  if (hc.path.empty() || hc.path.front() != '/') node["path"].fail("expected a path starting with '/'");
  hc.expected_codes = node.string_or("expected_codes", hc.expected_codes);
  if (!valid_expected_codes(hc.expected_codes)) {
    node["expected_codes"].fail("expected status codes such as \"200\", \"200-299\" or \"200,204,300-399\"");
  }
  hc.interval = node.duration_or("interval", hc.interval);
  if (hc.interval.count() <= 0) node["interval"].fail("expected a duration above 0, such as 1s");
  hc.timeout = node.duration_or("timeout", hc.timeout);
  if (hc.timeout.count() <= 0) node["timeout"].fail("expected a duration above 0, such as 1s");
  hc.healthy_threshold = static_cast<int>(node.int_or("healthy_threshold", hc.healthy_threshold, 1, 100));
  hc.unhealthy_threshold =
      static_cast<int>(node.int_or("unhealthy_threshold", hc.unhealthy_threshold, 1, 100));
  return hc;
}

GatewaySpec parse_gateway(const core::ConfigNode& node, const std::vector<std::string>& zones) {
  if (!node.is_map()) node.fail("expected a map with at least 'listen'");
  node.check_keys({"listen", "admin", "zone", "workers", "log_level", "access_log", "balance",
                   "drain_timeout", "health_check"});
  GatewaySpec gw;

  core::ConfigNode listen = node.required("listen");
  core::SocketAddress listen_addr = parse_address(listen, "listen");
  gw.listen = listen.as_string();
  gw.listen_location = listen.location();

  core::ConfigNode admin = node["admin"];
  if (admin.defined()) {
    core::SocketAddress admin_addr = parse_address(admin, "admin");
    if (!is_loopback(admin_addr)) {
      admin.fail(
          "the admin API must listen on a loopback address (127.0.0.1 or [::1]): it can change targets");
    }
    gw.admin = admin.as_string();
    gw.admin_location = admin.location();
  } else {
    gw.admin_location = node.location();
  }
  auto admin_addr = core::SocketAddress::parse(gw.admin);
  if (admin_addr->port() == listen_addr.port() &&
      (admin_addr->host() == listen_addr.host() || listen_addr.host() == "0.0.0.0" ||
       listen_addr.host() == "::")) {
    (admin.defined() ? admin : listen).fail("gateway.listen and gateway.admin must use different ports");
  }

  core::ConfigNode zone = node["zone"];
  if (zone.defined()) {
    gw.zone = zone.as_string();
    if (std::find(zones.begin(), zones.end(), gw.zone) == zones.end()) {
      zone.fail("zone '" + gw.zone + "' is not one of the stack's zones");
    }
  }
  gw.workers = static_cast<int>(node.int_or("workers", 0, 1, 256));
  gw.log_level = node.string_or("log_level", gw.log_level);
  if (!core::parse_log_level(gw.log_level)) node["log_level"].fail("expected debug, info, warn or error");
  gw.access_log = node.string_or("access_log", gw.access_log);
  if (gw.access_log.empty()) node["access_log"].fail("expected off, - (stdout) or a file path");
  gw.balance = node.string_or("balance", gw.balance);
  if (gw.balance != "round_robin" && gw.balance != "weighted" && gw.balance != "least_outstanding") {
    node["balance"].fail("expected round_robin, weighted or least_outstanding");
  }
  gw.drain_timeout = node.duration_or("drain_timeout", gw.drain_timeout);
  gw.health_check = parse_health_check(node["health_check"]);
  return gw;
}

GroupSpec parse_group(const core::ConfigNode& node) {
  if (!node.is_map()) node.fail("expected a map with name and command");
  node.check_keys({"name", "command", "instances_per_zone", "path_prefix", "env", "start_timeout"});
  GroupSpec g;

  core::ConfigNode name = node.required("name");
  g.name = name.as_string();
  bool name_ok =
      !g.name.empty() && g.name.size() <= 32 && g.name.front() >= 'a' && g.name.front() <= 'z' &&
      std::all_of(g.name.begin(), g.name.end(), [](char c) { return is_lower_alnum(c) || c == '-'; });
  if (!name_ok) {
    name.fail(
        "expected a name of lowercase letters, digits and '-', starting with a letter, at most 32 "
        "characters");
  }

  core::ConfigNode command = node.required("command");
  g.command_location = command.location();
  if (!command.is_sequence()) {
    command.fail(
        "expected a list of arguments, such as [\"{bin_dir}/cumulo-webapp\", \"--listen\", "
        "\"127.0.0.1:{port}\"]");
  }
  bool uses_port = false;
  for (const core::ConfigNode& arg : command.items()) {
    g.command.push_back(arg.as_string());
    uses_port |= check_placeholders(arg, g.command.back());
  }
  if (g.command.empty() || g.command.front().empty())
    command.fail("expected the program to run as first item");

  g.instances_per_zone = static_cast<int>(node.int_or("instances_per_zone", 1, 1, 100));

  g.path_prefix = node.string_or("path_prefix", "/");
  if (g.path_prefix.empty() || g.path_prefix.front() != '/') {
    node["path_prefix"].fail("expected a path starting with '/'");
  }

  core::ConfigNode env = node["env"];
  if (env.defined() && !env.is_null()) {
    if (!env.is_map()) env.fail("expected a map of variable names to values");
    for (const auto& [key, value] : env.entries()) {
      bool key_ok =
          !key.empty() && !(key.front() >= '0' && key.front() <= '9') &&
          std::all_of(key.begin(), key.end(), [](char c) {
            return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
          });
      if (!key_ok) value.fail("'" + key + "' is not a valid variable name (letters, digits and '_')");
      std::string text = value.as_string();
      uses_port |= check_placeholders(value, text);
      g.env.emplace_back(key, std::move(text));
    }
  }

  if (!uses_port) {
    command.fail(
        "neither the command nor env uses {port}: each instance must listen on the port that cumulo up "
        "picks for it, e.g. \"--listen\", \"127.0.0.1:{port}\"");
  }

  g.start_timeout = node.duration_or("start_timeout", g.start_timeout);
  if (g.start_timeout.count() <= 0) node["start_timeout"].fail("expected a duration above 0, such as 10s");
  return g;
}

}  // namespace

StackSpec load_stack_file(const std::string& path) {
  StackSpec spec = parse_stack(core::ConfigNode::load_file(path));
  spec.source = path;
  return spec;
}

StackSpec parse_stack(const core::ConfigNode& root) {
  if (!root.is_map()) root.fail("expected a stack: a map with name, zones, gateway and groups");
  root.check_keys({"name", "zones", "gateway", "groups"});
  StackSpec spec;
  spec.source = root.location();

  core::ConfigNode name = root.required("name");
  spec.name = name.as_string();
  bool name_ok = !spec.name.empty() && spec.name.size() <= 64 &&
                 std::all_of(spec.name.begin(), spec.name.end(), [](char c) {
                   return is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
                 });
  if (!name_ok) name.fail("expected a name of letters, digits, '-' and '_', at most 64 characters");

  core::ConfigNode zones = root.required("zones");
  if (!zones.is_sequence()) zones.fail("expected a list of zone names, such as [a, b]");
  for (const core::ConfigNode& z : zones.items()) {
    std::string zone = z.as_string();
    // No '-' in zone names keeps instance ids ("web-a-1") unambiguous: the zone is always the second-to-last
    // part.
    if (zone.empty() || zone.size() > 16 || !std::all_of(zone.begin(), zone.end(), is_lower_alnum)) {
      z.fail("expected a zone name of lowercase letters and digits, at most 16 characters");
    }
    if (std::find(spec.zones.begin(), spec.zones.end(), zone) != spec.zones.end()) {
      z.fail("zone '" + zone + "' is listed twice");
    }
    spec.zones.push_back(std::move(zone));
  }
  if (spec.zones.empty()) zones.fail("expected at least one zone");

  spec.gateway = parse_gateway(root.required("gateway"), spec.zones);

  core::ConfigNode groups = root.required("groups");
  if (!groups.is_sequence()) groups.fail("expected a list of groups");
  for (const core::ConfigNode& g : groups.items()) {
    GroupSpec group = parse_group(g);
    for (const GroupSpec& other : spec.groups) {
      if (other.name == group.name) g["name"].fail("group name '" + group.name + "' is used twice");
      if (other.path_prefix == group.path_prefix) {
        g["path_prefix"].fail("path_prefix '" + group.path_prefix + "' is already routed to group '" +
                              other.name + "'");
      }
    }
    spec.groups.push_back(std::move(group));
  }
  if (spec.groups.empty()) groups.fail("expected at least one group");
  return spec;
}

std::vector<InstancePlan> plan_instances(const StackSpec& stack) {
  std::vector<InstancePlan> plans;
  for (const GroupSpec& group : stack.groups) {
    for (const std::string& zone : stack.zones) {
      for (int i = 1; i <= group.instances_per_zone; ++i) {
        plans.push_back(
            InstancePlan{group.name + "-" + zone + "-" + std::to_string(i), group.name, zone, i, &group});
      }
    }
  }
  return plans;
}

std::string expand_placeholders(std::string_view text, const PlaceholderValues& values) {
  std::string out;
  out.reserve(text.size());
  std::string error = scan_placeholders(
      text, [&](std::string_view literal) { out.append(literal); },
      [&](std::string_view name) {
        if (name == "port")
          out += values.port;
        else if (name == "zone")
          out += values.zone;
        else if (name == "instance_id")
          out += values.instance_id;
        else
          out += values.bin_dir;
      });
  if (!error.empty()) throw std::invalid_argument("'" + std::string(text) + "': " + error);
  return out;
}

ExpandedCommand expand_command(const GroupSpec& group, const PlaceholderValues& values) {
  ExpandedCommand out;
  for (const std::string& arg : group.command) out.argv.push_back(expand_placeholders(arg, values));
  for (const auto& [key, value] : group.env) out.env.emplace_back(key, expand_placeholders(value, values));
  return out;
}

std::string resolve_executable(const GroupSpec& group, const std::string& argv0) {
  auto error = [&](const std::string& what) {
    return core::ConfigError(group.command_location + ": group '" + group.name + "': " + what);
  };
  auto runnable = [](const std::string& path, int* err) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      *err = errno;
      return false;
    }
    if (!S_ISREG(st.st_mode)) {
      *err = EISDIR;
      return false;
    }
    if (::access(path.c_str(), X_OK) != 0) {
      *err = errno;
      return false;
    }
    return true;
  };
  int err = 0;
  if (argv0.find('/') != std::string::npos) {
    if (!runnable(argv0, &err)) throw error("cannot run '" + argv0 + "': " + std::strerror(err));
    return argv0;
  }
  const char* path_env = std::getenv("PATH");
  std::string_view dirs = path_env && *path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t colon = dirs.find(':', start);
    std::string dir(
        dirs.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + argv0;
    if (runnable(candidate, &err)) return candidate;
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  throw error("cannot run '" + argv0 + "': not found in PATH");
}

}  // namespace cumulo::stack
