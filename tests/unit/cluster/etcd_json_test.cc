// The etcd JSON gateway's wire format: base64, requests, answers (as etcd 3.4 writes them), errors, and the
// splitting of a watch stream cut at every point.
#include "cluster/wire/etcd_json.h"

#include <gtest/gtest.h>

#include <string>

namespace cumulo::cluster::wire {
namespace {

json parse(std::string_view text) {
  return json::parse(text);
}

TEST(ClusterBase64, RoundTripsEveryByteAndEveryLength) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t n = 0; n <= all.size(); ++n) {
    std::string raw = all.substr(256 - n);
    std::string text = base64_encode(raw);
    EXPECT_EQ(text.size() % 4, 0u);
    auto back = base64_decode(text);
    ASSERT_TRUE(back) << text;
    EXPECT_EQ(*back, raw);
  }
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode(std::string("\0\xff", 2)), "AP8=");
}

TEST(ClusterBase64, RefusesWhatGoDoesNotWrite) {
  for (const char* bad : {"Zm9", "Zm9v=", "Zg=a", "Z===", "Zh==", "Zm9=v", "Zm 9v", "Zm9v\n", "Zm-_", "=Zm9"})
    EXPECT_FALSE(base64_decode(bad)) << bad;
  EXPECT_EQ(base64_decode(""), "");
}

TEST(ClusterPrefix, EndIsThePrefixWithItsLastByteRaised) {
  EXPECT_EQ(prefix_end("/a/"), "/a0");
  EXPECT_EQ(prefix_end("ab\xff"), "ac");
  EXPECT_EQ(prefix_end(std::string("\xff\xff", 2)), std::string(1, '\0'));
  EXPECT_EQ(prefix_end(""), std::string(1, '\0'));
}

TEST(ClusterRequests, BytesAreBase64AndNumbersAreStrings) {
  EXPECT_EQ(put_request("k\n", std::string("v\0", 2), 7587869128339497985).dump(),
            R"({"key":"awo=","lease":"7587869128339497985","value":"dgA="})");
  EXPECT_EQ(put_request("k", "", 0).dump(), R"({"key":"aw==","value":""})");
  RangeOptions o;
  o.revision = 12;
  o.limit = 3;
  EXPECT_EQ(range_request("/a/", prefix_end("/a/"), o).dump(),
            R"({"key":"L2Ev","limit":"3","range_end":"L2Ew","revision":"12"})");
  EXPECT_EQ(delete_request("k", "").dump(), R"({"key":"aw=="})");
  EXPECT_EQ(lease_grant_request(5).dump(), R"({"TTL":"5"})");
  EXPECT_EQ(lease_id_request(-1).dump(), R"({"ID":"-1"})");
  EXPECT_EQ(lease_ttl_request(9, true).dump(), R"({"ID":"9","keys":true})");
  WatchRequest w;
  w.key = "/p/";
  w.prefix = true;
  w.start_revision = 41;
  w.prev_kv = true;
  EXPECT_EQ(watch_create_request(w).dump(),
            R"({"create_request":{"key":"L3Av","prev_kv":true,"range_end":"L3Aw","start_revision":"41"}})");
}

TEST(ClusterRequests, TxnNamesTargetsAndResultsAsEtcdsEnums) {
  TxnRequest t;
  t.compare.push_back(Compare::missing("e"));
  t.compare.push_back(Compare::value_is("k", Compare::Op::kNotEqual, "x"));
  t.compare.push_back(Compare::version_is("k", Compare::Op::kGreater, 2));
  t.compare.push_back(Compare::mod_revision_is("k", Compare::Op::kLess, 9));
  t.compare.push_back(Compare::lease_is("k", Compare::Op::kEqual, 77));
  t.success.push_back(Operation::put("k", "v", 77));
  t.success.push_back(Operation::del_prefix("/d/"));
  t.failure.push_back(Operation::range("/r/"));
  json j = txn_request(t);
  EXPECT_EQ(j["compare"][0].dump(),
            R"({"create_revision":"0","key":"ZQ==","result":"EQUAL","target":"CREATE"})");
  EXPECT_EQ(j["compare"][1].dump(), R"({"key":"aw==","result":"NOT_EQUAL","target":"VALUE","value":"eA=="})");
  EXPECT_EQ(j["compare"][2].dump(), R"({"key":"aw==","result":"GREATER","target":"VERSION","version":"2"})");
  EXPECT_EQ(j["compare"][3].dump(), R"({"key":"aw==","mod_revision":"9","result":"LESS","target":"MOD"})");
  EXPECT_EQ(j["compare"][4].dump(), R"({"key":"aw==","lease":"77","result":"EQUAL","target":"LEASE"})");
  EXPECT_EQ(j["success"][0].dump(), R"({"request_put":{"key":"aw==","lease":"77","value":"dg=="}})");
  EXPECT_EQ(j["success"][1].dump(), R"({"request_delete_range":{"key":"L2Qv","range_end":"L2Qw"}})");
  EXPECT_EQ(j["failure"][0].dump(), R"({"request_range":{"key":"L3Iv","range_end":"L3Iw"}})");
}

