// The group's schema: parsing and validation of min/max/desired, the launch template, policies and scheduled
// actions, with every error at its file:line:col; placeholders and cron expressions.
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "core/files.h"
#include "core/log.h"
#include "scaling/scaling.h"

namespace cumulo::scaling {

namespace {

constexpr std::string_view kPlaceholders[] = {"port",    "host",      "zone",      "instance_id",
                                              "bin_dir", "db_writer", "db_reader", "internal_lb"};

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
             "} (expected one of: {port}, {host}, {zone}, {instance_id}, {bin_dir}, {db_writer}, "
             "{db_reader}, {internal_lb}; write '{{' for a literal brace)";
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

Millis positive_duration(const core::ConfigNode& node, std::string_view key, Millis def) {
  Millis d = node.duration_or(key, def);
  if (d.count() <= 0) node[key].fail("expected a duration above 0, such as 10s");
  return d;
}

Millis duration_in(const core::ConfigNode& node, std::string_view key, Millis def, Millis lo, Millis hi,
                   std::string_view range) {
  Millis d = node.duration_or(key, def);
  if (d < lo || d > hi) node[key].fail("expected a duration from " + std::string(range));
  return d;
}

int parse_signal(const core::ConfigNode& node) {
  const std::string s = node.as_string();
  if (s == "SIGTERM") return SIGTERM;
  if (s == "SIGINT") return SIGINT;
  if (s == "SIGQUIT") return SIGQUIT;
  if (s == "SIGHUP") return SIGHUP;
  node.fail("expected SIGTERM, SIGINT, SIGQUIT or SIGHUP, got '" + s + "'");
}

InstanceHealthCheck parse_instance_health_check(const core::ConfigNode& node) {
  InstanceHealthCheck hc;
  if (!node.defined() || node.is_null()) return hc;
  if (!node.is_map()) node.fail("expected a map such as {path: /healthz, grace_period: 10s}");
  node.check_keys({"path", "grace_period", "interval", "timeout", "unhealthy_threshold"});
  hc.path = node.string_or("path", hc.path);
  if (hc.path.empty() || hc.path.front() != '/') node["path"].fail("expected a path starting with '/'");
  hc.grace_period = positive_duration(node, "grace_period", hc.grace_period);
  hc.interval = positive_duration(node, "interval", hc.interval);
  hc.timeout = positive_duration(node, "timeout", hc.timeout);
  hc.unhealthy_threshold =
      static_cast<int>(node.int_or("unhealthy_threshold", hc.unhealthy_threshold, 1, 100));
  return hc;
}

LaunchTemplate parse_launch_template(const core::ConfigNode& node) {
  if (!node.is_map()) node.fail("expected a map with at least 'command'");
  node.check_keys(
      {"command", "env", "working_dir", "health_check", "stop_signal", "stop_timeout", "cpu", "memory"});
  LaunchTemplate t;
  core::ConfigNode command = node.required("command");
  t.command_location = command.location();
  if (!command.is_sequence()) {
    command.fail(
        "expected a list of arguments, such as [\"{bin_dir}/cumulo-webapp\", \"--listen\", "
        "\"127.0.0.1:{port}\"]");
  }
  bool uses_port = false;
  for (const core::ConfigNode& arg : command.items()) {
    t.command.push_back(arg.as_string());
    uses_port |= check_placeholders(arg, t.command.back());
  }
  if (t.command.empty() || t.command.front().empty())
    command.fail("expected the program to run as first item");

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
      t.env.emplace_back(key, std::move(text));
    }
  }
  if (!uses_port) {
    command.fail(
        "neither the command nor env uses {port}: each instance must listen on the port that cumulo up "
        "picks for it, e.g. \"--listen\", \"127.0.0.1:{port}\"");
  }
  t.working_dir = node.string_or("working_dir", "");
  if (node["working_dir"].defined() && t.working_dir.empty())
    node["working_dir"].fail("expected a directory");
  t.health_check = parse_instance_health_check(node["health_check"]);
  if (node["stop_signal"].defined()) t.stop_signal = parse_signal(node["stop_signal"]);
  t.stop_timeout = positive_duration(node, "stop_timeout", t.stop_timeout);
  t.cpu = node.double_or("cpu", t.cpu);
  if (t.cpu < 0.01 || t.cpu > 256)
    node["cpu"].fail("expected a number of vCPUs from 0.01 to 256, such as 0.25");
  if (node["memory"].defined()) {
    t.memory_bytes = node["memory"].as_size();
    if (t.memory_bytes < 4 * 1024 * 1024)
      node["memory"].fail("expected a size of at least 4MiB, such as 256MiB");
  }
  return t;
}

