// A client connection through the gateway: reads requests, routes them, streams them to a target and the
// response back, one request at a time (pipelined requests wait in the buffer), with retries and timeouts.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "cache/store.h"
#include "core/buffer.h"
#include "core/event_loop.h"
#include "core/net.h"
#include "core/owner_guard.h"
#include "gateway/internal/fetch.h"
#include "gateway/internal/upstream.h"
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
// would have been read for `request_head`. `as_part_of_200`: a slice (a 206, or a 200 fetched with GET for a
// GET or a HEAD) judged as the 200 it is a part of (RFC 9111 section 3.4 allows storing parts; storable()
// knows 200s).
std::shared_ptr<cache::Object> build_cache_object(const std::string& key, const std::string& request_head,
                                                  const http::ClientResponse& resp, bool as_part_of_200,
                                                  const RouteCacheConfig& cfg, int64_t request_time,
                                                  int64_t now);
// Extra representations made once when an object is stored (a gzip variant of compressible content).
void prepare_variants(cache::Object& obj);

class Session final : public core::IoHandler {
 public:
  // `upstreams` and `clock` are the worker itself and its loop's clock, except in tests.
  Session(Worker& w, Upstreams& upstreams, SessionClock& clock, std::unique_ptr<http::Transport> client,
          const ListenerRuntime& listener, core::SocketAddress peer);
  ~Session() override;

  void start();
  void on_io(uint32_t events) override;  // the client socket
  void on_upstream_io();                 // readiness of the exchange's connection, recorded in its flags
  void drain();  // the gateway drains: close after the current response, at once when idle
  void cut_if_using(const Target* t);  // the target's drain timeout passed
  size_t index = 0;                    // in the worker's session list

 private:
  // What the session does with its client connection now; each part below has its own state beside it.
  enum class Phase : uint8_t { kHead, kProxy, kWaitCache, kServeCached, kSlices, kClosing, kLinger, kClosed };
  enum class TimerFor : uint8_t {
    kNone,
    kIdle,
    kHeader,
    kConnect,
    kFirstByte,
    kBodyIdle,
    kLinger,
    kCacheWait
  };

  void pump();
  void arm(TimerFor what, core::Millis after);
  void on_timer();
  void abort();
  void close();

  // ---- The client side (session.cc): reading and parsing requests, writing responses, keep-alive. ----
  struct ClientSide {
    std::unique_ptr<http::Transport> transport;
    core::Buffer in;   // from the client
    core::Buffer out;  // to the client, ahead of response body bytes (rewritten heads, errors)
    http::RequestParser parser;
    uint64_t bytes_sent = 0;  // of the current response
    uint8_t version_minor = 1;
    bool readable = true;
    bool writable = true;
    bool eof = false;
    bool keep_alive = true;         // the client asked for it and the gateway is not draining
    bool close_after = false;       // the current response is the connection's last
    bool response_started = false;  // a response head is on its way: no other answer may replace it

    void begin_response(uint8_t request_version_minor, bool keep);
    // The status line of a head the gateway writes itself (a cached or sliced answer), in the request's
    // version.
    void append_status_line(int status, std::string_view reason);
    // Connection: close for the connection's last response, keep-alive for an HTTP/1.0 client that keeps it.
    void append_connection_field();
  };
  bool step_head();
  bool step_closing();
  bool read_client();
  bool write_client(const char* extra, size_t extra_len, size_t& extra_written);
  void enter_idle();
  // A parsed request head: answered at once, from the cache, or sent to a target.
  void begin_request(const http::RequestHead& req);
  void reset_for_request(const http::RequestHead& req);
  void take_request_id(const http::RequestHead& req);
  void open_access_log(const http::RequestHead& req);
  bool answered_as_monitor(const http::RequestHead& req);
  bool answered_before_routing(const http::RequestHead& req);
  bool write_upstream_head(const http::RequestHead& req);
  bool write_response_head(const http::ResponseHead& resp);
  void respond_error(int status, std::string_view detail);
  void finish_request();
  void end_request();  // lets go of the target, the route and the snapshot of the request that ended
  void log_access(int status);

  // ---- The upstream exchange (session_upstream.cc): target pick, connect, send, receive, retries. ----
  enum class RequestProgress : uint8_t { kBody, kLastChunkRead, kSent };  // kSent: nothing left to send
  enum class ResponseProgress : uint8_t { kHead, kBody, kComplete };      // as read from the target
  struct Exchange {
    std::unique_ptr<UpstreamConnection> conn;
    std::shared_ptr<Target> target;
    core::Buffer head;  // the rewritten request head, kept until the response starts so a retry can resend it
    size_t head_sent = 0;
    http::ResponseParser parser;
    http::ChunkedDecoder request_chunks;
    http::ChunkedDecoder response_chunks;
    TriedTargets tried;
    int attempts = 0;
    uint64_t request_left = 0;       // content-length body bytes not yet sent
    size_t request_chunk_ready = 0;  // chunked body bytes checked at the front of client_.in, not sent
    uint64_t request_sent = 0;       // body bytes
    uint64_t response_left = 0;
    size_t response_chunk_ready = 0;
    std::string last_failure;  // what went wrong with the last target tried, for the 502/504 body
    http::BodyKind request_body = http::BodyKind::kNone;
    http::BodyKind response_body = http::BodyKind::kNone;
    RequestProgress request = RequestProgress::kBody;
    ResponseProgress response = ResponseProgress::kHead;

