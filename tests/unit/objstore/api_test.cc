// The S3 API over a real http::Server on loopback, with requests signed here by the SigV4 functions: auth
// outcomes, the error table on the wire, ranges, preconditions, addressing styles.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "core/blocking_pool.h"
#include "core/event_loop.h"
#include "http/client.h"
#include "http/server.h"
#include "http/wire/h1.h"
#include "objstore/internal/s3_api.h"
#include "objstore/internal/s3_config.h"
#include "objstore/internal/storage.h"
#include "objstore/wire/checksum.h"
#include "objstore/wire/sigv4.h"
#include "unit/objstore/damaged_index.h"

namespace cumulo::objstore {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int64_t kNow = 1790000000;  // the store's fixed clock in these tests

struct Reply {
  int status = 0;
  std::string body;
  http::HeaderList headers;
  std::string header(std::string_view name) const {
    for (const auto& [k, v] : headers)
      if (http::iequals(k, name)) return v;
    return {};
  }
  std::string code() const {
    size_t a = body.find("<Code>"), b = body.find("</Code>");
    return a == std::string::npos ? "" : body.substr(a + 6, b - a - 6);
  }
};

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cumulo-s3api-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    config_ = parse_s3_config_string(R"(
listen: 127.0.0.1:0
data_dir: /unused
master_key_file: /unused
users:
  - {name: alice, access_key: AKALICE, secret_key: alice-secret-key}
  - {name: bob, access_key: AKBOB, secret_key: bob-secret-key-1}
buckets:
  - {name: public-site, owner: alice, public: true}
)");
    StorageOptions so;
    so.data_dir = dir_;
    storage_ = Storage::open(so);
    storage_->create_bucket("public-site", "alice");
    // One I/O thread, as the store runs its pool: tests can hold it (hold_pool) to see what waits for it.
    pool_ = std::make_unique<core::BlockingPool>(1);
    api_ = std::make_unique<S3Api>(config_, *storage_, 0, pool_.get());
    api_->clock = [] { return kNow; };
    http::ServerOptions opts;
    opts.listen = *core::SocketAddress::parse("127.0.0.1:0");
    S3Api* a = api_.get();
    opts.body_sink_for = [a](const http::Request& h) { return a->begin(h); };
    server_ = std::make_unique<http::Server>(
        loop_, std::move(opts), [a](http::Request& r, http::Responder res) { a->handle(r, std::move(res)); });
    server_->start();
    port_ = server_->local_address().port();
    thread_ = std::thread([this] { loop_.run(); });
  }
  void TearDown() override {
    loop_.post([this] {
      server_.reset();
      loop_.stop();
    });
    thread_.join();
    pool_->stop();
    api_.reset();
    storage_.reset();
    fs::remove_all(dir_);
  }

  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }

  // Occupies the I/O pool's thread until the returned promise is set: work given to the pool meanwhile waits.
  std::promise<void> hold_pool() {
    std::promise<void> release;
    auto started = std::make_shared<std::promise<void>>();
    std::future<void> running = started->get_future();
    std::shared_future<void> released = release.get_future().share();
    pool_->run([released, started] {
      started->set_value();
      released.wait();
    });
    running.wait();
    return release;
  }

  // Waits (up to 5 s) until the I/O pool has `n` jobs queued behind the one holding it.
  bool pool_queued(size_t n) {
    for (int i = 0; i < 500; ++i) {
      if (pool_->queued() == n) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  // Destroys the server while the pool is held, releases the pool and waits until every answer of the work
  // that waited has run on the loop (FIFO on one thread: when a job submitted last has answered, so have
  // theirs).
  void drop_server_then_release(std::promise<void>& hold) {
    on_loop([&] { server_.reset(); });
    hold.set_value();
    std::promise<void> drained;
    pool_->submit(
        loop_, [] { return 0; }, [&](int) { drained.set_value(); });
    drained.get_future().wait();
  }

  // Runs fn on the server's loop and waits for it.
  void on_loop(std::function<void()> fn) {
    std::promise<void> done;
    loop_.post([&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  // A raw connection that sends `request` and is closed by the caller without reading the answer.
  int send_raw(const std::string& request) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
    return fd;
  }

  // Sends a signed request on a client loop of its own thread; the reply arrives in the future.
  std::future<Reply> signed_send_async(const std::string& method, const std::string& target) {
    return std::async(std::launch::async, [this, method, target] { return signed_send(method, target); });
  }

  Reply send(const std::string& method, const std::string& target, const std::string& body = {},
             http::HeaderList headers = {}, std::string host_header = {}) {
    core::EventLoop loop;
    http::Client client(loop);
    http::ClientRequest req;
    req.method = method;
    req.target = target;
    req.host = host_header.empty() ? host() : host_header;
    req.headers = std::move(headers);
    req.body = body;
    req.timeout = 10s;
    Reply out;
    client.request(*core::SocketAddress::parse(host()), std::move(req), [&](http::ClientResponse r) {
      EXPECT_TRUE(r.ok()) << r.error.message;
      out.status = r.status;
      out.body = std::move(r.body);
      out.headers = std::move(r.headers);
      loop.stop();
    });
    loop.run();
    return out;
  }

  // Signs like the SDKs do: host, x-amz-content-sha256, x-amz-date and whatever else is given.
  Reply signed_send(const std::string& method, const std::string& target, const std::string& body = {},
                    http::HeaderList extra = {}, const std::string& access = "AKALICE",
                    const std::string& secret = "alice-secret-key", int64_t when = kNow,
                    std::string host_header = {}) {
    std::string h = host_header.empty() ? host() : host_header;
    std::string date = format_amz_date(when);
    http::HeaderList headers = extra;
    headers.emplace_back("x-amz-content-sha256", sha256_hex(body));
    headers.emplace_back("x-amz-date", date);
    HeaderPairs all = headers;
    all.emplace_back("host", h);
    std::vector<std::string> names;
    for (auto& [k, v] : all) {
      std::string n = k;
      std::transform(n.begin(), n.end(), n.begin(), ::tolower);
      names.push_back(n);
    }
    std::sort(names.begin(), names.end());
    std::string signed_headers;
    for (auto& n : names) signed_headers += (signed_headers.empty() ? "" : ";") + n;
    size_t q = target.find('?');
    std::string path = target.substr(0, q), query = q == std::string::npos ? "" : target.substr(q + 1);
    auto creq = canonical_request(method, *canonical_uri(path), *canonical_query(query, false), all,
                                  signed_headers, sha256_hex(body));
    std::string scope = date.substr(0, 8) + "/us-east-1/s3/aws4_request";
    SigningKey key = derive_signing_key(secret, date.substr(0, 8), "us-east-1", "s3");
    std::string sig = hmac_sha256_hex(key, string_to_sign(date, scope, *creq));
    headers.emplace_back("Authorization", "AWS4-HMAC-SHA256 Credential=" + access + "/" + scope +
                                              ", SignedHeaders=" + signed_headers + ", Signature=" + sig);
    return send(method, target, body, std::move(headers), host_header);
  }

  std::string presign(const std::string& path, int64_t when, int expires) {
    std::string date = format_amz_date(when);
    std::string scope = date.substr(0, 8) + "/us-east-1/s3/aws4_request";
    std::string query =
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + uri_encode("AKALICE/" + scope, true) +
        "&X-Amz-Date=" + date + "&X-Amz-Expires=" + std::to_string(expires) + "&X-Amz-SignedHeaders=host";
    HeaderPairs all = {{"host", host()}};
    auto creq = canonical_request("GET", *canonical_uri(path), *canonical_query(query, false), all, "host",
                                  kUnsignedPayload);
    SigningKey key = derive_signing_key("alice-secret-key", date.substr(0, 8), "us-east-1", "s3");
    return path + "?" + query +
           "&X-Amz-Signature=" + hmac_sha256_hex(key, string_to_sign(date, scope, *creq));
  }

  std::string dir_;
  S3Config config_;
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<core::BlockingPool> pool_;
  std::unique_ptr<S3Api> api_;
  core::EventLoop loop_;
  std::unique_ptr<http::Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;
};

TEST_F(ApiTest, BucketAndObjectLifecycle) {
  EXPECT_EQ(signed_send("PUT", "/photos").status, 200);
  EXPECT_EQ(signed_send("PUT", "/photos").code(), "BucketAlreadyOwnedByYou");
  EXPECT_EQ(signed_send("PUT", "/photos", {}, {}, "AKBOB", "bob-secret-key-1").code(), "BucketAlreadyExists");
  EXPECT_EQ(signed_send("HEAD", "/photos").status, 200);
  Reply put = signed_send(
      "PUT", "/photos/a%20b/c.txt", "hello world",
      {{"Content-Type", "text/plain"}, {"Cache-Control", "max-age=60"}, {"x-amz-meta-colour", "blue"}});
  EXPECT_EQ(put.status, 200);
  EXPECT_EQ(put.header("ETag"), "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"");
  Reply get = signed_send("GET", "/photos/a%20b/c.txt");
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, "hello world");
  EXPECT_EQ(get.header("Content-Type"), "text/plain");
  EXPECT_EQ(get.header("Cache-Control"), "max-age=60");
  EXPECT_EQ(get.header("x-amz-meta-colour"), "blue");
  Reply list = signed_send("GET", "/photos?list-type=2&prefix=a");
  EXPECT_NE(list.body.find("<Key>a b/c.txt</Key>"), std::string::npos) << list.body;
  EXPECT_NE(list.body.find("<KeyCount>1</KeyCount>"), std::string::npos);
  Reply buckets = signed_send("GET", "/");
  EXPECT_NE(buckets.body.find("<Name>photos</Name>"), std::string::npos);
  EXPECT_EQ(signed_send("GET", "/", {}, {}, "AKBOB", "bob-secret-key-1").body.find("photos"),
            std::string::npos);
  EXPECT_EQ(signed_send("GET", "/photos/x", {}, {}, "AKBOB", "bob-secret-key-1").code(), "AccessDenied");
  EXPECT_EQ(signed_send("DELETE", "/photos").code(), "BucketNotEmpty");
  EXPECT_EQ(signed_send("DELETE", "/photos/a%20b/c.txt").status, 204);
  EXPECT_EQ(signed_send("GET", "/photos/a%20b/c.txt").code(), "NoSuchKey");
  EXPECT_EQ(signed_send("DELETE", "/photos").status, 204);
  EXPECT_EQ(signed_send("GET", "/photos/x").code(), "NoSuchBucket");
}

// A listing the index cannot finish is a 500 InternalError, not a 200 with the keys read before the failure.
// The page is damaged under the running store: its connections hold no page of the objects table yet, and the
// WAL checkpoint makes them drop what they cached.
TEST_F(ApiTest, ListingTheIndexCannotFinishIsAnInternalError) {
  ASSERT_EQ(signed_send("PUT", "/photos").status, 200);
  std::string db_path = dir_ + "/index.sqlite";
  ASSERT_EQ(index_faults::add_index_rows(db_path, "photos", 3000), "");
  ASSERT_TRUE(index_faults::damage_index_page(db_path));
  // Page through the whole bucket as a client would: some page must fail, none may end the listing early.
  Reply r;
  std::string marker;
  size_t keys = 0;
  for (int page = 0; page < 5; ++page) {
    r = signed_send("GET", "/photos?marker=" + marker);
    if (r.status != 200) break;
    for (size_t at = r.body.find("<Key>"); at != std::string::npos; at = r.body.find("<Key>", at + 1)) ++keys;
    if (r.body.find("<IsTruncated>true</IsTruncated>") == std::string::npos) break;
    size_t a = r.body.find("<NextMarker>"), b = r.body.find("</NextMarker>");
    ASSERT_NE(a, std::string::npos) << r.body;
    marker = r.body.substr(a + 12, b - a - 12);
  }
  EXPECT_EQ(r.status, 500) << "listed " << keys << " of 3000 keys";
  EXPECT_EQ(r.code(), "InternalError");
}

TEST_F(ApiTest, AuthenticationFailures) {
  Reply wrong = signed_send("GET", "/", {}, {}, "AKALICE", "not-the-secret");
  EXPECT_EQ(wrong.status, 403);
  EXPECT_EQ(wrong.code(), "SignatureDoesNotMatch");
  EXPECT_EQ(signed_send("GET", "/", {}, {}, "AKNOBODY", "x").code(), "InvalidAccessKeyId");
  EXPECT_EQ(signed_send("GET", "/", {}, {}, "AKALICE", "alice-secret-key", kNow - 3600).code(),
            "RequestTimeTooSkewed");
  EXPECT_EQ(signed_send("GET", "/", {}, {}, "AKALICE", "alice-secret-key", kNow - 600).status, 200);
  EXPECT_EQ(send("GET", "/").code(), "AccessDenied");
  EXPECT_EQ(send("GET", "/", {}, {{"Authorization", "AWS4-HMAC-SHA256 garbage"}}).code(),
            "AuthorizationHeaderMalformed");
  // The body hash is checked against what arrived.
  Reply tampered =
      send("PUT", "/public-site/x", "other body",
           {{"x-amz-content-sha256", sha256_hex("body")}, {"x-amz-date", format_amz_date(kNow)}});
  EXPECT_EQ(tampered.status, 403);  // the signature covers the hash header, and it is absent
}

TEST_F(ApiTest, PayloadHashMismatch) {
  // Sign for one body, send another of the same length: the signature holds, the hash does not.
  std::string date = format_amz_date(kNow);
  HeaderPairs all = {{"host", host()}, {"x-amz-content-sha256", sha256_hex("aaaa")}, {"x-amz-date", date}};
  auto creq = canonical_request("PUT", "/public-site/k", "", all, "host;x-amz-content-sha256;x-amz-date",
                                sha256_hex("aaaa"));
  std::string scope = date.substr(0, 8) + "/us-east-1/s3/aws4_request";
  SigningKey key = derive_signing_key("alice-secret-key", date.substr(0, 8), "us-east-1", "s3");
  std::string sig = hmac_sha256_hex(key, string_to_sign(date, scope, *creq));
  Reply r =
      send("PUT", "/public-site/k", "bbbb",
           {{"x-amz-content-sha256", sha256_hex("aaaa")},
            {"x-amz-date", date},
            {"Authorization", "AWS4-HMAC-SHA256 Credential=AKALICE/" + scope +
                                  ", SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" + sig}});
  EXPECT_EQ(r.code(), "XAmzContentSHA256Mismatch");
  EXPECT_EQ(signed_send("GET", "/public-site/k").code(), "NoSuchKey");
}

TEST_F(ApiTest, PublicBucketsAreReadableAnonymouslyAndNothingElse) {
  signed_send("PUT", "/public-site/index.html", "<h1>hi</h1>", {{"Content-Type", "text/html"}});
  Reply r = send("GET", "/public-site/index.html");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "<h1>hi</h1>");
  EXPECT_EQ(r.header("Content-Type"), "text/html");
  EXPECT_EQ(send("HEAD", "/public-site/index.html").status, 200);
  EXPECT_EQ(send("GET", "/public-site").code(), "AccessDenied");
  EXPECT_EQ(send("PUT", "/public-site/x", "data").code(), "AccessDenied");
  EXPECT_EQ(send("DELETE", "/public-site/index.html").code(), "AccessDenied");
  signed_send("PUT", "/private1");
  signed_send("PUT", "/private1/k", "v");
  EXPECT_EQ(send("GET", "/private1/k").code(), "AccessDenied");
}

TEST_F(ApiTest, PresignedUrlsExpire) {
  signed_send("PUT", "/public-site/p.txt", "presigned");
  std::string url = presign("/public-site/p.txt", kNow - 100, 300);
  Reply ok = send("GET", url);
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.body, "presigned");
  Reply expired = send("GET", presign("/public-site/p.txt", kNow - 400, 300));
  EXPECT_EQ(expired.status, 403);
  EXPECT_NE(expired.body.find("Request has expired"), std::string::npos);
  std::string altered = url;
  altered.replace(altered.find("p.txt"), 5, "q.txt");
  EXPECT_EQ(send("GET", altered).code(), "SignatureDoesNotMatch");
}

TEST_F(ApiTest, RangesAndPreconditions) {
  std::string data = "0123456789abcdefghij";
  Reply put = signed_send("PUT", "/public-site/r", data);
  std::string etag = put.header("ETag");
  Reply r = signed_send("GET", "/public-site/r", {}, {{"Range", "bytes=2-5"}});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, "2345");
  EXPECT_EQ(r.header("Content-Range"), "bytes 2-5/20");
  EXPECT_EQ(signed_send("GET", "/public-site/r", {}, {{"Range", "bytes=-3"}}).body, "hij");
  EXPECT_EQ(signed_send("GET", "/public-site/r", {}, {{"Range", "bytes=18-"}}).body, "ij");
  EXPECT_EQ(signed_send("GET", "/public-site/r", {}, {{"Range", "bytes=15-100"}}).body, "fghij");
  Reply bad = signed_send("GET", "/public-site/r", {}, {{"Range", "bytes=20-30"}});
  EXPECT_EQ(bad.status, 416);
  EXPECT_EQ(bad.code(), "InvalidRange");
  EXPECT_EQ(bad.header("Content-Range"), "bytes */20");
  EXPECT_EQ(signed_send("GET", "/public-site/r", {}, {{"If-None-Match", etag}}).status, 304);
  EXPECT_EQ(signed_send("GET", "/public-site/r", {}, {{"If-Match", etag}}).status, 200);
  EXPECT_EQ(signed_send("GET", "/public-site/r", {}, {{"If-Match", "\"other\""}}).status, 412);
  EXPECT_EQ(signed_send("GET", "/public-site/r", {}, {{"If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT"}})
                .status,
            304);
  EXPECT_EQ(
      signed_send("GET", "/public-site/r", {}, {{"If-Unmodified-Since", "Thu, 01 Jan 2015 00:00:00 GMT"}})
          .status,
      412);
  EXPECT_EQ(signed_send("GET", "/public-site/r", {}, {{"If-Modified-Since", "Thu, 01 Jan 2015 00:00:00 GMT"}})
                .status,
            200);
}

