#include "cluster/wire/etcd_json.h"

#include <array>
#include <charconv>
#include <utility>

namespace cumulo::cluster::wire {

namespace {

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> decode_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (size_t i = 0; i < kAlphabet.size(); ++i)
    t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr auto kDecode = decode_table();

// The error side of a Result, spelled without class template argument deduction for aggregates, which clang
// 14 (the fuzz build's) lacks.
core::Err<core::Error> failed(core::Error e) {
  return core::Err<core::Error>{std::move(e)};
}

core::Error bad(std::string message) {
  core::Error e;
  e.kind = "bad_response";
  e.message = "etcd answer: " + std::move(message);
  e.source = core::ErrorSource::kUpstream;
  return e;
}

// Reads an int64 or uint64 field, which the gateway writes as a string (or, in principle, a number). A
// missing or null field is zero.
template <typename Int>
bool read_int(const json& j, std::string_view name, Int& out, core::Error& err) {
  out = 0;
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return true;
  if (it->is_number_integer()) {
    out = it->template get<Int>();
    return true;
  }
  if (it->is_string()) {
    const std::string& s = it->template get_ref<const std::string&>();
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) return true;
  }
  err = bad("field \"" + std::string(name) + "\" is not an integer: " + it->dump());
  return false;
}

bool read_bool(const json& j, std::string_view name, bool& out, core::Error& err) {
  out = false;
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return true;
  if (it->is_boolean()) {
    out = it->get<bool>();
    return true;
  }
  err = bad("field \"" + std::string(name) + "\" is not a boolean: " + it->dump());
  return false;
}

bool read_bytes(const json& j, std::string_view name, std::string& out, core::Error& err) {
  out.clear();
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return true;
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    if (s.empty()) return true;
    auto raw = base64_decode(s);
    if (raw) {
      out = std::move(*raw);
      return true;
    }
  }
  err = bad("field \"" + std::string(name) + "\" is not base64: " + it->dump().substr(0, 80));
  return false;
}

// The object at j[name]; an empty object when missing. nullptr when it is there but no object.
const json* object_at(const json& j, std::string_view name, core::Error& err) {
  static const json kEmpty = json::object();
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return &kEmpty;
  if (it->is_object()) return &*it;
  err = bad("field \"" + std::string(name) + "\" is not an object");
  return nullptr;
}

const json* array_at(const json& j, std::string_view name, core::Error& err) {
  static const json kEmpty = json::array();
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return &kEmpty;
  if (it->is_array()) return &*it;
  err = bad("field \"" + std::string(name) + "\" is not an array");
  return nullptr;
}

bool read_header(const json& j, ResponseHeader& h, core::Error& err) {
  const json* o = object_at(j, "header", err);
  return o && read_int(*o, "cluster_id", h.cluster_id, err) && read_int(*o, "member_id", h.member_id, err) &&
         read_int(*o, "revision", h.revision, err) && read_int(*o, "raft_term", h.raft_term, err);
}

bool read_kvs(const json& j, std::string_view name, std::vector<KeyValue>& out, core::Error& err) {
  const json* a = array_at(j, name, err);
  if (!a) return false;
  for (const json& item : *a) {
    auto kv = decode_kv(item);
    if (!kv) {
      err = kv.error();
      return false;
    }
    out.push_back(std::move(kv.value()));
  }
  return true;
}

std::string number(int64_t v) {
  return std::to_string(v);
}

const char* target_name(Compare::Target t) {
  switch (t) {
    case Compare::Target::kValue:
      return "VALUE";
    case Compare::Target::kVersion:
      return "VERSION";
    case Compare::Target::kCreateRevision:
      return "CREATE";
    case Compare::Target::kModRevision:
      return "MOD";
    case Compare::Target::kLease:
      return "LEASE";
  }
  return "VERSION";
}

const char* op_name(Compare::Op op) {
  switch (op) {
    case Compare::Op::kEqual:
      return "EQUAL";
    case Compare::Op::kNotEqual:
      return "NOT_EQUAL";
    case Compare::Op::kGreater:
      return "GREATER";
    case Compare::Op::kLess:
      return "LESS";
  }
  return "EQUAL";
}

