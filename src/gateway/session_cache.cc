// The cache's part of a session: look-ups, coalescing, revalidation, storing responses and serving stored
// ones. RFC 9111 decisions come from cache/policy.h; objects live in the shared cache::Store.
#include <ctime>
#include <random>

#include "cache/policy.h"
#include "cache/store.h"
#include "gateway/internal/identity.h"
#include "gateway/internal/session.h"
#include "http/wire/content_range.h"
#include "http/wire/field_lists.h"

namespace cumulo::gateway {

using http::BodyKind;

namespace {

enum CacheResult { kHit = 0, kMiss = 1, kStale = 2, kBypass = 3 };

cache::RoutePolicy policy_of(const RouteCacheConfig& c) {
  cache::RoutePolicy p;
  p.default_ttl = c.default_ttl.count() / 1000;
  p.max_ttl = c.max_ttl.count() < 0 ? -1 : c.max_ttl.count() / 1000;
  p.ignore_origin_cache_control = c.ignore_origin_cache_control;
  return p;
}

// Fields a stored response does not keep: hop-by-hop ones, and those the cache writes itself when serving.
bool kept_in_store(std::string_view name) {
  return !http::is_hop_by_hop(name) && !http::iequals(name, "content-length") &&
         !http::iequals(name, "age") && !http::iequals(name, "via") && !http::iequals(name, "x-cache") &&
         !http::iequals(name, kIdentityFieldName);
}

bool accepts_gzip(std::string_view accept_encoding) {
  // RFC 9110 section 12.5.3: "gzip" (or "*") listed without q=0.
  bool accepted = false;
  http::for_each_list_element(accept_encoding, [&](std::string_view item) {
    const size_t semi = item.find(';');
    const std::string_view coding = http::trim_ows(item.substr(0, semi));
    if (!http::iequals(coding, "gzip") && coding != "*") return true;  // the next element
    const std::string_view params =
        semi == std::string_view::npos ? std::string_view{} : item.substr(semi + 1);
    const size_t q = params.find("q=");
    const std::string_view v = q == std::string_view::npos ? std::string_view{} : params.substr(q + 2);
    accepted = !(v.substr(0, 1) == "0" && v.find_first_not_of("0.", 0) > 4);
    return false;  // the first gzip or "*" decides
  });
  return accepted;
}

void append_headers_except(core::Buffer& out, std::string_view lines, std::string_view name) {
  http::for_each_field_line(lines, [&](std::string_view n, std::string_view, std::string_view line) {
    if (n.empty() || !http::iequals(n, name)) out.append(line);
    return true;
  });
}

// A multipart boundary that occurs in none of the parts (RFC 2046 section 5.1.1): random, checked anyway.
std::string multipart_boundary(std::string_view body, const std::vector<cache::ByteRange>& ranges) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  for (;;) {
    std::string b = "cumulo-";
    uint64_t r = rng();
    for (int i = 0; i < 16; ++i, r >>= 4) b.push_back(kHex[r & 15]);
    bool clash = false;
    for (const auto& range : ranges)
      clash =
          clash || body.substr(range.first, range.last - range.first + 1).find(b) != std::string_view::npos;
    if (!clash) return b;
  }
}

void add_tags(std::string_view value, char separator, std::vector<std::string>& tags) {
  while (!value.empty()) {
    auto sep = value.find(separator);
    std::string_view t = value.substr(0, sep);
    value = sep == std::string_view::npos ? std::string_view{} : value.substr(sep + 1);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (!t.empty()) tags.emplace_back(t);
  }
}

}  // namespace