TEST_F(ApiTest, BadInput) {
  EXPECT_EQ(signed_send("PUT", "/public-site/a/../b", "x").code(), "InvalidArgument");
  EXPECT_EQ(signed_send("PUT", "/public-site/a%00b", "x").code(), "InvalidArgument");
  EXPECT_EQ(signed_send("PUT", "/public-site/" + std::string(1025, 'k'), "x").code(), "KeyTooLongError");
  EXPECT_EQ(signed_send("PUT", "/public-site/" + std::string(1024, 'k'), "x").status, 200);
  EXPECT_EQ(signed_send("PUT", "/Bad_Bucket").code(), "InvalidBucketName");
  EXPECT_EQ(signed_send("PUT", "/ab").code(), "InvalidBucketName");
  EXPECT_EQ(signed_send("PUT", "/192.168.1.1").code(), "InvalidBucketName");
  EXPECT_EQ(signed_send("POST", "/public-site?delete", "<Delete><Object><Key>x</Key>").code(),
            "MalformedXML");
  EXPECT_EQ(
      signed_send("PUT", "/public-site/md5", "data", {{"Content-MD5", "AAAAAAAAAAAAAAAAAAAAAA=="}}).code(),
      "BadDigest");
  EXPECT_EQ(signed_send("PUT", "/public-site/md5", "data", {{"Content-MD5", "nope"}}).code(),
            "InvalidDigest");
  EXPECT_EQ(
      signed_send("PUT", "/public-site/md5", "data", {{"Content-MD5", "jXd/OF09/siBXSD3SWAm3A=="}}).status,
      200);
  EXPECT_EQ(signed_send("GET", "/public-site?policy").code(), "NotImplemented");
}

