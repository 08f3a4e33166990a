#include "objstore/internal/s3_api.h"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "core/blocking_pool.h"
#include "core/log.h"
#include "core/text.h"
#include "http/wire/date.h"
#include "http/wire/field_lists.h"
#include "http/wire/h1.h"
#include "objstore/internal/auth.h"
#include "objstore/internal/checksums.h"
#include "objstore/internal/replication.h"
#include "objstore/wire/aws_chunked.h"
#include "objstore/wire/checksum.h"
#include "objstore/wire/sigv4.h"
#include "objstore/wire/xml.h"

namespace cumulo::objstore {

namespace {

constexpr const char* kComponent = "objstore";
constexpr std::string_view kXmlns = "http://s3.amazonaws.com/doc/2006-03-01/";
constexpr std::string_view kXmlDecl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
// Objects (or ranges) up to one frame are read and verified whole before the response starts, so that a
// corrupted one is answered with an error instead of a cut-off body. Larger ones stream frame by frame (no
// per-request buffer of the object's size).
constexpr uint64_t kVerifyBeforeSendBytes = kFrameBytes;
constexpr uint64_t kMaxPartBytes = 5ull << 30;
constexpr size_t kMaxDeleteObjects = 1000;

enum class Op : uint8_t {
  kListBuckets,
  kCreateBucket,
  kDeleteBucket,
  kHeadBucket,
  kGetBucketLocation,
  kGetBucketVersioning,
  kGetAcl,
  kListObjects,
  kListObjectsV2,
  kListUploads,
  kDeleteObjects,
  kPutObject,
  kCopyObject,
  kGetObject,
  kHeadObject,
  kGetObjectAttributes,
  kDeleteObject,
  kCreateUpload,
  kUploadPart,
  kCompleteUpload,
  kAbortUpload,
  kListParts,
  kNotImplemented,
  kMethodNotAllowed,
};

using Params = std::vector<std::pair<std::string, std::string>>;

struct Route {
  std::string bucket;
  std::string key;
  Op op = Op::kNotImplemented;
  Params params;
  bool has(std::string_view name) const {
    for (const auto& [k, v] : params)
      if (k == name) return true;
    return false;
  }
  std::string_view param(std::string_view name) const {
    for (const auto& [k, v] : params)
      if (k == name) return v;
    return {};
  }
};

// Query values as clients send them: percent-encoded, '+' for a space (form encoding).
bool decode_query(std::string_view q, Params& out) {
  std::string name, value;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view raw_value = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (!percent_decode(pair.substr(0, eq), name) || !percent_decode(raw_value, value, core::PlusIs::kSpace))
      return false;
    out.emplace_back(name, value);
  }
  return true;
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    if (n == 2 && c < 0xC2) return false;  // overlong
    i += n;
  }
  return true;
}