json operation(const Operation& op) {
  switch (op.kind) {
    case Operation::Kind::kRange:
      return {{"request_range", range_request(op.key, op.range_end, RangeOptions{})}};
    case Operation::Kind::kPut:
      return {{"request_put", put_request(op.key, op.value, op.lease)}};
    case Operation::Kind::kDelete:
      return {{"request_delete_range", delete_request(op.key, op.range_end)}};
  }
  return json::object();
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto at = [&bytes](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (size_t left = bytes.size() - i; left > 0) {
    uint32_t v = at(i) << 16 | (left == 2 ? at(i + 1) << 8 : 0);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += left == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    int pad = 0;
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      char c = text[i + k];
      int d = kDecode[static_cast<unsigned char>(c)];
      if (c == '=' && last && k >= 2 && (k == 3 || text[i + 3] == '=')) {
        ++pad;
        d = 0;
      } else if (d < 0 || pad > 0) {
        return std::nullopt;
      }
      v = v << 6 | static_cast<uint32_t>(d);
    }
    // Canonical only: the bits after the last byte are zero.
    if ((pad == 1 && (v & 0xFF) != 0) || (pad == 2 && (v & 0xFFFF) != 0)) return std::nullopt;
    out += static_cast<char>(v >> 16);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(v & 0xFF);
  }
  return out;
}

// --- requests

json range_request(std::string_view key, std::string_view range_end, const RangeOptions& options) {
  json j = {{"key", base64_encode(key)}};
  if (!range_end.empty()) j["range_end"] = base64_encode(range_end);
  if (options.revision != 0) j["revision"] = number(options.revision);
  if (options.limit != 0) j["limit"] = number(options.limit);
  if (options.keys_only) j["keys_only"] = true;
  return j;
}

json put_request(std::string_view key, std::string_view value, int64_t lease) {
  json j = {{"key", base64_encode(key)}, {"value", base64_encode(value)}};
  if (lease != 0) j["lease"] = number(lease);
  return j;
}

json delete_request(std::string_view key, std::string_view range_end) {
  json j = {{"key", base64_encode(key)}};
  if (!range_end.empty()) j["range_end"] = base64_encode(range_end);
  return j;
}

json txn_request(const TxnRequest& request) {
  json compares = json::array();
  for (const Compare& c : request.compare) {
    json j = {{"key", base64_encode(c.key)}, {"target", target_name(c.target)}, {"result", op_name(c.op)}};
    switch (c.target) {
      case Compare::Target::kValue:
        j["value"] = base64_encode(c.value);
        break;
      case Compare::Target::kVersion:
        j["version"] = number(c.number);
        break;
      case Compare::Target::kCreateRevision:
        j["create_revision"] = number(c.number);
        break;
      case Compare::Target::kModRevision:
        j["mod_revision"] = number(c.number);
        break;
      case Compare::Target::kLease:
        j["lease"] = number(c.number);
        break;
    }
    compares.push_back(std::move(j));
  }
  json success = json::array();
  for (const Operation& op : request.success) success.push_back(operation(op));
  json failure = json::array();
  for (const Operation& op : request.failure) failure.push_back(operation(op));
  return {{"compare", std::move(compares)}, {"success", std::move(success)}, {"failure", std::move(failure)}};
}

json compact_request(int64_t revision) {
  return {{"revision", number(revision)}, {"physical", true}};
}

json lease_grant_request(int64_t ttl_s) {
  return {{"TTL", number(ttl_s)}};
}

json lease_id_request(int64_t lease_id) {
  return {{"ID", number(lease_id)}};
}

json lease_ttl_request(int64_t lease_id, bool keys) {
  json j = {{"ID", number(lease_id)}};
  if (keys) j["keys"] = true;
  return j;
}