std::shared_ptr<cache::Object> build_cache_object(const std::string& key, const http::RequestHead& rq,
                                                  const http::ResponseHead& resp, const RouteCacheConfig& cfg,
                                                  int64_t request_time, int64_t now) {
  cache::RoutePolicy policy = policy_of(cfg);
  if (!cache::storable(rq, resp, policy).ok) return nullptr;
  auto obj = std::make_shared<cache::Object>();
  obj->key = key;
  for (size_t i = 0; i < resp.header_count;
       ++i) {  // several Vary fields make one list (RFC 9110 section 5.3)
    if (!http::iequals(resp.headers[i].name, "vary")) continue;
    if (!obj->vary.empty()) obj->vary.append(", ");
    obj->vary.append(resp.headers[i].value);
  }
  if (!obj->vary.empty()) {
    auto k = cache::vary_key(obj->vary, rq);
    if (!k) return nullptr;
    obj->vary_key = std::move(*k);
  }
  obj->status = resp.status;
  obj->reason.assign(resp.reason);
  for (size_t i = 0; i < resp.header_count; ++i) {
    const http::Header& h = resp.headers[i];
    if (!kept_in_store(h.name) || http::iequals(h.name, "etag")) continue;  // ETag: written when served
    if (http::iequals(h.name, "surrogate-key")) {
      add_tags(h.value, ' ', obj->tags);
      continue;  // for this cache only (the Surrogate-Key convention)
    }
    if (http::iequals(h.name, "cache-tag")) add_tags(h.value, ',', obj->tags);
    obj->headers.append(h.name).append(": ").append(h.value).append("\r\n");
  }
  obj->etag.assign(resp.header("etag"));
  obj->last_modified.assign(resp.header("last-modified"));
  obj->cache_control = cache::parse_cache_control(resp);
  obj->times = cache::entry_times(resp, request_time, now, policy);
  obj->compressible = resp.status == 200 && resp.header("content-encoding").empty() &&
                      cache::compressible_type(resp.header("content-type"));
  return obj;
}

std::shared_ptr<cache::Object> build_cache_object(const std::string& key, const std::string& request_head,
                                                  const http::ClientResponse& resp, bool as_part_of_200,
                                                  const RouteCacheConfig& cfg, int64_t request_time,
                                                  int64_t now) {
  http::RequestParser qp;
  http::RequestHead rq;
  if (qp.parse(request_head, rq) != http::ParseStatus::kComplete) return nullptr;
  if (as_part_of_200) rq.method = http::Method::kGet;  // a HEAD's slice is fetched with GET
  // The client's head as parsed, without its framing (the stored body is whole); a slice judged as its 200.
  http::ResponseHead rh = resp.head_view();
  rh.remove_header("transfer-encoding");
  rh.remove_header("content-length");
  if (as_part_of_200) {
    rh.remove_header("content-range");
    rh.status = 200;
    rh.reason = http::reason_phrase(200);
  }
  return build_cache_object(key, rq, rh, cfg, request_time, now);
}

bool Session::saved_request(http::RequestHead& out) {
  http::RequestParser parser;
  return parser.parse(cache_.request, out) == http::ParseStatus::kComplete;
}