    void begin(const http::RequestHead& req);  // a new request; the target is picked later
    bool request_done() const { return request == RequestProgress::kSent; }
    bool head_received() const { return response != ResponseProgress::kHead; }
    bool response_done() const { return response == ResponseProgress::kComplete; }
  };
  void start_exchange();
  void connect_upstream();
  bool step_proxy();
  bool send_request();
  bool receive_response();
  // What receive_response does after a step: loop again, wait for an event, stop (the exchange ended or
  // failed), or read more from the target.
  enum class Flow : uint8_t { kAgain, kWait, kEnded, kRead };
  Flow take_response_head(UpstreamConnection& u, bool& progress);
  Flow pass_interim(UpstreamConnection& u, const http::ResponseHead& resp, bool& progress);
  Flow commit_response(UpstreamConnection& u, const http::ResponseHead& resp, bool& progress);
  void start_response(const http::ResponseHead& resp);
  std::optional<size_t> response_body_ready(UpstreamConnection& u);
  Flow forward_response_body(UpstreamConnection& u, bool& progress);
  Flow read_upstream(UpstreamConnection& u, bool& progress);
  void upstream_failed(TargetFailure kind, int err, const char* what);
  void release_upstream(bool reusable);

  // ---- The cache (session_cache.cc): look-up, coalescing, revalidation, storing, serving. ----
  // kFill: this request fetches the key for every request waiting on it (it holds Store::begin_fill);
  // kFetchAlone: it waited for another fill once and the key is still missing.
  enum class CacheMode : uint8_t { kOff, kFill, kFetchAlone, kRevalidate };
  struct CacheState {
    CacheMode mode = CacheMode::kOff;
    bool coalesced = false;  // it waited once already: it fetches alone if the key is still missing
    std::string key;
    std::string request;  // a copy of the request head, to judge the response (storable? Vary?)
    int64_t request_time = 0;
    std::shared_ptr<const cache::Object> stale;  // being revalidated, or served if the origin fails
    std::shared_ptr<cache::Object> capture;      // the response on its way into the cache
    std::shared_ptr<const cache::Object> serving;
    const std::string* serving_body = nullptr;  // serving's identity or compressed body, or ranges_body
    std::string ranges_body;                    // a multipart/byteranges answer built for this request
    uint64_t serve_pos = 0;                     // also the slices' position in the representation
    uint64_t serve_end = 0;
    // A look-up that waits for the disk tier: the result of its read, delivered on this loop, answers the
    // look-up once (disk_read); the token tells the current wait from earlier ones.
    uint64_t disk_token = 0;
    bool disk_read = false;
    std::shared_ptr<const cache::Object> from_disk;
  };
  bool cache_lookup(const http::RequestHead& req);
  void cache_disk_loaded(uint64_t token, std::shared_ptr<const cache::Object> obj);
  bool cache_on_response(const http::ResponseHead& resp);
  bool cache_serve_stale_on_error();
  void serve_cached(const http::RequestHead& req, std::shared_ptr<const cache::Object> obj,
                    std::string_view label);
  bool step_serve_cached();
  void finish_cache_response();
  void capture_body(std::string_view bytes);
  void cache_store();
  void cache_end();
  void cache_wake();
  bool saved_request(http::RequestHead& out);

  // ---- Cache slices (session_slices.cc), for a request on a route with cache.slice. ----
  struct SliceState {
    std::shared_ptr<const cache::Object> object;  // the slice (or the whole answer) being sent
    std::string etag;                             // of the first slice: every later one must match it
    uint64_t probe = 0;                           // the slice that tells the length, before the head is sent
    uint64_t token = 0;                           // tells a wake-up of the current wait from stale ones
    bool waiting = false;                         // for a fetch, or for another request's fetch of the slice
    bool coalesced = false;                       // waited for another fetch once: fetch alone now
    bool head_sent = false;
    bool fetched = false;      // some slice of this request came from the origin
    bool from_origin = false;  // `object` did
    uint64_t disk_index = 0;   // 1 + the slice read from the disk tier for this request (0: none)
    std::shared_ptr<const cache::Object> from_disk;  // what that read gave (nullptr: nothing usable)
  };
  void slices_begin(const http::RequestHead& req);
  bool step_slices();
  bool slice_get(uint64_t index, bool fetch = true);  // true: slices_.object is it (or the request ended)
  void slice_arrived(uint64_t token, std::shared_ptr<const cache::Object> obj, std::string error);
  void slice_woken(uint64_t token);
  void slice_loaded(uint64_t token, uint64_t index, std::shared_ptr<const cache::Object> obj);
  void slices_write_head();
  void slices_end();

  Worker& w_;
  Upstreams& upstreams_;
  SessionClock& clock_;
  const ListenerRuntime& listener_;
  core::SocketAddress peer_;
  std::unique_ptr<Alarm> timer_;
  Phase phase_ = Phase::kHead;
  TimerFor timer_for_ = TimerFor::kNone;

  // The request in flight, seen by every part.
  std::shared_ptr<const Snapshot> snapshot_;
  const Route* route_ = nullptr;
  core::TimePoint started_{};
  int status_ = 0;
  http::Method method_ = http::Method::kGet;
  bool in_flight_counted_ = false;  // in the worker's active_requests (the retry budget's count)
  uint8_t request_id_len_ = 0;
  char request_id_[64];  // fixed size: an idle connection keeps no heap memory for it
  std::string_view request_id() const { return {request_id_, request_id_len_}; }
  std::string log_line_;  // access-log fields gathered at request start (only when the access log is on)

  ClientSide client_;
  Exchange exchange_;
  CacheState cache_;
  SliceState slices_;
  core::OwnerGuard<Session>
      self_;  // wake-ups from other threads find the session through it; null once closed
};

}  // namespace cumulo::gateway