S3Error check_key(std::string_view key) {
  if (key.size() > 1024) return S3Error::kKeyTooLong;
  if (key.find('\0') != std::string_view::npos || !valid_utf8(key)) return S3Error::kInvalidObjectName;
  // A ".." segment would mean something else to every tool that maps keys to paths (sync to a directory).
  size_t start = 0;
  for (;;) {
    size_t slash = key.find('/', start);
    std::string_view seg =
        key.substr(start, slash == std::string_view::npos ? key.size() - start : slash - start);
    if (seg == "..") return S3Error::kInvalidObjectName;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return S3Error::kNone;
}

std::string iso8601(int64_t ms) {
  time_t t = static_cast<time_t>(ms / 1000);
  tm tmv{};
  gmtime_r(&t, &tmv);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tmv.tm_year + 1900, tmv.tm_mon + 1,
                tmv.tm_mday, tmv.tm_hour, tmv.tm_min, tmv.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

std::string http_date(int64_t ms) {
  return http::http_date(ms / 1000);
}

std::optional<std::string> hex_decode(std::string_view in) {
  if (in.size() % 2) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < in.size(); i += 2) {
    auto hv = [](char c) {
      return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    int hi = hv(in[i]), lo = hv(in[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

// Builds XML documents; elem() escapes, the rest is structure.
class Xml {
 public:
  Xml() { s_.append(kXmlDecl); }
  Xml& open(std::string_view name, bool ns = false) {
    s_.append("<").append(name);
    if (ns) s_.append(" xmlns=\"").append(kXmlns).append("\"");
    s_.append(">");
    return *this;
  }
  Xml& close(std::string_view name) {
    s_.append("</").append(name).append(">");
    return *this;
  }
  Xml& elem(std::string_view name, std::string_view value) {
    open(name);
    xml_escape_to(s_, value);
    return close(name);
  }
  Xml& elem(std::string_view name, uint64_t value) { return elem(name, std::to_string(value)); }
  Xml& elem_bool(std::string_view name, bool v) { return elem(name, v ? "true" : "false"); }
  std::string take() { return std::move(s_); }

 private:
  std::string s_;
};

std::string quoted(std::string_view etag) {
  std::string s = "\"";
  s.append(etag).append("\"");
  return s;
}

std::string unquote(std::string_view s) {
  s = std::string_view(s);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (s.substr(0, 2) == "W/") s.remove_prefix(2);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return std::string(s);
}

bool etag_list_matches(std::string_view list, std::string_view etag) {
  return !http::for_each_list_element(list, [etag](std::string_view item) {
    std::string tag = unquote(item);
    return tag != "*" && tag != etag;
  });
}

// The headers stored with an object, as the request gave them.
void collect_meta(const http::Request& r, std::string& content_type, MetaHeaders& out) {
  content_type = std::string(r.header("content-type"));
  if (content_type.empty()) content_type = "binary/octet-stream";
  out.clear();
  for (const auto& [name, value] : r.headers) {
    std::string n = core::to_lower(name);
    if (n == "cache-control" || n == "content-disposition" || n == "content-language" || n == "expires" ||
        n == "x-amz-website-redirect-location") {
      out.emplace_back(n, value);
    } else if (n == "content-encoding") {
      // aws-chunked describes the upload, not the object (S3 API: "Content-Encoding: aws-chunked").
      std::string kept;
      http::for_each_list_element(value, [&](std::string_view coding) {
        if (!coding.empty() && !core::iequals(coding, "aws-chunked")) {
          if (!kept.empty()) kept += ",";
          kept.append(coding);
        }
        return true;
      });
      if (!kept.empty()) out.emplace_back(n, kept);
    } else if (n.rfind("x-amz-meta-", 0) == 0) {
      out.emplace_back(n, value);
    }
  }
}

std::string display_name(std::string_view n) {
  static constexpr std::pair<std::string_view, std::string_view> kNames[] = {
      {"cache-control", "Cache-Control"},
      {"content-disposition", "Content-Disposition"},
      {"content-language", "Content-Language"},
      {"expires", "Expires"},
      {"content-encoding", "Content-Encoding"},
      {"x-amz-website-redirect-location", "x-amz-website-redirect-location"}};
  for (const auto& [k, v] : kNames)
    if (k == n) return std::string(v);
  return std::string(n);
}

// ---------------------------------------------------------------------------------------------------------
// The per-request state, carried from the head to the handler as the request's body sink.

class Call final : public http::BodySink {
 public:
  Route route;
  AuthResult auth;
  S3Error error = S3Error::kNone;
  std::string detail;
  std::string request_id;
  bool object_data = false;
  std::string gathered;
  uint64_t max_gather = 0;
  std::unique_ptr<DataWriter> writer;
  std::unique_ptr<AwsChunkedDecoder> chunked;
  bool chunked_done = false;
  EVP_MD_CTX* sha = nullptr;
  int64_t decoded_length = -1;
  std::optional<UploadInfo> upload;
  int part_number = 0;
  http::Responder responder;              // kept by handlers that answer later
  std::unique_ptr<Checksummer> checksum;  // x-amz-checksum-*: computed while the body streams
  std::string expected_checksum;          // from the header; empty when it comes as a trailer
  bool checksum_in_trailer = false;

  ~Call() override {
    if (sha) EVP_MD_CTX_free(sha);
  }

  // What a handler reads of the call, moved into a copy that outlives the connection (work on the I/O
  // pool). The body's hash (sha) stays: it is checked before any handler runs.
  void take_from(Call& o) {
    route = std::move(o.route);
    auth = o.auth;
    error = o.error;
    detail = std::move(o.detail);
    request_id = o.request_id;
    object_data = o.object_data;
    gathered = std::move(o.gathered);
    writer = std::move(o.writer);
    chunked = std::move(o.chunked);
    chunked_done = o.chunked_done;
    decoded_length = o.decoded_length;
    upload = std::move(o.upload);
    part_number = o.part_number;
    responder = o.responder;
    checksum = std::move(o.checksum);
    expected_checksum = std::move(o.expected_checksum);
    checksum_in_trailer = o.checksum_in_trailer;
  }

  void fail(S3Error e, std::string d = {}) {
    if (error == S3Error::kNone) {
      error = e;
      detail = std::move(d);
    }
    writer.reset();  // the partial upload goes at once
    chunked.reset();
  }

  // http::BodySink
  void data(std::string_view bytes) override {
    if (error != S3Error::kNone) return;
    if (!object_data) {
      if (gathered.size() + bytes.size() > max_gather) return fail(S3Error::kMaxMessageLengthExceeded);
      gathered.append(bytes);
      return;
    }
    if (!chunked) return store(bytes);
    while (!bytes.empty() && error == S3Error::kNone) {
      if (chunked_done) return fail(S3Error::kIncompleteBody, "Data after the final aws-chunked chunk.");
      size_t used = 0;
      std::string_view payload;
      ChunkedStatus st = chunked->decode(bytes, used, payload);
      if (!payload.empty()) store(payload);
      bytes.remove_prefix(used);
      switch (st) {
        case ChunkedStatus::kNeedMore:
          if (used == 0) return fail(S3Error::kIncompleteBody, "aws-chunked decoding made no progress.");
          break;
        case ChunkedStatus::kComplete:
          chunked_done = true;
          break;
        case ChunkedStatus::kSignatureMismatch:
          return fail(S3Error::kSignatureDoesNotMatch, chunked->error_reason());
        case ChunkedStatus::kMalformed:
        case ChunkedStatus::kTooLarge:
          return fail(S3Error::kIncompleteBody, chunked->error_reason());
      }
    }
  }

 private:
  void store(std::string_view bytes) {
    if (sha) EVP_DigestUpdate(sha, bytes.data(), bytes.size());
    if (checksum) checksum->update(bytes);
    if (S3Error e = writer->write(bytes); e != S3Error::kNone) fail(e);
  }
};

Op classify(const http::Request& r, const Route& rt) {
  const std::string& m = r.method;
  if (rt.bucket.empty()) return m == "GET" ? Op::kListBuckets : Op::kMethodNotAllowed;
  if (rt.key.empty()) {
    if (m == "PUT") {
      if (rt.has("acl") || rt.has("policy") || rt.has("cors") || rt.has("lifecycle") ||
          rt.has("versioning") || rt.has("tagging") || rt.has("website") || rt.has("encryption"))
        return Op::kNotImplemented;
      return Op::kCreateBucket;
    }
    if (m == "DELETE") return rt.params.empty() ? Op::kDeleteBucket : Op::kNotImplemented;
    if (m == "HEAD") return Op::kHeadBucket;
    if (m == "POST") return rt.has("delete") ? Op::kDeleteObjects : Op::kNotImplemented;
    if (m == "GET") {
      if (rt.has("location")) return Op::kGetBucketLocation;
      if (rt.has("versioning")) return Op::kGetBucketVersioning;
      if (rt.has("acl")) return Op::kGetAcl;
      if (rt.has("uploads")) return Op::kListUploads;
      for (std::string_view sub : {"policy", "cors", "lifecycle", "tagging", "website", "encryption",
                                   "logging", "notification", "replication", "object-lock", "versions",
                                   "accelerate", "requestPayment", "ownershipControls", "publicAccessBlock"})
        if (rt.has(sub)) return Op::kNotImplemented;
      return rt.param("list-type") == "2" ? Op::kListObjectsV2 : Op::kListObjects;
    }
    return Op::kMethodNotAllowed;
  }
  for (std::string_view sub : {"tagging", "retention", "legal-hold", "torrent", "restore", "select"})
    if (rt.has(sub)) return Op::kNotImplemented;
  if (m == "GET" && rt.has("acl")) return Op::kGetAcl;
  if (rt.has("acl")) return Op::kNotImplemented;
  if (m == "PUT") {
    if (rt.has("uploadId")) {
      if (!r.header("x-amz-copy-source").empty()) return Op::kNotImplemented;  // UploadPartCopy
      return Op::kUploadPart;
    }
    return r.header("x-amz-copy-source").empty() ? Op::kPutObject : Op::kCopyObject;
  }
  if (m == "GET" && rt.has("attributes")) return Op::kGetObjectAttributes;
  if (m == "GET") return rt.has("uploadId") ? Op::kListParts : Op::kGetObject;
  if (m == "HEAD") return Op::kHeadObject;
  if (m == "DELETE") return rt.has("uploadId") ? Op::kAbortUpload : Op::kDeleteObject;
  if (m == "POST") {
    if (rt.has("uploads")) return Op::kCreateUpload;
    if (rt.has("uploadId")) return Op::kCompleteUpload;
    return Op::kNotImplemented;
  }
  return Op::kMethodNotAllowed;
}

// The operations whose changes travel to the other zones (and wait for them with ack: all).
bool replicated_op(Op op) {
  switch (op) {
    case Op::kCreateBucket:
    case Op::kDeleteBucket:
    case Op::kDeleteObjects:
    case Op::kPutObject:
    case Op::kCopyObject:
    case Op::kDeleteObject:
    case Op::kCompleteUpload:
      return true;
    default:
      return false;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------

struct S3Api::Impl {
  Impl(const S3Config& c, Storage& s, S3Api& o, core::BlockingPool* pool)
      : config(c), storage(s), owner(o), io(pool) {}

  const S3Config& config;
  Storage& storage;
  S3Api& owner;
  core::BlockingPool* io;  // nullptr: blocking work runs inline
  uint64_t next_request_id = 1;

  // A handler's request, detached from its connection: the server frees the Call and the Request when the
  // client goes, while work on the I/O pool may still be running for them.
  struct Detached {
    Call call;
    http::Request req;
  };

  // Runs handler(call, request) on the I/O pool and sends its answer from this loop; the responder is a no-op
  // by then if the client has gone. Without a pool, inline. The handler touches only what it is given, the
  // storage (thread-safe) and the configuration (read-only).
  template <typename Fn>
  std::optional<http::Response> off_loop(Call& c, http::Request& req, Fn handler) {
    if (!io) return handler(c, req);
    auto d = std::make_shared<Detached>();
    d->call.take_from(c);
    d->req.method = req.method;
    d->req.target = req.target;
    d->req.path = req.path;
    d->req.query = req.query;
    d->req.headers = req.headers;
    d->req.peer = req.peer;
    io->submit(
        *core::EventLoop::current(), [d, handler]() mutable { return handler(d->call, d->req); },
        [respond = d->call.responder](http::Response r) { respond(std::move(r)); });
    return std::nullopt;
  }

  bool parse_route(const http::Request& r, Route& rt, S3Error& err) {
    std::string path;
    if (!percent_decode(r.path, path) || path.empty() || path[0] != '/') {
      err = S3Error::kInvalidRequest;
      return false;
    }
    if (!decode_query(r.query, rt.params)) {
      err = S3Error::kInvalidRequest;
      return false;
    }
    std::string_view host = r.header("host");
    if (!host.empty() && host.front() != '[')
      host = host.substr(0, host.rfind(':') == std::string_view::npos ? host.size() : host.rfind(':'));
    std::string h = core::to_lower(host);
    for (const auto& d : config.domains) {
      if (h.size() > d.size() + 1 && h.compare(h.size() - d.size(), d.size(), d) == 0 &&
          h[h.size() - d.size() - 1] == '.') {
        rt.bucket = h.substr(0, h.size() - d.size() - 1);
        rt.key = path.substr(1);
        return true;
      }
    }
    std::string_view rest = std::string_view(path).substr(1);
    size_t slash = rest.find('/');
    rt.bucket = std::string(rest.substr(0, slash));
    rt.key = slash == std::string_view::npos ? std::string() : std::string(rest.substr(slash + 1));
    return true;
  }

  // Whether the caller may run the operation; looks the bucket up.
  S3Error authorize(Call& c) {
    const Route& rt = c.route;
    if (c.auth.error != S3Error::kNone) return c.auth.error;
    if (rt.op == Op::kNotImplemented) return S3Error::kNotImplemented;
    if (rt.op == Op::kMethodNotAllowed) return S3Error::kMethodNotAllowed;
    if (rt.op == Op::kListBuckets) return c.auth.user ? S3Error::kNone : S3Error::kAccessDenied;
    if (!valid_bucket_name(rt.bucket)) {
      // Names of existing buckets are valid, so a bad one can only be a missing bucket, except on creation.
      return rt.op == Op::kCreateBucket ? S3Error::kInvalidBucketName : S3Error::kNoSuchBucket;
    }
    if (!rt.key.empty()) {
      if (S3Error e = check_key(rt.key); e != S3Error::kNone) return e;
    }
    if (!c.auth.user) {
      // Anonymous callers may only read objects of buckets marked public (static sites).
      const S3BucketConfig* bc = config.bucket_config(rt.bucket);
      if (!(bc && bc->is_public && (rt.op == Op::kGetObject || rt.op == Op::kHeadObject)))
        return S3Error::kAccessDenied;
      StorageResult<std::optional<BucketInfo>> b = storage.bucket(rt.bucket);
      if (!b) return b.error();
      return *b ? S3Error::kNone : S3Error::kNoSuchBucket;
    }
    if (rt.op == Op::kCreateBucket) return S3Error::kNone;
    StorageResult<std::optional<BucketInfo>> b = storage.bucket(rt.bucket);
    if (!b) return b.error();
    if (!*b) return S3Error::kNoSuchBucket;
    if ((*b)->owner != c.auth.user->name) return S3Error::kAccessDenied;
    return S3Error::kNone;
  }

  std::unique_ptr<http::BodySink> begin(const http::Request& head) {
    auto c = std::make_unique<Call>();
    // 16 upper-case hex digits, as S3's request ids look; the first four name the worker.
    c->request_id.assign(16, '0');
    for (uint64_t v = next_request_id++, i = 16; i-- > 0 && v; v >>= 4)
      c->request_id[i] = "0123456789ABCDEF"[v & 15];
    c->max_gather = config.max_xml_bytes;
    S3Error err = S3Error::kNone;
    if (!parse_route(head, c->route, err)) {
      c->fail(err, "Bad percent-encoding in the request target.");
      return c;
    }
    c->route.op = classify(head, c->route);
    c->auth = authenticate(head, config, owner.clock());
    if (S3Error e = authorize(*c); e != S3Error::kNone) {
      c->fail(e, c->auth.detail);
      return c;
    }
    if (c->route.op == Op::kPutObject || c->route.op == Op::kUploadPart) begin_object_data(*c, head);
    return c;
  }

  void begin_object_data(Call& c, const http::Request& head) {
    uint64_t limit = config.max_object_bytes;
    if (c.route.op == Op::kUploadPart) {
      limit = std::min(limit, kMaxPartBytes);
      int n = 0;
      std::string_view pn = c.route.param("partNumber");
      auto [p, ec] = std::from_chars(pn.data(), pn.data() + pn.size(), n);
      if (ec != std::errc() || p != pn.data() + pn.size() || n < 1 || n > 10000)
        return c.fail(S3Error::kInvalidArgument, "Part number must be an integer between 1 and 10000.");
      c.part_number = n;
      StorageResult<std::optional<UploadInfo>> up = storage.upload(c.route.param("uploadId"));
      if (!up) return c.fail(up.error());
      c.upload = std::move(up).value();
      if (!c.upload || c.upload->bucket != c.route.bucket || c.upload->key != c.route.key)
        return c.fail(S3Error::kNoSuchUpload);
    }
    auto length_of = [](std::string_view v) -> int64_t {
      uint64_t n = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      return (ec != std::errc() || p != v.data() + v.size() || n > (1ull << 62)) ? -2
                                                                                 : static_cast<int64_t>(n);
    };
    if (c.auth.payload == PayloadMode::kStreaming) {
      std::string_view d = head.header("x-amz-decoded-content-length");
      if (d.empty()) return c.fail(S3Error::kMissingContentLength, "Missing x-amz-decoded-content-length.");
      c.decoded_length = length_of(d);
      if (c.decoded_length < 0) return c.fail(S3Error::kInvalidArgument, "Bad x-amz-decoded-content-length.");
      c.chunked = std::make_unique<AwsChunkedDecoder>(c.auth.chunk_signing, c.auth.trailer);
    }
    int64_t declared = c.decoded_length;
    if (declared < 0) {
      std::string_view cl = head.header("content-length");
      if (!cl.empty()) declared = length_of(cl);
    }
    if (declared > 0 && static_cast<uint64_t>(declared) > limit) return c.fail(S3Error::kEntityTooLarge);
    if (c.auth.payload == PayloadMode::kSha256) {
      c.sha = EVP_MD_CTX_new();
      EVP_DigestInit_ex(c.sha, EVP_sha256(), nullptr);
    }
    // Flexible checksums: the value in a header, or announced by x-amz-trailer and sent after the body.
    for (const auto& [name, value] : head.headers) {
      if (auto alg = checksum_from_header(name)) {
        if (c.checksum) return c.fail(S3Error::kInvalidRequest, "Expecting a single x-amz-checksum- header.");
        c.checksum = std::make_unique<Checksummer>(*alg);
        c.expected_checksum = value;
      }
    }
    if (auto t = head.header("x-amz-trailer"); !t.empty() && !c.checksum) {
      auto alg = checksum_from_header(t);
      if (!alg || !c.chunked)
        return c.fail(S3Error::kInvalidRequest,
                      "x-amz-trailer must name an x-amz-checksum- "
                      "header of an aws-chunked body.");
      c.checksum = std::make_unique<Checksummer>(*alg);
      c.checksum_in_trailer = true;
    }
    if (auto sdk = head.header("x-amz-sdk-checksum-algorithm"); !sdk.empty() && !c.checksum) {
      auto alg = checksum_from_name(sdk);
      if (!alg) return c.fail(S3Error::kInvalidRequest, "Unknown x-amz-sdk-checksum-algorithm.");
      c.checksum = std::make_unique<Checksummer>(*alg);  // computed and stored; nothing to compare with
    }
    if (c.upload) {
      // An upload created with x-amz-checksum-algorithm: each part carries that checksum, computed here when
      // the part came without one.
      if (auto declared = declared_checksum(c.upload->headers).algorithm) {
        if (c.checksum && c.checksum->algorithm() != *declared)
          return c.fail(S3Error::kInvalidRequest, "Checksum type mismatch: the upload was created with " +
                                                      std::string(checksum_name(*declared)) + ".");
        if (!c.checksum) c.checksum = std::make_unique<Checksummer>(*declared);
      }
    }
    StorageResult<std::unique_ptr<DataWriter>> writer = storage.begin_write();
    if (!writer) return c.fail(writer.error());
    c.writer = std::move(writer).value();
    c.object_data = true;
  }

  // Compares the computed flexible checksum with the one the client sent. kNone when there is none.
  S3Error check_checksum(Call& c, std::string& computed) {
    if (!c.checksum) return S3Error::kNone;
    computed = c.checksum->base64();
    std::string expected = c.expected_checksum;
    if (c.checksum_in_trailer) {
      std::string_view name = checksum_header(c.checksum->algorithm());
      for (const auto& [k, v] : c.chunked->trailers())
        if (k == name) expected = v;
      if (expected.empty()) return S3Error::kInvalidRequest;
    }
    if (!expected.empty() && expected != computed) return S3Error::kBadDigest;
    return S3Error::kNone;
  }

  // -------------------------------------------------------------------------------------------------------
  // responses

  http::Response base(int status, const Call& c) {
    http::Response r;
    r.status = status;
    r.headers.reserve(12);  // an object's GET answers about ten
    r.headers.emplace_back("x-amz-request-id", c.request_id);
    r.headers.emplace_back("Server", "cumulo");
    return r;
  }

  http::Response xml(const Call& c, std::string body, int status = 200) {
    http::Response r = base(status, c);
    r.headers.emplace_back("Content-Type", "application/xml");
    r.body = std::move(body);
    return r;
  }

  http::Response error(const Call& c, S3Error e, std::string_view detail = {}) {
    const S3ErrorInfo& info = s3_error_info(e);
    std::string resource = "/" + c.route.bucket;
    if (!c.route.key.empty()) resource += "/" + c.route.key;
    http::Response r = xml(c, s3_error_xml(e, resource, c.request_id, detail), info.http_status);
    if (info.http_status >= 500)
      core::log_warn(
          kComponent, "request failed",
          {{"code", info.code}, {"bucket", c.route.bucket}, {"key", c.route.key}, {"detail", detail}});
    return r;
  }

  http::Response empty(const Call& c, int status) { return base(status, c); }

  // -------------------------------------------------------------------------------------------------------

  void handle(http::Request& req, http::Responder respond) {
    auto* c = dynamic_cast<Call*>(req.body_sink);
    if (!c) {
      respond(http::Response::text(500, "internal error: no request state\n"));
      return;
    }
    if (c->error != S3Error::kNone) {
      respond(error(*c, c->error, c->detail));
      return;
    }
    c->responder = respond;
    if (std::optional<http::Response> r = dispatch(*c, req)) respond(std::move(*r));
  }

  std::optional<http::Response> dispatch(Call& c, http::Request& req) {
    switch (c.route.op) {
      // Index scans and synchronous commits (each waits for a WAL fsync, and for SQLite's write lock while
      // another thread writes) run on the I/O pool.
      case Op::kListBuckets:
        return off_loop(c, req, [this](Call& d, http::Request&) { return list_buckets(d); });
      case Op::kCreateBucket:
        return off_loop(c, req, [this](Call& d, http::Request&) { return create_bucket(d); });
      case Op::kDeleteBucket:
        return off_loop(c, req, [this](Call& d, http::Request&) {
          S3Error e = storage.delete_bucket(d.route.bucket);
          return e == S3Error::kNone ? empty(d, 204) : error(d, e);
        });
      case Op::kHeadBucket:
        return empty(c, 200);
      case Op::kGetBucketLocation: {
        Xml x;
        x.open("LocationConstraint", true);
        std::string body = x.take();
        xml_escape_to(body, config.region);
        body += "</LocationConstraint>";
        return xml(c, std::move(body));
      }
      case Op::kGetBucketVersioning: {
        Xml x;
        x.open("VersioningConfiguration", true).close("VersioningConfiguration");
        return xml(c, x.take());
      }
      case Op::kGetAcl:
        return get_acl(c);
      case Op::kListObjects:
      case Op::kListObjectsV2:
        return off_loop(c, req, [this, v2 = c.route.op == Op::kListObjectsV2](Call& d, http::Request&) {
          return list_objects(d, v2);
        });
      case Op::kListUploads:
        return off_loop(c, req, [this](Call& d, http::Request&) { return list_uploads(d); });
      case Op::kDeleteObjects:
        return off_loop(c, req, [this](Call& d, http::Request&) { return delete_objects(d); });
      case Op::kPutObject:
      case Op::kUploadPart:
        return put_object(c, req);
      case Op::kCopyObject:
        return off_loop(c, req, [this](Call& d, http::Request& r) { return copy_object(d, r); });
      case Op::kGetObject:
        return get_object(c, req, false);
      case Op::kHeadObject:
        return get_object(c, req, true);
      case Op::kGetObjectAttributes:
        return get_object_attributes(c, req);
      case Op::kDeleteObject:
        return off_loop(c, req, [this](Call& d, http::Request&) {
          S3Error e = storage.delete_object(d.route.bucket, d.route.key);
          return e == S3Error::kNone ? empty(d, 204) : error(d, e);
        });
      case Op::kCreateUpload:
        return off_loop(c, req, [this](Call& d, http::Request& r) { return create_upload(d, r); });
      case Op::kCompleteUpload:
        return off_loop(c, req, [this](Call& d, http::Request& r) { return complete_upload(d, r); });
      case Op::kAbortUpload:
        return off_loop(c, req, [this](Call& d, http::Request&) {
          StorageResult<std::optional<UploadInfo>> found = storage.upload(d.route.param("uploadId"));
          if (!found) return error(d, found.error());
          const std::optional<UploadInfo>& up = *found;
          if (!up || up->bucket != d.route.bucket || up->key != d.route.key)
            return error(d, S3Error::kNoSuchUpload);
          S3Error e = storage.abort_upload(up->upload_id);
          return e == S3Error::kNone ? empty(d, 204) : error(d, e);
        });
      case Op::kListParts:
        return off_loop(c, req, [this](Call& d, http::Request&) { return list_parts(d); });
      case Op::kNotImplemented:
        return error(c, S3Error::kNotImplemented);
      case Op::kMethodNotAllowed:
        return error(c, S3Error::kMethodNotAllowed);
    }
    return error(c, S3Error::kNotImplemented);
  }

  http::Response list_buckets(Call& c) {
    Xml x;
    x.open("ListAllMyBucketsResult", true);
    x.open("Owner").elem("ID", c.auth.user->name).elem("DisplayName", c.auth.user->name).close("Owner");
    StorageResult<std::vector<BucketInfo>> buckets = storage.buckets();
    if (!buckets) return error(c, buckets.error());
    x.open("Buckets");
    for (const auto& b : *buckets) {
      if (b.owner != c.auth.user->name) continue;
      x.open("Bucket").elem("Name", b.name).elem("CreationDate", iso8601(b.created_ms)).close("Bucket");
    }
    x.close("Buckets").close("ListAllMyBucketsResult");
    return xml(c, x.take());
  }

  http::Response create_bucket(Call& c) {
    if (!c.gathered.empty()) {
      XmlElement root;
      XmlError err;
      if (!parse_xml(c.gathered, root, err) || root.name != "CreateBucketConfiguration")
        return error(c, S3Error::kMalformedXML);
    }
    S3Error e = storage.create_bucket(c.route.bucket, c.auth.user->name);
    if (e != S3Error::kNone) return error(c, e);
    http::Response r = empty(c, 200);
    r.headers.emplace_back("Location", "/" + c.route.bucket);
    return r;
  }

  http::Response get_acl(Call& c) {
    if (!c.route.key.empty()) {
      StorageResult<std::optional<ObjectInfo>> o = storage.head(c.route.bucket, c.route.key);
      if (!o) return error(c, o.error());
      if (!*o) return error(c, S3Error::kNoSuchKey);
    }
    const std::string& id = c.auth.user->name;
    Xml x;
    x.open("AccessControlPolicy", true);
    x.open("Owner").elem("ID", id).elem("DisplayName", id).close("Owner");
    std::string body = x.take();
    body +=
        "<AccessControlList><Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
        "xsi:type=\"CanonicalUser\"><ID>";
    xml_escape_to(body, id);
    body += "</ID><DisplayName>";
    xml_escape_to(body, id);
    body +=
        "</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant></AccessControlList>"
        "</AccessControlPolicy>";
    return xml(c, std::move(body));
  }

  bool parse_max(const Call& c, std::string_view name, size_t def, size_t cap, size_t& out) {
    out = def;
    if (!c.route.has(name)) return true;
    std::string_view v = c.route.param(name);
    int64_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size() || n < 0) return false;
    out = std::min<size_t>(static_cast<size_t>(n), cap);
    return true;
  }

  http::Response list_objects(Call& c, bool v2) {
    const Route& rt = c.route;
    std::string prefix(rt.param("prefix")), delimiter(rt.param("delimiter"));
    bool url = rt.param("encoding-type") == "url";
    if (rt.has("encoding-type") && !url)
      return error(c, S3Error::kInvalidArgument, "encoding-type must be url.");
    size_t max_keys = 1000;
    if (!parse_max(c, "max-keys", 1000, 1000, max_keys))
      return error(c, S3Error::kInvalidArgument, "max-keys must be a non-negative integer.");
    std::string after;
    std::string token(rt.param("continuation-token"));
    if (v2) {
      if (rt.has("continuation-token")) {
        auto decoded = hex_decode(token);
        if (!decoded || decoded->empty())
          return error(c, S3Error::kInvalidArgument, "The continuation token provided is incorrect.");
        after = *decoded;
      } else {
        after = std::string(rt.param("start-after"));
      }
    } else {
      after = std::string(rt.param("marker"));
    }
    StorageResult<ListResult> listed = storage.list(rt.bucket, prefix, delimiter, after, max_keys);
    if (!listed) return error(c, listed.error());
    const ListResult& res = *listed;
    auto enc = [url](std::string_view s) { return url ? uri_encode(s, false) : std::string(s); };
    Xml x;
    x.open("ListBucketResult", true);
    x.elem("Name", rt.bucket).elem("Prefix", enc(prefix));
    if (v2) {
      if (rt.has("continuation-token")) x.elem("ContinuationToken", token);
      if (rt.has("start-after")) x.elem("StartAfter", enc(rt.param("start-after")));
      x.elem("KeyCount", res.objects.size() + res.prefixes.size());
    } else {
      x.elem("Marker", enc(after));
    }
    x.elem("MaxKeys", max_keys);
    if (!delimiter.empty()) x.elem("Delimiter", enc(delimiter));
    if (url) x.elem("EncodingType", "url");
    x.elem_bool("IsTruncated", res.truncated);
    if (res.truncated) {
      if (v2)
        x.elem("NextContinuationToken",
               hex_encode(reinterpret_cast<const uint8_t*>(res.last.data()), res.last.size()));
      else
        x.elem("NextMarker", enc(res.last));
    }
    bool owner = !v2 || rt.param("fetch-owner") == "true";
    for (const auto& o : res.objects) {
      x.open("Contents").elem("Key", enc(o.key)).elem("LastModified", iso8601(o.mtime_ms));
      x.elem("ETag", quoted(o.etag)).elem("Size", o.size);
      if (owner)
        x.open("Owner").elem("ID", c.auth.user->name).elem("DisplayName", c.auth.user->name).close("Owner");
      x.elem("StorageClass", "STANDARD").close("Contents");
    }
    for (const auto& p : res.prefixes)
      x.open("CommonPrefixes").elem("Prefix", enc(p)).close("CommonPrefixes");
    x.close("ListBucketResult");
    return xml(c, x.take());
  }

  http::Response list_uploads(Call& c) {
    size_t max = 1000;
    if (!parse_max(c, "max-uploads", 1000, 1000, max))
      return error(c, S3Error::kInvalidArgument, "max-uploads must be a non-negative integer.");
    std::string prefix(c.route.param("prefix"));
    StorageResult<UploadList> listed = storage.uploads(c.route.bucket, prefix, max);
    if (!listed) return error(c, listed.error());
    const std::vector<UploadInfo>& ups = listed->uploads;
    bool truncated = listed->truncated;
    Xml x;
    x.open("ListMultipartUploadsResult", true);
    x.elem("Bucket", c.route.bucket).elem("KeyMarker", "").elem("UploadIdMarker", "");
    x.elem("NextKeyMarker", ups.empty() ? "" : ups.back().key);
    x.elem("NextUploadIdMarker", ups.empty() ? "" : ups.back().upload_id);
    x.elem("Prefix", prefix).elem("MaxUploads", max).elem_bool("IsTruncated", truncated);
    for (const auto& u : ups) {
      x.open("Upload").elem("Key", u.key).elem("UploadId", u.upload_id);
      x.open("Initiator")
          .elem("ID", c.auth.user->name)
          .elem("DisplayName", c.auth.user->name)
          .close("Initiator");
      x.open("Owner").elem("ID", c.auth.user->name).elem("DisplayName", c.auth.user->name).close("Owner");
      x.elem("StorageClass", "STANDARD").elem("Initiated", iso8601(u.initiated_ms)).close("Upload");
    }
    x.close("ListMultipartUploadsResult");
    return xml(c, x.take());
  }

  http::Response delete_objects(Call& c) {
    XmlElement root;
    XmlError err;
    if (!parse_xml(c.gathered, root, err) || root.name != "Delete") return error(c, S3Error::kMalformedXML);
    bool quiet = root.child_text("Quiet") == "true";
    std::vector<std::string> keys;
    for (const auto& ch : root.children) {
      if (ch.name == "Quiet") continue;
      if (ch.name != "Object") return error(c, S3Error::kMalformedXML);
      const XmlElement* k = ch.child("Key");
      if (!k) return error(c, S3Error::kMalformedXML);
      keys.push_back(k->text);
    }
    if (keys.empty() || keys.size() > kMaxDeleteObjects) return error(c, S3Error::kMalformedXML);
    Xml x;
    x.open("DeleteResult", true);
    for (const auto& k : keys) {
      S3Error e = k.empty() ? S3Error::kInvalidObjectName : check_key(k);
      if (e == S3Error::kNone) e = storage.delete_object(c.route.bucket, k);
      if (e == S3Error::kNone) {
        if (!quiet) x.open("Deleted").elem("Key", k).close("Deleted");
      } else {
        const S3ErrorInfo& info = s3_error_info(e);
        x.open("Error").elem("Key", k).elem("Code", info.code).elem("Message", info.message).close("Error");
      }
    }
    x.close("DeleteResult");
    return xml(c, x.take());
  }

  // PutObject and UploadPart: the body has streamed into c.writer; check it, then commit it.
  // nullopt: the reply comes later (an asynchronous commit).
  std::optional<http::Response> put_object(Call& c, http::Request& req) {
    if (!c.writer) return error(c, S3Error::kInternalError);
    if (c.chunked) {
      if (!c.chunked_done) return error(c, S3Error::kIncompleteBody, "The aws-chunked body ended early.");
      if (static_cast<int64_t>(c.writer->size()) != c.decoded_length)
        return error(c, S3Error::kIncompleteBody,
                     "The decoded body length does not match x-amz-decoded-content-length.");
    }
    if (c.sha) {
      uint8_t d[32];
      unsigned int n = 0;
      EVP_DigestFinal_ex(c.sha, d, &n);
      if (hex_encode(d, 32) != c.auth.expected_sha256) return error(c, S3Error::kContentSha256Mismatch);
    }
    if (auto md5 = req.header("content-md5"); !md5.empty()) {
      auto raw = base64_decode(md5);
      if (!raw || raw->size() != 16) return error(c, S3Error::kInvalidDigest);
      if (*raw != c.writer->md5()) return error(c, S3Error::kBadDigest);
    }
    std::string checksum;
    if (S3Error e = check_checksum(c, checksum); e != S3Error::kNone)
      return error(c, e, e == S3Error::kInvalidRequest ? "The announced checksum trailer is missing." : "");
    if (c.route.op == Op::kUploadPart) {
      // A part commits synchronously (seal, rename, index row): on the I/O pool.
      return off_loop(c, req, [this, checksum](Call& d, http::Request&) {
        PartInfo part;
        if (d.checksum) {
          part.checksum_algorithm = checksum_name(d.checksum->algorithm());
          part.checksum = checksum;
        }
        S3Error e = storage.commit_part(std::move(d.writer), d.upload->upload_id, d.part_number, part);
        if (e != S3Error::kNone) return error(d, e);
        http::Response r = empty(d, 200);
        r.headers.emplace_back("ETag", quoted(part.etag));
        if (d.checksum)
          r.headers.emplace_back(std::string(checksum_header(d.checksum->algorithm())), checksum);
        return r;
      });
    }
    ObjectInfo info;
    info.bucket = c.route.bucket;
    info.key = c.route.key;
    collect_meta(req, info.content_type, info.headers);
    std::string checksum_name = c.checksum ? std::string(checksum_header(c.checksum->algorithm())) : "";
    if (c.checksum)
      add_checksum_headers(info.headers, ObjectChecksum{c.checksum->algorithm(), checksum, true, {}});
    // The commit threads make it durable and visible; the reply is posted back to this loop when they are
    // done. The responder outlives the request harmlessly, so a client that left meanwhile costs nothing.
    core::EventLoop* loop = core::EventLoop::current();
    http::Responder respond = c.responder;
    auto rid = c.request_id;
    auto bucket = c.route.bucket, key = c.route.key;
    storage.commit_object_async(
        std::move(c.writer), std::move(info),
        [this, loop, respond, rid, bucket, key, checksum_name, checksum](S3Error e, const ObjectInfo& done) {
          std::string etag = done.etag;
          loop->post([this, respond, rid, bucket, key, checksum_name, checksum, e, etag] {
            Call ctx;
            ctx.request_id = rid;
            ctx.route.bucket = bucket;
            ctx.route.key = key;
            if (e != S3Error::kNone) return respond(error(ctx, e));
            http::Response r = empty(ctx, 200);
            r.headers.emplace_back("ETag", quoted(etag));
            if (!checksum_name.empty()) r.headers.emplace_back(checksum_name, checksum);
            respond(std::move(r));
          });
        });
    return std::nullopt;
  }

  http::Response copy_object(Call& c, http::Request& req) {
    std::string_view src = req.header("x-amz-copy-source");
    size_t q = src.find('?');
    std::string decoded;
    if (!percent_decode(src.substr(0, q), decoded))
      return error(c, S3Error::kInvalidArgument, "Bad percent-encoding in x-amz-copy-source.");
    std::string_view s = decoded;
    if (!s.empty() && s.front() == '/') s.remove_prefix(1);
    size_t slash = s.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == s.size())
      return error(c, S3Error::kInvalidArgument, "x-amz-copy-source must be BUCKET/KEY.");
    std::string src_bucket(s.substr(0, slash)), src_key(s.substr(slash + 1));
    if (check_key(src_key) != S3Error::kNone) return error(c, check_key(src_key));
    StorageResult<std::optional<BucketInfo>> sb = storage.bucket(src_bucket);
    if (!sb) return error(c, sb.error());
    if (!*sb) return error(c, S3Error::kNoSuchBucket);
    if ((*sb)->owner != c.auth.user->name) return error(c, S3Error::kAccessDenied);
    StorageResult<std::optional<ObjectInfo>> found = storage.head(src_bucket, src_key);
    if (!found) return error(c, found.error());
    const std::optional<ObjectInfo>& so = *found;
    if (!so) return error(c, S3Error::kNoSuchKey);
    if (auto m = req.header("x-amz-copy-source-if-match"); !m.empty() && !etag_list_matches(m, so->etag))
      return error(c, S3Error::kPreconditionFailed);
    if (auto m = req.header("x-amz-copy-source-if-none-match"); !m.empty() && etag_list_matches(m, so->etag))
      return error(c, S3Error::kPreconditionFailed);
    std::string directive = core::to_lower(req.header("x-amz-metadata-directive"));
    bool replace = directive == "replace";
    if (!directive.empty() && directive != "copy" && !replace)
      return error(c, S3Error::kInvalidArgument, "x-amz-metadata-directive must be COPY or REPLACE.");
    if (src_bucket == c.route.bucket && src_key == c.route.key && !replace)
      return error(c, S3Error::kInvalidRequest,
                   "This copy request is illegal because it is trying to copy an object to itself without "
                   "changing the object's metadata.");
    // The copy's checksum: the algorithm the request asks for (x-amz-checksum-algorithm), else the source's,
    // computed over the data as it is copied (a copy is one part: FULL_OBJECT, even of a multipart source).
    core::Result<DeclaredChecksum, S3Failure> parsed =
        parse_declared_checksum(req.header("x-amz-checksum-algorithm"), {});
    if (!parsed) return error(c, parsed.error().code, parsed.error().detail);
    DeclaredChecksum wanted = *parsed;
    if (!wanted.algorithm)
      if (auto src_sum = stored_checksum(so->headers)) wanted.algorithm = src_sum->algorithm;
    std::optional<Checksummer> sum;
    if (wanted.algorithm) sum.emplace(*wanted.algorithm);
    StorageResult<std::unique_ptr<DataWriter>> begun = storage.begin_write();
    if (!begun) return error(c, begun.error());
    std::unique_ptr<DataWriter> writer = std::move(begun).value();
    auto reader = storage.reader(*so);
    reader->open_detached();  // a copy reads its source once: no thread's open-file cache keeps it
    std::string buf(256 * 1024, '\0');
    for (uint64_t off = 0; off < so->size;) {
      ssize_t n = reader->read(off, buf.data(), buf.size());
      if (n <= 0) return error(c, n == kSealedIoError ? S3Error::kInternalError : S3Error::kCorruptObject);
      if (S3Error e = writer->write(std::string_view(buf.data(), static_cast<size_t>(n)));
          e != S3Error::kNone)
        return error(c, e);
      if (sum) sum->update(std::string_view(buf.data(), static_cast<size_t>(n)));
      off += static_cast<uint64_t>(n);
    }
    ObjectInfo info;
    info.bucket = c.route.bucket;
    info.key = c.route.key;
    if (replace) {
      collect_meta(req, info.content_type, info.headers);
    } else {
      info.content_type = so->content_type;
      info.headers = so->headers;
    }
    strip_checksum_headers(info.headers);
    std::optional<ObjectChecksum> copied;
    if (sum) {
      copied = ObjectChecksum{sum->algorithm(), sum->base64(), true, {}};
      add_checksum_headers(info.headers, *copied);
    }
    S3Error e = storage.commit_object(std::move(writer), info);
    if (e != S3Error::kNone) return error(c, e);
    // A multipart source keeps its "-N" ETag in S3; a copy is a single PUT here, so it gets the MD5 of the
    // data.
    Xml x;
    x.open("CopyObjectResult", true).elem("LastModified", iso8601(info.mtime_ms));
    x.elem("ETag", quoted(info.etag));
    if (copied) {
      x.elem("Checksum" + std::string(checksum_name(copied->algorithm)), copied->value);
      x.elem("ChecksumType", "FULL_OBJECT");
    }
    x.close("CopyObjectResult");
    return xml(c, x.take());
  }

  // RFC 9110 section 13.2.2: the order in which preconditions are evaluated. 0 means go on.
  int preconditions(const http::Request& req, const ObjectInfo& o) {
    int64_t mtime_s = o.mtime_ms / 1000;
    if (auto m = req.header("if-match"); !m.empty()) {
      if (!etag_list_matches(m, o.etag)) return 412;
    } else if (auto u = req.header("if-unmodified-since"); !u.empty()) {
      if (auto t = parse_http_date(u); t && mtime_s > *t) return 412;
    }
    if (auto n = req.header("if-none-match"); !n.empty()) {
      if (etag_list_matches(n, o.etag)) return 304;
    } else if (auto s = req.header("if-modified-since"); !s.empty()) {
      if (auto t = parse_http_date(s); t && mtime_s <= *t) return 304;
    }
    return 0;
  }

  void object_headers(http::Response& r, const ObjectInfo& o, const Call& c, const http::Request& req,
                      bool partial) {
    // Stored checksums are returned only when asked for (x-amz-checksum-mode: ENABLED), and never with a
    // range: they describe the whole object, and clients would check the range against them.
    const bool checksum_mode = !partial && http::iequals(req.header("x-amz-checksum-mode"), "ENABLED");
    r.headers.emplace_back("ETag", quoted(o.etag));
    r.headers.emplace_back("Last-Modified", http_date(o.mtime_ms));
    r.headers.emplace_back("Accept-Ranges", "bytes");
    static constexpr std::pair<std::string_view, std::string_view> kOverrides[] = {
        {"response-content-type", "content-type"},
        {"response-cache-control", "cache-control"},
        {"response-content-disposition", "content-disposition"},
        {"response-content-encoding", "content-encoding"},
        {"response-content-language", "content-language"},
        {"response-expires", "expires"}};
    auto overridden = [&](std::string_view header) {
      for (const auto& [param, h] : kOverrides)
        if (h == header && c.route.has(param)) return true;
      return false;
    };
    if (!overridden("content-type")) r.headers.emplace_back("Content-Type", o.content_type);
    for (const auto& [k, v] : o.headers) {
      if (is_internal_header(k) || (!checksum_mode && is_checksum_header(k))) continue;
      if (!overridden(k)) r.headers.emplace_back(display_name(k), v);
    }
    for (const auto& [param, h] : kOverrides)
      if (c.route.has(param))
        r.headers.emplace_back(display_name(h == "content-type" ? "Content-Type" : h),
                               std::string(c.route.param(param)));
  }

  // nullopt: answered later, from the I/O pool's work.
  std::optional<http::Response> get_object(Call& c, const http::Request& req, bool head_only) {
    // Through the lookup cache: no index read for an object looked up before and unchanged since.
    StorageResult<std::shared_ptr<const ObjectInfo>> found = storage.lookup(c.route.bucket, c.route.key);
    if (!found) return error(c, found.error());
    std::shared_ptr<const ObjectInfo> o = std::move(found).value();
    if (!o) return error(c, S3Error::kNoSuchKey);
    if (int st = preconditions(req, *o)) {
      if (st == 412) return error(c, S3Error::kPreconditionFailed);
      http::Response r = empty(c, 304);
      r.headers.emplace_back("ETag", quoted(o->etag));
      r.headers.emplace_back("Last-Modified", http_date(o->mtime_ms));
      return r;
    }
    uint64_t start = 0, length = o->size;
    bool partial = false;
    if (auto range = req.header("range"); !range.empty()) {
      int rs = parse_range(range, o->size, start, length);
      if (rs < 0) {
        http::Response r = error(c, S3Error::kInvalidRange);
        r.headers.emplace_back("Content-Range", "bytes */" + std::to_string(o->size));
        return r;
      }
      partial = rs > 0;
    }
    http::Response r = base(partial ? 206 : 200, c);
    object_headers(r, *o, c, req, partial);
    if (partial)
      r.headers.emplace_back("Content-Range", "bytes " + std::to_string(start) + "-" +
                                                  std::to_string(start + length - 1) + "/" +
                                                  std::to_string(o->size));
    if (head_only) {
      r.content_length = static_cast<int64_t>(length);
      r.body_producer = [](char*, size_t) -> size_t { return 0; };
      return r;
    }
    if (storage.read_cacheable(o->size)) {
      // Small objects: their whole plaintext, verified, from the read cache (or read into it now); a
      // damaged file is answered before the response starts.
      if (auto data = storage.cached_whole(*o))
        return whole_body(std::move(r), std::move(data), start, length);
      auto reader = storage.reader(*o);
      if (io && (!reader->mapped() || !reader->open_here())) {
        // A file this loop has not open (or one too large to map): opened and read on the I/O pool, then kept
        // open here when mapped.
        auto ctx = detached_context(c);
        std::shared_ptr<ObjectReader> shared = std::move(reader);
        io->submit(
            *core::EventLoop::current(),
            [this, o, shared] {
              shared->open_detached();
              return storage.read_whole(*o, shared.get());
            },
            [this, ctx, shared, r = std::move(r), start,
             length](StorageResult<std::shared_ptr<const std::string>> whole) mutable {
              if (shared->mapped()) shared->adopt_here();
              if (!whole) return ctx->call.responder(error(ctx->call, whole.error()));
              ctx->call.responder(whole_body(std::move(r), std::move(whole).value(), start, length));
            });
        return std::nullopt;
      }
      StorageResult<std::shared_ptr<const std::string>> whole = storage.read_whole(*o, reader.get());
      if (!whole) return error(c, whole.error());
      return whole_body(std::move(r), std::move(whole).value(), start, length);
    }
    std::unique_ptr<ObjectReader> reader = storage.reader(*o);
    if (io && (!reader->mapped() || !reader->open_here())) {
      // The files are opened (and up to a frame read) on the I/O pool. Mapped files are then kept open by
      // this loop, which streams from them; a larger file streams from the pool, a read ahead at a time, on a
      // reader of its own (its descriptor and key are never shared with this loop's open-file cache).
      auto ctx = detached_context(c);
      core::EventLoop* loop = core::EventLoop::current();
      const bool mapped = reader->mapped();
      std::shared_ptr<ObjectReader> shared = std::move(reader);
      io->submit(
          *loop,
          [this, ctx, reader = shared, r = std::move(r), start, length, loop, mapped]() mutable {
            reader->open_detached();
            return file_body(ctx->call, std::move(r), reader, start, length, mapped ? nullptr : loop);
          },
          [ctx, reader = shared, mapped](http::Response r) {
            if (mapped) reader->adopt_here();
            ctx->call.responder(std::move(r));
          });
      return std::nullopt;
    }
    return file_body(c, std::move(r), std::move(reader), start, length);
  }

  // A body streamed from the I/O pool: a read of kReadAheadBytes runs there while the previous one is sent;
  // the producer answers kBodyNotYet when the connection is faster than the disk, and the read's completion
  // wakes the connection. One read in flight, one waiting to be sent: at most two buffers per response.
  static constexpr size_t kReadAheadBytes = 256 * 1024;
  struct PooledStream {
    core::BlockingPool* io = nullptr;
    core::EventLoop* loop = nullptr;
    std::shared_ptr<ObjectReader> reader;  // used by one pool thread at a time (one read in flight)
    uint64_t offset = 0;                   // of the next read
    uint64_t left = 0;                     // not read yet
    std::string ready;                     // being sent
    size_t sent = 0;                       // of `ready`
    std::optional<std::string> next;       // read ahead, sent after `ready`
    bool reading = false;
    bool failed = false;
    std::function<void()> wake;
    std::string bucket, key;
  };

  static void read_ahead(const std::shared_ptr<PooledStream>& st) {
    if (st->reading || st->next || st->failed || st->left == 0) return;
    st->reading = true;
    const uint64_t offset = st->offset;
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kReadAheadBytes, st->left));
    std::shared_ptr<ObjectReader> reader = st->reader;
    st->io->submit(
        *st->loop,
        [reader, offset, want] {
          std::string buf(want, '\0');
          ssize_t n = reader->read(offset, buf.data(), want);
          if (n < 0 || static_cast<size_t>(n) != want) buf.clear();
          return buf;
        },
        [st, want](std::string buf) {
          st->reading = false;
          if (buf.size() != want) {
            // The head is out; ending early makes the server close the connection, so the client sees a
            // truncated body (an error), never wrong bytes.
            core::log_error(kComponent, "object failed its integrity check while streaming",
                            {{"bucket", st->bucket},
                             {"key", st->key},
                             {"offset", static_cast<unsigned long>(st->offset)}});
            st->failed = true;
          } else {
            st->offset += want;
            st->left -= want;
            st->next = std::move(buf);
          }
          if (st->wake) st->wake();
        });
  }

  http::Response pooled_stream_body(const Call& c, http::Response r, std::shared_ptr<ObjectReader> reader,
                                    uint64_t start, uint64_t length, core::EventLoop* loop) {
    auto st = std::make_shared<PooledStream>();
    st->io = io;
    st->loop = loop;
    st->reader = std::move(reader);
    st->offset = start;
    st->left = length;
    st->bucket = c.route.bucket;
    st->key = c.route.key;
    r.content_length = static_cast<int64_t>(length);
    r.body_waker = [st](std::function<void()> wake) { st->wake = std::move(wake); };
    r.body_producer = [st](char* buf, size_t cap) -> size_t {
      if (st->sent == st->ready.size() && st->next) {
        st->ready = std::move(*st->next);
        st->next.reset();
        st->sent = 0;
      }
      if (st->sent < st->ready.size()) {
        size_t n = std::min(cap, st->ready.size() - st->sent);
        std::memcpy(buf, st->ready.data() + st->sent, n);
        st->sent += n;
        read_ahead(st);
        return n;
      }
      if (st->failed || (st->left == 0 && !st->reading)) return 0;
      read_ahead(st);
      return http::kBodyNotYet;
    };
    return r;
  }

  // What an answer given later needs of its call: the request id, the route, the responder.
  std::shared_ptr<Detached> detached_context(const Call& c) {
    auto d = std::make_shared<Detached>();
    d->call.request_id = c.request_id;
    d->call.route = c.route;
    d->call.responder = c.responder;
    return d;
  }

  // The body of a GET answered from the object's whole plaintext.
  http::Response whole_body(http::Response r, std::shared_ptr<const std::string> data, uint64_t start,
                            uint64_t length) {
    if (length <= kVerifyBeforeSendBytes) {
      r.body.assign(*data, static_cast<size_t>(start), static_cast<size_t>(length));
      return r;
    }
    r.content_length = static_cast<int64_t>(length);
    r.body_producer = [data, offset = static_cast<size_t>(start), left = static_cast<size_t>(length)](
                          char* buf, size_t cap) mutable -> size_t {
      size_t n = std::min(cap, left);
      std::memcpy(buf, data->data() + offset, n);
      offset += n;
      left -= n;
      return n;
    };
    return r;
  }

  // The body of a GET read from the object's files: up to one frame read and verified now, more streamed.
  // On the loop, or on the I/O pool for a reader opened there (the stream then reads on the loop).
  // `pooled`: the loop to stream through the I/O pool to, for a reader opened there (sealed files too large
  // to map); nullptr streams on the loop.
  // ReaderPtr: the unique_ptr of a reader opened on this loop (the hot GET: no shared state to allocate), or
  // the shared_ptr of one opened on the pool.
  template <typename ReaderPtr>
  http::Response file_body(const Call& c, http::Response r, ReaderPtr reader, uint64_t start, uint64_t length,
                           core::EventLoop* pooled = nullptr) {
    if (length <= kVerifyBeforeSendBytes) {
      std::string body(length, '\0');
      if (length > 0) {
        ssize_t n = reader->read(start, body.data(), length);
        if (n < 0 || static_cast<uint64_t>(n) != length)
          return error(c, n == kSealedIoError ? S3Error::kInternalError : S3Error::kCorruptObject);
      } else if (!reader->verify_all()) {
        return error(c, S3Error::kCorruptObject);  // an empty object still has one authenticated frame
      }
      r.body = std::move(body);
      return r;
    }
    if (pooled)
      return pooled_stream_body(c, std::move(r), std::shared_ptr<ObjectReader>(std::move(reader)), start,
                                length, pooled);
    struct Stream {
      std::shared_ptr<ObjectReader> reader;
      uint64_t offset;
      uint64_t left;
      std::string bucket, key;
    };
    // shared_ptr: std::function must be copyable; the producer is its only owner.
    auto st = std::make_shared<Stream>(
        Stream{std::shared_ptr<ObjectReader>(std::move(reader)), start, length, c.route.bucket, c.route.key});
    r.content_length = static_cast<int64_t>(length);
    r.body_producer = [st](char* buf, size_t cap) -> size_t {
      if (st->left == 0) return 0;
      size_t want = static_cast<size_t>(std::min<uint64_t>(cap, st->left));
      ssize_t n = st->reader->read(st->offset, buf, want);
      if (n <= 0) {
        // The head is out; ending early makes the server close the connection, so the client sees a
        // truncated body (an error), never wrong bytes.
        core::log_error(
            kComponent, "object failed its integrity check while streaming",
            {{"bucket", st->bucket}, {"key", st->key}, {"offset", static_cast<unsigned long>(st->offset)}});
        st->left = 0;
        return 0;
      }
      st->offset += static_cast<uint64_t>(n);
      st->left -= static_cast<uint64_t>(n);
      return static_cast<size_t>(n);
    };
    return r;
  }

  // GetObjectAttributes (GET ?attributes): those of ETag, Checksum, ObjectParts, StorageClass and ObjectSize
  // that x-amz-object-attributes names. ObjectParts (multipart objects only) pages with x-amz-max-parts and
  // x-amz-part-number-marker.
  http::Response get_object_attributes(Call& c, const http::Request& req) {
    bool want_etag = false, want_checksum = false, want_parts = false, want_class = false, want_size = false;
    std::string_view list = req.header("x-amz-object-attributes");
    if (list.empty()) return error(c, S3Error::kInvalidArgument, "x-amz-object-attributes is required.");
    std::optional<std::string_view> unknown;
    http::for_each_list_element(list, [&](std::string_view a) {
      if (a == "ETag")
        want_etag = true;
      else if (a == "Checksum")
        want_checksum = true;
      else if (a == "ObjectParts")
        want_parts = true;
      else if (a == "StorageClass")
        want_class = true;
      else if (a == "ObjectSize")
        want_size = true;
      else
        unknown = a;
      return !unknown;
    });
    if (unknown)
      return error(c, S3Error::kInvalidArgument,
                   "Unknown attribute in x-amz-object-attributes: " + std::string(*unknown));
    StorageResult<std::optional<ObjectInfo>> found = storage.head(c.route.bucket, c.route.key);
    if (!found) return error(c, found.error());
    const std::optional<ObjectInfo>& o = *found;
    if (!o) return error(c, S3Error::kNoSuchKey);
    auto number = [&](std::string_view header, uint64_t def, uint64_t& out) {
      out = def;
      std::string_view v = req.header(header);
      if (v.empty()) return true;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
      return ec == std::errc() && p == v.data() + v.size();
    };
    uint64_t max_parts = 1000, marker = 0;
    if (!number("x-amz-max-parts", 1000, max_parts) || !number("x-amz-part-number-marker", 0, marker))
      return error(c, S3Error::kInvalidArgument,
                   "x-amz-max-parts and x-amz-part-number-marker must be integers.");
    max_parts = std::min<uint64_t>(max_parts, 1000);
    auto sum = stored_checksum(o->headers);
    Xml x;
    x.open("GetObjectAttributesResponse", true);
    if (want_etag) x.elem("ETag", o->etag);
    if (want_checksum && sum) {
      x.open("Checksum").elem("Checksum" + std::string(checksum_name(sum->algorithm)), sum->value);
      x.elem("ChecksumType", sum->full_object ? "FULL_OBJECT" : "COMPOSITE").close("Checksum");
    }
    if (want_parts && o->etag.find('-') != std::string::npos) {
      const uint64_t total = o->segments.size();
      const uint64_t first = std::min(marker, total), last = std::min(total, first + max_parts);
      // PartsCount: the wire name of the SDKs' TotalPartsCount.
      x.open("ObjectParts").elem("PartsCount", total).elem("PartNumberMarker", marker);
      x.elem("NextPartNumberMarker", last).elem("MaxParts", max_parts).elem_bool("IsTruncated", last < total);
      for (uint64_t i = first; i < last; ++i) {
        x.open("Part").elem("PartNumber", i + 1).elem("Size", o->segments[i].size);
        if (sum && i < sum->part_values.size())
          x.elem("Checksum" + std::string(checksum_name(sum->algorithm)), sum->part_values[i]);
        x.close("Part");
      }
      x.close("ObjectParts");
    }
    if (want_class) x.elem("StorageClass", "STANDARD");
    if (want_size) x.elem("ObjectSize", o->size);
    x.close("GetObjectAttributesResponse");
    http::Response r = xml(c, x.take());
    r.headers.emplace_back("Last-Modified", http_date(o->mtime_ms));
    return r;
  }

  // RFC 9110 section 14.1.2 for one range. 0: no usable range (whole object); 1: a range; -1: unsatisfiable.
  static int parse_range(std::string_view v, uint64_t size, uint64_t& start, uint64_t& length) {
    if (v.substr(0, 6) != "bytes=") return 0;
    v.remove_prefix(6);
    if (v.find(',') != std::string_view::npos) return 0;  // several ranges: S3 serves the whole object
    size_t dash = v.find('-');
    if (dash == std::string_view::npos) return 0;
    auto num = [](std::string_view s, uint64_t& out) {
      if (s.empty() || s.size() > 19) return false;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
      return ec == std::errc() && p == s.data() + s.size();
    };
    std::string_view a = v.substr(0, dash), b = v.substr(dash + 1);
    uint64_t first = 0, last = 0;
    if (a.empty()) {
      if (!num(b, last)) return 0;
      if (last == 0 || size == 0) return -1;
      last = std::min(last, size);
      start = size - last;
      length = last;
      return 1;
    }
    if (!num(a, first)) return 0;
    if (!b.empty()) {
      if (!num(b, last) || last < first) return 0;
    } else {
      last = UINT64_MAX;
    }
    if (first >= size) return -1;
    last = std::min(last, size - 1);
    start = first;
    length = last - first + 1;
    return 1;
  }

  http::Response create_upload(Call& c, const http::Request& req) {
    UploadInfo u;
    u.bucket = c.route.bucket;
    u.key = c.route.key;
    collect_meta(req, u.content_type, u.headers);
    core::Result<DeclaredChecksum, S3Failure> parsed =
        parse_declared_checksum(req.header("x-amz-checksum-algorithm"), req.header("x-amz-checksum-type"));
    if (!parsed) return error(c, parsed.error().code, parsed.error().detail);
    const DeclaredChecksum& declared = *parsed;
    add_declaration(u.headers, declared);
    StorageResult<std::string> created = storage.create_upload(u);
    if (!created) return error(c, created.error());
    const std::string& id = *created;
    Xml x;
    x.open("InitiateMultipartUploadResult", true).elem("Bucket", u.bucket).elem("Key", u.key);
    x.elem("UploadId", id).close("InitiateMultipartUploadResult");
    http::Response r = xml(c, x.take());
    if (declared.algorithm)
      r.headers.emplace_back(kChecksumAlgorithmHeader, checksum_name(*declared.algorithm));
    if (declared.full_object)
      r.headers.emplace_back(kChecksumTypeHeader, *declared.full_object ? "FULL_OBJECT" : "COMPOSITE");
    return r;
  }

  http::Response complete_upload(Call& c, const http::Request& req) {
    StorageResult<std::optional<UploadInfo>> found = storage.upload(c.route.param("uploadId"));
    if (!found) return error(c, found.error());
    const std::optional<UploadInfo>& up = *found;
    if (!up || up->bucket != c.route.bucket || up->key != c.route.key)
      return error(c, S3Error::kNoSuchUpload);
    XmlElement root;
    XmlError err;
    if (!parse_xml(c.gathered, root, err) || root.name != "CompleteMultipartUpload")
      return error(c, S3Error::kMalformedXML);
    std::vector<std::pair<int, std::string>> parts;
    StorageResult<PartList> listed = storage.parts(up->upload_id, 0, 10001);
    if (!listed) return error(c, listed.error());
    const std::vector<PartInfo>& have = listed->parts;
    std::vector<PartInfo> used;  // in the order completed, for the object's checksum
    for (const auto& p : root.children) {
      if (p.name != "Part") return error(c, S3Error::kMalformedXML);
      const XmlElement* num = p.child("PartNumber");
      const XmlElement* etag = p.child("ETag");
      if (!num || !etag) return error(c, S3Error::kMalformedXML);
      int n = 0;
      auto [ptr, ec] = std::from_chars(num->text.data(), num->text.data() + num->text.size(), n);
      if (ec != std::errc() || ptr != num->text.data() + num->text.size() || n < 1 || n > 10000)
        return error(c, S3Error::kMalformedXML);
      if (!parts.empty() && n <= parts.back().first) return error(c, S3Error::kInvalidPartOrder);
      parts.emplace_back(n, unquote(etag->text));
      auto found = std::find_if(have.begin(), have.end(), [n](const PartInfo& h) { return h.number == n; });
      if (found == have.end()) return error(c, S3Error::kInvalidPart);
      // A part's checksum in the list (ChecksumCRC32...) must be the one it was uploaded with.
      for (const auto& ch : p.children) {
        if (ch.name.rfind("Checksum", 0) != 0 || ch.name == "ChecksumType") continue;
        auto alg = checksum_from_name(std::string_view(ch.name).substr(8));
        if (!alg) return error(c, S3Error::kMalformedXML);
        if (found->checksum_algorithm != checksum_name(*alg) || found->checksum != ch.text)
          return error(c, S3Error::kInvalidPart,
                       "The " + ch.name + " of part " + std::to_string(n) + " is not the part's.");
      }
      used.push_back(*found);
    }
    if (parts.empty()) return error(c, S3Error::kMalformedXML);
    // The object's checksum, from the parts' (COMPOSITE or FULL_OBJECT), checked against the completion's
    // own x-amz-checksum-* header when it sends one.
    core::Result<DeclaredChecksum, S3Failure> parsed =
        parse_declared_checksum({}, req.header("x-amz-checksum-type"));
    if (!parsed) return error(c, parsed.error().code, parsed.error().detail);
    DeclaredChecksum asked = *parsed;
    std::string expected;
    for (const auto& [name, value] : req.headers)
      if (auto alg = checksum_from_header(name)) {
        asked.algorithm = alg;
        expected = value;
      }
    core::Result<std::optional<ObjectChecksum>, S3Failure> summed =
        completed_checksum(declared_checksum(up->headers), asked, expected, used);
    if (!summed) return error(c, summed.error().code, summed.error().detail);
    const std::optional<ObjectChecksum>& sum = *summed;
    MetaHeaders headers = up->headers;
    strip_checksum_headers(headers);
    if (sum) add_checksum_headers(headers, *sum);
    ObjectInfo info;
    S3Error e = storage.complete_upload(up->upload_id, parts, info, &headers);
    if (e != S3Error::kNone) return error(c, e);
    Xml x;
    x.open("CompleteMultipartUploadResult", true);
    x.elem("Location", "/" + info.bucket + "/" + info.key).elem("Bucket", info.bucket).elem("Key", info.key);
    x.elem("ETag", quoted(info.etag));
    if (sum) {
      x.elem("Checksum" + std::string(checksum_name(sum->algorithm)), sum->value);
      x.elem("ChecksumType", sum->full_object ? "FULL_OBJECT" : "COMPOSITE");
    }
    x.close("CompleteMultipartUploadResult");
    return xml(c, x.take());
  }

  http::Response list_parts(Call& c) {
    StorageResult<std::optional<UploadInfo>> found = storage.upload(c.route.param("uploadId"));
    if (!found) return error(c, found.error());
    const std::optional<UploadInfo>& up = *found;
    if (!up || up->bucket != c.route.bucket || up->key != c.route.key)
      return error(c, S3Error::kNoSuchUpload);
    size_t max = 1000, marker = 0;
    if (!parse_max(c, "max-parts", 1000, 1000, max) || !parse_max(c, "part-number-marker", 0, 10000, marker))
      return error(c, S3Error::kInvalidArgument, "max-parts and part-number-marker must be integers.");
    StorageResult<PartList> listed = storage.parts(up->upload_id, static_cast<int>(marker), max);
    if (!listed) return error(c, listed.error());
    const std::vector<PartInfo>& ps = listed->parts;
    bool truncated = listed->truncated;
    Xml x;
    x.open("ListPartsResult", true)
        .elem("Bucket", up->bucket)
        .elem("Key", up->key)
        .elem("UploadId", up->upload_id);
    x.open("Initiator")
        .elem("ID", c.auth.user->name)
        .elem("DisplayName", c.auth.user->name)
        .close("Initiator");
    x.open("Owner").elem("ID", c.auth.user->name).elem("DisplayName", c.auth.user->name).close("Owner");
    x.elem("StorageClass", "STANDARD").elem("PartNumberMarker", marker);
    if (DeclaredChecksum d = declared_checksum(up->headers); d.algorithm) {
      x.elem("ChecksumAlgorithm", checksum_name(*d.algorithm));
      x.elem("ChecksumType", d.full_object.value_or(*d.algorithm == ChecksumAlgorithm::kCrc64Nvme)
                                 ? "FULL_OBJECT"
                                 : "COMPOSITE");
    }
    x.elem("NextPartNumberMarker", ps.empty() ? 0 : static_cast<uint64_t>(ps.back().number));
    x.elem("MaxParts", max).elem_bool("IsTruncated", truncated);
    for (const auto& p : ps) {
      x.open("Part")
          .elem("PartNumber", static_cast<uint64_t>(p.number))
          .elem("LastModified", iso8601(p.mtime_ms));
      x.elem("ETag", quoted(p.etag)).elem("Size", p.size);
      if (!p.checksum.empty()) x.elem("Checksum" + p.checksum_algorithm, p.checksum);
      x.close("Part");
    }
    x.close("ListPartsResult");
    return xml(c, x.take());
  }
};

S3Api::S3Api(const S3Config& config, Storage& storage, unsigned worker, core::BlockingPool* io)
    : impl_(std::make_unique<Impl>(config, storage, *this, io)) {
  impl_->next_request_id = (uint64_t{worker} << 48) + 1;
  clock = [] { return static_cast<int64_t>(::time(nullptr)); };
}

S3Api::~S3Api() = default;

std::unique_ptr<http::BodySink> S3Api::begin(const http::Request& head) {
  if (replicator_ && Replicator::is_endpoint(head)) return replicator_->begin(head, clock());
  return impl_->begin(head);
}

void S3Api::handle(http::Request& request, http::Responder respond) {
  if (replicator_ && replicator_->handle(request, respond)) return;
  if (replicator_) {
    if (auto* c = dynamic_cast<Call*>(request.body_sink);
        c && c->error == S3Error::kNone && replicated_op(c->route.op)) {
      if (replicator_->refusing_writes()) {
        respond(impl_->error(*c, S3Error::kServiceUnavailable,
                             "A replica zone is down and replication.on_peer_down is fail."));
        return;
      }
      // ack: all: the reply waits until the peers confirm the change (the feed's position once it is made).
      Replicator* rep = replicator_;
      Impl* impl = impl_.get();
      respond = [rep, impl, rid = c->request_id, bucket = c->route.bucket, key = c->route.key,
                 inner = std::move(respond)](http::Response r) {
        if (r.status >= 300) return inner(std::move(r));
        auto reply = std::make_shared<http::Response>(std::move(r));
        rep->when_replicated(impl->storage.last_change_seq(),
                             [impl, rid, bucket, key, inner, reply](bool ok) {
                               if (ok) return inner(std::move(*reply));
                               Call ctx;
                               ctx.request_id = rid;
                               ctx.route.bucket = bucket;
                               ctx.route.key = key;
                               inner(impl->error(ctx, S3Error::kServiceUnavailable,
                                                 "A replica zone did not confirm the write in time."));
                             });
      };
    }
  }
  impl_->handle(request, std::move(respond));
}

}  // namespace cumulo::objstore