bool Session::cache_lookup(const http::RequestHead& req) {
  cache::Store& store = *snapshot_->cache;
  const RouteMetrics& m = route_->metrics;
  if (req.body != BodyKind::kNone) {
    m.cache_results[kBypass]->inc();
    return false;
  }
  std::string_view host = req.host;
  if (auto colon = host.rfind(':');
      colon != std::string_view::npos && host.find(']') == std::string_view::npos)
    host = host.substr(0, colon);
  cache_.key.clear();
  for (char c : host) cache_.key.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
  cache_.key.append(req.target);
  if (route_->config.cache.slice) {
    slices_begin(req);
    return true;
  }
  cache::CacheControl req_cc = cache::parse_cache_control(req);
  int64_t now = ::time(nullptr);

  auto wait = [&] {
    phase_ = Phase::kWaitCache;
    client_.parser.reset();
    arm(TimerFor::kCacheWait, route_->config.timeouts.first_byte);
    route_ = nullptr;
    snapshot_.reset();
    return true;
  };
  cache::Store::Lookup found;
  if (cache_.disk_read) {
    cache_.disk_read = false;  // woken by the disk read it waited for: that is the look-up's answer
    found.object = std::move(cache_.from_disk);
  } else {
    found = store.lookup(
        cache_.key, req, w_.loop(),
        [weak = self_.weak(), token = ++cache_.disk_token](std::shared_ptr<const cache::Object> o) {
          if (Session* s = weak.get()) s->cache_disk_loaded(token, std::move(o));
        });
    if (found.loading) return wait();  // on disk: read on the disk tier's thread, not this one
  }
  if (auto obj = std::move(found.object)) {
    if (!req_cc.no_cache) {
      auto fresh = cache::freshness(obj->current_times(), obj->cache_control, req_cc, now);
      if (fresh != cache::Freshness::kStale) {
        m.cache_results[fresh == cache::Freshness::kFresh ? kHit : kStale]->inc();
        size_t head_bytes = req.head_bytes;
        if (fresh == cache::Freshness::kStaleWhileRevalidate)
          w_.refresh_in_background(snapshot_, route_, cache_.key, obj,
                                   std::string(client_.in.data(), head_bytes));
        serve_cached(req, std::move(obj), fresh == cache::Freshness::kFresh ? "HIT" : "STALE");
        client_.in.consume(head_bytes);
        client_.parser.reset();
        return true;
      }
    }
    cache_.stale = std::move(obj);
    cache_.mode = CacheMode::kRevalidate;
  } else if (req_cc.only_if_cached) {
    client_.in.consume(req.head_bytes);
    client_.parser.reset();
    respond_error(504, "only-if-cached, and the response is not in the cache");
    return true;
  }
  if (!cache_.stale) {
    bool filler = store.begin_fill(cache_.key);
    if (!filler && !cache_.coalesced) {
      // Another request is fetching this key already: wait for its response instead of asking the origin too.
      store.wait_fill(cache_.key, w_.loop(), [weak = self_.weak()] {
        if (Session* s = weak.get()) s->cache_wake();
      });
      return wait();
    }
    cache_.mode = filler ? CacheMode::kFill : CacheMode::kFetchAlone;
  }
  m.cache_results[kMiss]->inc();
  cache_.request.assign(client_.in.data(), req.head_bytes);
  cache_.request_time = now;
  return false;
}

void Session::cache_wake() {
  if (phase_ != Phase::kWaitCache) return;
  cache_.coalesced = true;
  phase_ = Phase::kHead;
  timer_->cancel();
  pump();
}

void Session::cache_disk_loaded(uint64_t token, std::shared_ptr<const cache::Object> obj) {
  if (phase_ != Phase::kWaitCache || token != cache_.disk_token) return;
  cache_.disk_read = true;
  cache_.from_disk = std::move(obj);
  phase_ = Phase::kHead;
  timer_->cancel();
  pump();
}

bool Session::cache_on_response(const http::ResponseHead& resp) {
  int64_t now = ::time(nullptr);
  http::RequestHead& rq = w_.scratch_request;
  if (!saved_request(rq)) return false;
  if (cache_.stale && (resp.status == 304 || resp.status >= 500)) {
    cache::CacheControl req_cc = cache::parse_cache_control(rq);
    bool revalidated = resp.status == 304;
    if (!revalidated && !cache::stale_if_error_allows(cache_.stale->current_times(),
                                                      cache_.stale->cache_control, req_cc, now))
      return false;
    if (revalidated) {
      // RFC 9111 section 4.3.4: the stored response is fresh again from this 304 on.
      auto date = cache::parse_http_date(resp.header("date"));
      cache_.stale->refreshed_date.store(date.value_or(now));
      cache_.stale->refreshed_response_time.store(now);
    }
    UpstreamConnection& u = *exchange_.conn;
    u.in.consume(resp.head_bytes);
    exchange_.parser.reset();
    release_upstream(revalidated && resp.keep_alive && u.in.empty());
    route_->metrics.cache_results[kStale]->inc();
    serve_cached(rq, cache_.stale, revalidated ? "REVALIDATED" : "STALE");
    return true;
  }
  const RouteCacheConfig& cfg = route_->config.cache;
  // A HEAD response has no body to answer a later GET with.
  if (rq.method != http::Method::kGet || resp.status < 200 || resp.body == BodyKind::kUntilClose)
    return false;
  if (resp.body == BodyKind::kContentLength && resp.content_length > cfg.max_object_bytes) return false;
  auto obj = build_cache_object(cache_.key, rq, resp, cfg, cache_.request_time, now);
  if (!obj) return false;
  if (resp.body == BodyKind::kContentLength) obj->body.reserve(resp.content_length);
  cache_.capture = std::move(obj);
  return false;
}

