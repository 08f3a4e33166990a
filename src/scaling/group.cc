// ScalingGroup: the life of instances (pending -> in_service -> draining -> terminated), capacity kept at
// `desired` across zones, and the policies that move `desired`.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>

#include "core/config.h"
#include "core/log.h"
#include "core/owner_guard.h"
#include "scaling/internal/metric_window.h"
#include "scaling/internal/placement.h"
#include "scaling/internal/policy.h"
#include "scaling/scaling.h"

namespace cumulo::scaling {

namespace {

// A new instance is probed often: the sooner it passes, the sooner it serves.
constexpr Millis kPendingProbeInterval{200};
constexpr Millis kFirstLaunchBackoff{1000};
constexpr Millis kMaxLaunchBackoff{60'000};
// An instance that served less than this before it died did not prove the template works: its death counts as
// a failed launch (backoff) and the failure count is only forgiven once an instance has served this long.
constexpr Millis kStableInService{10'000};
// How long a zone that lost every instance gets no new ones; afterwards the group rebalances into it.
constexpr Millis kZoneImpairedFor{30'000};
constexpr Millis kRegisterRetry{1000};
// Seconds in a row the gateway must call an instance unhealthy before it is replaced. An overloaded instance
// fails the gateway's checks briefly and recovers once the gateway stops sending it requests; replacing it
// would only take capacity away. A broken one stays unhealthy.
constexpr int kGatewayUnhealthySeconds = 10;
constexpr size_t kTerminatedKept = 10;

double seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

struct Instance {
  std::string id;
  std::string zone;
  std::string address;
  InstanceHandle handle = 0;  // 0 once the process has ended
  InstanceState state = InstanceState::kPending;
  TimePoint launched_at{};
  TimePoint in_service_at{};
  TimePoint draining_since{};
  std::chrono::system_clock::time_point started_wall{};
  bool rebalance = false;  // launched to even out zones: not an excess pending instance
  // Health checks.
  bool probing = false;
  bool passed = false;
  TimePoint next_probe{};
  int probe_failures = 0;
  int gateway_unhealthy_samples = 0;
  // Gateway registration.
  bool registering = false;
  bool registered = false;
  TimePoint next_register{};
  bool deregistered = false;
  bool gone_at_gateway = false;
  // Metrics.
  bool has_cpu = false;
  double last_cpu_seconds = 0;
  double cpu_percent = 0;
  uint64_t rss_bytes = 0;
  bool has_counters = false;
  TargetCounters last_counters;
  // This second's deltas from the gateway.
  bool has_rates = false;
  double request_rate = 0, bytes_in_rate = 0, bytes_out_rate = 0;
  std::vector<uint64_t> latency_delta;
  std::vector<double> latency_bounds;
};

std::string format_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", s);
  return buf;
}

}  // namespace

struct ScalingGroup::Impl {
  Impl(GroupSpec s, GroupEnvironment e) : spec(std::move(s)), env(std::move(e)) {
    min = spec.min;
    max = spec.max;
    desired = spec.desired;
    for (const PolicySpec& p : spec.policies) {
      if (p.type == PolicyType::kTargetTracking) {
        trackers.push_back(std::make_unique<internal::TargetTracker>(p));
      } else {
        trackers.push_back(nullptr);
      }
    }
    desired_since = env.now();
    last_activity = desired_since - std::chrono::hours(1);
  }

  GroupSpec spec;
  GroupEnvironment env;
  int min = 0, max = 0, desired = 0;
  TimePoint desired_since{};
  TimePoint last_activity{};  // the last change of desired, for step cooldowns
  std::vector<std::unique_ptr<Instance>> instances;
  std::map<std::string, int> next_index;  // per zone
  int launch_failures = 0;
  TimePoint next_launch_at{};
  std::map<std::string, TimePoint> impaired_until;                 // per zone
  std::vector<std::unique_ptr<internal::TargetTracker>> trackers;  // per policy, null for step policies
  std::map<std::string, internal::MetricWindow> windows;           // by metric name
  std::map<std::string, std::vector<double>> custom_pending;       // pushed since the last sample
  bool has_sampled = false;
  TimePoint last_sample_at{};
  int counted = 0;  // in-service instances past warm-up at the last sample
  int64_t last_minute = -1;
  bool stopping = false;
  bool settled = false;
  core::OwnerGuard<Impl> alive{this};  // answers that arrive after the group is gone are dropped

  bool memory_is_percent() const { return spec.launch_template.memory_bytes > 0; }
  void event(const std::string& message) {
    if (env.events) env.events->add(spec.name, spec.name + ": " + message);
  }
  void changed() {
    if (env.on_change) env.on_change();
  }
  Instance* find(const std::string& id) {
    for (auto& i : instances) {
      if (i->id == id) return i.get();
    }
    return nullptr;
  }
  int count(InstanceState s) const {
    return static_cast<int>(
        std::count_if(instances.begin(), instances.end(), [&](const auto& i) { return i->state == s; }));
  }
  std::map<std::string, int> active_per_zone() const {
    std::map<std::string, int> counts;
    for (const std::string& z : env.zones) counts[z] = 0;
    for (const auto& i : instances) {
      if (i->state == InstanceState::kPending || i->state == InstanceState::kInService) ++counts[i->zone];
    }
    return counts;
  }
  std::set<std::string> unavailable_zones(TimePoint now) const {
    std::set<std::string> out;
    for (const auto& [zone, until] : impaired_until) {
      if (now < until) out.insert(zone);
    }
    return out;
  }

  // ---- lifecycle ----

  bool launch(TimePoint now, bool rebalance, const std::string& why) {
    const std::string zone =
        internal::choose_launch_zone(env.zones, active_per_zone(), unavailable_zones(now));
    const std::string id = spec.name + "-" + zone + "-" + std::to_string(++next_index[zone]);
    try {
      const uint16_t port = env.pick_port();
      LaunchSpec launch_spec = env.make_launch(id, zone, port);
      const InstanceHandle handle = env.provider->start(launch_spec);
      auto inst = std::make_unique<Instance>();
      inst->id = id;
      inst->zone = zone;
      inst->address = launch_spec.address.empty() ? "127.0.0.1:" + std::to_string(port) : launch_spec.address;
      inst->handle = handle;
      inst->launched_at = now;
      inst->started_wall = env.wall_clock();
      inst->next_probe = now + kPendingProbeInterval;
      inst->rebalance = rebalance;
      event("launched " + id + " in zone " + zone + " on " + inst->address + " (pid " +
            std::to_string(handle) + ", " + why + ")");
      instances.push_back(std::move(inst));
      changed();
      return true;
    } catch (const std::exception& e) {
      launch_failed(now, "cannot launch " + id + ": " + e.what());
      return false;
    }
  }

  void launch_failed(TimePoint now, const std::string& what) {
    ++launch_failures;
    Millis backoff = kFirstLaunchBackoff;
    for (int i = 1; i < launch_failures && backoff < kMaxLaunchBackoff; ++i) backoff *= 2;
    backoff = std::min(backoff, kMaxLaunchBackoff);
    next_launch_at = now + backoff;
    settled = true;
    event(what + "; retrying in " + core::format_duration(backoff) + " (failure " +
          std::to_string(launch_failures) + " in a row)");
  }

  void start_probe(Instance& inst, TimePoint now) {
    inst.probing = true;
    const bool pending = inst.state == InstanceState::kPending;
    const InstanceHealthCheck& hc = spec.launch_template.health_check;
    inst.next_probe = now + (pending ? kPendingProbeInterval : hc.interval);
    const core::WeakOwner<Impl> alive_token = alive.weak();
    const std::string id = inst.id;
    env.prober->probe(inst.address, hc.path, hc.timeout,
                      [this, alive_token, id](bool passed, const std::string& why) {
                        if (!alive_token) return;
                        Instance* i = find(id);
                        if (!i) return;
                        i->probing = false;
                        on_probe(*i, passed, why, env.now());
                      });
  }

  void on_probe(Instance& inst, bool passed, const std::string& why, TimePoint now) {
    if (stopping) return;
    if (inst.state == InstanceState::kPending) {
      if (passed && !inst.passed) {
        inst.passed = true;
        register_instance(inst, now);
      }
      return;
    }
    if (inst.state != InstanceState::kInService) return;
    if (passed) {
      inst.probe_failures = 0;
      return;
    }
    const int threshold = spec.launch_template.health_check.unhealthy_threshold;
    if (++inst.probe_failures >= threshold) {
      replace(inst, now,
              "failed " + std::to_string(inst.probe_failures) + " health checks on " +
                  spec.launch_template.health_check.path + " (" + why + ")");
    }
  }

  void register_instance(Instance& inst, TimePoint now) {
    if (inst.registering) return;
    inst.registering = true;
    inst.next_register = now + kRegisterRetry;
    const core::WeakOwner<Impl> alive_token = alive.weak();
    const std::string id = inst.id;
    env.registry->register_target(spec.name, inst.address, inst.zone,
                                  [this, alive_token, id](bool ok, const std::string& error) {
                                    if (!alive_token) return;
                                    Instance* i = find(id);
                                    if (!i) return;
                                    on_registered(*i, ok, error, env.now());
                                  });
  }

  void on_registered(Instance& inst, bool ok, const std::string& error, TimePoint now) {
    inst.registering = false;
    if (stopping) return;  // the gateway is going away (and so, maybe, the client that would deregister)
    if (!ok) {
      inst.next_register = now + kRegisterRetry;
      core::log_warn("scaling", "cannot register an instance with the gateway; retrying",
                     {{"instance", inst.id}, {"error", error}});
      return;
    }
    inst.registered = true;
    if (inst.state == InstanceState::kPending) {
      inst.state = InstanceState::kInService;
      inst.in_service_at = now;
      inst.next_probe = now + spec.launch_template.health_check.interval;
      event(inst.id + " in service in zone " + inst.zone + " (" +
            format_seconds(seconds(now - inst.launched_at)) + " after launch)");
      changed();
    } else if (inst.state != InstanceState::kInService) {
      deregister(inst, Millis(0));  // it was terminated while the registration was on its way
    }
  }

  void deregister(Instance& inst, Millis drain_timeout) {
    inst.registered = false;
    const core::WeakOwner<Impl> alive_token = alive.weak();
    const std::string id = inst.id;
    env.registry->deregister_target(
        spec.name, inst.address, drain_timeout, [this, alive_token, id](bool ok, const std::string& error) {
          if (!alive_token) return;
          Instance* i = find(id);
          if (!i) return;
          i->deregistered = true;
          // Unreachable gateway: nothing routes to the instance through it.
          if (!ok) {
            i->gone_at_gateway = true;
            core::log_warn("scaling", "cannot deregister an instance from the gateway",
                           {{"instance", id}, {"error", error}});
          }
        });
  }

  // Out of service for good: traffic drains away at the gateway, then the process is stopped.
  void begin_drain(Instance& inst, TimePoint now) {
    inst.state = InstanceState::kDraining;
    inst.draining_since = now;
    if (inst.registered || inst.registering) {
      deregister(inst, spec.drain_timeout);
    } else {
      inst.deregistered = true;
      inst.gone_at_gateway = true;
    }
    changed();
  }

  void terminate(Instance& inst) {
    inst.state = InstanceState::kTerminated;
    if (inst.handle != 0) env.provider->stop(inst.handle, spec.launch_template.stop_timeout);
    changed();
  }

  void replace(Instance& inst, TimePoint now, const std::string& why) {
    event(inst.id + " in zone " + inst.zone + " is unhealthy: " + why + " -> replacing it");
    note_zone_loss(inst, now);
    begin_drain(inst, now);
  }

  // A zone whose last in-service instance was lost gets no new instances for a while: its capacity moves to
  // the other zones, and comes back by rebalancing.
  void note_zone_loss(const Instance& lost, TimePoint now) {
    if (env.zones.size() < 2) return;
    for (const auto& i : instances) {
      if (i.get() != &lost && i->zone == lost.zone && i->state == InstanceState::kInService) return;
    }
    impaired_until[lost.zone] = now + kZoneImpairedFor;
    event("zone " + lost.zone + " has no instance in service any more -> launching in the other zones for " +
          core::format_duration(kZoneImpairedFor) + ", then rebalancing");
  }

  void reconcile(TimePoint now) {
    const int pending = count(InstanceState::kPending);
    const int in_service = count(InstanceState::kInService);
    const int active = pending + in_service;
    if (active < desired) {
      if (now < next_launch_at) return;
      for (int n = active; n < desired; ++n) {
        const std::string why = std::to_string(n + 1) + " of " + std::to_string(desired);
        if (!launch(now, false, why)) return;
      }
      return;
    }
    if (active > desired) {
      // Pending instances beyond what desired still needs go first: they serve nobody yet.
      const int needed_pending = std::max(0, desired - in_service);
      std::vector<Instance*> spare;
      for (auto& i : instances) {
        if (i->state == InstanceState::kPending && !i->rebalance) spare.push_back(i.get());
      }
      const int rebalancing = pending - static_cast<int>(spare.size());
      int excess_pending = static_cast<int>(spare.size()) - std::max(0, needed_pending - rebalancing);
      while (excess_pending-- > 0 && !spare.empty()) {
        auto victim = pick_victim(spare);
        event("terminating " + victim->id + " in zone " + victim->zone +
              " before it entered service (desired " + std::to_string(desired) + ")");
        terminate(*victim);
        spare.erase(std::find(spare.begin(), spare.end(), victim));
      }
      int excess = in_service - desired;
      while (excess-- > 0) {
        std::vector<Instance*> serving;
        for (auto& i : instances) {
          if (i->state == InstanceState::kInService) serving.push_back(i.get());
        }
        if (serving.empty()) break;
        Instance* victim = pick_victim(serving);
        event("draining " + victim->id + " in zone " + victim->zone + " (in service " +
              std::to_string(in_service) + " > desired " + std::to_string(desired) +
              "; zone balance, then oldest)");
        begin_drain(*victim, now);
      }
      return;
    }
    if (pending == 0 && desired > 0 && now >= next_launch_at) {
      const auto counts = active_per_zone();
      const auto unavailable = unavailable_zones(now);
      if (internal::imbalanced(env.zones, counts, unavailable)) {
        std::string shape;
        for (const auto& [zone, n] : counts)
          shape += (shape.empty() ? "" : " ") + zone + ":" + std::to_string(n);
        launch(now, true,
               "rebalancing zones " + shape + "; the most crowded zone gives one up once it serves");
      }
    }
  }

  Instance* pick_victim(const std::vector<Instance*>& candidates) {
    std::vector<internal::TerminationCandidate> c;
    for (const Instance* i : candidates) c.push_back({i->zone, i->launched_at});
    return candidates[internal::choose_victim(c, active_per_zone())];
  }

  void check_timeouts(TimePoint now) {
    const InstanceHealthCheck& hc = spec.launch_template.health_check;
    for (auto& p : instances) {
      Instance& inst = *p;
      switch (inst.state) {
        case InstanceState::kPending:
          if (!inst.passed && now - inst.launched_at >= hc.grace_period) {
            inst.state = InstanceState::kTerminated;
            if (inst.handle != 0) env.provider->kill(inst.handle);
            launch_failed(now, inst.id + " did not pass its health check on " + hc.path +
                                   " within its grace period of " + core::format_duration(hc.grace_period));
            changed();
          } else if (inst.passed && !inst.registered && !inst.registering && now >= inst.next_register) {
            register_instance(inst, now);
          } else if (!inst.passed && !inst.probing && now >= inst.next_probe) {
            start_probe(inst, now);
          }
          break;
        case InstanceState::kInService:
          if (launch_failures > 0 && now - inst.in_service_at >= kStableInService) launch_failures = 0;
          if (!inst.registered && !inst.registering && now >= inst.next_register)
            register_instance(inst, now);
          if (!inst.probing && now >= inst.next_probe) start_probe(inst, now);
          break;
        case InstanceState::kDraining:
          if ((inst.deregistered && inst.gone_at_gateway) ||
              now - inst.draining_since >= spec.drain_timeout) {
            event(inst.id + " drained after " +
                  core::format_duration(std::chrono::duration_cast<Millis>(now - inst.draining_since)) +
                  " -> stopping it");
            terminate(inst);
          }
          break;
        case InstanceState::kTerminated:
          break;
      }
    }
  }

  void prune() {
    size_t ended = 0;
    for (const auto& i : instances) ended += i->state == InstanceState::kTerminated && i->handle == 0;
    for (auto it = instances.begin(); ended > kTerminatedKept && it != instances.end();) {
      if ((*it)->state == InstanceState::kTerminated && (*it)->handle == 0) {
        it = instances.erase(it);
        --ended;
      } else {
        ++it;
      }
    }
  }

  // ---- metrics and policies ----

  void take_sample(TimePoint now, const MetricsSample& sample) {
    const double elapsed = has_sampled ? seconds(now - last_sample_at) : 0;
    const bool first = !has_sampled || elapsed <= 0.05;
    has_sampled = true;
    last_sample_at = now;
    const double allowance = spec.launch_template.cpu > 0 ? spec.launch_template.cpu : 1.0;
    for (auto& p : instances) {
      Instance& inst = *p;
      inst.has_rates = false;
      if (inst.handle != 0) {
        auto it = sample.processes.find(inst.handle);
        if (it != sample.processes.end()) {
          if (inst.has_cpu && !first) {
            const double used = std::max(0.0, it->second.cpu_seconds - inst.last_cpu_seconds);
            inst.cpu_percent = used / elapsed / allowance * 100.0;
          }
          inst.has_cpu = true;
          inst.last_cpu_seconds = it->second.cpu_seconds;
          inst.rss_bytes = it->second.rss_bytes;
        }
      }
      if (sample.gateway_stats_read) {
        auto it = sample.stats.find(inst.address);
        if (it != sample.stats.end()) {
          const TargetCounters& c = it->second;
          const TargetCounters& prev = inst.last_counters;
          const bool comparable = inst.has_counters && !first && c.requests >= prev.requests &&
                                  c.bytes_in >= prev.bytes_in && c.bytes_out >= prev.bytes_out &&
                                  c.latency_counts.size() == prev.latency_counts.size() &&
                                  c.latency_bounds == prev.latency_bounds;
          if (comparable) {
            inst.has_rates = true;
            inst.request_rate = static_cast<double>(c.requests - prev.requests) / elapsed;
            inst.bytes_in_rate = static_cast<double>(c.bytes_in - prev.bytes_in) / elapsed;
            inst.bytes_out_rate = static_cast<double>(c.bytes_out - prev.bytes_out) / elapsed;
            inst.latency_bounds = c.latency_bounds;
            inst.latency_delta.assign(c.latency_counts.size(), 0);
            for (size_t k = 0; k < c.latency_counts.size(); ++k) {
              inst.latency_delta[k] = c.latency_counts[k] >= prev.latency_counts[k]
                                          ? c.latency_counts[k] - prev.latency_counts[k]
                                          : 0;
            }
          }
          inst.has_counters = true;
          inst.last_counters = c;
        } else {
          inst.has_counters = false;
        }
      }
      if (sample.gateway_targets_read && inst.state == InstanceState::kInService && inst.registered) {
        auto it = sample.targets.find(inst.address);
        if (it != sample.targets.end() && it->second.health == "unhealthy") {
          if (++inst.gateway_unhealthy_samples >= kGatewayUnhealthySeconds) {
            replace(
                inst, now,
                "the gateway has marked it unhealthy for " + std::to_string(kGatewayUnhealthySeconds) + "s");
          }
        } else {
          inst.gateway_unhealthy_samples = 0;
        }
      }
      if (sample.gateway_targets_read && inst.state == InstanceState::kDraining && inst.deregistered &&
          sample.targets.find(inst.address) == sample.targets.end()) {
        inst.gone_at_gateway = true;
      }
    }
    if (first) return;

    // The group's value of each metric for this second, over in-service instances past their warm-up.
    std::vector<Instance*> counted_instances;
    for (auto& p : instances) {
      if (p->state == InstanceState::kInService && now - p->in_service_at >= spec.warmup) {
        counted_instances.push_back(p.get());
      }
    }
    counted = static_cast<int>(counted_instances.size());
    if (!counted_instances.empty()) {
      double cpu = 0, memory = 0;
      for (const Instance* i : counted_instances) {
        cpu += i->cpu_percent;
        memory += memory_is_percent() ? static_cast<double>(i->rss_bytes) /
                                            static_cast<double>(spec.launch_template.memory_bytes) * 100
                                      : static_cast<double>(i->rss_bytes) / (1024.0 * 1024.0);
      }
      const double n = static_cast<double>(counted_instances.size());
      windows["cpu"].record(now, cpu / n);
      windows["memory"].record(now, memory / n);
      if (sample.gateway_stats_read) {
        double requests = 0, in = 0, out = 0;
        int with_rates = 0;
        std::vector<double> bounds;
        std::vector<uint64_t> merged;
        for (const Instance* i : counted_instances) {
          if (!i->has_rates) continue;
          ++with_rates;
          requests += i->request_rate;
          in += i->bytes_in_rate;
          out += i->bytes_out_rate;
          if (merged.empty()) {
            bounds = i->latency_bounds;
            merged = i->latency_delta;
          } else if (i->latency_bounds == bounds && i->latency_delta.size() == merged.size()) {
            for (size_t k = 0; k < merged.size(); ++k) merged[k] += i->latency_delta[k];
          }
        }
        if (with_rates > 0) {
          // Per instance, so that target tracking's arithmetic (in service x value / target) holds.
          windows["request_rate"].record(now, requests / n);
          windows["network_in"].record(now, in / n);
          windows["network_out"].record(now, out / n);
          static const std::pair<const char*, double> kQuantiles[] = {
              {"latency_p50", 0.50}, {"latency_p95", 0.95}, {"latency_p99", 0.99}};
          for (const auto& [name, q] : kQuantiles) {
            if (auto v = internal::histogram_quantile(bounds, merged, q)) windows[name].record(now, *v);
          }
        }
      }
    }
    for (auto& [name, values] : custom_pending) {
      if (values.empty()) continue;
      double sum = 0;
      for (double v : values) sum += v;
      windows["custom:" + name].record(now, sum / static_cast<double>(values.size()));
      values.clear();
    }
  }

  void run_scheduled() {
    const auto wall = env.wall_clock();
    const std::time_t t = std::chrono::system_clock::to_time_t(wall);
    const int64_t minute = static_cast<int64_t>(t) / 60;
    if (minute == last_minute) return;
    // Cron fires at the start of a minute: the minute the group started in is already under way.
    const bool first = last_minute < 0;
    last_minute = minute;
    if (first) return;
    std::tm local{};
    localtime_r(&t, &local);
    for (const ScheduledAction& a : spec.scheduled) {
      if (!a.cron.matches(local)) continue;
      const int old_min = min, old_max = max, old_desired = desired;
      if (a.min) min = *a.min;
      if (a.max) max = *a.max;
      // An action that moves only one bound past the other drags the other along.
      if (min > max) {
        if (a.min) {
          max = min;
        } else {
          min = max;
        }
      }
      if (a.desired) desired = *a.desired;
      desired = std::clamp(desired, min, max);
      std::string msg = "scheduled action " + a.name + " (" + a.cron.text + "): min " +
                        std::to_string(old_min) + " -> " + std::to_string(min) + ", max " +
                        std::to_string(old_max) + " -> " + std::to_string(max) + ", desired " +
                        std::to_string(old_desired) + " -> " + std::to_string(desired);
      if (desired != old_desired) {
        desired_since = env.now();
        last_activity = desired_since;
      }
      event(msg);
      changed();
    }
  }

  void evaluate(TimePoint now) {
    run_scheduled();
    std::optional<internal::Proposal> best;
    std::string best_policy;
    for (size_t k = 0; k < spec.policies.size(); ++k) {
      const PolicySpec& p = spec.policies[k];
      auto w = windows.find(p.metric.text());
      if (w == windows.end()) continue;
      auto value = w->second.statistic(p.statistic, p.window, now);
      if (!value) continue;
      std::optional<internal::Proposal> proposal;
      if (p.type == PolicyType::kTargetTracking) {
        proposal = trackers[k]->evaluate(*value, counted, desired, desired_since, now, memory_is_percent());
        // Scale out fast: the last few seconds may already ask for more while the window is still mostly
        // quiet.
        constexpr Millis kRecent{3000};
        if (p.window > kRecent) {
          auto recent = w->second.statistic(p.statistic, kRecent, now);
          auto early =
              recent ? trackers[k]->scale_out_early(*recent, kRecent, counted, desired, memory_is_percent())
                     : std::nullopt;
          if (early && (!proposal || early->desired > proposal->desired)) proposal = early;
        }
      } else if (now - last_activity >= spec.cooldown) {
        proposal = internal::evaluate_steps(p, *value, desired, memory_is_percent());
      }
      if (proposal && (!best || proposal->desired > best->desired)) {
        best = proposal;
        best_policy = p.name;
      }
    }
    if (!best) return;
    const int wanted = std::clamp(best->desired, min, max);
    if (wanted == desired) return;
    std::string limit;
    if (best->desired > max) limit = " (max " + std::to_string(max) + ")";
    if (best->desired < min) limit = " (min " + std::to_string(min) + ")";
    event(best->reason + " -> desired " + std::to_string(desired) + " -> " + std::to_string(wanted) + limit +
          " (policy " + best_policy + ")");
    // A policy's scale-in does not restart the stabilization window: the next step down is judged on the
    // same evaluations, so that capacity comes down in one stabilization window and not one per step.
    if (wanted > desired) desired_since = now;
    desired = wanted;
    last_activity = now;
    changed();
  }
};

ScalingGroup::ScalingGroup(GroupSpec spec, GroupEnvironment env)
    : impl_(std::make_unique<Impl>(std::move(spec), std::move(env))) {}

ScalingGroup::~ScalingGroup() = default;

void ScalingGroup::tick(TimePoint now) {
  Impl& g = *impl_;
  if (g.stopping) return;
  g.check_timeouts(now);
  g.reconcile(now);
  g.prune();
  if (!g.settled && g.count(InstanceState::kInService) >= g.desired) g.settled = true;
}

void ScalingGroup::sample(TimePoint now, const MetricsSample& sample) {
  Impl& g = *impl_;
  if (g.stopping) return;
  g.take_sample(now, sample);
  g.evaluate(now);
}

bool ScalingGroup::on_exit(InstanceHandle handle, const ExitStatus& status, TimePoint now) {
  Impl& g = *impl_;
  Instance* inst = nullptr;
  for (auto& i : g.instances) {
    if (i->handle == handle) inst = i.get();
  }
  if (!inst) return false;
  inst->handle = 0;
  const std::string how = status.describe();
  switch (inst->state) {
    case InstanceState::kTerminated:
      core::log_info("scaling", "instance stopped", {{"instance", inst->id}, {"status", how}});
      break;
    case InstanceState::kDraining:
      g.event(inst->id + " " + how + " while draining");
      inst->state = InstanceState::kTerminated;
      break;
    case InstanceState::kPending:
      inst->state = InstanceState::kTerminated;
      if (!g.stopping) g.launch_failed(now, inst->id + " " + how + " before passing its health check");
      break;
    case InstanceState::kInService: {
      inst->state = InstanceState::kTerminated;
      if (g.stopping) break;
      g.event(inst->id + " in zone " + inst->zone + " " + how + " -> replacing it");
      if (inst->registered || inst->registering) g.deregister(*inst, Millis(0));
      g.note_zone_loss(*inst, now);
      if (now - inst->in_service_at < kStableInService) {
        g.launch_failed(
            now, inst->id + " served only " +
                     core::format_duration(std::chrono::duration_cast<Millis>(now - inst->in_service_at)));
      }
      break;
    }
  }
  g.changed();
  return true;
}

namespace {

core::Err<core::Error> refused(std::string kind, std::string message) {
  return core::Err(
      core::Error{std::move(kind), std::move(message), core::ErrorSource::kClient, core::Retry::kNo});
}

}  // namespace

core::Result<void, core::Error> ScalingGroup::set_desired(int desired, TimePoint now) {
  Impl& g = *impl_;
  if (desired < g.min || desired > g.max) {
    return refused("out_of_range", "desired " + std::to_string(desired) + " is outside min..max (" +
                                       std::to_string(g.min) + ".." + std::to_string(g.max) + ") of group " +
                                       g.spec.name);
  }
  if (desired != g.desired) {
    g.event("desired " + std::to_string(g.desired) + " -> " + std::to_string(desired) +
            " (set through the control API)");
    g.desired = desired;
    g.desired_since = now;
    g.last_activity = now;
    g.changed();
  }
  return {};
}

core::Result<void, core::Error> ScalingGroup::put_metric(const std::string& name, double value,
                                                         const std::string& instance, TimePoint) {
  Impl& g = *impl_;
  if (!parse_metric_name("custom:" + name)) {
    return refused("bad_metric_name",
                   "metric name '" + name + "' must be 1 to 64 letters, digits, '_', '-' or '.'");
  }
  if (!std::isfinite(value)) return refused("bad_value", "value must be a finite number");
  // Each name gets ten minutes of history: a client inventing names must not grow it without bound.
  constexpr size_t kMaxCustomMetrics = 100;
  if (!g.custom_pending.count(name) && g.custom_pending.size() >= kMaxCustomMetrics) {
    return refused("too_many_metrics", "group " + g.spec.name + " has " + std::to_string(kMaxCustomMetrics) +
                                           " custom metrics already");
  }
  if (!instance.empty()) {
    const Instance* i = g.find(instance);
    if (!i || i->state == InstanceState::kTerminated) {
      return refused("no_such_instance", "no instance '" + instance + "' running in group " + g.spec.name);
    }
  }
  g.custom_pending[name].push_back(value);
  return {};
}

void ScalingGroup::reregister_all() {
  for (auto& i : impl_->instances) {
    if (i->state == InstanceState::kInService) {
      i->registered = false;
      i->next_register = TimePoint{};
    }
  }
}

void ScalingGroup::stop_all() {
  Impl& g = *impl_;
  g.stopping = true;
  for (auto& i : g.instances) {
    if (i->handle != 0) g.env.provider->stop(i->handle, g.spec.launch_template.stop_timeout);
    i->state = InstanceState::kTerminated;
  }
  g.changed();
}

bool ScalingGroup::settled() const {
  return impl_->settled;
}

const GroupSpec& ScalingGroup::spec() const {
  return impl_->spec;
}

GroupStatus ScalingGroup::status() const {
  const Impl& g = *impl_;
  GroupStatus s;
  s.name = g.spec.name;
  s.min = g.min;
  s.max = g.max;
  s.desired = g.desired;
  s.in_service = g.count(InstanceState::kInService);
  s.pending = g.count(InstanceState::kPending);
  s.draining = g.count(InstanceState::kDraining);
  const auto counts = g.active_per_zone();
  for (const std::string& z : g.env.zones) s.zones.emplace_back(z, counts.at(z));
  return s;
}

std::vector<InstanceView> ScalingGroup::instances() const {
  std::vector<InstanceView> out;
  for (const auto& i : impl_->instances) {
    out.push_back(InstanceView{i->id, impl_->spec.name, i->zone, i->address, i->handle, i->state,
                               i->started_wall, i->cpu_percent, i->rss_bytes, 0});
  }
  return out;
}

std::optional<double> ScalingGroup::metric(const MetricName& metric, Statistic statistic,
                                           Millis window) const {
  auto it = impl_->windows.find(metric.text());
  if (it == impl_->windows.end()) return std::nullopt;
  return it->second.statistic(statistic, window, impl_->last_sample_at);
}

}  // namespace cumulo::scaling