json watch_create_request(const WatchRequest& request) {
  json c = {{"key", base64_encode(request.key)}};
  if (request.prefix) c["range_end"] = base64_encode(prefix_end(request.key));
  if (request.start_revision != 0) c["start_revision"] = number(request.start_revision);
  if (request.prev_kv) c["prev_kv"] = true;
  if (request.progress_notify) c["progress_notify"] = true;
  return {{"create_request", std::move(c)}};
}

// --- answers

core::Result<ResponseHeader, core::Error> decode_header(const json& j) {
  ResponseHeader h;
  core::Error err;
  if (!j.is_object()) return failed(bad("not a JSON object"));
  if (!read_header(j, h, err)) return failed(err);
  return h;
}

core::Result<KeyValue, core::Error> decode_kv(const json& j) {
  KeyValue kv;
  core::Error err;
  if (!j.is_object()) return failed(bad("a key-value is not a JSON object"));
  if (!read_bytes(j, "key", kv.key, err) || !read_bytes(j, "value", kv.value, err) ||
      !read_int(j, "create_revision", kv.create_revision, err) ||
      !read_int(j, "mod_revision", kv.mod_revision, err) || !read_int(j, "version", kv.version, err) ||
      !read_int(j, "lease", kv.lease, err))
    return failed(err);
  return kv;
}

core::Result<RangeResult, core::Error> decode_range(const json& j) {
  RangeResult r;
  core::Error err;
  if (!j.is_object()) return failed(bad("not a JSON object"));
  if (!read_header(j, r.header, err) || !read_kvs(j, "kvs", r.kvs, err) ||
      !read_int(j, "count", r.count, err) || !read_bool(j, "more", r.more, err))
    return failed(err);
  return r;
}

core::Result<PutResult, core::Error> decode_put(const json& j) {
  auto h = decode_header(j);
  if (!h) return failed(h.error());
  return PutResult{*h};
}

core::Result<DeleteResult, core::Error> decode_delete(const json& j) {
  DeleteResult r;
  core::Error err;
  if (!j.is_object()) return failed(bad("not a JSON object"));
  if (!read_header(j, r.header, err) || !read_int(j, "deleted", r.deleted, err)) return failed(err);
  return r;
}

core::Result<TxnResult, core::Error> decode_txn(const json& j) {
  TxnResult r;
  core::Error err;
  if (!j.is_object()) return failed(bad("not a JSON object"));
  if (!read_header(j, r.header, err) || !read_bool(j, "succeeded", r.succeeded, err)) return failed(err);
  const json* responses = array_at(j, "responses", err);
  if (!responses) return failed(err);
  for (const json& item : *responses) {
    if (!item.is_object()) return failed(bad("a transaction response is not a JSON object"));
    OperationResult op;
    if (auto it = item.find("response_range"); it != item.end()) {
      op.kind = Operation::Kind::kRange;
      if (!it->is_object() || !read_kvs(*it, "kvs", op.kvs, err) || !read_int(*it, "count", op.count, err))
        return failed(err.kind.empty() ? bad("response_range is not an object") : err);
    } else if (it = item.find("response_put"); it != item.end()) {
      op.kind = Operation::Kind::kPut;
    } else if (it = item.find("response_delete_range"); it != item.end()) {
      op.kind = Operation::Kind::kDelete;
      if (!it->is_object() || !read_int(*it, "deleted", op.deleted, err))
        return failed(err.kind.empty() ? bad("response_delete_range is not an object") : err);
    } else {
      return failed(bad("a transaction response of an unknown kind: " + item.dump().substr(0, 80)));
    }
    r.responses.push_back(std::move(op));
  }
  return r;
}

core::Result<Lease, core::Error> decode_lease_grant(const json& j) {
  Lease l;
  core::Error err;
  if (!j.is_object()) return failed(bad("not a JSON object"));
  if (!read_int(j, "ID", l.id, err) || !read_int(j, "TTL", l.ttl_s, err)) return failed(err);
  if (auto it = j.find("error");
      it != j.end() && it->is_string() && !it->get_ref<const std::string&>().empty())
    return failed(error_from_grpc(0, it->get_ref<const std::string&>(), ""));
  return l;
}