void Session::capture_body(std::string_view bytes) {
  if (cache_.capture->body.size() + bytes.size() > route_->config.cache.max_object_bytes) {
    cache_.capture.reset();  // larger than it said, or than a chunked body may grow: not kept
    return;
  }
  cache_.capture->body.append(bytes);
}

void Session::cache_store() {
  if (exchange_.response_done() && snapshot_ && snapshot_->cache) {
    prepare_variants(*cache_.capture);
    snapshot_->cache->insert(std::move(cache_.capture));
  }
  cache_.capture.reset();
}

void prepare_variants(cache::Object& obj) {
  // Compressed once when stored, not per request; large objects (media) are rarely compressible and would
  // stall the worker while compressing.
  constexpr size_t kMinGzip = 1024, kMaxGzip = 4u << 20;
  if (obj.compressible && obj.body.size() >= kMinGzip && obj.body.size() <= kMaxGzip &&
      cache::gzip_compress(obj.body, obj.gzip_body))
    cache::brotli_compress(obj.body, obj.br_body);
}

bool Session::cache_serve_stale_on_error() {
  if (!cache_.stale || client_.response_started || !client_.out.empty()) return false;
  http::RequestHead& rq = w_.scratch_request;
  if (!saved_request(rq)) return false;
  cache::CacheControl req_cc = cache::parse_cache_control(rq);
  if (!cache::stale_if_error_allows(cache_.stale->current_times(), cache_.stale->cache_control, req_cc,
                                    ::time(nullptr)))
    return false;
  if (exchange_.conn) release_upstream(false);
  route_->metrics.cache_results[kStale]->inc();
  serve_cached(rq, cache_.stale, "STALE");
  return true;
}

void Session::serve_cached(const http::RequestHead& req, std::shared_ptr<const cache::Object> obj,
                           std::string_view label) {
  int64_t now = ::time(nullptr);
  int status = obj->status;
  std::string_view reason = obj->reason;
  uint64_t length = obj->body.size(), first = 0, end = length;
  std::string extra;
  bool multipart = false;
  if (cache::answer_not_modified(req, obj->etag, obj->last_modified, obj->times.date_value)) {
    status = 304;
    reason = "Not Modified";
  } else if (status == 200 && !req.header("range").empty() &&
             (req.header("if-range").empty() ||
              cache::if_range_allows(req.header("if-range"), obj->etag, obj->last_modified,
                                     obj->times.date_value))) {
    std::vector<cache::ByteRange> ranges;
    switch (cache::parse_range(req.header("range"), length, ranges)) {
      case cache::RangeKind::kRanges:
        status = 206;
        reason = "Partial Content";
        if (ranges.size() == 1) {
          first = ranges[0].first;
          end = ranges[0].last + 1;
          extra = "Content-Range: " + http::content_range(first, end - 1, length) + "\r\n";
        } else {
          // RFC 9110 section 14.6: several ranges (parse_range has coalesced the overlapping ones and refused
          // abusive sets) as multipart/byteranges, built here because its bytes are this request's alone.
          std::string boundary = multipart_boundary(obj->body, ranges);
          cache_.ranges_body = cache::multipart_byteranges(
              obj->body, ranges, http::field_line_value(obj->headers, "content-type"), boundary);
          multipart = true;
          end = cache_.ranges_body.size();
          extra = "Content-Type: multipart/byteranges; boundary=" + boundary + "\r\n";
        }
        break;
      case cache::RangeKind::kUnsatisfiable:
        status = 416;
        reason = "Range Not Satisfiable";
        first = end = 0;
        extra = "Content-Range: " + http::unsatisfied_content_range(length) + "\r\n";
        break;
      default:
        break;
    }
  }
  // A compressed variant: for a whole 200 to a client that takes its coding (RFC 9110 section 8.4), br before
  // gzip unless the client weighs gzip higher; ranges use the identity body, whose offsets the client asked
  // for.
  const std::string* variant = nullptr;
  std::string_view coding;
  if (status == 200 && !obj->gzip_body.empty()) {
    std::string_view accept = req.header("accept-encoding");
    if (!obj->br_body.empty() && cache::normalized_accept_encoding(accept) == "br") {
      variant = &obj->br_body;
      coding = "br";
    } else if (accepts_gzip(accept)) {
      variant = &obj->gzip_body;
      coding = "gzip";
    }
  }
  bool compressed = variant != nullptr;
  if (variant) end = variant->size();
  client_.close_after = !client_.keep_alive || w_.draining();
  bool body = status != 304 && status != 416 && req.method != http::Method::kHead;
  client_.append_status_line(status, reason);
  if (multipart) {
    append_headers_except(client_.out, obj->headers, "content-type");
  } else if (status != 416) {
    client_.out.append(obj->headers);
  }
  if (!obj->etag.empty() && status != 416) {
    client_.out.append("ETag: ");
    // Another representation needs another tag; a weak one still matches the identity's in If-None-Match.
    if (compressed && obj->etag.rfind("W/", 0) != 0) client_.out.append("W/");
    client_.out.append(obj->etag);
    client_.out.append("\r\n");
  }
  if (obj->compressible && !obj->gzip_body.empty()) {
    if (compressed) {
      client_.out.append("Content-Encoding: ");
      client_.out.append(coding);
      client_.out.append("\r\n");
    }
    if (obj->vary.find("ccept-") == std::string::npos) client_.out.append("Vary: Accept-Encoding\r\n");
  }
  if (status != 304) {
    client_.out.append("Content-Length: ");
    client_.out.append(std::to_string(status == 416 ? 0 : end - first));
    client_.out.append("\r\n");
  }
  client_.out.append(extra);
  client_.out.append("Age: ");
  client_.out.append(std::to_string(cache::current_age(obj->current_times(), now)));
  client_.out.append("\r\nX-Cache: ");
  client_.out.append(label);
  client_.out.append("\r\nVia: 1.1 cumulo\r\n");
  client_.out.append(w_.identity_field());
  client_.append_connection_field();
  client_.out.append("\r\n");
  status_ = status;
  cache_.serve_pos = first;
  cache_.serve_end = body ? end : first;
  cache_.serving_body = multipart ? &cache_.ranges_body : variant ? variant : &obj->body;
  cache_.serving = std::move(obj);
  client_.response_started = true;
  exchange_.request = RequestProgress::kSent;
  phase_ = Phase::kServeCached;
  arm(TimerFor::kBodyIdle, route_->config.timeouts.idle);
}

