#include "cli/control_commands.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

#include "core/files.h"
#include "core/text.h"
#include "http/client.h"

namespace cumulo::cli {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A user-facing failure: printed as "cumulo COMMAND: message", exit code 1.
struct CommandError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Endpoint {
  std::string base;  // "http://127.0.0.1:9902"
  std::string token;
};

Endpoint find_endpoint(const ControlTarget& t) {
  Endpoint e;
  const fs::path dir = t.state_dir.empty() ? ".cumulo" : t.state_dir;
  const std::string no_stack = "no stack running in " + dir.string() +
                               ": start one with cumulo up (or give --state-dir, or --api and --token)";
  if (!t.api.empty()) {
    e.base = t.api;
  } else {
    const std::string text = core::read_file((dir / "stack.json").string());
    if (text.empty()) throw CommandError(no_stack);
    json status;
    try {
      status = json::parse(text);
    } catch (const json::exception&) {
      throw CommandError((dir / "stack.json").string() + " is not valid JSON: is it from cumulo up?");
    }
    if (status.value("state", "") == "stopped") throw CommandError(no_stack + " (the last one has stopped)");
    if (!status.contains("control") || !status["control"].contains("address")) {
      throw CommandError((dir / "stack.json").string() +
                         " names no control API: it was written by an older cumulo up; restart the stack");
    }
    e.base = "http://" + status["control"]["address"].get<std::string>();
  }
  while (!e.base.empty() && e.base.back() == '/') e.base.pop_back();
  if (e.base.rfind("http://", 0) != 0) e.base = "http://" + e.base;
  e.token = t.token;
  if (e.token.empty()) {
    e.token = core::read_file((dir / "api-token").string());
    while (!e.token.empty() && (e.token.back() == '\n' || e.token.back() == ' ')) e.token.pop_back();
    if (e.token.empty()) {
      throw CommandError("cannot read the control API token " + (dir / "api-token").string() +
                         ": run this as the user who ran cumulo up, or give --token");
    }
  }
  return e;
}

// Calls the API; returns the parsed body of a 2xx answer, throws CommandError with the API's message
// otherwise.
json call(const ControlTarget& t, std::string_view method, const std::string& path,
          const json& body = nullptr) {
  const Endpoint e = find_endpoint(t);
  http::HeaderList headers = {{"Authorization", "Bearer " + e.token}};
  std::string payload;
  if (!body.is_null()) {
    headers.emplace_back("Content-Type", "application/json");
    payload = body.dump();
  }
  http::ClientResponse r =
      http::fetch_blocking(method, e.base + path, std::move(payload), std::move(headers));
  if (!r.ok()) {
    throw CommandError("cannot reach the control API at " + e.base + ": " + r.error.message +
                       " (is cumulo up running?)");
  }
  json answer;
  if (!r.body.empty()) {
    try {
      answer = json::parse(r.body);
    } catch (const json::exception&) {
      answer = nullptr;
    }
  }
  if (r.status < 200 || r.status > 299) {
    std::string message = answer.is_object() && answer.contains("error")
                              ? answer["error"].get<std::string>()
                              : "status " + std::to_string(r.status);
    if (r.status == 401) message += " (the token does not match this stack's)";
    throw CommandError(message);
  }
  return answer;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::fputs(core::format_columns(rows).c_str(), stdout);
}

std::string text_of(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_null()) return "-";
  return j.dump();
}

std::string human_bytes(uint64_t n) {
  char buf[32];
  if (n >= (1ull << 30)) {
    std::snprintf(buf, sizeof buf, "%.1fGiB", static_cast<double>(n) / (1ull << 30));
  } else if (n >= (1ull << 20)) {
    std::snprintf(buf, sizeof buf, "%.1fMiB", static_cast<double>(n) / (1ull << 20));
  } else {
    std::snprintf(buf, sizeof buf, "%.0fKiB", static_cast<double>(n) / 1024);
  }
  return buf;
}

