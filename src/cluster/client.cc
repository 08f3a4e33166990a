// cluster::Client: etcd's JSON gateway over http::Client, one POST per request, with the endpoint failover
// and retry rules of cluster.h; and the watch, one streamed POST /v3/watch per connection.
#include "http/client.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "cluster/cluster.h"
#include "cluster/wire/etcd_json.h"
#include "core/log.h"
#include "core/net.h"

namespace cumulo::cluster {

using wire::json;

namespace {

// Whether a request is safe to send again after a failure that may have happened after etcd took it.
enum class Repeat : uint8_t { kSafe, kOnlyIfNotSent };

bool retried(const core::Error& e, Repeat repeat) {
  if (e.kind == "connect") return true;  // nothing was sent
  if (repeat == Repeat::kOnlyIfNotSent) return false;
  return e.kind == "reset" || e.kind == "timeout" || e.kind == "bad_response" || e.kind == "unavailable";
}

struct Call {
  std::string path;
  std::string body;
  Repeat repeat;
  size_t tries = 0;
  std::function<void(core::Result<json, core::Error>)> done;
};

}  // namespace

struct Client::Impl {
  Impl(core::EventLoop& l, Options o) : loop(l), opts(std::move(o)), http(l) {
    if (opts.endpoints.empty()) throw std::invalid_argument("etcd client: no endpoint given");
    for (const std::string& e : opts.endpoints) {
      auto addr = core::SocketAddress::parse(e);
      if (!addr)
        throw std::invalid_argument("etcd endpoint '" + e +
                                    "' is not HOST:PORT with a numeric host or localhost (127.0.0.1:2379)");
      endpoints.push_back(*addr);
      names.push_back(e);
    }
  }
  ~Impl() { *alive = false; }

  // The endpoint after `failed`, unless another request has moved on already.
  void move_past(size_t failed) {
    if (current == failed) current = (failed + 1) % endpoints.size();
  }

  void call(std::string_view path, const json& body, Repeat repeat,
            std::function<void(core::Result<json, core::Error>)> done) {
    auto c = std::make_shared<Call>();
    c->path = std::string(path);
    c->body = body.dump();
    c->repeat = repeat;
    c->done = std::move(done);
    attempt(std::move(c));
  }

  void attempt(std::shared_ptr<Call> c) {
    size_t ep = current;
    http::ClientRequest req;
    req.method = "POST";
    req.target = c->path;
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = c->body;
    req.timeout = opts.request_timeout;
    http.request(endpoints[ep], std::move(req), [this, token = alive, c, ep](http::ClientResponse r) {
      if (!*token) return;
      ++c->tries;
      core::Error err;
      if (!r.ok()) {
        err = std::move(r.error);
        err.message = "etcd at " + names[ep] + " " + c->path + ": " + err.message;
      } else if (r.status != 200) {
        err = wire::error_from_answer(r.status, r.body, names[ep]);
      } else {
        json j = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
        if (!j.is_discarded()) {
          current = ep;
          c->done(std::move(j));
          return;
        }
        err.kind = "bad_response";
        err.source = core::ErrorSource::kUpstream;
        err.message =
            "etcd at " + names[ep] + " " + c->path + ": the answer is no JSON: " + r.body.substr(0, 200);
      }
      if (retried(err, c->repeat) && c->tries < endpoints.size()) {
        move_past(ep);
        attempt(c);
        return;
      }
      if (retried(err, Repeat::kSafe)) move_past(ep);
      c->done(core::Err(std::move(err)));
    });
  }

  template <typename T, typename U>
  void typed(std::string_view path, const json& body, Repeat repeat,
             core::Result<U, core::Error> (*decode)(const json&), std::function<T(U&&)> convert,
             Callback<T> done) {
    call(path, body, repeat, [decode, convert = std::move(convert), done = std::move(done)](auto r) {
      if (!r) return done(core::Err(r.error()));
      auto decoded = decode(*r);
      if (!decoded) return done(core::Err(decoded.error()));
      done(convert(std::move(decoded.value())));
    });
  }
  template <typename T>
  void typed(std::string_view path, const json& body, Repeat repeat,
             core::Result<T, core::Error> (*decode)(const json&), Callback<T> done) {
    typed<T, T>(
        path, body, repeat, decode, [](T&& v) { return std::move(v); }, std::move(done));
  }