// Golden: keys come from the percent-decoded path ('+' is a plus there), query values are form-decoded ('+'
// is a space), and a '%' that is not followed by two hex digits is refused.
TEST_F(ApiTest, KeyAndQueryDecodingGolden) {
  EXPECT_EQ(signed_send("PUT", "/public-site/p%2Bq+r%7e%C3%bc", "x").status, 200);
  EXPECT_EQ(signed_send("PUT", "/public-site/s%20p", "y").status, 200);
  Reply plus = signed_send("GET", "/public-site?list-type=2&prefix=p%2Bq%2b");
  EXPECT_NE(plus.body.find("<Key>p+q+r~\xc3\xbc</Key>"), std::string::npos) << plus.body;
  EXPECT_NE(plus.body.find("<KeyCount>1</KeyCount>"), std::string::npos) << plus.body;
  Reply space = signed_send("GET", "/public-site?list-type=2&prefix=s+p");
  EXPECT_NE(space.body.find("<Key>s p</Key>"), std::string::npos) << space.body;
  EXPECT_NE(space.body.find("<KeyCount>1</KeyCount>"), std::string::npos) << space.body;
  EXPECT_EQ(signed_send("GET", "/public-site/p+q+r~%C3%BC").body, "x");
  EXPECT_EQ(send("GET", "/public-site/a%zz").code(), "InvalidRequest");
  EXPECT_EQ(send("GET", "/public-site/a%4").code(), "InvalidRequest");
  EXPECT_EQ(send("GET", "/public-site?prefix=%g1").code(), "InvalidRequest");
  EXPECT_EQ(send("GET", "/public-site?pre%fix=1").code(), "InvalidRequest");
}