template <typename F>
int guarded(const char* command, F f) {
  try {
    return f();
  } catch (const CommandError& e) {
    std::fprintf(stderr, "cumulo %s: %s\n", command, e.what());
    return 1;
  } catch (const json::exception& e) {
    std::fprintf(stderr, "cumulo %s: unexpected answer from the control API: %s\n", command, e.what());
    return 1;
  }
}

}  // namespace

int command_status(const ControlTarget& t) {
  return guarded("status", [&] {
    json s = call(t, "GET", "/v1/status");
    if (t.json) {
      std::printf("%s\n", s.dump(2).c_str());
      return 0;
    }
    std::printf("stack %s\n\n", s.value("stack", "").c_str());
    std::vector<std::vector<std::string>> rows = {
        {"GROUP", "MIN", "MAX", "DESIRED", "IN_SERVICE", "PENDING", "DRAINING", "ZONES"}};
    for (const json& g : s.at("groups")) {
      std::string zones;
      for (const auto& [zone, n] : g.at("zones").items())
        zones += (zones.empty() ? "" : " ") + zone + ":" + n.dump();
      rows.push_back({text_of(g["name"]), text_of(g["min"]), text_of(g["max"]), text_of(g["desired"]),
                      text_of(g["in_service"]), text_of(g["pending"]), text_of(g["draining"]), zones});
    }
    print_table(rows);
    return 0;
  });
}

int command_instances(const ControlTarget& t) {
  return guarded("instances", [&] {
    json s = call(t, "GET", "/v1/instances");
    if (t.json) {
      std::printf("%s\n", s.dump(2).c_str());
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {
        {"ID", "GROUP", "ZONE", "ADDRESS", "PID", "STATE", "CPU%", "RSS", "STARTED"}};
    for (const json& i : s.at("instances")) {
      char cpu[16];
      std::snprintf(cpu, sizeof cpu, "%.1f", i.value("cpu_percent", 0.0));
      rows.push_back({text_of(i["id"]), text_of(i["group"]), text_of(i["zone"]), text_of(i["address"]),
                      text_of(i["pid"]), text_of(i["state"]), cpu,
                      human_bytes(i.value("rss_bytes", uint64_t{0})), text_of(i["started_at"])});
    }
    print_table(rows);
    return 0;
  });
}

int command_scale(const ControlTarget& t, const std::string& group, int desired) {
  return guarded("scale", [&] {
    json r = call(t, "POST", "/v1/groups/" + group + "/desired", json{{"desired", desired}});
    if (t.json) {
      std::printf("%s\n", r.dump(2).c_str());
    } else {
      std::printf("%s: desired %d (min %d, max %d)\n", group.c_str(), r.value("desired", desired),
                  r.value("min", 0), r.value("max", 0));
    }
    return 0;
  });
}

int command_net_reload(const ControlTarget& t) {
  return guarded("net reload", [&] {
    json r = call(t, "POST", "/v1/network/reload", json::object());
    if (t.json) {
      std::printf("%s\n", r.dump(2).c_str());
    } else {
      std::printf("%s\n", r.value("message", "reloaded").c_str());
    }
    return 0;
  });
}

int command_events(const ControlTarget& t, unsigned long long since) {
  return guarded("events", [&] {
    json r = call(t, "GET", "/v1/events" + (since ? "?since=" + std::to_string(since) : std::string()));
    if (t.json) {
      std::printf("%s\n", r.dump(2).c_str());
      return 0;
    }
    std::string out;
    for (const json& e : r.at("events")) {
      out += std::to_string(e.value("seq", 0ull)) + "  " + e.value("time", "") + "  " +
             e.value("message", "") + "\n";
    }
    std::fputs(out.c_str(), stdout);
    return 0;
  });
}

int command_metrics_put(const ControlTarget& t, const std::string& group, const std::string& name,
                        double value, const std::string& instance) {
  return guarded("metrics put", [&] {
    json body = {{"group", group}, {"name", name}, {"value", value}};
    if (!instance.empty()) body["instance"] = instance;
    call(t, "POST", "/v1/metrics", body);
    return 0;
  });
}

}  // namespace cumulo::cli