  core::EventLoop& loop;
  Options opts;
  std::vector<core::SocketAddress> endpoints;
  std::vector<std::string> names;
  size_t current = 0;
  // False once the client is being destroyed: http's destructor completes its requests, whose callbacks must
  // then do nothing. Watches hold it too, to know whether the client is still there.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  http::Client http;  // last: destroyed first, while the rest is still there
};

Client::Client(core::EventLoop& loop, Options options)
    : impl_(std::make_unique<Impl>(loop, std::move(options))) {}
Client::~Client() = default;

core::EventLoop& Client::loop() const {
  return impl_->loop;
}

void Client::get(std::string key, Callback<GetResult> done, int64_t revision) {
  RangeOptions o;
  o.revision = revision;
  impl_->typed<GetResult, RangeResult>(
      "/v3/kv/range", wire::range_request(key, {}, o), Repeat::kSafe, wire::decode_range,
      [](RangeResult&& r) {
        GetResult g;
        g.header = r.header;
        if (!r.kvs.empty()) g.kv = std::move(r.kvs.front());
        return g;
      },
      std::move(done));
}

void Client::range(std::string prefix, RangeOptions options, Callback<RangeResult> done) {
  impl_->typed<RangeResult>("/v3/kv/range", wire::range_request(prefix, prefix_end(prefix), options),
                            Repeat::kSafe, wire::decode_range, std::move(done));
}

void Client::put(std::string key, std::string value, Callback<PutResult> done, int64_t lease) {
  impl_->typed<PutResult>("/v3/kv/put", wire::put_request(key, value, lease), Repeat::kOnlyIfNotSent,
                          wire::decode_put, std::move(done));
}

void Client::del(std::string key, Callback<DeleteResult> done) {
  impl_->typed<DeleteResult>("/v3/kv/deleterange", wire::delete_request(key, {}), Repeat::kOnlyIfNotSent,
                             wire::decode_delete, std::move(done));
}

void Client::del_prefix(std::string prefix, Callback<DeleteResult> done) {
  impl_->typed<DeleteResult>("/v3/kv/deleterange", wire::delete_request(prefix, prefix_end(prefix)),
                             Repeat::kOnlyIfNotSent, wire::decode_delete, std::move(done));
}

void Client::txn(TxnRequest request, Callback<TxnResult> done) {
  impl_->typed<TxnResult>("/v3/kv/txn", wire::txn_request(request), Repeat::kOnlyIfNotSent, wire::decode_txn,
                          std::move(done));
}

void Client::compact(int64_t revision, Callback<ResponseHeader> done) {
  impl_->typed<ResponseHeader>("/v3/kv/compaction", wire::compact_request(revision), Repeat::kSafe,
                               wire::decode_header, std::move(done));
}

void Client::grant(int64_t ttl_s, Callback<Lease> done) {
  // Not repeated: a second grant would leave a lease behind (harmless, it expires, but not what was asked).
  impl_->typed<Lease>("/v3/lease/grant", wire::lease_grant_request(ttl_s), Repeat::kOnlyIfNotSent,
                      wire::decode_lease_grant, std::move(done));
}

void Client::keep_alive(int64_t lease_id, Callback<Lease> done) {
  impl_->typed<Lease>("/v3/lease/keepalive", wire::lease_id_request(lease_id), Repeat::kSafe,
                      wire::decode_keep_alive, std::move(done));
}

void Client::revoke(int64_t lease_id, Callback<ResponseHeader> done) {
  impl_->typed<ResponseHeader>("/v3/lease/revoke", wire::lease_id_request(lease_id), Repeat::kSafe,
                               wire::decode_header, std::move(done));
}

void Client::time_to_live(int64_t lease_id, bool with_keys, Callback<LeaseTimeToLive> done) {
  impl_->typed<LeaseTimeToLive>("/v3/lease/timetolive", wire::lease_ttl_request(lease_id, with_keys),
                                Repeat::kSafe, wire::decode_time_to_live, std::move(done));
}

// --- watch

namespace {

constexpr core::Millis kFirstPause{50};
constexpr core::Millis kLongestPause{2000};
constexpr size_t kMaxErrorBody = 64 * 1024;

class WatchImpl final : public Watch {
 public:
  WatchImpl(Client::Impl& cl, WatchRequest req, std::function<void(WatchResponse)> on_events,
            std::function<void(WatchError)> on_error)
      : cl_(cl),
        client_alive_(cl.alive),
        req_(std::move(req)),
        on_events_(std::make_shared<std::function<void(WatchResponse)>>(std::move(on_events))),
        on_error_(std::move(on_error)),
        next_revision_(req_.start_revision),
        pause_timer_(cl.loop, [this] { connect(); }),
        idle_timer_(cl.loop, [this] { idle(); }) {
    // Connect from the loop, so that no callback runs inside Client::watch().
    pause_timer_.arm(core::Millis(0));
  }

