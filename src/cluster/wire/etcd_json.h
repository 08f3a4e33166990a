// The etcd v3 JSON gateway's wire format, apart from any I/O (this folder includes nothing of the event loop,
// so that tests/fuzz/etcd_json_fuzz.cc links it alone): requests as JSON, answers and errors from JSON, and
// the splitting of a watch stream into its JSON objects.
//
// What the gateway demands (grpc-gateway's JSON mapping of etcd's protobufs, "OrigName" field names):
// - bytes fields (keys, values, range ends) are standard base64 with padding;
// - int64 and uint64 fields are JSON strings in answers ("revision":"12") and are accepted as strings in
//   requests; they must be strings for lease IDs, which are above 2^53;
// - fields at their zero value are left out of answers (a missing "count" is 0, a missing event "type" is
//   PUT, a keep-alive answer without "TTL" means the lease is gone);
// - enums are sent by name ("CREATE", "NOT_EQUAL");
// - an error is an HTTP status with {"error": words, "message": words, "code": gRPC code}; in a stream
//   (watch, keep-alive) an error is one object {"error": {"grpc_code", "http_code", "message", ...}}.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/wire/types.h"
#include "core/result.h"

namespace cumulo::cluster::wire {

using json = nlohmann::json;

std::string base64_encode(std::string_view bytes);
// Standard alphabet with padding, as Go's encoding/base64.StdEncoding writes it; nullopt on anything else.
std::optional<std::string> base64_decode(std::string_view text);

// --- requests (the JSON body of POST /v3/...)
json range_request(std::string_view key, std::string_view range_end, const RangeOptions& options);
json put_request(std::string_view key, std::string_view value, int64_t lease);
json delete_request(std::string_view key, std::string_view range_end);
json txn_request(const TxnRequest& request);
json compact_request(int64_t revision);
json lease_grant_request(int64_t ttl_s);
json lease_id_request(int64_t lease_id);  // keepalive, revoke
json lease_ttl_request(int64_t lease_id, bool keys);
json watch_create_request(const WatchRequest& request);

// --- answers. A field of the wrong type or a bad base64 string is a "bad_response" error naming the field.
core::Result<ResponseHeader, core::Error> decode_header(const json& j);
core::Result<KeyValue, core::Error> decode_kv(const json& j);
core::Result<RangeResult, core::Error> decode_range(const json& j);
core::Result<PutResult, core::Error> decode_put(const json& j);
core::Result<DeleteResult, core::Error> decode_delete(const json& j);
core::Result<TxnResult, core::Error> decode_txn(const json& j);
core::Result<Lease, core::Error> decode_lease_grant(const json& j);
// A keep-alive answer is one streamed object, {"result": {...}} (or {"error": {...}}).
core::Result<Lease, core::Error> decode_keep_alive(const json& j);
core::Result<LeaseTimeToLive, core::Error> decode_time_to_live(const json& j);

// One object of a watch stream.
struct WatchMessage {
  ResponseHeader header;
  bool created = false;
  bool canceled = false;
  int64_t compact_revision = 0;
  std::string cancel_reason;
  std::vector<WatchEvent> events;
};
core::Result<WatchMessage, core::Error> decode_watch_message(const json& j);

// --- errors
// The error for an answer with an HTTP status other than 200 (its body, which should be the gateway's error
// object), or for a stream's error object. `endpoint` is named in the message.
core::Error error_from_answer(int http_status, std::string_view body, std::string_view endpoint);
core::Error error_from_grpc(int grpc_code, std::string_view words, std::string_view endpoint);
// A stream's {"error": {...}} object as an error; nullopt when `j` is no error object.
std::optional<core::Error> stream_error(const json& j, std::string_view endpoint);

// Splits a byte stream of concatenated JSON objects ({"result":...}\n{"result":...}) into the objects,
// however the bytes were cut into pieces: each complete top-level object is handed out as soon as its closing
// brace has arrived. Whitespace between objects is skipped; anything else there, or an object over the limit,
// is an error after which the splitter stays failed.
class JsonObjectSplitter {
 public:
  explicit JsonObjectSplitter(size_t max_object_bytes = 64 * 1024 * 1024) : max_(max_object_bytes) {}

  // Appends `bytes`; the complete objects go to `out` (as text), in order. False once failed.
  [[nodiscard]] bool feed(std::string_view bytes, std::vector<std::string>& out);
  bool failed() const { return failed_; }
  const std::string& error() const { return error_; }
  size_t pending_bytes() const { return partial_.size(); }  // of an object not yet complete
  void reset() { *this = JsonObjectSplitter(max_); }

 private:
  size_t max_;
  std::string partial_;
  int depth_ = 0;
  bool in_string_ = false;
  bool escaped_ = false;
  bool failed_ = false;
  std::string error_;
};

}  // namespace cumulo::cluster::wire
