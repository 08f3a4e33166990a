#include "stack/internal/gateway_admin.h"

#include <memory>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/log.h"
#include "core/text.h"
#include "stack/internal/gateway_config.h"

namespace cumulo::stack::internal {

using nlohmann::json;

namespace {

std::string error_of(const http::ClientResponse& r) {
  if (!r.ok()) return r.error.message;
  try {
    json body = json::parse(r.body);
    if (body.is_object() && body.contains("error"))
      return "status " + std::to_string(r.status) + ": " + body["error"].get<std::string>();
  } catch (const json::exception&) {
  }
  return "status " + std::to_string(r.status);
}

}  // namespace

bool parse_targets_body(std::string_view body, GatewayView& view) {
  try {
    json doc = json::parse(body);
    for (const json& g : doc.at("groups")) {
      auto& targets = view.targets[g.at("name").get<std::string>()];
      for (const json& t : g.at("targets")) {
        scaling::GatewayTargetView v;
        v.health = t.value("health", std::string());
        v.draining = t.value("state", std::string()) == "draining";
        targets[t.at("address").get<std::string>()] = v;
      }
    }
    view.targets_read = true;
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

bool parse_stats_body(std::string_view body, GatewayView& view) {
  try {
    json doc = json::parse(body);
    for (const json& t : doc.at("targets")) {
      scaling::TargetCounters c;
      c.requests = t.value("requests", uint64_t{0});
      c.responses_5xx = t.value("responses_5xx", uint64_t{0});
      c.bytes_in = t.value("bytes_in", uint64_t{0});
      c.bytes_out = t.value("bytes_out", uint64_t{0});
      c.in_flight = t.value("in_flight", int64_t{0});
      if (t.contains("latency_bounds")) c.latency_bounds = t["latency_bounds"].get<std::vector<double>>();
      if (t.contains("latency_counts")) c.latency_counts = t["latency_counts"].get<std::vector<uint64_t>>();
      view.stats[t.at("group").get<std::string>()][t.at("address").get<std::string>()] = std::move(c);
    }
    view.stats_read = true;
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

void GatewayAdmin::register_target(const std::string& group, const std::string& address,
                                   const std::string& zone, Done done) {
  http::ClientRequest req;
  req.method = "POST";
  req.target = "/targets/" + core::percent_encode(group, ":");
  req.headers = {{"Content-Type", "application/json"}};
  req.body = json{{"address", address}, {"zone", zone}, {"weight", 1}}.dump();
  req.timeout = std::chrono::seconds(2);
  client_.request(admin_, std::move(req), [done = std::move(done)](http::ClientResponse r) {
    // 409: it is there already, which is what was asked.
    const bool ok = r.ok() && (r.status == 201 || r.status == 200 || r.status == 409);
    done(ok, ok ? std::string() : error_of(r));
  });
}

void GatewayAdmin::deregister_target(const std::string& group, const std::string& address,
                                     scaling::Millis drain_timeout, Done done) {
  http::ClientRequest req;
  req.method = "DELETE";
  req.target = "/targets/" + core::percent_encode(group, ":") + "/" + core::percent_encode(address, ":") +
               "?drain_timeout=" + core::format_duration(drain_timeout);
  req.timeout = std::chrono::seconds(2);
  client_.request(admin_, std::move(req), [done = std::move(done)](http::ClientResponse r) {
    // 404: not there (any more), which is what was asked.
    const bool ok = r.ok() && (r.status == 202 || r.status == 200 || r.status == 404);
    done(ok, ok ? std::string() : error_of(r));
  });
}

void GatewayAdmin::read_view(std::function<void(GatewayView)> done) {
  struct Pending {
    GatewayView view;
    int left = 2;
    std::function<void(GatewayView)> done;
  };
  auto pending = std::make_shared<Pending>();  // shared by the two requests: the last one to finish reports
  pending->done = std::move(done);
  auto finish = [pending] {
    if (--pending->left == 0) pending->done(std::move(pending->view));
  };
  http::ClientRequest targets;
  targets.target = "/targets";
  targets.timeout = std::chrono::milliseconds(900);
  client_.request(admin_, std::move(targets), [pending, finish](http::ClientResponse r) {
    if (r.ok() && r.status == 200) parse_targets_body(r.body, pending->view);
    finish();
  });
  http::ClientRequest stats;
  stats.target = "/stats";
  stats.timeout = std::chrono::milliseconds(900);
  client_.request(admin_, std::move(stats), [this, pending, finish](http::ClientResponse r) {
    if (r.ok() && r.status == 200) {
      if (!parse_stats_body(r.body, pending->view) && !stats_missing_reported_) {
        stats_missing_reported_ = true;
        core::log_warn("stack",
                       "the gateway's /stats is not what was expected: no request metrics for policies");
      }
    } else if (r.ok() && r.status == 404 && !stats_missing_reported_) {
      stats_missing_reported_ = true;
      core::log_warn("stack",
                     "the gateway has no /stats: no request_rate, latency or network metrics for policies");
    }
    finish();
  });
}

namespace {

// Calls `each(admin, done)` on every admin and `done` once with the joined outcome.
template <typename Each>
void fan_out(const std::vector<GatewayAdmin*>& admins, scaling::TargetRegistry::Done done, Each each) {
  struct Pending {
    size_t left;
    bool any_ok = false;
    std::string errors;
    scaling::TargetRegistry::Done done;
  };
  auto pending = std::make_shared<Pending>(Pending{admins.size(), false, {}, std::move(done)});
  for (size_t i = 0; i < admins.size(); ++i) {
    each(*admins[i], [pending, i](bool ok, const std::string& error) {
      pending->any_ok |= ok;
      if (!ok)
        pending->errors +=
            (pending->errors.empty() ? "" : "; ") + ("gateway " + std::to_string(i + 1) + ": " + error);
      if (--pending->left == 0)
        pending->done(pending->any_ok, pending->any_ok ? std::string() : pending->errors);
    });
  }
}

void add_counters(scaling::TargetCounters& into, const scaling::TargetCounters& c) {
  into.requests += c.requests;
  into.responses_5xx += c.responses_5xx;
  into.bytes_in += c.bytes_in;
  into.bytes_out += c.bytes_out;
  into.in_flight += c.in_flight;
  if (into.latency_bounds == c.latency_bounds && into.latency_counts.size() == c.latency_counts.size()) {
    for (size_t i = 0; i < c.latency_counts.size(); ++i) into.latency_counts[i] += c.latency_counts[i];
  }
}

}  // namespace

void GatewayFanout::register_target(const std::string& group, const std::string& address,
                                    const std::string& zone, Done done) {
  fan_out(admins_, std::move(done),
          [&](GatewayAdmin& a, Done d) { a.register_target(group, address, zone, std::move(d)); });
}

void GatewayFanout::deregister_target(const std::string& group, const std::string& address,
                                      scaling::Millis drain_timeout, Done done) {
  fan_out(admins_, std::move(done),
          [&](GatewayAdmin& a, Done d) { a.deregister_target(group, address, drain_timeout, std::move(d)); });
}

void GatewayFanout::read_view(std::function<void(GatewayView)> done) {
  if (admins_.size() == 1) return admins_.front()->read_view(std::move(done));
  struct Pending {
    std::vector<GatewayView> views;
    size_t left;
    std::function<void(GatewayView)> done;
  };
  auto pending = std::make_shared<Pending>();
  pending->views.resize(admins_.size());
  pending->left = admins_.size();
  pending->done = std::move(done);
  for (size_t i = 0; i < admins_.size(); ++i) {
    admins_[i]->read_view([pending, i](GatewayView v) {
      pending->views[i] = std::move(v);
      if (--pending->left > 0) return;
      GatewayView merged;
      for (GatewayView& v : pending->views) {
        if (v.targets_read && !merged.targets_read) {
          merged.targets = std::move(v.targets);
          merged.targets_read = true;
        }
        if (!v.stats_read) continue;
        for (const auto& [group, targets] : v.stats) {
          for (const auto& [address, c] : targets) {
            auto [it, inserted] = merged.stats[group].try_emplace(address, c);
            if (!inserted) add_counters(it->second, c);
          }
        }
        merged.stats_read = true;
      }
      pending->done(std::move(merged));
    });
  }
}

void HttpProber::probe(const std::string& address, const std::string& path, scaling::Millis timeout,
                       Done done) {
  auto addr = core::SocketAddress::parse(address);
  if (!addr) {
    done(false, "bad address " + address);
    return;
  }
  http::ClientRequest req;
  req.target = path;
  req.timeout = timeout;
  req.headers = {{"User-Agent", "cumulo-scaling-health-check"}};
  client_.request(*addr, std::move(req), [done = std::move(done), path](http::ClientResponse r) {
    if (!r.ok()) return done(false, r.error.message);
    const bool passed = r.status >= 200 && r.status < 400;
    done(passed, "status " + std::to_string(r.status) + " on " + path);
  });
}

}  // namespace cumulo::stack::internal
