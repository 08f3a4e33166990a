// Fakes for what a scaling group talks to: an instance provider that starts nothing, a target registry and a
// health prober whose answers the test decides, and a clock the test moves.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "scaling/instance_provider.h"
#include "scaling/scaling.h"

namespace cumulo::fakes {

class FakeClock {
 public:
  scaling::TimePoint now() const { return now_; }
  void advance(std::chrono::milliseconds d) { now_ += d; }

 private:
  scaling::TimePoint now_ = scaling::TimePoint{} + std::chrono::hours(1000);
};

// Instances are handles counting from 1000; exits happen when the test says (exit()), or at stop()/kill().
class FakeInstanceProvider final : public scaling::InstanceProvider {
 public:
  struct Started {
    scaling::LaunchSpec spec;
    scaling::InstanceHandle handle;
  };
  // scaling::InstanceProvider
  scaling::InstanceHandle start(const scaling::LaunchSpec& spec) override {
    if (fail_next_start) {
      fail_next_start = false;
      throw std::runtime_error("cannot run " + spec.executable + " for " + spec.name +
                               ": No such file or directory");
    }
    scaling::InstanceHandle h = next_++;
    started.push_back({spec, h});
    running_.insert(h);
    return h;
  }
  void stop(scaling::InstanceHandle handle, std::chrono::milliseconds) override {
    if (running_.count(handle)) stopped.push_back(handle);
  }
  void kill(scaling::InstanceHandle handle) override {
    if (running_.count(handle)) killed.push_back(handle);
  }
  bool running(scaling::InstanceHandle handle) const override { return running_.count(handle) > 0; }
  size_t running_count() const override { return running_.size(); }
  std::optional<scaling::ProcSample> sample(scaling::InstanceHandle handle) const override {
    if (!running_.count(handle)) return std::nullopt;
    auto it = usage.find(handle);
    return it == usage.end() ? scaling::ProcSample{} : it->second;
  }

  // The instance ended; the caller reports it to the group (as the real provider's callback would).
  void ended(scaling::InstanceHandle handle) { running_.erase(handle); }

  bool fail_next_start = false;
  std::vector<Started> started;
  std::vector<scaling::InstanceHandle> stopped;
  std::vector<scaling::InstanceHandle> killed;
  std::map<scaling::InstanceHandle, scaling::ProcSample> usage;

 private:
  scaling::InstanceHandle next_ = 1000;
  std::set<scaling::InstanceHandle> running_;
};

// Answers at once (synchronously) unless `hold` is set, then when the test calls release().
class FakeTargetRegistry final : public scaling::TargetRegistry {
 public:
  void register_target(const std::string& group, const std::string& address, const std::string&,
                       Done done) override {
    calls.push_back("register " + group + " " + address);
    if (fail) return done(false, "connect: Connection refused");
    targets.insert(address);
    if (hold) {
      held.push_back([done] { done(true, {}); });
    } else {
      done(true, {});
    }
  }
  void deregister_target(const std::string& group, const std::string& address, scaling::Millis drain_timeout,
                         Done done) override {
    calls.push_back("deregister " + group + " " + address + " " + std::to_string(drain_timeout.count()) +
                    "ms");
    targets.erase(address);
    done(true, {});
  }
  void release() {
    auto h = std::move(held);
    held.clear();
    for (auto& f : h) f();
  }
  bool hold = false;
  bool fail = false;
  std::set<std::string> targets;
  std::vector<std::string> calls;
  std::vector<std::function<void()>> held;
};

// Passes every probe unless the address is in `failing`.
class FakeHealthProber final : public scaling::HealthProber {
 public:
  void probe(const std::string& address, const std::string&, scaling::Millis, Done done) override {
    ++probes;
    if (failing.count(address)) {
      done(false, "status 503 on /healthz");
    } else {
      done(true, "status 200 on /healthz");
    }
  }
  std::set<std::string> failing;
  int probes = 0;
};

}  // namespace cumulo::fakes