TEST_F(ApiTest, VirtualHostStyle) {
  Reply put = signed_send("PUT", "/vh.txt", "virtual", {}, "AKALICE", "alice-secret-key", kNow,
                          "public-site.s3.localhost:" + std::to_string(port_));
  EXPECT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(signed_send("GET", "/public-site/vh.txt").body, "virtual");
}

TEST_F(ApiTest, DeleteObjectsAndCopy) {
  signed_send("PUT", "/public-site/a", "A", {{"Content-Type", "text/a"}});
  signed_send("PUT", "/public-site/b", "B");
  Reply copy = signed_send("PUT", "/public-site/c", {}, {{"x-amz-copy-source", "/public-site/a"}});
  EXPECT_EQ(copy.status, 200) << copy.body;
  EXPECT_NE(copy.body.find("<CopyObjectResult"), std::string::npos);
  Reply c = signed_send("GET", "/public-site/c");
  EXPECT_EQ(c.body, "A");
  EXPECT_EQ(c.header("Content-Type"), "text/a");
  EXPECT_EQ(signed_send("PUT", "/public-site/a", {}, {{"x-amz-copy-source", "public-site/a"}}).code(),
            "InvalidRequest");
  Reply del = signed_send("POST", "/public-site?delete",
                          "<Delete><Object><Key>a</Key></Object><Object><Key>b</Key></Object>"
                          "<Object><Key>missing</Key></Object></Delete>");
  EXPECT_EQ(del.status, 200);
  EXPECT_NE(del.body.find("<Deleted><Key>missing</Key></Deleted>"), std::string::npos) << del.body;
  EXPECT_EQ(signed_send("GET", "/public-site/a").code(), "NoSuchKey");
  EXPECT_EQ(signed_send("GET", "/public-site/c").body, "A");
}