// Answers as etcd 3.4.23 wrote them.
constexpr const char* kHeader =
    R"("header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"})";

TEST(ClusterAnswers, RangeWithKvsAndWithoutAnyField) {
  auto r =
      decode_range(parse(std::string("{") + kHeader +
                         R"(,"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"3","version":"2",)"
                         R"("value":"YmFy","lease":"7587869128339497985"}],"count":"1","more":true})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->header.revision, 2);
  EXPECT_EQ(r->header.cluster_id, 15118495548433857066ull);
  EXPECT_EQ(r->header.raft_term, 2);
  ASSERT_EQ(r->kvs.size(), 1u);
  EXPECT_EQ(r->kvs[0], (KeyValue{"foo", "bar", 2, 3, 2, 7587869128339497985}));
  EXPECT_EQ(r->count, 1);
  EXPECT_TRUE(r->more);
  // Zero values are left out: no kvs, no count; an empty value is no "value".
  auto empty = decode_range(parse(std::string("{") + kHeader + "}"));
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->kvs.empty());
  EXPECT_EQ(empty->count, 0);
  auto no_value = decode_kv(parse(R"({"key":"aw==","create_revision":"5"})"));
  ASSERT_TRUE(no_value);
  EXPECT_EQ(no_value->value, "");
  EXPECT_EQ(no_value->lease, 0);
}

TEST(ClusterAnswers, BadFieldsAreBadResponsesNamingTheField) {
  auto r = decode_range(parse(R"({"kvs":[{"key":"!!"}]})"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, "bad_response");
  EXPECT_NE(r.error().message.find("\"key\""), std::string::npos) << r.error().message;
  auto n = decode_range(parse(R"({"header":{"revision":"12x"}})"));
  ASSERT_FALSE(n);
  EXPECT_NE(n.error().message.find("\"revision\""), std::string::npos) << n.error().message;
  EXPECT_FALSE(decode_range(parse(R"({"kvs":{}})")));
  EXPECT_FALSE(decode_range(parse(R"([1])")));
  auto numeric = decode_header(parse(R"({"header":{"revision":7}})"));  // a number is read too
  ASSERT_TRUE(numeric);
  EXPECT_EQ(numeric->revision, 7);
}

TEST(ClusterAnswers, TxnResponsesOfEachKind) {
  auto t = decode_txn(
      parse(std::string("{") + kHeader +
            R"(,"succeeded":true,"responses":[{"response_put":{"header":{"revision":"3"}}},)"
            R"({"response_range":{"header":{"revision":"3"},"kvs":[{"key":"aw==",)"
            R"("create_revision":"3","mod_revision":"3","version":"1","value":"dg=="}],"count":"1"}},)"
            R"({"response_delete_range":{"header":{"revision":"3"},"deleted":"2"}}]})"));
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_TRUE(t->succeeded);
  ASSERT_EQ(t->responses.size(), 3u);
  EXPECT_EQ(t->responses[0].kind, Operation::Kind::kPut);
  EXPECT_EQ(t->responses[1].kind, Operation::Kind::kRange);
  ASSERT_EQ(t->responses[1].kvs.size(), 1u);
  EXPECT_EQ(t->responses[1].kvs[0].value, "v");
  EXPECT_EQ(t->responses[2].kind, Operation::Kind::kDelete);
  EXPECT_EQ(t->responses[2].deleted, 2);
  auto failed = decode_txn(parse(std::string("{") + kHeader + R"(,"responses":[{"response_range":{}}]})"));
  ASSERT_TRUE(failed);
  EXPECT_FALSE(failed->succeeded);
  EXPECT_FALSE(decode_txn(parse(R"({"responses":[{"response_other":{}}]})")));
}

TEST(ClusterAnswers, Leases) {
  auto g =
      decode_lease_grant(parse(std::string("{") + kHeader + R"(,"ID":"4111120511851566344","TTL":"5"})"));
  ASSERT_TRUE(g);
  EXPECT_EQ(g->id, 4111120511851566344);
  EXPECT_EQ(g->ttl_s, 5);
  auto k = decode_keep_alive(parse(std::string(R"({"result":{)") + kHeader + R"(,"ID":"41","TTL":"5"}})"));
  ASSERT_TRUE(k);
  EXPECT_EQ(k->ttl_s, 5);
  // A lease that is gone: the renewal answer has no TTL.
  auto gone = decode_keep_alive(parse(std::string(R"({"result":{)") + kHeader + R"(,"ID":"41"}})"));
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->ttl_s, 0);
  auto err = decode_keep_alive(parse(R"({"error":{"grpc_code":14,"http_code":503,"message":"no leader"}})"));
  ASSERT_FALSE(err);
  EXPECT_EQ(err.error().kind, "unavailable");
  auto ttl = decode_time_to_live(
      parse(std::string("{") + kHeader + R"(,"ID":"41","TTL":"4","grantedTTL":"5","keys":["Zm9v","YmFy"]})"));
  ASSERT_TRUE(ttl);
  EXPECT_EQ(ttl->ttl_s, 4);
  EXPECT_EQ(ttl->granted_ttl_s, 5);
  EXPECT_EQ(ttl->keys, (std::vector<std::string>{"foo", "bar"}));
  auto expired = decode_time_to_live(parse(std::string("{") + kHeader + R"(,"ID":"41","TTL":"-1"})"));
  ASSERT_TRUE(expired);
  EXPECT_EQ(expired->ttl_s, -1);
}

