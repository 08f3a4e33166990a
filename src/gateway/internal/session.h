// A client connection through the gateway: reads requests, routes them, streams them to a target and the
// response back, one request at a time (pipelined requests wait in the buffer), with retries and timeouts.
#pragma once

#include <memory>
#include <string>

#include "cache/store.h"
#include "core/buffer.h"
#include "core/event_loop.h"
#include "core/net.h"
#include "core/owner_guard.h"
#include "gateway/internal/worker.h"
#include "http/client.h"
#include "http/transport.h"
#include "http/wire/h1.h"

namespace cumulo::gateway {

// A stored object for this response to this request, or nullptr when RFC 9111 says it must not be stored.
std::shared_ptr<cache::Object> build_cache_object(const std::string& key, const http::RequestHead& rq,
                                                  const http::ResponseHead& resp, const RouteCacheConfig& cfg,
                                                  int64_t request_time, int64_t now);
// The same for a response an http::Client gathered whole (a background refresh, a slice), judged as its head
// would have been read for `request_head`. `as_part_of_200`: a slice (a 206, or a 200 fetched with GET for a GET
// or a HEAD) judged as the 200 it is a part of (RFC 9111 section 3.4 allows storing parts; storable() knows 200s).
std::shared_ptr<cache::Object> build_cache_object(const std::string& key, const std::string& request_head,
                                                  const http::ClientResponse& resp, bool as_part_of_200,
                                                  const RouteCacheConfig& cfg, int64_t request_time, int64_t now);
// Extra representations made once when an object is stored (a gzip variant of compressible content).
void prepare_variants(cache::Object& obj);

class Session final : public core::IoHandler {
 public:
  Session(Worker& w, std::unique_ptr<http::Transport> client, const ListenerRuntime& listener, core::SocketAddress peer);
  ~Session() override;

  void start();
  void on_io(uint32_t events) override;  // the client socket
  void on_upstream_io();                 // readiness of up_, recorded in its flags
  void drain();                          // the gateway is shutting down
  void cut_if_using(const Target* t);    // the target's drain timeout passed
  size_t index = 0;                      // in the worker's session list

 private:
  enum class Phase : uint8_t { kHead, kProxy, kWaitCache, kServeCached, kSlices, kClosing, kLinger, kClosed };
  enum class TimerFor : uint8_t { kNone, kIdle, kHeader, kConnect, kFirstByte, kBodyIdle, kLinger, kCacheWait };
  enum class CacheMode : uint8_t { kOff, kFill, kRevalidate };
  enum class Failure : uint8_t { kConnect, kReset, kTimeout, kBadResponse };

  void pump();
  bool step_head();
  bool step_proxy();
  bool step_closing();
  bool send_request();
  bool receive_response();
  bool read_client();
  bool write_client(const char* extra, size_t extra_len, size_t& extra_written);

  void begin_request(const http::RequestHead& req);
  void connect_upstream();
  void upstream_failed(Failure kind, int err, const char* what);
  void finish_request();
  void end_request();  // lets go of the target, the route and the snapshot of the request that ended
  void respond_error(int status, std::string_view detail);
  void abort();
  void close();
  void arm(TimerFor what, core::Millis after);
  void on_timer();
  void enter_idle();
  void release_upstream(bool reusable);
  void log_access(int status);

  // The cache (session_cache.cc).
  bool cache_lookup(const http::RequestHead& req);
  bool cache_on_response(const http::ResponseHead& resp);
  bool cache_serve_stale_on_error();
  void serve_cached(const http::RequestHead& req, std::shared_ptr<const cache::Object> obj, std::string_view label);
  bool step_serve_cached();
  void finish_cache_response();
  void capture_body(std::string_view bytes);
  void cache_store();
  void cache_end();
  void cache_wake();
  bool saved_request(http::RequestHead& out);
  // Cache slices (session_slices.cc).
  void slices_begin(const http::RequestHead& req);
  bool step_slices();
  bool slice_get(uint64_t index, bool fetch = true);  // true: slice_ is it (or the request ended)
  void slice_arrived(uint64_t token, std::shared_ptr<const cache::Object> obj, std::string error);
  void slice_woken(uint64_t token);
  void slices_write_head();
  void slices_end();

