// Cache slices: on a route with cache.slice, every GET and HEAD is answered from stored slices of the
// representation, slice_bytes each at aligned offsets, fetched from the origin with Range requests as they
// are needed (the approach of nginx's slice module and of CDNs for video), so that a seek into a large file
// costs at most one slice from the origin and nothing once the slice is stored.
//
// The first slice needed (the one holding the first byte a single "bytes=N-..." range asks for, else slice 0)
// tells the representation's length (its Content-Range) and its validators; the head is written from it, and
// the body from the slices in order, each looked up and, when missing or stale, fetched on the worker's own
// HTTP client (one fetch per slice at a time across workers: Store::begin_fill). Every slice must carry the
// first one's ETag: when the origin's representation changes in the middle, the response is cut and the
// object's slices are purged.
#include <ctime>

#include "cache/policy.h"
#include "cache/store.h"
#include "gateway/internal/session.h"
#include "gateway/internal/worker.h"
#include "http/client.h"
#include "http/wire/content_range.h"

namespace cumulo::gateway {

namespace {

enum CacheResult { kHit = 0, kMiss = 1 };

// Fields of an answer passed on as the origin sent it that the gateway writes itself.
bool dropped_from_passed(std::string_view name) {
  return http::is_hop_by_hop(name) || http::iequals(name, "content-length") || http::iequals(name, "age") ||
         http::iequals(name, "via") || http::iequals(name, "x-cache");
}

// The object answering a slice request: a stored slice (206, or a 200 small enough to be one slice), or the
// origin's answer to pass on as it is (another status, or a 200 that may not be stored or is larger than a
// slice: it still answers this request). nullptr with `error` set when the exchange failed.
std::shared_ptr<const cache::Object> slice_object(http::ClientResponse resp, uint64_t first,
                                                  const std::string& key, const std::string& request_head,
                                                  const RouteCacheConfig& cfg, int64_t request_time,
                                                  cache::Store& store, std::string& error) {
  if (!resp.ok()) {
    error = resp.error.message;
    return nullptr;
  }
  int64_t now = ::time(nullptr);
  std::optional<cache::ContentRange> range;
  if (resp.status == 206) {
    range = cache::parse_content_range(resp.header("content-range"));
    if (!range || !range->complete_length || range->first != first ||
        range->last - range->first + 1 != resp.body.size()) {
      error = "the origin answered the slice's Range with a Content-Range that does not match it";
      return nullptr;
    }
  }
  if (resp.status == 206 || resp.status == 200) {
    if (auto obj =
            build_cache_object(key, request_head, resp, /*as_part_of_200=*/true, cfg, request_time, now)) {
      obj->slice_total = range ? *range->complete_length : resp.body.size();
      obj->slice_first = range ? range->first : 0;
      obj->body = std::move(resp.body);
      if (range || obj->body.size() <= cfg.slice_bytes) store.insert(obj);
      return obj;
    }
    if (range) {
      error = "the origin's response may not be stored, and a slice route answers only from stored slices";
      return nullptr;
    }
  }
  auto obj = std::make_shared<cache::Object>();
  obj->status = resp.status;
  obj->reason.assign(http::reason_phrase(resp.status));
  for (auto& [name, value] : resp.headers) {
    if (dropped_from_passed(name)) continue;
    if (http::iequals(name, "etag")) {
      obj->etag = value;
      continue;
    }
    obj->headers.append(name).append(": ").append(value).append("\r\n");
  }
  obj->times.response_time = obj->times.request_time = obj->times.date_value = now;
  obj->body = std::move(resp.body);
  obj->slice_total = obj->body.size();
  return obj;
}

}  // namespace

void Session::slices_begin(const http::RequestHead& req) {
  cache_.request.assign(client_.in.data(), req.head_bytes);
  cache_.request_time = ::time(nullptr);
  slices_.probe = 0;
  std::string_view range = req.header("range");
  if (!range.empty() && req.header("if-range").empty()) {
    // A single "first-last" or "first-": start at the slice holding its first byte. A suffix or several
    // ranges need the length first: slice 0 tells it.
    std::vector<cache::ByteRange> r;
    size_t eq = range.find('=');
    std::string_view spec = eq == std::string_view::npos ? std::string_view{} : range.substr(eq + 1);
    while (!spec.empty() && (spec.front() == ' ' || spec.front() == '\t')) spec.remove_prefix(1);
    if (!spec.empty() && spec.front() != '-' &&
        cache::parse_range(range, UINT64_MAX, r) == cache::RangeKind::kRanges && r.size() == 1)
      slices_.probe = r[0].first / route_->config.cache.slice_bytes;
  }
  client_.in.consume(req.head_bytes);
  client_.parser.reset();
  exchange_.request = RequestProgress::kSent;
  phase_ = Phase::kSlices;
  arm(TimerFor::kBodyIdle, route_->config.timeouts.idle);
}

bool Session::step_slices() {
  if (slices_.waiting) return false;
  if (!slices_.head_sent) {
    // Any stored slice tells the length and the fields: the first one, when the wanted one is not stored,
    // saves a fetch for a range that turns out unsatisfiable.
    if (!slices_.object && slices_.probe != 0 && !slice_get(slices_.probe, false)) slice_get(0, false);
    if (!slices_.object) return slice_get(slices_.probe);
    slices_write_head();
    return true;
  }
  const cache::Object* s = slices_.object.get();
  if (cache_.serve_pos < cache_.serve_end &&
      (!s || cache_.serve_pos < s->slice_first || cache_.serve_pos - s->slice_first >= s->body.size()))
    return slice_get(cache_.serve_pos / route_->config.cache.slice_bytes);
  if (!client_.out.empty() || cache_.serve_pos < cache_.serve_end) {
    if (!client_.writable) return false;
    const char* data = nullptr;
    size_t n = 0;
    if (cache_.serve_pos < cache_.serve_end) {
      uint64_t offset = cache_.serve_pos - s->slice_first;
      data = s->body.data() + offset;
      n = static_cast<size_t>(
          std::min<uint64_t>(cache_.serve_end - cache_.serve_pos, s->body.size() - offset));
    }
    size_t before = client_.out.size();
    size_t written = 0;
    if (!write_client(data, n, written)) return true;
    cache_.serve_pos += written;
    if (!slices_.from_origin) route_->metrics.cache_bytes->inc(written);
    if (written) arm(TimerFor::kBodyIdle, route_->config.timeouts.idle);
    return written > 0 || client_.out.size() != before;
  }
  finish_cache_response();
  return true;
}

bool Session::slice_get(uint64_t index, bool fetch) {
  cache::Store& store = *snapshot_->cache;
  const RouteCacheConfig& cfg = route_->config.cache;
  http::RequestHead& rq = w_.scratch_request;
  if (!saved_request(rq)) {
    abort();
    return true;
  }
  std::string key = cache_.key;
  key.push_back(cache::kSliceSeparator);
  key.append(std::to_string(index));
  int64_t now = ::time(nullptr);
  cache::Store::Lookup found;
  if (slices_.disk_index == index + 1) {
    found.object = slices_.from_disk;  // read from disk for this request already: not read again
  } else if (!fetch) {
    found.object = store.lookup(key, rq);  // a probe: memory only, it waits for nothing
  } else {
    found = store.lookup(
        key, rq, w_.loop(),
        [weak = self_.weak(), token = slices_.token + 1, index](std::shared_ptr<const cache::Object> o) {
          if (Session* s = weak.get()) s->slice_loaded(token, index, std::move(o));
        });
    if (found.loading) {  // read on the disk tier's thread; slice_loaded goes on
      ++slices_.token;
      slices_.waiting = true;
      arm(TimerFor::kCacheWait, route_->config.timeouts.first_byte);
      return true;
    }
  }
  if (auto obj = std::move(found.object)) {
    auto fresh =
        cache::freshness(obj->current_times(), obj->cache_control, cache::parse_cache_control(rq), now);
    if (fresh != cache::Freshness::kStale && (!slices_.head_sent || obj->etag == slices_.etag)) {
      slices_.object = std::move(obj);
      slices_.from_origin = false;
      slices_.coalesced = false;
      return true;
    }
  }
  if (!fetch) return false;
  core::WeakOwner<Session> weak = self_.weak();
  bool filler = store.begin_fill(key);
  if (!filler && !slices_.coalesced) {
    // Another request fetches this slice: wait for it rather than fetch it twice.
    uint64_t token = ++slices_.token;
    slices_.waiting = true;
    arm(TimerFor::kCacheWait, route_->config.timeouts.first_byte);
    store.wait_fill(key, w_.loop(), [weak, token] {
      if (Session* s = weak.get()) s->slice_woken(token);
    });
    return false;
  }
  slices_.coalesced = false;
  uint64_t first = index * cfg.slice_bytes;
  // Slices are identity bytes at fixed offsets: no coding of the client's goes along either.
  http::ClientRequest cr = cache_fetch_request(rq, route_->config, /*keep_accept_encoding=*/false);
  cr.headers.emplace_back(
      "Range", "bytes=" + std::to_string(first) + "-" + std::to_string(first + cfg.slice_bytes - 1));
  uint64_t token = ++slices_.token;
  std::shared_ptr<const Snapshot> snapshot = snapshot_;
  const Route* route = route_;
  bool sent = w_.fetch_for_cache(
      snapshot, route, std::move(cr),
      [weak, token, snapshot, route, key, first, filler, request_head = cache_.request,
       request_time = now](http::ClientResponse resp) {
        std::string error;
        auto obj = slice_object(std::move(resp), first, key, request_head, route->config.cache, request_time,
                                *snapshot->cache, error);
        if (filler) snapshot->cache->end_fill(key);
        if (Session* s = weak.get()) s->slice_arrived(token, std::move(obj), std::move(error));
      });
  if (!sent) {
    if (filler) store.end_fill(key);
    if (slices_.head_sent) {
      abort();
    } else {
      respond_error(503, "no healthy target to fetch the slice from");
    }
    return true;
  }
  slices_.waiting = true;
  // The client's own timeout (first_byte) ends the fetch; this only guards against losing its answer.
  arm(TimerFor::kBodyIdle, route_->config.timeouts.first_byte + route_->config.timeouts.idle);
  return false;
}

void Session::slice_woken(uint64_t token) {
  if (phase_ != Phase::kSlices || !slices_.waiting || token != slices_.token) return;
  slices_.waiting = false;
  slices_.coalesced = true;  // look once more; if it is still missing, fetch it alone
  ++slices_.token;
  pump();
}

void Session::slice_loaded(uint64_t token, uint64_t index, std::shared_ptr<const cache::Object> obj) {
  if (phase_ != Phase::kSlices || !slices_.waiting || token != slices_.token) return;
  slices_.waiting = false;
  slices_.disk_index = index + 1;
  slices_.from_disk = std::move(obj);
  pump();
}

void Session::slice_arrived(uint64_t token, std::shared_ptr<const cache::Object> obj, std::string error) {
  if (phase_ != Phase::kSlices || !slices_.waiting || token != slices_.token) return;
  slices_.waiting = false;
  if (!obj) {
    if (slices_.head_sent) {
      abort();  // the head promised bytes that cannot come: cut the response
    } else {
      respond_error(502, "the origin's answer to a slice request failed: " + error);
      pump();
    }
    return;
  }
  if (slices_.head_sent &&
      (obj->status != 200 || obj->etag != slices_.etag || obj->slice_total != slices_.object->slice_total)) {
    // RFC 9110 section 14.3's concern: parts of different representations must not be combined.
    snapshot_->cache->purge(cache_.key, false);
    abort();
    return;
  }
  slices_.object = std::move(obj);
  slices_.from_origin = true;
  slices_.fetched = true;
  pump();
}

void Session::slices_write_head() {
  const cache::Object& o = *slices_.object;
  http::RequestHead& rq = w_.scratch_request;
  if (!saved_request(rq)) {
    abort();
    return;
  }
  int status = o.status;
  std::string_view reason = o.reason;
  uint64_t total = o.slice_total, first = 0, end = total;
  std::string extra;
  bool representation = o.status == 200;
  if (representation && cache::answer_not_modified(rq, o.etag, o.last_modified, o.times.date_value)) {
    status = 304;
    reason = "Not Modified";
  } else if (representation && !rq.header("range").empty() &&
             (rq.header("if-range").empty() ||
              cache::if_range_allows(rq.header("if-range"), o.etag, o.last_modified, o.times.date_value))) {
    std::vector<cache::ByteRange> ranges;
    switch (cache::parse_range(rq.header("range"), total, ranges)) {
      case cache::RangeKind::kRanges:
        // Several ranges are answered whole (RFC 9110 section 14.2 allows it): a slice route serves media,
        // whose players ask for one range at a time.
        if (ranges.size() == 1) {
          status = 206;
          reason = "Partial Content";
          first = ranges[0].first;
          end = ranges[0].last + 1;
          extra = "Content-Range: " + http::content_range(first, end - 1, total) + "\r\n";
        }
        break;
      case cache::RangeKind::kUnsatisfiable:
        status = 416;
        reason = "Range Not Satisfiable";
        first = end = 0;
        extra = "Content-Range: " + http::unsatisfied_content_range(total) + "\r\n";
        break;
      default:
        break;
    }
  }
  client_.close_after = !client_.keep_alive || w_.draining();
  bool body = status != 304 && status != 416 && rq.method != http::Method::kHead;
  client_.append_status_line(status, reason);
  if (status != 416) client_.out.append(o.headers);
  if (!o.etag.empty() && status != 416) {
    client_.out.append("ETag: ");
    client_.out.append(o.etag);
    client_.out.append("\r\n");
  }
  if (status != 304) {
    client_.out.append("Content-Length: ");
    client_.out.append(std::to_string(end - first));
    client_.out.append("\r\n");
  }
  client_.out.append(extra);
  if (representation) {
    client_.out.append("Age: ");
    client_.out.append(std::to_string(cache::current_age(o.current_times(), ::time(nullptr))));
    client_.out.append("\r\n");
  }
  client_.out.append(slices_.fetched ? "X-Cache: MISS\r\n" : "X-Cache: HIT\r\n");
  client_.out.append("Via: 1.1 cumulo\r\n");
  client_.out.append(w_.identity_field());
  client_.append_connection_field();
  client_.out.append("\r\n");
  route_->metrics.cache_results[slices_.fetched ? kMiss : kHit]->inc();
  status_ = status;
  cache_.serve_pos = first;
  cache_.serve_end = body ? end : first;
  slices_.etag = o.etag;
  slices_.head_sent = true;
  client_.response_started = true;
  arm(TimerFor::kBodyIdle, route_->config.timeouts.idle);
}

void Session::slices_end() {
  slices_.object.reset();
  slices_.etag.clear();
  slices_.probe = 0;
  ++slices_.token;
  slices_.waiting = false;
  slices_.coalesced = false;
  slices_.head_sent = false;
  slices_.fetched = false;
  slices_.from_origin = false;
  slices_.disk_index = 0;
  slices_.from_disk.reset();
}

}  // namespace cumulo::gateway