core::Result<Lease, core::Error> decode_keep_alive(const json& j) {
  if (!j.is_object()) return failed(bad("not a JSON object"));
  if (auto e = stream_error(j, "")) return failed(*e);
  core::Error err;
  const json* result = object_at(j, "result", err);
  if (!result) return failed(err);
  Lease l;
  if (!read_int(*result, "ID", l.id, err) || !read_int(*result, "TTL", l.ttl_s, err)) return failed(err);
  return l;
}

core::Result<LeaseTimeToLive, core::Error> decode_time_to_live(const json& j) {
  LeaseTimeToLive t;
  core::Error err;
  if (!j.is_object()) return failed(bad("not a JSON object"));
  if (!read_int(j, "ID", t.id, err) || !read_int(j, "TTL", t.ttl_s, err) ||
      !read_int(j, "grantedTTL", t.granted_ttl_s, err))
    return failed(err);
  const json* keys = array_at(j, "keys", err);
  if (!keys) return failed(err);
  for (const json& k : *keys) {
    auto raw = k.is_string() ? base64_decode(k.get_ref<const std::string&>()) : std::nullopt;
    if (!raw) return failed(bad("a key of the lease is not base64"));
    t.keys.push_back(std::move(*raw));
  }
  return t;
}

core::Result<WatchMessage, core::Error> decode_watch_message(const json& j) {
  if (!j.is_object()) return failed(bad("a watch answer is not a JSON object"));
  core::Error err;
  const json* result = object_at(j, "result", err);
  if (!result) return failed(err);
  WatchMessage m;
  if (!read_header(*result, m.header, err) || !read_bool(*result, "created", m.created, err) ||
      !read_bool(*result, "canceled", m.canceled, err) ||
      !read_int(*result, "compact_revision", m.compact_revision, err))
    return failed(err);
  if (auto it = result->find("cancel_reason"); it != result->end() && it->is_string())
    m.cancel_reason = it->get<std::string>();
  const json* events = array_at(*result, "events", err);
  if (!events) return failed(err);
  for (const json& e : *events) {
    if (!e.is_object()) return failed(bad("a watch event is not a JSON object"));
    WatchEvent ev;
    auto type = e.find("type");
    if (type == e.end() || type->is_null() || *type == "PUT" || *type == 0) {
      ev.type = WatchEvent::Type::kPut;
    } else if (*type == "DELETE" || *type == 1) {
      ev.type = WatchEvent::Type::kDelete;
    } else {
      return failed(bad("a watch event of unknown type " + type->dump()));
    }
    const json* kv = object_at(e, "kv", err);
    if (!kv) return failed(err);
    auto decoded = decode_kv(*kv);
    if (!decoded) return failed(decoded.error());
    ev.kv = std::move(decoded.value());
    if (auto prev = e.find("prev_kv"); prev != e.end() && !prev->is_null()) {
      auto p = decode_kv(*prev);
      if (!p) return failed(p.error());
      ev.prev_kv = std::move(p.value());
    }
    m.events.push_back(std::move(ev));
  }
  return m;
}

// --- errors

namespace {

// gRPC status codes (grpc/include/grpc/impl/codegen/status.h) to our kinds: one table, so that every error
// etcd can answer has one kind and one retry rule. Retry::kSafe here means "nothing took effect" and only
// decides retries of requests that are safe to repeat anyway (cluster.h, "Retries").
struct GrpcError {
  int code;
  const char* kind;
  core::ErrorSource source;
  core::Retry retry;
};
constexpr GrpcError kGrpcErrors[] = {
    {3, "invalid_argument", core::ErrorSource::kClient, core::Retry::kNo},  // INVALID_ARGUMENT
    {4, "etcd_timeout", core::ErrorSource::kUpstream, core::Retry::kNo},    // DEADLINE_EXCEEDED
    {5, "lease_not_found", core::ErrorSource::kClient, core::Retry::kNo},   // NOT_FOUND
    {9, "invalid_argument", core::ErrorSource::kClient, core::Retry::kNo},  // FAILED_PRECONDITION
    {11, "compacted", core::ErrorSource::kClient, core::Retry::kNo},        // OUT_OF_RANGE
    {14, "unavailable", core::ErrorSource::kUpstream, core::Retry::kSafe},  // UNAVAILABLE
};

}  // namespace

