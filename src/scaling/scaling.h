// Auto scaling groups: instances started from a launch template, spread over zones, kept healthy, registered
// with the gateway while in service, and scaled on live metrics by target tracking, step and scheduled
// policies (docs/scaling.md). The stack supervisor owns the groups and wires them to an instance provider,
// the gateway's admin API and a health prober; everything here is driven by explicit `now` arguments so that
// tests run it against fakes and a fake clock.
#pragma once

#include <bitset>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/event_loop.h"
#include "core/result.h"
#include "scaling/instance_provider.h"

namespace cumulo::scaling {

using core::Millis;
using core::TimePoint;

// ---- the group's schema (docs/configuration.md, "Stack file") ----

struct InstanceHealthCheck {
  std::string path = "/healthz";
  Millis grace_period{10'000};  // a new instance must pass within this or it is replaced
  Millis interval{1000};        // in service
  Millis timeout{1000};
  int unhealthy_threshold = 3;  // consecutive failures in service that get an instance replaced
};

struct LaunchTemplate {
  std::vector<std::string> command;  // as written, placeholders not yet expanded
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_dir;
  InstanceHealthCheck health_check;
  int stop_signal = SIGTERM;
  Millis stop_timeout{10'000};
  double cpu = 1.0;              // vCPUs; the cpu metric is usage over this allowance
  uint64_t memory_bytes = 0;     // 0: no limit
  std::string command_location;  // for errors found when the command is resolved
};

enum class MetricKind {
  kCpu,
  kMemory,
  kRequestRate,
  kLatencyP50,
  kLatencyP95,
  kLatencyP99,
  kNetworkIn,
  kNetworkOut,
  kCustom
};

struct MetricName {
  MetricKind kind = MetricKind::kCpu;
  std::string custom;        // for kCustom: the name pushed through the control API
  std::string text() const;  // "cpu", "latency_p99", "custom:queue_depth"
  bool operator==(const MetricName&) const = default;
};
// "cpu", ..., "custom:NAME"; nullopt when unknown.
std::optional<MetricName> parse_metric_name(std::string_view text);

enum class Statistic { kAverage, kMaximum, kMinimum, kP50, kP95, kP99 };
const char* to_string(Statistic s);

// One row of a step policy: applies when lower <= value < upper (a missing bound is unbounded).
struct StepAdjustment {
  std::optional<double> lower;
  std::optional<double> upper;
  int change = 0;        // instances, or percent of the desired capacity when `percent`
  bool percent = false;  // "+50%"
};

enum class PolicyType { kTargetTracking, kStep };

struct PolicySpec {
  std::string name;
  PolicyType type = PolicyType::kTargetTracking;
  MetricName metric;
  Statistic statistic = Statistic::kAverage;
  double target = 0;                      // target tracking
  Millis window{60'000};                  // 1s .. 10m (the ring buffers keep 10 minutes)
  Millis scale_in_stabilization{60'000};  // target tracking
  std::vector<StepAdjustment> steps;      // step
};

// Five cron fields (minute hour day-of-month month day-of-week) as sets.
struct CronSchedule {
  std::bitset<60> minutes;
  std::bitset<24> hours;
  std::bitset<32> days_of_month;  // 1..31
  std::bitset<13> months;         // 1..12
  std::bitset<7> days_of_week;    // 0 = Sunday
  bool any_day_of_month = true;
  bool any_day_of_week = true;
  std::string text;
  // The local broken-down time matches (cron's rule: when both day fields are restricted, either may match).
  bool matches(const std::tm& local) const;
};
// Throws std::invalid_argument saying which field is wrong.
CronSchedule parse_cron(std::string_view text);

struct ScheduledAction {
  std::string name;
  CronSchedule cron;
  std::optional<int> min, max, desired;
};

struct GroupSpec {
  std::string name;
  std::string path_prefix = "/";
  // Not routed from the public gateway: its instances sit behind the stack's internal load balancer
  // (`internal_lb:`), reached only by the groups that section names.
  bool internal = false;
  int min = 1;
  int max = 1;
  int desired = 1;
  LaunchTemplate launch_template;
  Millis warmup{5000};
  Millis cooldown{10'000};
  Millis drain_timeout{30'000};
  std::vector<PolicySpec> policies;
  std::vector<ScheduledAction> scheduled;
  std::string location;  // FILE:LINE:COL of the group in the stack file
};

// Parses one entry of the stack file's `groups`; throws core::ConfigError at the offending key.
GroupSpec parse_group(const core::ConfigNode& node);

// ---- placeholders of the launch template ----

struct PlaceholderValues {
  std::string port;
  std::string zone;
  std::string instance_id;
  std::string bin_dir;
  std::string host = "127.0.0.1";  // the instance's own address: its VPC address in network mode
  std::string db_writer{};         // the stack's database endpoints, HOST:PORT (empty without a database)
  std::string db_reader{};
  std::string internal_lb{};  // the stack's internal load balancer, HOST:PORT (empty without one)
};

// Replaces {port}, {host}, {zone}, {instance_id}, {bin_dir}, {db_writer}, {db_reader} and {internal_lb}; "{{"
// and "}}" stand for literal braces.
// Throws std::invalid_argument for an unknown placeholder or an unpaired brace (parse_group rejects those
// first).
std::string expand_placeholders(std::string_view text, const PlaceholderValues& values);

struct ExpandedCommand {
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
};
ExpandedCommand expand_command(const LaunchTemplate& launch, const PlaceholderValues& values);

// Finds the program a command runs: argv[0] as a path when it has a '/', else looked up in PATH.
// Throws core::ConfigError at the template's command when it is missing or not executable.
std::string resolve_executable(const GroupSpec& group, const std::string& argv0);

// ---- events: every decision with its reason ----

struct Event {
  uint64_t seq = 0;
  std::string time;  // UTC, "2026-11-23T16:00:00.123Z"
  std::string group;
  std::string message;
};

// The last `capacity` events, numbered from 1; also written to the process log.
class EventLog {
 public:
  explicit EventLog(size_t capacity = 1000) : capacity_(capacity) {}
  const Event& add(std::string group, std::string message);
  std::vector<Event> since(uint64_t seq) const;  // events with a sequence number above seq
  uint64_t last_seq() const { return next_seq_ - 1; }

 private:
  size_t capacity_;
  uint64_t next_seq_ = 1;
  std::deque<Event> events_;
};

// ---- what a group needs from outside ----

// Where in-service instances receive traffic: the gateway's admin API.
class TargetRegistry {
 public:
  using Done = std::function<void(bool ok, const std::string& error)>;
  virtual ~TargetRegistry() = default;
  // ok also when the target was registered already.
  virtual void register_target(const std::string& group, const std::string& address, const std::string& zone,
                               Done done) = 0;
  // Starts draining; ok also when the target is not there (any more).
  virtual void deregister_target(const std::string& group, const std::string& address, Millis drain_timeout,
                                 Done done) = 0;
};

// Active health checks of instances.
class HealthProber {
 public:
  using Done = std::function<void(bool passed, const std::string& why)>;
  virtual ~HealthProber() = default;
  virtual void probe(const std::string& address, const std::string& path, Millis timeout, Done done) = 0;
};

// Cumulative counters of one target as the gateway's GET /stats reports them.
struct TargetCounters {
  uint64_t requests = 0;
  uint64_t responses_5xx = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  int64_t in_flight = 0;
  std::vector<double> latency_bounds;    // seconds
  std::vector<uint64_t> latency_counts;  // cumulative per bound, then the total
};

// How the gateway sees one target (GET /targets).
struct GatewayTargetView {
  std::string health;  // initial | healthy | unhealthy
  bool draining = false;
};

// One second's observations, gathered by the supervisor.
struct MetricsSample {
  std::map<InstanceHandle, ProcSample> processes;
  bool gateway_targets_read = false;                 // `targets` below is the gateway's current view
  std::map<std::string, GatewayTargetView> targets;  // by address, this group's only
  bool gateway_stats_read = false;
  std::map<std::string, TargetCounters> stats;  // by address, this group's only
};

struct GroupEnvironment {
  std::vector<std::string> zones;
  InstanceProvider* provider = nullptr;
  TargetRegistry* registry = nullptr;
  HealthProber* prober = nullptr;
  // The launch spec of a new instance; throws std::exception when it cannot be made.
  std::function<LaunchSpec(const std::string& id, const std::string& zone, uint16_t port)> make_launch;
  std::function<uint16_t()> pick_port;  // a free loopback port
  EventLog* events = nullptr;
  std::function<void()> on_change;                                     // instances or their states changed
  std::function<TimePoint()> now = [] { return core::Clock::now(); };  // for callbacks; tests replace it
  // Wall clock for started_at and scheduled actions (local time); tests replace it.
  std::function<std::chrono::system_clock::time_point()> wall_clock = [] {
    return std::chrono::system_clock::now();
  };
};

enum class InstanceState { kPending, kInService, kDraining, kTerminated };
const char* to_string(InstanceState s);

struct InstanceView {
  std::string id;
  std::string group;
  std::string zone;
  std::string address;
  int64_t pid = 0;  // 0 once it has ended
  InstanceState state = InstanceState::kPending;
  std::chrono::system_clock::time_point started_at;
  double cpu_percent = 0;
  uint64_t rss_bytes = 0;
  int restarts = 0;
};

struct GroupStatus {
  std::string name;
  int min = 0, max = 0, desired = 0;
  int in_service = 0, pending = 0, draining = 0;
  std::vector<std::pair<std::string, int>> zones;  // pending + in service per zone, in zone order
};

// One auto scaling group. Single-threaded: every call on the owner's loop.
class ScalingGroup {
 public:
  ScalingGroup(GroupSpec spec, GroupEnvironment env);
  ~ScalingGroup();
  ScalingGroup(const ScalingGroup&) = delete;
  ScalingGroup& operator=(const ScalingGroup&) = delete;

  // Health probes, timeouts, launches and terminations: call a few times a second and after any change.
  void tick(TimePoint now);
  // Every second: metrics from the processes and the gateway, then the policies and scheduled actions.
  void sample(TimePoint now, const MetricsSample& sample);
  // An instance ended; false when it is not one of this group's.
  bool on_exit(InstanceHandle handle, const ExitStatus& status, TimePoint now);
  // A manual change (control API). A refusal is the client's (kind out_of_range), nothing changed.
  core::Result<void, core::Error> set_desired(int desired, TimePoint now);
  // A custom metric data point (becomes custom:NAME). A refusal is the client's (bad_metric_name, bad_value,
  // too_many_metrics, no_such_instance), nothing recorded.
  core::Result<void, core::Error> put_metric(const std::string& name, double value,
                                             const std::string& instance, TimePoint now);
  // The gateway lost its registrations (it restarted): register the instances in service again.
  void reregister_all();
  // Stops everything (stop signal, SIGKILL after stop_timeout) and launches nothing more.
  void stop_all();
  // Every initial instance came into service or failed once: the group has settled after start.
  bool settled() const;

  const GroupSpec& spec() const;
  GroupStatus status() const;
  std::vector<InstanceView> instances() const;  // launch order, terminated ones last seen included
  // A group-level metric over its window, for tests and the status line; nullopt without data.
  std::optional<double> metric(const MetricName& metric, Statistic statistic, Millis window) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cumulo::scaling