std::optional<double> optional_number(const core::ConfigNode& node, std::string_view key) {
  core::ConfigNode n = node[key];
  if (!n.defined()) return std::nullopt;
  return n.as_double();
}

StepAdjustment parse_step(const core::ConfigNode& node) {
  if (!node.is_map()) node.fail("expected a map such as {lower: 0.5, upper: 1.0, change: +1}");
  node.check_keys({"lower", "upper", "change"});
  StepAdjustment row;
  row.lower = optional_number(node, "lower");
  row.upper = optional_number(node, "upper");
  if (row.lower && row.upper && *row.lower >= *row.upper) node["upper"].fail("expected upper above lower");
  core::ConfigNode change = node.required("change");
  std::string text = change.as_string();
  std::string_view v = text;
  bool negative = false;
  if (!v.empty() && (v.front() == '+' || v.front() == '-')) {
    negative = v.front() == '-';
    v.remove_prefix(1);
  }
  if (!v.empty() && v.back() == '%') {
    row.percent = true;
    v.remove_suffix(1);
  }
  int n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n <= 0 || n > 1000) {
    change.fail("expected a change of instances such as +1, -2 or \"+50%\", got '" + text + "'");
  }
  row.change = negative ? -n : n;
  return row;
}

PolicySpec parse_policy(const core::ConfigNode& node) {
  if (!node.is_map()) node.fail("expected a map with name, type and metric");
  node.check_keys(
      {"name", "type", "metric", "statistic", "target", "window", "scale_in_stabilization", "steps"});
  PolicySpec p;
  core::ConfigNode name = node.required("name");
  p.name = name.as_string();
  if (p.name.empty() || p.name.size() > 64) name.fail("expected a name of at most 64 characters");
  core::ConfigNode type = node.required("type");
  const std::string type_text = type.as_string();
  if (type_text == "target_tracking") {
    p.type = PolicyType::kTargetTracking;
  } else if (type_text == "step") {
    p.type = PolicyType::kStep;
  } else {
    type.fail("expected target_tracking or step, got '" + type_text + "'");
  }
  core::ConfigNode metric = node.required("metric");
  auto m = parse_metric_name(metric.as_string());
  if (!m) {
    metric.fail("unknown metric '" + metric.as_string() +
                "': expected cpu, memory, request_rate, latency_p50, latency_p95, latency_p99, network_in, "
                "network_out or custom:NAME");
  }
  p.metric = *m;
  if (core::ConfigNode st = node["statistic"]; st.defined()) {
    const std::string s = st.as_string();
    if (s == "average") {
      p.statistic = Statistic::kAverage;
    } else if (s == "maximum") {
      p.statistic = Statistic::kMaximum;
    } else if (s == "minimum") {
      p.statistic = Statistic::kMinimum;
    } else if (s == "p50") {
      p.statistic = Statistic::kP50;
    } else if (s == "p95") {
      p.statistic = Statistic::kP95;
    } else if (s == "p99") {
      p.statistic = Statistic::kP99;
    } else {
      st.fail("expected average, maximum, minimum, p50, p95 or p99, got '" + s + "'");
    }
  }
  p.window = duration_in(node, "window", p.window, Millis(1000), Millis(600'000), "1s to 10m");
  if (p.type == PolicyType::kTargetTracking) {
    if (node["steps"].defined()) node["steps"].fail("steps belong to a policy of type step");
    core::ConfigNode target = node.required("target");
    p.target = target.as_double();
    if (p.target <= 0) target.fail("expected a target above 0");
    p.scale_in_stabilization = duration_in(node, "scale_in_stabilization", p.scale_in_stabilization,
                                           Millis(0), Millis(3'600'000), "0s to 1h");
  } else {
    if (node["target"].defined()) node["target"].fail("target belongs to a policy of type target_tracking");
    if (node["scale_in_stabilization"].defined()) {
      node["scale_in_stabilization"].fail(
          "scale_in_stabilization belongs to a policy of type target_tracking");
    }
    core::ConfigNode steps = node.required("steps");
    if (!steps.is_sequence()) steps.fail("expected a list of {lower, upper, change} rows");
    for (const core::ConfigNode& row : steps.items()) p.steps.push_back(parse_step(row));
    if (p.steps.empty()) steps.fail("expected at least one step");
  }
  return p;
}

ScheduledAction parse_scheduled(const core::ConfigNode& node) {
  if (!node.is_map()) node.fail("expected a map such as {name: office-hours, cron: \"0 8 * * 1-5\", min: 4}");
  node.check_keys({"name", "cron", "min", "max", "desired"});
  ScheduledAction a;
  a.name = node.required("name").as_string();
  core::ConfigNode cron = node.required("cron");
  try {
    a.cron = parse_cron(cron.as_string());
  } catch (const std::invalid_argument& e) {
    cron.fail(std::string(e.what()));
  }
  if (node["min"].defined()) a.min = static_cast<int>(node["min"].as_int(0, 1000));
  if (node["max"].defined()) a.max = static_cast<int>(node["max"].as_int(1, 1000));
  if (node["desired"].defined()) a.desired = static_cast<int>(node["desired"].as_int(0, 1000));
  if (!a.min && !a.max && !a.desired) node.fail("expected at least one of min, max and desired");
  if (a.min && a.max && *a.min > *a.max) node["min"].fail("min is above max");
  if (a.desired && a.min && *a.desired < *a.min) node["desired"].fail("desired is below min");
  if (a.desired && a.max && *a.desired > *a.max) node["desired"].fail("desired is above max");
  return a;
}

// One cron field: "*", "*/N", "A", "A-B", "A-B/N", comma lists; names for months and weekdays.
template <size_t N>
void parse_cron_field(std::string_view field, int lo, int hi, std::bitset<N>& out, bool* any,
                      std::string_view what, const std::vector<std::string_view>& names) {
  const std::string_view whole = field;
  auto value = [&](std::string_view s) -> int {
    for (size_t i = 0; i < names.size(); ++i) {
      if (s.size() == 3 && strncasecmp(std::string(s).c_str(), std::string(names[i]).c_str(), 3) == 0) {
        return lo + static_cast<int>(i);
      }
    }
    int v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) {
      throw std::invalid_argument("bad " + std::string(what) + " field '" + std::string(whole) +
                                  "': expected " + std::to_string(lo) + "-" + std::to_string(hi) +
                                  ", '*', ranges A-B, steps /N or lists");
    }
    return v;
  };
  *any = field == "*";
  while (!field.empty()) {
    size_t comma = field.find(',');
    std::string_view part = field.substr(0, comma);
    field = comma == std::string_view::npos ? std::string_view{} : field.substr(comma + 1);
    int step = 1;
    const bool stepped = part.find('/') != std::string_view::npos;
    if (size_t slash = part.find('/'); slash != std::string_view::npos) {
      step = value(part.substr(slash + 1));
      if (step <= 0) throw std::invalid_argument("bad " + std::string(what) + " step");
      part = part.substr(0, slash);
    }
    int a = lo, b = hi;
    if (part != "*") {
      size_t dash = part.find('-');
      a = value(part.substr(0, dash));
      b = dash == std::string_view::npos ? a : value(part.substr(dash + 1));
      if (dash == std::string_view::npos && stepped) b = hi;  // "5/15": from 5 on
      if (b < a)
        throw std::invalid_argument("bad " + std::string(what) + " range '" + std::string(part) + "'");
    }
    for (int v = a; v <= b; v += step) out.set(static_cast<size_t>(v % static_cast<int>(N)));
  }
}

}  // namespace