TEST_F(ApiTest, MultipartOverTheApi) {
  Reply init = signed_send("POST", "/public-site/mp?uploads");
  ASSERT_EQ(init.status, 200);
  size_t a = init.body.find("<UploadId>"), b = init.body.find("</UploadId>");
  std::string id = init.body.substr(a + 10, b - a - 10);
  std::string p1(5 * 1024 * 1024, 'x'), p2 = "tail";
  Reply r1 = signed_send("PUT", "/public-site/mp?partNumber=1&uploadId=" + id, p1);
  Reply r2 = signed_send("PUT", "/public-site/mp?partNumber=2&uploadId=" + id, p2);
  ASSERT_EQ(r1.status, 200);
  ASSERT_EQ(r2.status, 200);
  EXPECT_EQ(signed_send("PUT", "/public-site/mp?partNumber=0&uploadId=" + id, "x").code(), "InvalidArgument");
  EXPECT_EQ(signed_send("PUT", "/public-site/mp?partNumber=3&uploadId=nope", "x").code(), "NoSuchUpload");
  Reply parts = signed_send("GET", "/public-site/mp?uploadId=" + id);
  EXPECT_NE(parts.body.find("<PartNumber>2</PartNumber>"), std::string::npos);
  Reply uploads = signed_send("GET", "/public-site?uploads");
  EXPECT_NE(uploads.body.find(id), std::string::npos);
  std::string xml = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>" + r1.header("ETag") +
                    "</ETag></Part><Part><PartNumber>2</PartNumber><ETag>" + r2.header("ETag") +
                    "</ETag></Part></CompleteMultipartUpload>";
  Reply done = signed_send("POST", "/public-site/mp?uploadId=" + id, xml);
  EXPECT_EQ(done.status, 200) << done.body;
  EXPECT_NE(done.body.find("-2&quot;</ETag>"), std::string::npos) << done.body;
  Reply got = signed_send("GET", "/public-site/mp", {}, {{"Range", "bytes=5242878-5242881"}});
  EXPECT_EQ(got.body, "xxta");
  EXPECT_EQ(signed_send("DELETE", "/public-site/mp?uploadId=" + id).code(), "NoSuchUpload");
}

// An aws-chunked upload signed chunk by chunk, as the Java and Go SDKs send them; then one with a bad chunk.
TEST_F(ApiTest, StreamingSignedUpload) {
  auto upload = [&](const std::string& key, bool corrupt) {
    std::string date = format_amz_date(kNow);
    std::string scope = date.substr(0, 8) + "/us-east-1/s3/aws4_request";
    std::string data(70000, 'q');
    HeaderPairs headers = {{"Content-Encoding", "aws-chunked"},
                           {"x-amz-content-sha256", std::string(kStreamingSigned)},
                           {"x-amz-date", date},
                           {"x-amz-decoded-content-length", std::to_string(data.size())}};
    HeaderPairs all = headers;
    all.emplace_back("host", host());
    std::string signed_headers =
        "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length";
    auto creq = canonical_request("PUT", "/public-site/" + key, "", all, signed_headers, kStreamingSigned);
    SigningKey k = derive_signing_key("alice-secret-key", date.substr(0, 8), "us-east-1", "s3");
    std::string seed = hmac_sha256_hex(k, string_to_sign(date, scope, *creq));
    std::string prev = seed, body;
    auto chunk = [&](std::string_view piece) {
      std::string sts = "AWS4-HMAC-SHA256-PAYLOAD\n" + date + "\n" + scope + "\n" + prev + "\n" +
                        std::string(kEmptySha256) + "\n" + sha256_hex(piece);
      prev = hmac_sha256_hex(k, sts);
      char size[20];
      std::snprintf(size, sizeof size, "%zx", piece.size());
      body += std::string(size) + ";chunk-signature=" + prev + "\r\n" + std::string(piece) + "\r\n";
    };
    chunk(std::string_view(data).substr(0, 65536));
    chunk(std::string_view(data).substr(65536));
    chunk("");  // the final chunk: its empty data's CRLF is the body's last line
    if (corrupt) body[100] = 'r';
    headers.emplace_back("Authorization", "AWS4-HMAC-SHA256 Credential=AKALICE/" + scope +
                                              ", SignedHeaders=" + signed_headers + ", Signature=" + seed);
    return send("PUT", "/public-site/" + key, body, headers);
  };
  Reply ok = upload("streamed", false);
  EXPECT_EQ(ok.status, 200) << ok.body;
  Reply got = signed_send("GET", "/public-site/streamed");
  EXPECT_EQ(got.body, std::string(70000, 'q'));
  EXPECT_EQ(got.header("Content-Encoding"), "");  // aws-chunked describes the upload only
  Reply bad = upload("tampered", true);
  EXPECT_EQ(bad.code(), "SignatureDoesNotMatch");
  EXPECT_EQ(signed_send("GET", "/public-site/tampered").code(), "NoSuchKey");
}