TEST(ClusterAnswers, WatchMessages) {
  auto created =
      decode_watch_message(parse(std::string(R"({"result":{)") + kHeader + R"(,"created":true}})"));
  ASSERT_TRUE(created);
  EXPECT_TRUE(created->created);
  EXPECT_TRUE(created->events.empty());
  auto events = decode_watch_message(
      parse(R"({"result":{"header":{"revision":"4"},"events":[{"kv":{"key":"Zm9v","create_revision":"2",)"
            R"("mod_revision":"3","version":"2","value":"YmF6"},"prev_kv":{"key":"Zm9v","value":"YmFy"}},)"
            R"({"type":"DELETE","kv":{"key":"Zm9v","mod_revision":"4"}}]}})"));
  ASSERT_TRUE(events) << events.error().message;
  ASSERT_EQ(events->events.size(), 2u);
  EXPECT_EQ(events->events[0].type, WatchEvent::Type::kPut);
  EXPECT_EQ(events->events[0].kv.value, "baz");
  ASSERT_TRUE(events->events[0].prev_kv);
  EXPECT_EQ(events->events[0].prev_kv->value, "bar");
  EXPECT_EQ(events->events[1].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(events->events[1].kv.key, "foo");
  EXPECT_EQ(events->events[1].kv.mod_revision, 4);
  auto compacted = decode_watch_message(
      parse(R"({"result":{"header":{"raft_term":"2"},"canceled":true,"compact_revision":"2"}})"));
  ASSERT_TRUE(compacted);
  EXPECT_TRUE(compacted->canceled);
  EXPECT_EQ(compacted->compact_revision, 2);
  EXPECT_FALSE(decode_watch_message(parse(R"({"result":{"events":[{"type":"MOVE","kv":{}}]}})")));
}

TEST(ClusterErrors, GrpcCodesMapToKindsAndRetryRules) {
  auto compacted = error_from_answer(
      400,
      R"({"error":"etcdserver: mvcc: required revision has been compacted","message":"etcdserver: mvcc: required revision has been compacted","code":11})",
      "127.0.0.1:2379");
  EXPECT_EQ(compacted.kind, "compacted");
  EXPECT_FALSE(compacted.retry_safe());
  EXPECT_EQ(compacted.message,
            "etcd at 127.0.0.1:2379: etcdserver: mvcc: required revision has been compacted (gRPC code 11)");
  auto lease = error_from_answer(404, R"({"error":"etcdserver: requested lease not found","code":5})", "e1");
  EXPECT_EQ(lease.kind, "lease_not_found");
  auto arg = error_from_answer(400, R"({"error":"illegal base64 data at input byte 0","code":3})", "e1");
  EXPECT_EQ(arg.kind, "invalid_argument");
  EXPECT_EQ(arg.source, core::ErrorSource::kClient);
  auto unavailable = error_from_answer(503, R"({"error":"etcdserver: no leader","code":14})", "e1");
  EXPECT_EQ(unavailable.kind, "unavailable");
  EXPECT_TRUE(unavailable.retry_safe());
  EXPECT_EQ(error_from_answer(504, R"({"error":"etcdserver: request timed out","code":4})", "e1").kind,
            "etcd_timeout");
  EXPECT_EQ(error_from_answer(500, R"({"error":"strange","code":13})", "e1").kind, "etcd_error");
  // OUT_OF_RANGE that is no compaction stays generic.
  EXPECT_EQ(error_from_answer(400, R"({"error":"something else","code":11})", "e1").kind, "etcd_error");
  auto html = error_from_answer(502, "<html>bad gateway</html>", "e1");
  EXPECT_EQ(html.kind, "bad_response");
  EXPECT_NE(html.message.find("HTTP 502"), std::string::npos);
  EXPECT_EQ(error_from_answer(503, "", "e1").kind, "unavailable");
  auto in_stream = stream_error(parse(R"({"error":{"grpc_code":11,"message":"etcdserver: mvcc: required )"
                                      R"(revision has been compacted","http_code":400}})"),
                                "e1");
  ASSERT_TRUE(in_stream);
  EXPECT_EQ(in_stream->kind, "compacted");
  EXPECT_FALSE(stream_error(parse(R"({"result":{}})"), "e1"));
}