std::string MetricName::text() const {
  switch (kind) {
    case MetricKind::kCpu:
      return "cpu";
    case MetricKind::kMemory:
      return "memory";
    case MetricKind::kRequestRate:
      return "request_rate";
    case MetricKind::kLatencyP50:
      return "latency_p50";
    case MetricKind::kLatencyP95:
      return "latency_p95";
    case MetricKind::kLatencyP99:
      return "latency_p99";
    case MetricKind::kNetworkIn:
      return "network_in";
    case MetricKind::kNetworkOut:
      return "network_out";
    case MetricKind::kCustom:
      return "custom:" + custom;
  }
  return "?";
}

std::optional<MetricName> parse_metric_name(std::string_view text) {
  static const std::pair<std::string_view, MetricKind> kNames[] = {{"cpu", MetricKind::kCpu},
                                                                   {"memory", MetricKind::kMemory},
                                                                   {"request_rate", MetricKind::kRequestRate},
                                                                   {"latency_p50", MetricKind::kLatencyP50},
                                                                   {"latency_p95", MetricKind::kLatencyP95},
                                                                   {"latency_p99", MetricKind::kLatencyP99},
                                                                   {"network_in", MetricKind::kNetworkIn},
                                                                   {"network_out", MetricKind::kNetworkOut}};
  for (const auto& [name, kind] : kNames) {
    if (text == name) return MetricName{kind, {}};
  }
  constexpr std::string_view kCustom = "custom:";
  if (text.substr(0, kCustom.size()) == kCustom) {
    std::string_view name = text.substr(kCustom.size());
    bool ok = !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
      return is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '_' || c == '-' || c == '.';
    });
    if (ok) return MetricName{MetricKind::kCustom, std::string(name)};
  }
  return std::nullopt;
}