  ~WatchImpl() override {
    *alive_ = false;
    if (request_ != 0 && *client_alive_) cl_.http.cancel(request_);
  }

  int64_t next_revision() const override { return next_revision_; }
  int connections() const override { return connections_; }

 private:
  void connect() {
    endpoint_ = cl_.current;
    splitter_.reset();
    error_body_.clear();
    WatchRequest r = req_;
    r.start_revision = next_revision_;
    http::ClientRequest hr;
    hr.method = "POST";
    hr.target = "/v3/watch";
    hr.headers.emplace_back("Content-Type", "application/json");
    hr.body = wire::watch_create_request(r).dump();
    hr.timeout = cl_.opts.request_timeout;
    hr.on_body = [this](const http::ClientResponse& head, std::string_view piece) { on_piece(head, piece); };
    ++connections_;
    if (req_.idle_timeout.count() > 0) idle_timer_.arm(std::max(req_.idle_timeout, cl_.opts.request_timeout));
    request_ = cl_.http.request(cl_.endpoints[endpoint_], std::move(hr),
                                [this, client = client_alive_](http::ClientResponse r) {
                                  // The client's destructor completes its requests: a watch left behind it
                                  // must not run.
                                  if (*client) on_end(std::move(r));
                                });
  }

  void on_piece(const http::ClientResponse& head, std::string_view piece) {
    if (head.status != 200) {
      if (error_body_.size() < kMaxErrorBody) error_body_.append(piece.substr(0, kMaxErrorBody));
      return;
    }
    if (req_.idle_timeout.count() > 0) idle_timer_.arm(req_.idle_timeout);
    objects_.clear();
    if (!splitter_.feed(piece, objects_)) {
      drop_connection(bad("the watch stream is no sequence of JSON objects: " + splitter_.error()));
      return;
    }
    std::shared_ptr<bool> alive = alive_;
    for (const std::string& text : objects_) {
      json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded()) {
        drop_connection(bad("a watch answer is no JSON: " + text.substr(0, 200)));
        return;
      }
      if (auto e = wire::stream_error(j, cl_.names[endpoint_])) {
        if (e->kind == "compacted") return end(WatchError{*e, 0});
        drop_connection(*e);
        return;
      }
      auto m = wire::decode_watch_message(j);
      if (!m) {
        drop_connection(m.error());
        return;
      }
      if (m->compact_revision != 0) {
        core::Error e;
        e.kind = "compacted";
        e.source = core::ErrorSource::kClient;
        e.message = "watch of '" + req_.key + "' from revision " + std::to_string(next_revision_) +
                    ": compacted up to revision " + std::to_string(m->compact_revision) +
                    "; read the current state and watch from there";
        return end(WatchError{std::move(e), m->compact_revision});
      }
      if (m->canceled) {
        core::Error e;
        e.kind = "cancelled";
        e.source = core::ErrorSource::kUpstream;
        e.message = "etcd at " + cl_.names[endpoint_] + " cancelled the watch of '" + req_.key +
                    "': " + (m->cancel_reason.empty() ? "no reason given" : m->cancel_reason);
        return end(WatchError{std::move(e), 0});
      }
      if (m->created) {
        pause_ = kFirstPause;
        if (next_revision_ == 0) next_revision_ = m->header.revision + 1;
      }
      if (m->events.empty()) {
        // A progress answer: every event up to its revision has been sent.
        if (!m->created) next_revision_ = std::max(next_revision_, m->header.revision + 1);
        continue;
      }
      next_revision_ = m->events.back().kv.mod_revision + 1;
      // A copy of the callback runs, so that it may destroy the watch, and with it on_events_, while it runs.
      std::shared_ptr<std::function<void(WatchResponse)>> on_events = on_events_;
      (*on_events)(WatchResponse{m->header, std::move(m->events)});
      if (!*alive) return;  // destroyed inside on_events
    }
  }