TEST_F(ApiTest, FlexibleChecksums) {
  Reply put = signed_send("PUT", "/public-site/ck", "hello", {{"x-amz-checksum-crc32", "NhCmhg=="}});
  EXPECT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(put.header("x-amz-checksum-crc32"), "NhCmhg==");
  EXPECT_EQ(signed_send("GET", "/public-site/ck").header("x-amz-checksum-crc32"), "");
  EXPECT_EQ(signed_send("GET", "/public-site/ck", {}, {{"x-amz-checksum-mode", "ENABLED"}})
                .header("x-amz-checksum-crc32"),
            "NhCmhg==");
  EXPECT_EQ(signed_send("PUT", "/public-site/ck2", "hello", {{"x-amz-checksum-crc32", "AAAAAA=="}}).code(),
            "BadDigest");
  EXPECT_EQ(signed_send("GET", "/public-site/ck2").code(), "NoSuchKey");
}

std::string checksum_of(ChecksumAlgorithm a, std::string_view data) {
  Checksummer c(a);
  c.update(data);
  return c.base64();
}

std::string between(const std::string& body, const std::string& open, const std::string& close) {
  size_t a = body.find(open);
  if (a == std::string::npos) return "<none>";
  size_t b = body.find(close, a + open.size());
  return body.substr(a + open.size(), b - a - open.size());
}

// Part checksums stored with each part, the object's COMPOSITE and FULL_OBJECT checksums from them, returned
// in checksum mode and by GetObjectAttributes, and kept (recomputed) by CopyObject.
TEST_F(ApiTest, MultipartChecksums) {
  const std::string p1(5 * 1024 * 1024, 'x'), p2 = "tail";
  const std::string c1 = checksum_of(ChecksumAlgorithm::kCrc32, p1),
                    c2 = checksum_of(ChecksumAlgorithm::kCrc32, p2);
  Reply init = signed_send("POST", "/public-site/mc?uploads", {}, {{"x-amz-checksum-algorithm", "CRC32"}});
  ASSERT_EQ(init.status, 200) << init.body;
  EXPECT_EQ(init.header("x-amz-checksum-algorithm"), "CRC32");
  std::string id = between(init.body, "<UploadId>", "</UploadId>");
  std::string part = "/public-site/mc?uploadId=" + id + "&partNumber=";
  Reply r1 = signed_send("PUT", part + "1", p1, {{"x-amz-checksum-crc32", c1}});
  ASSERT_EQ(r1.status, 200) << r1.body;
  Reply r2 = signed_send("PUT", part + "2", p2);  // no checksum sent: the upload's algorithm, computed here
  ASSERT_EQ(r2.status, 200) << r2.body;
  EXPECT_EQ(r2.header("x-amz-checksum-crc32"), c2);
  EXPECT_EQ(signed_send("PUT", part + "3", p2,
                        {{"x-amz-checksum-sha256", checksum_of(ChecksumAlgorithm::kSha256, p2)}})
                .code(),
            "InvalidRequest");
  EXPECT_EQ(signed_send("PUT", part + "3", p2, {{"x-amz-checksum-crc32", "AAAAAA=="}}).code(), "BadDigest");
  Reply listed = signed_send("GET", "/public-site/mc?uploadId=" + id);
  EXPECT_NE(listed.body.find("<ChecksumCRC32>" + c2 + "</ChecksumCRC32>"), std::string::npos) << listed.body;
  EXPECT_EQ(between(listed.body, "<ChecksumType>", "</"), "COMPOSITE");
  auto complete_xml = [&](const std::string& sum1) {
    return "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>" + r1.header("ETag") +
           "</ETag><ChecksumCRC32>" + sum1 + "</ChecksumCRC32></Part><Part><PartNumber>2</PartNumber><ETag>" +
           r2.header("ETag") + "</ETag></Part></CompleteMultipartUpload>";
  };
  EXPECT_EQ(signed_send("POST", "/public-site/mc?uploadId=" + id, complete_xml(c2)).code(), "InvalidPart");
  Reply done = signed_send("POST", "/public-site/mc?uploadId=" + id, complete_xml(c1));
  ASSERT_EQ(done.status, 200) << done.body;
  const std::string composite =
      *multipart_checksum(ChecksumAlgorithm::kCrc32, {{c1, p1.size()}, {c2, 4}}, false);
  EXPECT_EQ(between(done.body, "<ChecksumCRC32>", "</"), composite);
  EXPECT_EQ(between(done.body, "<ChecksumType>", "</"), "COMPOSITE");
  Reply head = signed_send("HEAD", "/public-site/mc", {}, {{"x-amz-checksum-mode", "ENABLED"}});
  EXPECT_EQ(head.header("x-amz-checksum-crc32"), composite);
  EXPECT_EQ(head.header("x-amz-checksum-type"), "COMPOSITE");
  EXPECT_EQ(head.header("x-cumulo-part-checksums"), "");  // internal, never sent
  EXPECT_EQ(signed_send("HEAD", "/public-site/mc").header("x-amz-checksum-crc32"), "");

  Reply attrs =
      signed_send("GET", "/public-site/mc?attributes", {},
                  {{"x-amz-object-attributes", "ETag,Checksum,ObjectParts,StorageClass,ObjectSize"}});
  ASSERT_EQ(attrs.status, 200) << attrs.body;
  EXPECT_EQ(between(attrs.body, "<ETag>", "</"), between(done.body, "<ETag>&quot;", "&quot;"));
  EXPECT_EQ(between(attrs.body, "<Checksum><ChecksumCRC32>", "</"), composite);
  EXPECT_EQ(between(attrs.body, "<PartsCount>", "</"), "2");
  EXPECT_NE(attrs.body.find("<Part><PartNumber>2</PartNumber><Size>4</Size><ChecksumCRC32>" + c2),
            std::string::npos)
      << attrs.body;
  EXPECT_EQ(between(attrs.body, "<ObjectSize>", "</"), std::to_string(p1.size() + 4));
  EXPECT_EQ(between(attrs.body, "<StorageClass>", "</"), "STANDARD");
  Reply paged = signed_send("GET", "/public-site/mc?attributes", {},
                            {{"x-amz-object-attributes", "ObjectParts"}, {"x-amz-max-parts", "1"}});
  EXPECT_EQ(between(paged.body, "<IsTruncated>", "</"), "true");
  EXPECT_EQ(paged.body.find("<ETag>"), std::string::npos);
  EXPECT_EQ(
      signed_send("GET", "/public-site/mc?attributes", {}, {{"x-amz-object-attributes", "Colour"}}).code(),
      "InvalidArgument");

  // FULL_OBJECT CRC32C: the whole object's CRC, combined from the parts'; the completion's own value checked.
  EXPECT_EQ(signed_send("POST", "/public-site/fo?uploads", {},
                        {{"x-amz-checksum-algorithm", "SHA256"}, {"x-amz-checksum-type", "FULL_OBJECT"}})
                .code(),
            "InvalidRequest");
  Reply init2 = signed_send("POST", "/public-site/fo?uploads", {},
                            {{"x-amz-checksum-algorithm", "CRC32C"}, {"x-amz-checksum-type", "FULL_OBJECT"}});
  std::string id2 = between(init2.body, "<UploadId>", "</UploadId>");
  Reply f1 = signed_send("PUT", "/public-site/fo?uploadId=" + id2 + "&partNumber=1", p1);
  Reply f2 = signed_send("PUT", "/public-site/fo?uploadId=" + id2 + "&partNumber=2", p2,
                         {{"x-amz-checksum-crc32c", checksum_of(ChecksumAlgorithm::kCrc32c, p2)}});
  ASSERT_EQ(f2.status, 200) << f2.body;
  std::string xml2 = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>" + f1.header("ETag") +
                     "</ETag></Part><Part><PartNumber>2</PartNumber><ETag>" + f2.header("ETag") +
                     "</ETag></Part></CompleteMultipartUpload>";
  const std::string whole = checksum_of(ChecksumAlgorithm::kCrc32c, p1 + p2);
  EXPECT_EQ(
      signed_send("POST", "/public-site/fo?uploadId=" + id2, xml2, {{"x-amz-checksum-crc32c", "AAAAAA=="}})
          .code(),
      "BadDigest");
  Reply done2 =
      signed_send("POST", "/public-site/fo?uploadId=" + id2, xml2, {{"x-amz-checksum-crc32c", whole}});
  ASSERT_EQ(done2.status, 200) << done2.body;
  EXPECT_EQ(between(done2.body, "<ChecksumCRC32C>", "</"), whole);
  Reply head2 = signed_send("HEAD", "/public-site/fo", {}, {{"x-amz-checksum-mode", "ENABLED"}});
  EXPECT_EQ(head2.header("x-amz-checksum-crc32c"), whole);
  EXPECT_EQ(head2.header("x-amz-checksum-type"), "FULL_OBJECT");

  // CopyObject: the source's algorithm recomputed over the copy (one part: FULL_OBJECT), or the one asked
  // for.
  Reply copy = signed_send("PUT", "/public-site/mc-copy", {}, {{"x-amz-copy-source", "/public-site/mc"}});
  ASSERT_EQ(copy.status, 200) << copy.body;
  EXPECT_EQ(between(copy.body, "<ChecksumCRC32>", "</"), checksum_of(ChecksumAlgorithm::kCrc32, p1 + p2));
  EXPECT_EQ(signed_send("HEAD", "/public-site/mc-copy", {}, {{"x-amz-checksum-mode", "ENABLED"}})
                .header("x-amz-checksum-crc32"),
            checksum_of(ChecksumAlgorithm::kCrc32, p1 + p2));
  Reply copy2 =
      signed_send("PUT", "/public-site/fo-copy", {},
                  {{"x-amz-copy-source", "/public-site/fo"}, {"x-amz-checksum-algorithm", "SHA256"}});
  EXPECT_EQ(between(copy2.body, "<ChecksumSHA256>", "</"), checksum_of(ChecksumAlgorithm::kSha256, p1 + p2));
  Reply head3 = signed_send("HEAD", "/public-site/fo-copy", {}, {{"x-amz-checksum-mode", "ENABLED"}});
  EXPECT_EQ(head3.header("x-amz-checksum-crc32c"), "");
  EXPECT_EQ(head3.header("x-amz-checksum-sha256"), checksum_of(ChecksumAlgorithm::kSha256, p1 + p2));
}