const char* to_string(Statistic s) {
  switch (s) {
    case Statistic::kAverage:
      return "average";
    case Statistic::kMaximum:
      return "maximum";
    case Statistic::kMinimum:
      return "minimum";
    case Statistic::kP50:
      return "p50";
    case Statistic::kP95:
      return "p95";
    case Statistic::kP99:
      return "p99";
  }
  return "?";
}

const char* to_string(InstanceState s) {
  switch (s) {
    case InstanceState::kPending:
      return "pending";
    case InstanceState::kInService:
      return "in_service";
    case InstanceState::kDraining:
      return "draining";
    case InstanceState::kTerminated:
      return "terminated";
  }
  return "?";
}

bool CronSchedule::matches(const std::tm& t) const {
  if (!minutes.test(static_cast<size_t>(t.tm_min)) || !hours.test(static_cast<size_t>(t.tm_hour)) ||
      !months.test(static_cast<size_t>(t.tm_mon + 1))) {
    return false;
  }
  const bool dom = days_of_month.test(static_cast<size_t>(t.tm_mday));
  const bool dow = days_of_week.test(static_cast<size_t>(t.tm_wday));
  if (any_day_of_month && any_day_of_week) return true;
  if (any_day_of_month) return dow;
  if (any_day_of_week) return dom;
  return dom || dow;
}

