// The gateway's admin API as the supervisor uses it: registering the scaling groups' instances as targets,
// and reading every second how the gateway sees them (GET /targets) and what they served (GET /stats).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/net.h"
#include "http/client.h"
#include "scaling/scaling.h"

namespace cumulo::stack::internal {

struct GatewayView {
  bool targets_read = false;
  bool stats_read = false;
  std::map<std::string, std::map<std::string, scaling::GatewayTargetView>>
      targets;  // group -> address -> view
  std::map<std::string, std::map<std::string, scaling::TargetCounters>>
      stats;  // group -> address -> counters
};

// Parse the bodies of GET /targets and GET /stats into view; false when a body is not what the API documents.
bool parse_targets_body(std::string_view body, GatewayView& view);
bool parse_stats_body(std::string_view body, GatewayView& view);

class GatewayAdmin final : public scaling::TargetRegistry {
 public:
  GatewayAdmin(http::Client& client, const core::SocketAddress& admin) : client_(client), admin_(admin) {}

  // scaling::TargetRegistry
  void register_target(const std::string& group, const std::string& address, const std::string& zone,
                       Done done) override;
  void deregister_target(const std::string& group, const std::string& address, scaling::Millis drain_timeout,
                         Done done) override;

  // Reads both endpoints; `done` runs once, with whatever could be read.
  void read_view(std::function<void(GatewayView)> done);

 private:
  http::Client& client_;
  core::SocketAddress admin_;
  bool stats_missing_reported_ = false;
};

// Several gateways in front of the same target groups (`gateway.zones`): each registration goes to every one,
// and is done once all have answered, ok when at least one took it (a gateway that is down is told about
// every instance again when it is back: ScalingGroup::reregister_all). The view merges theirs: targets as the
// first gateway that answered sees them, counters summed over the gateways.
class GatewayFanout final : public scaling::TargetRegistry {
 public:
  explicit GatewayFanout(std::vector<GatewayAdmin*> admins) : admins_(std::move(admins)) {}
  void register_target(const std::string& group, const std::string& address, const std::string& zone,
                       Done done) override;
  void deregister_target(const std::string& group, const std::string& address, scaling::Millis drain_timeout,
                         Done done) override;
  void read_view(std::function<void(GatewayView)> done);

 private:
  std::vector<GatewayAdmin*> admins_;
};

// Health checks of instances over HTTP: any 2xx or 3xx passes.
class HttpProber final : public scaling::HealthProber {
 public:
  explicit HttpProber(http::Client& client) : client_(client) {}
  // scaling::HealthProber
  void probe(const std::string& address, const std::string& path, scaling::Millis timeout,
             Done done) override;

 private:
  http::Client& client_;
};

}  // namespace cumulo::stack::internal