  Worker& w_;
  std::unique_ptr<http::Transport> client_;
  const ListenerRuntime& listener_;
  core::SocketAddress peer_;
  core::Buffer in_;    // from the client
  core::Buffer out_;   // to the client, ahead of response body bytes (rewritten heads, errors)
  core::Buffer up_head_;  // the rewritten request head, kept until the response starts so a retry can resend it
  size_t up_head_sent_ = 0;
  std::unique_ptr<UpstreamConn> up_;
  core::Timer timer_;
  http::RequestParser req_parser_;
  http::ResponseParser resp_parser_;
  http::ChunkedDecoder req_chunks_;
  http::ChunkedDecoder resp_chunks_;

  // The request in flight.
  std::shared_ptr<const Snapshot> snapshot_;
  const Route* route_ = nullptr;
  std::shared_ptr<Target> target_;
  const Target* tried_[4] = {};
  int tried_count_ = 0;
  int attempts_ = 0;
  core::TimePoint started_{};
  uint64_t req_body_left_ = 0;     // content-length body bytes not yet sent
  size_t req_chunk_ready_ = 0;     // chunked body bytes at the front of in_ checked and not yet sent
  uint64_t req_body_sent_ = 0;
  uint64_t resp_body_left_ = 0;
  size_t resp_chunk_ready_ = 0;
  uint64_t bytes_to_client_ = 0;
  int status_ = 0;
  char request_id_[64];  // fixed size: an idle connection keeps no heap memory for it
  uint8_t request_id_len_ = 0;
  std::string_view request_id() const { return {request_id_, request_id_len_}; }
  std::string last_failure_;  // what went wrong with the last target tried, for the 502/504 body
  std::string log_line_;  // access-log fields gathered at request start (only when the access log is on)
  http::Method method_ = http::Method::kGet;
  http::BodyKind req_body_ = http::BodyKind::kNone;
  http::BodyKind resp_body_ = http::BodyKind::kNone;
  Phase phase_ = Phase::kHead;
  TimerFor timer_for_ = TimerFor::kNone;
  uint8_t version_minor_ = 1;
  bool client_readable_ = true;
  bool client_writable_ = true;
  bool client_eof_ = false;
  bool keep_alive_ = true;
  bool req_done_ = false;
  bool req_chunks_complete_ = false;
  bool resp_started_ = false;
  bool resp_head_done_ = false;
  bool resp_done_ = false;
  bool close_after_ = false;
  bool in_flight_counted_ = false;

  // The cache, for the request in flight.
  CacheMode cache_mode_ = CacheMode::kOff;
  bool filling_ = false;    // this request fetches the key for every request waiting on it
  bool coalesced_ = false;  // it waited once already: it fetches alone if the key is still missing
  std::string cache_key_;
  std::string cache_request_;  // a copy of the request head, to judge the response (storable? Vary?)
  int64_t cache_request_time_ = 0;
  std::shared_ptr<const cache::Object> stale_;  // being revalidated, or served if the origin fails
  std::shared_ptr<cache::Object> capture_;      // the response on its way into the cache
  std::shared_ptr<const cache::Object> serving_;
  const std::string* serving_body_ = nullptr;  // serving_'s identity or compressed body, or ranges_body_
  std::string ranges_body_;                    // a multipart/byteranges answer built for this request
  uint64_t serve_pos_ = 0;
  uint64_t serve_end_ = 0;
  // Cache slices, for a request on a route with cache.slice.
  std::shared_ptr<const cache::Object> slice_;  // the slice (or the whole answer) being sent
  std::string slice_etag_;                      // of the first slice: every later one must match it
  uint64_t slice_probe_ = 0;                    // the slice that tells the length, before the head is sent
  uint64_t slice_token_ = 0;                    // tells a wake-up of the current wait from stale ones
  bool slice_waiting_ = false;                  // for a fetch, or for another request's fetch of the slice
  bool slice_coalesced_ = false;                // waited for another fetch once: fetch alone now
  bool slice_head_sent_ = false;
  bool slice_fetched_ = false;                  // some slice of this request came from the origin
  bool slice_from_origin_ = false;              // slice_ did
  core::OwnerGuard<Session>
      self_;  // wake-ups from other threads find the session through it; null once closed
};

}  // namespace cumulo::gateway