// Three objects as etcd's watch stream carries them, with the strings that trip a naive splitter: braces and
// escaped quotes inside strings.
const std::string kStream =
    "{\"result\":{\"header\":{\"revision\":\"2\"},\"created\":true}}\n"
    "{\"result\":{\"events\":[{\"kv\":{\"key\":\"e30=\",\"note\":\"a } and a \\\" and a \\\\\"}}]}}\n"
    "  \r\n{\"error\":{\"grpc_code\":14,\"message\":\"{[\"}}\n";

TEST(ClusterWatchStream, SplitsObjectsCutAtEveryPoint) {
  JsonObjectSplitter whole;
  std::vector<std::string> expected;
  ASSERT_TRUE(whole.feed(kStream, expected));
  ASSERT_EQ(expected.size(), 3u);
  for (const auto& o : expected) EXPECT_FALSE(json::parse(o, nullptr, false).is_discarded()) << o;
  EXPECT_EQ(json::parse(expected[1])["result"]["events"][0]["kv"]["note"], "a } and a \" and a \\");
  // Every single cut, and every cut into pieces of each size.
  for (size_t cut = 0; cut <= kStream.size(); ++cut) {
    JsonObjectSplitter s;
    std::vector<std::string> got;
    ASSERT_TRUE(s.feed(std::string_view(kStream).substr(0, cut), got));
    ASSERT_TRUE(s.feed(std::string_view(kStream).substr(cut), got));
    EXPECT_EQ(got, expected) << "cut at " << cut;
    EXPECT_EQ(s.pending_bytes(), 0u);
  }
  for (size_t piece = 1; piece <= 17; ++piece) {
    JsonObjectSplitter s;
    std::vector<std::string> got;
    for (size_t i = 0; i < kStream.size(); i += piece) {
      size_t before = got.size();
      ASSERT_TRUE(s.feed(std::string_view(kStream).substr(i, piece), got));
      // An object comes out as soon as its closing brace is in.
      for (size_t k = before; k < got.size(); ++k) EXPECT_EQ(got[k].back(), '}');
    }
    EXPECT_EQ(got, expected) << "pieces of " << piece;
  }
}

TEST(ClusterWatchStream, RefusesBytesBetweenObjectsAndObjectsOverTheLimit) {
  JsonObjectSplitter s;
  std::vector<std::string> got;
  EXPECT_FALSE(s.feed("{\"a\":1} x {\"b\":2}", got));
  EXPECT_EQ(got.size(), 1u);
  EXPECT_TRUE(s.failed());
  EXPECT_NE(s.error().find("'x'"), std::string::npos);
  EXPECT_FALSE(s.feed("{}", got));  // stays failed
  s.reset();
  EXPECT_TRUE(s.feed("{}", got));

  JsonObjectSplitter mismatched;
  EXPECT_FALSE(
      mismatched.feed("{\"a\":[1}]", got));  // the brackets inside are the parser's; the outer must match
  EXPECT_NE(mismatched.error().find("closed by ']'"), std::string::npos);

  JsonObjectSplitter small(16);
  EXPECT_TRUE(small.feed("{\"a\":\"01234567\"}", got));  // 16 bytes: fits
  EXPECT_FALSE(small.feed("{\"a\":\"012345678\"}", got));
  EXPECT_NE(small.error().find("over 16 bytes"), std::string::npos) << small.error();
}

}  // namespace
}  // namespace cumulo::cluster::wire