// A listing scans the index on the I/O pool: while the pool is busy the listing waits, and the loop keeps
// answering reads whose bytes it has at hand (here the read cache).
TEST_F(ApiTest, ListingsRunOnTheIoPoolWhileTheLoopAnswersReads) {
  ASSERT_EQ(signed_send("PUT", "/photos").status, 200);
  ASSERT_EQ(signed_send("PUT", "/photos/a", std::string(4096, 'a')).status, 200);
  ASSERT_EQ(signed_send("GET", "/photos/a").body, std::string(4096, 'a'));  // now in the read cache
  std::promise<void> hold = hold_pool();
  std::future<Reply> listing = signed_send_async("GET", "/photos?list-type=2");
  ASSERT_TRUE(pool_queued(1));
  Reply get = signed_send("GET", "/photos/a");
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, std::string(4096, 'a'));
  EXPECT_EQ(listing.wait_for(50ms), std::future_status::timeout) << "the listing did not wait for the pool";
  hold.set_value();
  Reply listed = listing.get();
  EXPECT_EQ(listed.status, 200);
  EXPECT_NE(listed.body.find("<Key>a</Key>"), std::string::npos) << listed.body;
}

// Deletes and multipart commits wait for the pool too (each commit waits for an fsync).
TEST_F(ApiTest, SynchronousCommitsRunOnTheIoPool) {
  ASSERT_EQ(signed_send("PUT", "/photos").status, 200);
  ASSERT_EQ(signed_send("PUT", "/photos/d", "x").status, 200);
  std::promise<void> hold = hold_pool();
  std::future<Reply> deleted = signed_send_async("DELETE", "/photos/d");
  ASSERT_TRUE(pool_queued(1));
  EXPECT_EQ(deleted.wait_for(50ms), std::future_status::timeout);
  hold.set_value();
  EXPECT_EQ(deleted.get().status, 204);
  EXPECT_EQ(signed_send("GET", "/photos/d").code(), "NoSuchKey");
}

