#include "stack/internal/control_api.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/net.h"

namespace cumulo::stack::internal {

using nlohmann::json;

namespace {

http::Response error(int status, const std::string& message) {
  return http::Response::json(status, json{{"error", message}}.dump() + "\n");
}

http::Response ok(const json& body) {
  return http::Response::json(200, body.dump(2) + "\n");
}

// Compares without stopping at the first difference, so response time says nothing about the token.
bool same_token(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

scaling::ScalingGroup* find_group(const ControlContext& ctx, std::string_view name) {
  for (scaling::ScalingGroup* g : ctx.groups) {
    if (g->spec().name == name) return g;
  }
  return nullptr;
}

json status_json(const ControlContext& ctx) {
  json groups = json::array();
  for (const scaling::ScalingGroup* g : ctx.groups) {
    scaling::GroupStatus s = g->status();
    json zones = json::object();
    for (const auto& [zone, n] : s.zones) zones[zone] = n;
    groups.push_back({{"name", s.name},
                      {"min", s.min},
                      {"max", s.max},
                      {"desired", s.desired},
                      {"in_service", s.in_service},
                      {"pending", s.pending},
                      {"draining", s.draining},
                      {"zones", zones}});
  }
  return json{{"stack", ctx.stack_name}, {"groups", groups}};
}

json instances_json(const ControlContext& ctx) {
  json list = json::array();
  for (const scaling::ScalingGroup* g : ctx.groups) {
    for (const scaling::InstanceView& i : g->instances()) {
      json j = instance_json(i);
      j["started_at"] = iso_utc(i.started_at);
      j["cpu_percent"] = std::round(i.cpu_percent * 10) / 10;
      j["rss_bytes"] = i.rss_bytes;
      list.push_back(std::move(j));
    }
  }
  return json{{"instances", list}};
}

}  // namespace

json instance_json(const scaling::InstanceView& i) {
  return {{"id", i.id},
          {"group", i.group},
          {"zone", i.zone},
          {"address", i.address},
          {"pid", i.pid},
          {"state", scaling::to_string(i.state)},
          {"restarts", i.restarts}};
}

std::string iso_utc(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];  // room for any int the compiler cannot rule out
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

std::string random_token() {
  core::Fd fd(::open("/dev/urandom", O_RDONLY | O_CLOEXEC));
  unsigned char bytes[32];
  if (!fd || ::read(fd.get(), bytes, sizeof bytes) != static_cast<ssize_t>(sizeof bytes)) {
    throw std::runtime_error("cannot read /dev/urandom for the control API token");
  }
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

http::Response handle_control_request(const http::Request& req, const ControlContext& ctx) {
  constexpr std::string_view kBearer = "Bearer ";
  std::string_view auth = req.header("Authorization");
  if (auth.substr(0, kBearer.size()) != kBearer || !same_token(auth.substr(kBearer.size()), ctx.token)) {
    http::Response r =
        error(401,
              "missing or wrong token: send \"Authorization: Bearer TOKEN\" with the token from "
              "STATE_DIR/api-token");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  const std::string& m = req.method;
  const std::string& path = req.path;
  try {
    if (path == "/v1/status") {
      if (m != "GET") return error(405, "use GET on /v1/status");
      return ok(status_json(ctx));
    }
    if (path == "/v1/instances") {
      if (m != "GET") return error(405, "use GET on /v1/instances");
      return ok(instances_json(ctx));
    }
    if (path == "/v1/events") {
      if (m != "GET") return error(405, "use GET on /v1/events");
      uint64_t since = 0;
      if (std::string_view q = req.query_param("since"); !q.empty()) {
        auto [end, ec] = std::from_chars(q.data(), q.data() + q.size(), since);
        if (ec != std::errc() || end != q.data() + q.size())
          return error(400, "since must be an event number");
      }
      json list = json::array();
      for (const scaling::Event& e : ctx.events->since(since)) {
        list.push_back({{"seq", e.seq}, {"time", e.time}, {"group", e.group}, {"message", e.message}});
      }
      return ok(json{{"events", list}});
    }
    constexpr std::string_view kGroups = "/v1/groups/";
    if (path.rfind(kGroups, 0) == 0 && path.size() > kGroups.size() + 8 &&
        path.compare(path.size() - 8, 8, "/desired") == 0) {
      std::string name = path.substr(kGroups.size(), path.size() - kGroups.size() - 8);
      scaling::ScalingGroup* g = find_group(ctx, name);
      if (!g) return error(404, "no group named '" + name + "' in stack " + ctx.stack_name);
      if (m != "POST" && m != "PUT") return error(405, "use POST on /v1/groups/GROUP/desired");
      json body = json::parse(req.body);
      if (!body.is_object() || !body.contains("desired") || !body["desired"].is_number_integer()) {
        return error(400, "expected a JSON object with an integer \"desired\", such as {\"desired\": 4}");
      }
      const int64_t desired = body["desired"].get<int64_t>();
      auto set = g->set_desired(static_cast<int>(std::clamp<int64_t>(desired, -1, 100000)), ctx.now());
      if (!set) return error(400, set.error().message);
      if (ctx.after_change) ctx.after_change();
      scaling::GroupStatus s = g->status();
      return ok(json{{"group", s.name}, {"desired", s.desired}, {"min", s.min}, {"max", s.max}});
    }
    if (path == "/v1/network/reload") {
      if (m != "POST") return error(405, "use POST on /v1/network/reload");
      if (!ctx.reload_network) {
        return error(409, "stack " + ctx.stack_name + " runs in loopback mode: there are no rules to reload");
      }
      auto reloaded = ctx.reload_network();
      if (!reloaded) return error(409, reloaded.error().message);
      return ok(json{{"reloaded", true}, {"message", *reloaded}});
    }
    if (path == "/v1/metrics") {
      if (m != "POST") return error(405, "use POST on /v1/metrics");
      json body = json::parse(req.body);
      if (!body.is_object() || !body.contains("group") || !body["group"].is_string() ||
          !body.contains("name") || !body["name"].is_string() || !body.contains("value") ||
          !body["value"].is_number()) {
        return error(
            400,
            "expected a JSON object with \"group\", \"name\" and a numeric \"value\" (and optional "
            "\"instance\"), such as {\"group\": \"web\", \"name\": \"queue_depth\", \"value\": 12.5}");
      }
      const std::string group = body["group"].get<std::string>();
      scaling::ScalingGroup* g = find_group(ctx, group);
      if (!g) return error(404, "no group named '" + group + "' in stack " + ctx.stack_name);
      std::string instance;
      if (body.contains("instance") && !body["instance"].is_null()) {
        if (!body["instance"].is_string())
          return error(400, "\"instance\" must be an instance id such as web-a-1");
        instance = body["instance"].get<std::string>();
      }
      auto put =
          g->put_metric(body["name"].get<std::string>(), body["value"].get<double>(), instance, ctx.now());
      if (!put) return error(400, put.error().message);
      http::Response no_content;
      no_content.status = 204;
      return no_content;
    }
    return error(404, "no such control endpoint: " + m + " " + path + " (see docs/scaling.md)");
  } catch (const json::exception& e) {
    return error(400, std::string("request body is not valid JSON: ") + e.what());
  }
}

}  // namespace cumulo::stack::internal