CronSchedule parse_cron(std::string_view text) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    size_t start = i;
    while (i < text.size() && text[i] != ' ') ++i;
    if (i > start) fields.push_back(text.substr(start, i - start));
  }
  if (fields.size() != 5) {
    throw std::invalid_argument(
        "expected 5 cron fields (minute hour day-of-month month day-of-week), such as "
        "\"0 8 * * 1-5\", got " +
        std::to_string(fields.size()));
  }
  CronSchedule c;
  c.text = std::string(text);
  bool ignored = false;
  parse_cron_field(fields[0], 0, 59, c.minutes, &ignored, "minute", {});
  parse_cron_field(fields[1], 0, 23, c.hours, &ignored, "hour", {});
  parse_cron_field(fields[2], 1, 31, c.days_of_month, &c.any_day_of_month, "day-of-month", {});
  parse_cron_field(fields[3], 1, 12, c.months, &ignored, "month",
                   {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"});
  // 0..7 with 7 as Sunday again, as in cron; the bitset folds 7 onto 0.
  parse_cron_field(fields[4], 0, 7, c.days_of_week, &c.any_day_of_week, "day-of-week",
                   {"sun", "mon", "tue", "wed", "thu", "fri", "sat"});
  return c;
}

GroupSpec parse_group(const core::ConfigNode& node) {
  if (!node.is_map()) node.fail("expected a map with name, min, max and launch_template");
  node.check_keys({"name", "path_prefix", "internal", "min", "max", "desired", "launch_template", "warmup",
                   "cooldown", "drain_timeout", "policies", "scheduled"});
  GroupSpec g;
  g.location = node.location();
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
  g.path_prefix = node.string_or("path_prefix", "/");
  if (g.path_prefix.empty() || g.path_prefix.front() != '/') {
    node["path_prefix"].fail("expected a path starting with '/'");
  }
  g.internal = node.bool_or("internal", false);
  g.min = static_cast<int>(node.int_or("min", 1, 0, 1000));
  g.max = static_cast<int>(node.int_or("max", std::max(g.min, 1), 1, 1000));
  if (g.min > g.max)
    node["min"].fail("min " + std::to_string(g.min) + " is above max " + std::to_string(g.max));
  g.desired = static_cast<int>(node.int_or("desired", g.min, 0, 1000));
  if (g.desired < g.min || g.desired > g.max) {
    node["desired"].fail("desired " + std::to_string(g.desired) + " is outside min..max (" +
                         std::to_string(g.min) + ".." + std::to_string(g.max) + ")");
  }
  g.launch_template = parse_launch_template(node.required("launch_template"));
  g.warmup = duration_in(node, "warmup", g.warmup, Millis(0), Millis(3'600'000), "0s to 1h");
  g.cooldown = duration_in(node, "cooldown", g.cooldown, Millis(0), Millis(3'600'000), "0s to 1h");
  g.drain_timeout =
      duration_in(node, "drain_timeout", g.drain_timeout, Millis(0), Millis(3'600'000), "0s to 1h");

  core::ConfigNode policies = node["policies"];
  if (policies.defined() && !policies.is_null()) {
    if (!policies.is_sequence()) policies.fail("expected a list of policies");
    for (const core::ConfigNode& p : policies.items()) {
      PolicySpec policy = parse_policy(p);
      for (const PolicySpec& other : g.policies) {
        if (other.name == policy.name) p["name"].fail("policy name '" + policy.name + "' is used twice");
      }
      g.policies.push_back(std::move(policy));
    }
  }
  core::ConfigNode scheduled = node["scheduled"];
  if (scheduled.defined() && !scheduled.is_null()) {
    if (!scheduled.is_sequence()) scheduled.fail("expected a list of scheduled actions");
    for (const core::ConfigNode& s : scheduled.items()) {
      ScheduledAction action = parse_scheduled(s);
      for (const ScheduledAction& other : g.scheduled) {
        if (other.name == action.name)
          s["name"].fail("scheduled action name '" + action.name + "' is used twice");
      }
      g.scheduled.push_back(std::move(action));
    }
  }
  return g;
}

std::string expand_placeholders(std::string_view text, const PlaceholderValues& values) {
  std::string out;
  out.reserve(text.size());
  std::string error = scan_placeholders(
      text, [&](std::string_view literal) { out.append(literal); },
      [&](std::string_view name) {
        if (name == "port")
          out += values.port;
        else if (name == "host")
          out += values.host;
        else if (name == "db_writer")
          out += values.db_writer;
        else if (name == "db_reader")
          out += values.db_reader;
        else if (name == "internal_lb")
          out += values.internal_lb;
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

ExpandedCommand expand_command(const LaunchTemplate& launch, const PlaceholderValues& values) {
  ExpandedCommand out;
  for (const std::string& arg : launch.command) out.argv.push_back(expand_placeholders(arg, values));
  for (const auto& [key, value] : launch.env) out.env.emplace_back(key, expand_placeholders(value, values));
  return out;
}

std::string resolve_executable(const GroupSpec& group, const std::string& argv0) {
  auto error = [&](const std::string& what) {
    return core::ConfigError(group.launch_template.command_location + ": group '" + group.name +
                             "': " + what);
  };
  int err = 0;
  const std::string found = core::find_executable(argv0, &err);
  if (!found.empty()) return found;
  if (argv0.find('/') != std::string::npos) throw error("cannot run '" + argv0 + "': " + std::strerror(err));
  throw error("cannot run '" + argv0 + "': not found in PATH");
}

const Event& EventLog::add(std::string group, std::string message) {
  Event e{next_seq_++, core::utc_timestamp(), std::move(group), std::move(message)};
  core::log_info("scaling", e.message, {{"group", e.group}, {"seq", static_cast<int64_t>(e.seq)}});
  events_.push_back(std::move(e));
  while (events_.size() > capacity_) events_.pop_front();
  return events_.back();
}

std::vector<Event> EventLog::since(uint64_t seq) const {
  std::vector<Event> out;
  for (const Event& e : events_) {
    if (e.seq > seq) out.push_back(e);
  }
  return out;
}

}  // namespace cumulo::scaling