// The first GET of a file this loop has not open opens it on the pool; the loop keeps it open, so the next
// GET is answered on the loop even while the pool is busy. 2 MiB: over the read cache's object limit, so both
// read the file (the second streams from the descriptor the first one left open).
TEST_F(ApiTest, FirstOpenOfAFileOnThePoolThenReadsStayOnTheLoop) {
  ASSERT_EQ(signed_send("PUT", "/photos").status, 200);
  std::string big(2 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 23);
  ASSERT_EQ(signed_send("PUT", "/photos/big", big).status, 200);
  {
    std::promise<void> hold = hold_pool();
    std::future<Reply> first = signed_send_async("GET", "/photos/big");
    ASSERT_TRUE(pool_queued(1));
    EXPECT_EQ(first.wait_for(50ms), std::future_status::timeout) << "the first open did not go to the pool";
    hold.set_value();
    Reply r = first.get();
    EXPECT_EQ(r.status, 200);
    EXPECT_TRUE(r.body == big);
  }
  std::promise<void> hold = hold_pool();
  Reply again = signed_send("GET", "/photos/big");
  EXPECT_EQ(again.status, 200);
  EXPECT_TRUE(again.body == big);
  Reply range = signed_send("GET", "/photos/big", {}, {{"Range", "bytes=100-199"}});
  EXPECT_EQ(range.status, 206);
  EXPECT_EQ(range.body, big.substr(100, 100));
  hold.set_value();
}

// Work on the pool outlives its client: the clients close their connections and the server itself goes while
// a listing and a first open wait for the pool; their answers, coming back later, touch nothing freed (run
// under AddressSanitizer) and the store is unharmed.
TEST_F(ApiTest, PooledWorkWhoseClientAndServerWentIsDropped) {
  ASSERT_EQ(signed_send("PUT", "/public-site/big", std::string(2 << 20, 'b')).status, 200);
  std::promise<void> hold = hold_pool();
  auto get = [&](const std::string& target) {
    return send_raw("GET " + target + " HTTP/1.1\r\nHost: " + host() + "\r\n\r\n");
  };
  int listing = get(presign("/public-site", kNow, 300));
  int object = get(presign("/public-site/big", kNow, 300));
  ASSERT_TRUE(pool_queued(2));
  ::close(listing);
  ::close(object);
  drop_server_then_release(hold);
  StorageResult<std::optional<ObjectInfo>> o = storage_->head("public-site", "big");
  ASSERT_TRUE(o && *o);
  EXPECT_EQ((*o)->size, 2u << 20);
}

// An object whose file is too large to map (over 4 MiB) is read on the pool, every time and a read ahead at a
// time: its GET waits for the pool even once the file has been read before, and so does a small range of it.
TEST_F(ApiTest, LargeObjectsStreamThroughThePool) {
  ASSERT_EQ(signed_send("PUT", "/photos").status, 200);
  std::string big(6 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('A' + i % 29);
  ASSERT_EQ(signed_send("PUT", "/photos/big", big).status, 200);
  for (int round = 0; round < 2; ++round) {
    std::promise<void> hold = hold_pool();
    std::future<Reply> get = signed_send_async("GET", "/photos/big");
    ASSERT_TRUE(pool_queued(1));
    EXPECT_EQ(get.wait_for(50ms), std::future_status::timeout) << "round " << round;
    hold.set_value();
    Reply r = get.get();
    EXPECT_EQ(r.status, 200);
    EXPECT_TRUE(r.body == big) << "round " << round << ": " << r.body.size() << " bytes";
  }
  std::promise<void> hold = hold_pool();
  std::future<Reply> range = std::async(std::launch::async, [this] {
    return signed_send("GET", "/photos/big", {}, {{"Range", "bytes=5000000-5000099"}});
  });
  ASSERT_TRUE(pool_queued(1));
  EXPECT_EQ(range.wait_for(50ms), std::future_status::timeout);
  hold.set_value();
  Reply r = range.get();
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, big.substr(5000000, 100));
}

// A client that stops reading and leaves in the middle of a stream from the pool, and one whose read is still
// queued when the server goes: the reads that complete afterwards touch nothing freed.
TEST_F(ApiTest, StreamFromThePoolWhoseClientLeft) {
  ASSERT_EQ(signed_send("PUT", "/public-site/big", std::string(6 << 20, 'z')).status, 200);
  const std::string get =
      "GET " + presign("/public-site/big", kNow, 300) + " HTTP/1.1\r\nHost: " + host() + "\r\n\r\n";
  int early = send_raw(get);
  char buf[4096];
  ASSERT_GT(::recv(early, buf, sizeof buf, 0), 0);  // the head and some of the body
  ::close(early);
  Reply whole = send("GET", "/public-site/big");
  EXPECT_EQ(whole.status, 200);
  EXPECT_EQ(whole.body.size(), size_t{6} << 20);
  std::promise<void> hold = hold_pool();
  int queued = send_raw(get);
  ASSERT_TRUE(pool_queued(1));
  ::close(queued);
  drop_server_then_release(hold);
}

}  // namespace
}  // namespace cumulo::objstore