core::Error error_from_grpc(int grpc_code, std::string_view words, std::string_view endpoint) {
  core::Error e;
  e.kind = "etcd_error";
  e.source = core::ErrorSource::kUpstream;
  for (const GrpcError& g : kGrpcErrors) {
    if (g.code != grpc_code) continue;
    e.kind = g.kind;
    e.source = g.source;
    e.retry = g.retry;
  }
  // etcd names compaction with OUT_OF_RANGE and a lease it does not know with NOT_FOUND; other errors of
  // those codes keep the generic kind.
  if (e.kind == "compacted" && words.find("compacted") == std::string_view::npos) e.kind = "etcd_error";
  if (e.kind == "lease_not_found" && words.find("lease") == std::string_view::npos) e.kind = "etcd_error";
  e.message = "etcd";
  if (!endpoint.empty()) {
    e.message += " at ";
    e.message += endpoint;
  }
  e.message += ": ";
  e.message += words;
  e.message += " (gRPC code " + std::to_string(grpc_code) + ")";
  return e;
}

core::Error error_from_answer(int http_status, std::string_view body, std::string_view endpoint) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    if (auto e = stream_error(j, endpoint)) return *e;
    auto code = j.find("code");
    auto words = j.find("error");
    if (words == j.end() || !words->is_string()) words = j.find("message");
    if (code != j.end() && code->is_number_integer() && words != j.end() && words->is_string())
      return error_from_grpc(code->get<int>(), words->get_ref<const std::string&>(), endpoint);
  }
  core::Error e = bad("HTTP " + std::to_string(http_status) + " from " + std::string(endpoint) +
                      " without an etcd error: " + std::string(body.substr(0, 200)));
  if (http_status == 503) {
    e.kind = "unavailable";
    e.retry = core::Retry::kSafe;
  }
  return e;
}

std::optional<core::Error> stream_error(const json& j, std::string_view endpoint) {
  auto it = j.find("error");
  if (it == j.end() || !it->is_object()) return std::nullopt;
  int code = 2;  // UNKNOWN
  if (auto c = it->find("grpc_code"); c != it->end() && c->is_number_integer()) code = c->get<int>();
  std::string words = "error without words";
  if (auto m = it->find("message"); m != it->end() && m->is_string()) words = m->get<std::string>();
  return error_from_grpc(code, words, endpoint);
}

// --- the watch stream

bool JsonObjectSplitter::feed(std::string_view bytes, std::vector<std::string>& out) {
  if (failed_) return false;
  for (size_t i = 0; i < bytes.size(); ++i) {
    char c = bytes[i];
    if (depth_ == 0) {
      if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
      if (c != '{') {
        failed_ = true;
        error_ = std::string("a byte other than an object between objects: '") + c + "'";
        return false;
      }
      depth_ = 1;
      partial_ += c;
      continue;
    }
    partial_ += c;
    if (partial_.size() > max_) {
      failed_ = true;
      error_ = "an object over " + std::to_string(max_) + " bytes";
      return false;
    }
    if (in_string_) {
      if (escaped_) {
        escaped_ = false;
      } else if (c == '\\') {
        escaped_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
    } else if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if (c == '}' || c == ']') {
      if (--depth_ == 0) {
        // Brackets inside are left to the JSON parser; the object itself must close as it opened.
        if (c != '}') {
          failed_ = true;
          error_ = "an object closed by ']'";
          return false;
        }
        out.push_back(std::move(partial_));
        partial_.clear();
      }
    }
  }
  return true;
}

}  // namespace cumulo::cluster::wire