  void on_end(http::ClientResponse r) {
    request_ = 0;
    idle_timer_.cancel();
    if (!r.ok()) {
      r.error.message = "watch at " + cl_.names[endpoint_] + ": " + r.error.message;
      return pause_and_reconnect(r.error);
    }
    if (r.status != 200) {
      core::Error e = wire::error_from_answer(r.status, error_body_, cl_.names[endpoint_]);
      if (e.kind == "compacted" || e.kind == "invalid_argument") return end(WatchError{std::move(e), 0});
      return pause_and_reconnect(e);
    }
    pause_and_reconnect(bad("the watch stream ended"));  // etcd stopping, say
  }

  void idle() {
    if (request_ == 0) return;
    drop_connection(bad("watch at " + cl_.names[endpoint_] + ": no byte for " +
                        std::to_string(req_.idle_timeout.count()) + " ms"));
  }

  void drop_connection(const core::Error& why) {
    if (request_ != 0) cl_.http.cancel(request_);
    request_ = 0;
    idle_timer_.cancel();
    pause_and_reconnect(why);
  }

  void pause_and_reconnect(const core::Error& why) {
    cl_.move_past(endpoint_);
    if (core::log_enabled(core::LogLevel::kDebug))
      core::log(
          core::LogLevel::kDebug, "cluster", "etcd watch reconnects",
          {{"key", req_.key}, {"pause_ms", static_cast<int64_t>(pause_.count())}, {"why", why.message}});
    pause_timer_.arm(pause_);
    pause_ = std::min(pause_ * 2, kLongestPause);
  }

  void end(WatchError e) {
    if (request_ != 0) cl_.http.cancel(request_);
    request_ = 0;
    idle_timer_.cancel();
    pause_timer_.cancel();
    auto on_error = std::move(on_error_);  // it may destroy this, and so on_error_, while it runs
    on_error(std::move(e));
  }

  core::Error bad(std::string message) const {
    core::Error e;
    e.kind = "bad_response";
    e.source = core::ErrorSource::kUpstream;
    e.message = std::move(message);
    return e;
  }

  Client::Impl& cl_;
  std::shared_ptr<bool> client_alive_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  WatchRequest req_;
  std::shared_ptr<std::function<void(WatchResponse)>> on_events_;
  std::function<void(WatchError)> on_error_;
  int64_t next_revision_ = 0;
  http::Client::RequestId request_ = 0;
  size_t endpoint_ = 0;
  int connections_ = 0;
  core::Millis pause_ = kFirstPause;
  wire::JsonObjectSplitter splitter_;
  std::vector<std::string> objects_;
  std::string error_body_;
  core::Timer pause_timer_;
  core::Timer idle_timer_;
};

}  // namespace

std::unique_ptr<Watch> Client::watch(WatchRequest request, std::function<void(WatchResponse)> on_events,
                                     std::function<void(WatchError)> on_error) {
  return std::make_unique<WatchImpl>(*impl_, std::move(request), std::move(on_events), std::move(on_error));
}

}  // namespace cumulo::cluster
