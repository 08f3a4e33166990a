// Requests the gateway makes on its own for the cache (a background revalidation, a slice of a
// representation), sent to a route's target group the way a client's request is: the worker's balancer picks
// the target, the request counts in the target's in-flight number (least-outstanding balancing sees it), its
// outcome goes to the target's metrics and outlier detection, and a failure before any response (a refused
// connection, a reset of a GET) is tried again on another target within the group's retry attempts and retry
// budget. The exchange itself is the core's http::Client (whole responses, keep-alive per target), which the
// worker owns; the client's own requests are streamed by the session on the worker's pool
// (session_upstream.cc). Both record a target's outcome through note_target_failure/note_target_response.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "gateway/internal/model.h"
#include "http/client.h"

namespace cumulo::gateway {

// How a target failed an exchange, as its metrics and outlier detection count it.
enum class TargetFailure : uint8_t {
  kConnect,         // refused or unreachable: a connect failure, and an outlier's connect failure
  kConnectTimeout,  // the connect did not complete in time: a connect failure
  kReset,           // the connection ended or failed before the response did: an outlier's 5xx-like failure
  kBadResponse,     // bytes that are no response: the same
  kNoAnswerInTime,  // the response did not come within the timeout: counted as no response only
};

// A failure of an exchange with `t` (`reused_connection`: on a pooled keep-alive connection, whose loss is no
// verdict on the target, so outlier detection does not count it). Counts a response of class 0.
void note_target_failure(Target& t, const TargetGroupConfig& cfg, TargetFailure kind, bool reused_connection,
                         int64_t now_ms);
// A response head with `status` from `t`: outlier detection counts a 5xx as a failure, anything else as a
// success.
void note_target_response(Target& t, const TargetGroupConfig& cfg, int status, int64_t now_ms);
// The TargetFailure an http::Client failure stands for.
TargetFailure target_failure_of(const core::Error& e);

// What a fetch needs from its worker: a way to send a request to an address (the worker's http::Client; a
// fake in tests), the time, and the worker's index into TargetGroup::balancer.
struct FetchPort {
  std::function<void(const core::SocketAddress&, http::ClientRequest,
                     std::function<void(http::ClientResponse)>)>
      send;
  std::function<int64_t()> now_ms;  // steady milliseconds, as health::steady_ms
  size_t balancer = 0;
};

// Sends `req` (a GET) to a target of the route's group; false, with nothing sent, when no target is
// available. Otherwise `done` runs once, from `port.send`'s callback, with the response, or with the last
// failure when every attempt failed. `port`, the snapshot and the route must outlive the fetch (the worker
// and the snapshot it holds).
bool fetch_from_targets(const FetchPort& port, std::shared_ptr<const Snapshot> snapshot, const Route* route,
                        http::ClientRequest req, std::function<void(http::ClientResponse)> done);

}  // namespace cumulo::gateway