bool Session::step_serve_cached() {
  if (!client_.out.empty() || cache_.serve_pos < cache_.serve_end) {
    if (!client_.writable) return false;
    size_t before = client_.out.size();
    size_t written = 0;
    if (!write_client(cache_.serving_body->data() + cache_.serve_pos, cache_.serve_end - cache_.serve_pos,
                      written))
      return true;
    cache_.serve_pos += written;
    route_->metrics.cache_bytes->inc(written);
    if (written) arm(TimerFor::kBodyIdle, route_->config.timeouts.idle);
    return written > 0 || client_.out.size() != before;
  }
  cache_.serving.reset();
  if (!cache_.ranges_body.empty()) std::string().swap(cache_.ranges_body);
  finish_cache_response();
  return true;
}

// A response the gateway answered itself (from stored objects or slices) is all sent.
void Session::finish_cache_response() {
  auto elapsed = std::chrono::duration<double>(clock_.update_now() - started_).count();
  route_->metrics.responses[status_ / 100]->inc();
  route_->metrics.latency->observe(elapsed);
  route_->metrics.bytes_out->inc(client_.bytes_sent);
  log_access(status_);
  end_request();
  if (client_.close_after || !client_.keep_alive || client_.eof) {
    phase_ = Phase::kClosing;
  } else {
    enter_idle();
  }
}

void Session::cache_end() {
  if (cache_.mode == CacheMode::kFill && snapshot_ && snapshot_->cache)
    snapshot_->cache->end_fill(cache_.key);
  cache_.stale.reset();
  cache_.capture.reset();
  cache_.mode = CacheMode::kOff;
  cache_.coalesced = false;
  cache_.disk_read = false;
  cache_.from_disk.reset();
  slices_end();
}

}  // namespace cumulo::gateway
