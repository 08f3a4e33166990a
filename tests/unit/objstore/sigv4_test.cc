// SigV4 against the worked examples of the Amazon S3 API reference ("Signature Calculations for the
// Authorization Header" and "Transferring Payload in Multiple Chunks"), whose published signatures pin the
// canonical request, the key derivation and the chunk chaining.
#include "objstore/wire/sigv4.h"

#include <gtest/gtest.h>

#include <string>

#include "objstore/wire/aws_chunked.h"

namespace cumulo::objstore {
namespace {

constexpr std::string_view kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

TEST(SigV4, GetObjectExample) {
  HeaderPairs headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                         {"Range", "bytes=0-9"},
                         {"x-amz-content-sha256", std::string(kEmptySha256)},
                         {"x-amz-date", "20130524T000000Z"}};
  auto uri = canonical_uri("/test.txt");
  auto query = canonical_query("", false);
  ASSERT_TRUE(uri && query);
  auto creq = canonical_request("GET", *uri, *query, headers, "host;range;x-amz-content-sha256;x-amz-date",
                                kEmptySha256);
  ASSERT_TRUE(creq);
  SigningKey key = derive_signing_key(kSecret, "20130524", "us-east-1", "s3");
  std::string sts = string_to_sign("20130524T000000Z", "20130524/us-east-1/s3/aws4_request", *creq);
  EXPECT_EQ(hmac_sha256_hex(key, sts), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4, ParsesAuthorizationHeader) {
  SigV4Params p;
  const char* why = "";
  ASSERT_TRUE(parse_authorization_header(
      "AWS4-HMAC-SHA256 "
      "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;"
      "range;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
      p, &why))
      << why;
  EXPECT_EQ(p.access_key, "AKIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(p.date, "20130524");
  EXPECT_EQ(p.region, "us-east-1");
  EXPECT_EQ(p.service, "s3");
  EXPECT_EQ(p.signed_headers, "host;range;x-amz-date");
  EXPECT_EQ(p.scope(), "20130524/us-east-1/s3/aws4_request");
}

TEST(SigV4, RefusesMalformedAuthorization) {
  SigV4Params p;
  const char* why = "";
  for (std::string_view bad : {
           "AWS AKIA:abc",
           "AWS4-HMAC-SHA256",
           "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request",
           "AWS4-HMAC-SHA256 Credential=AK/2013052/us-east-1/s3/aws4_request,SignedHeaders=host,Signature="
           "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
           "AWS4-HMAC-SHA256 "
           "Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=xyz",
           "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/other,SignedHeaders=host,Signature="
           "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
       }) {
    EXPECT_FALSE(parse_authorization_header(bad, p, &why)) << bad;
  }
}

TEST(SigV4, PresignedQuery) {
  SigV4Params p;
  const char* why = "";
  std::string q =
      "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2F"
      "aws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature="
      "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
  ASSERT_TRUE(parse_presigned_query(q, p, &why)) << why;
  EXPECT_EQ(p.access_key, "AKIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(p.expires_s, 86400);
  // The published presigned example: GET /test.txt on examplebucket, expiring in a day.
  HeaderPairs headers = {{"Host", "examplebucket.s3.amazonaws.com"}};
  auto creq = canonical_request("GET", *canonical_uri("/test.txt"), *canonical_query(q, true), headers,
                                "host", kUnsignedPayload);
  ASSERT_TRUE(creq);
  SigningKey key = derive_signing_key(kSecret, "20130524", "us-east-1", "s3");
  EXPECT_EQ(hmac_sha256_hex(key, string_to_sign(p.amz_date, p.scope(), *creq)), p.signature);
  EXPECT_FALSE(parse_presigned_query("X-Amz-Algorithm=AWS4-HMAC-SHA256", p, &why));
  std::string expired_too_long = q;
  expired_too_long.replace(expired_too_long.find("86400"), 5, "999999");
  EXPECT_FALSE(parse_presigned_query(expired_too_long, p, &why));
}

TEST(SigV4, UriEncodingAndQuery) {
  EXPECT_EQ(uri_encode("a b/c~d+e", false), "a%20b/c~d%2Be");
  EXPECT_EQ(uri_encode("a/b", true), "a%2Fb");
  EXPECT_EQ(*canonical_uri("/bucket/a%20b%2Bc"), "/bucket/a%20b%2Bc");
  EXPECT_EQ(*canonical_query("prefix=x&list-type=2&delimiter=%2F&uploads", false),
            "delimiter=%2F&list-type=2&prefix=x&uploads=");
  EXPECT_FALSE(canonical_query("a=%zz", false));
  std::string out;
  EXPECT_FALSE(percent_decode("%4", out));
  EXPECT_TRUE(percent_decode("%41%42", out));
  EXPECT_EQ(out, "AB");
}

// Golden: how the canonical request decodes and re-encodes a raw path and query. A change here changes
// every signature, so these pin the bytes.
TEST(SigV4, PercentDecodingGolden) {
  EXPECT_EQ(*canonical_uri(""), "/");
  EXPECT_EQ(*canonical_uri("/a+b/%7e%2f%7E"), "/a%2Bb/~/~");  // '+' is a plus; %2F becomes a '/' again
  EXPECT_EQ(*canonical_uri("/%c3%BC%20x"), "/%C3%BC%20x");    // hex digits in either case
  EXPECT_EQ(*canonical_uri("/%00"), "/%00");
  EXPECT_FALSE(canonical_uri("/a%"));
  EXPECT_FALSE(canonical_uri("/a%4"));
  EXPECT_FALSE(canonical_uri("/a%g0"));
  EXPECT_FALSE(canonical_uri("/a%%41"));
  EXPECT_EQ(*canonical_query("b=%2b+&a", false), "a=&b=%2B%2B");  // '+' is not a space here
  EXPECT_EQ(*canonical_query("=v&x&&y=%7e", false), "=v&x=&y=~");
  EXPECT_EQ(*canonical_query("X-Amz-Signature=abc&k=v", true), "k=v");
  EXPECT_FALSE(canonical_query("a%=1", false));
  EXPECT_FALSE(canonical_query("a=1%2", false));
  std::string out = "stale";
  EXPECT_TRUE(percent_decode("", out));
  EXPECT_EQ(out, "");
  EXPECT_TRUE(percent_decode("a%41%4a%4A+%2B", out));
  EXPECT_EQ(out, "aAJJ++");
  EXPECT_TRUE(percent_decode("%00%ff", out));
  EXPECT_EQ(out, std::string("\0\xff", 2));
  EXPECT_FALSE(percent_decode("%", out));
  EXPECT_FALSE(percent_decode("%-1", out));
  EXPECT_FALSE(percent_decode("% 1", out));
  EXPECT_FALSE(percent_decode("%1z", out));
}

TEST(SigV4, AmzDate) {
  EXPECT_EQ(parse_amz_date("19700101T000000Z"), 0);
  EXPECT_EQ(parse_amz_date("20130524T000000Z"), 1369353600);
  EXPECT_EQ(format_amz_date(1369353600), "20130524T000000Z");
  EXPECT_FALSE(parse_amz_date("20130524T000000"));
  EXPECT_FALSE(parse_amz_date("20131324T000000Z"));
}

// The streaming example: 66560 bytes of 'a' in a 65536-byte chunk, a 1024-byte chunk and the final chunk.
struct StreamingExample {
  static constexpr std::string_view kSeed =
      "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
  static constexpr std::string_view kSig1 =
      "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648";
  static constexpr std::string_view kSig2 =
      "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497";
  static constexpr std::string_view kSig3 =
      "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9";

  static std::string body() {
    std::string b;
    b.append("10000;chunk-signature=").append(kSig1).append("\r\n").append(65536, 'a').append("\r\n");
    b.append("400;chunk-signature=").append(kSig2).append("\r\n").append(1024, 'a').append("\r\n");
    b.append("0;chunk-signature=").append(kSig3).append("\r\n\r\n");
    return b;
  }
  static ChunkSigning signing() {
    return ChunkSigning{derive_signing_key(kSecret, "20130524", "us-east-1", "s3"), "20130524T000000Z",
                        "20130524/us-east-1/s3/aws4_request", std::string(kSeed)};
  }
};

TEST(SigV4, StreamingSeedSignature) {
  HeaderPairs headers = {{"Host", "s3.amazonaws.com"},
                         {"x-amz-date", "20130524T000000Z"},
                         {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                         {"x-amz-content-sha256", std::string(kStreamingSigned)},
                         {"Content-Encoding", "aws-chunked"},
                         {"x-amz-decoded-content-length", "66560"},
                         {"Content-Length", "66824"}};
  auto creq = canonical_request("PUT", *canonical_uri("/examplebucket/chunkObject.txt"), "", headers,
                                "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
                                "x-amz-decoded-content-length;x-amz-storage-class",
                                kStreamingSigned);
  ASSERT_TRUE(creq);
  SigningKey key = derive_signing_key(kSecret, "20130524", "us-east-1", "s3");
  EXPECT_EQ(
      hmac_sha256_hex(key, string_to_sign("20130524T000000Z", "20130524/us-east-1/s3/aws4_request", *creq)),
      StreamingExample::kSeed);
}

// Feeds `body` in pieces of `step` bytes; returns the last status and gathers the payload.
ChunkedStatus feed(AwsChunkedDecoder& d, std::string_view body, size_t step, std::string& payload) {
  ChunkedStatus st = ChunkedStatus::kNeedMore;
  for (size_t off = 0; off < body.size();) {
    std::string_view piece = body.substr(off, step);
    off += piece.size();
    while (!piece.empty()) {
      size_t used = 0;
      std::string_view data;
      st = d.decode(piece, used, data);
      payload.append(data);
      piece.remove_prefix(used);
      if (st != ChunkedStatus::kNeedMore) return st;
      if (used == 0) return st;
    }
  }
  return st;
}

TEST(AwsChunked, VerifiesThePublishedChunkSignatures) {
  std::string body = StreamingExample::body();
  for (size_t step : {size_t{1}, size_t{7}, size_t{4096}, body.size()}) {
    AwsChunkedDecoder d(StreamingExample::signing(), false);
    std::string payload;
    EXPECT_EQ(feed(d, body, step, payload), ChunkedStatus::kComplete) << "step " << step;
    EXPECT_EQ(payload, std::string(66560, 'a'));
    EXPECT_EQ(d.payload_bytes(), 66560u);
  }
}

TEST(AwsChunked, RefusesAlteredDataOrSignature) {
  std::string body = StreamingExample::body();
  std::string altered = body;
  altered[200] = 'b';
  AwsChunkedDecoder d1(StreamingExample::signing(), false);
  std::string payload;
  EXPECT_EQ(feed(d1, altered, 1000, payload), ChunkedStatus::kSignatureMismatch);

  std::string bad_sig = body;
  bad_sig[30] = bad_sig[30] == '0' ? '1' : '0';
  AwsChunkedDecoder d2(StreamingExample::signing(), false);
  EXPECT_EQ(feed(d2, bad_sig, 1000, payload), ChunkedStatus::kSignatureMismatch);

  // Chunks swapped: the chain breaks.
  AwsChunkedDecoder d3(StreamingExample::signing(), false);
  std::string swapped;
  swapped.append("400;chunk-signature=").append(StreamingExample::kSig2).append("\r\n").append(1024, 'a');
  swapped.append("\r\n");
  EXPECT_EQ(feed(d3, swapped, 100, payload), ChunkedStatus::kSignatureMismatch);
}

TEST(AwsChunked, RefusesBadFraming) {
  std::string payload;
  for (std::string_view bad :
       {"zz\r\nabc\r\n", "3\r\nabcd\r\n", "3\nabc\r\n0\r\n\r\n", "3\r\nabc\r\n0\r\nx\r\n\r\n"}) {
    AwsChunkedDecoder d(std::nullopt, false);
    EXPECT_EQ(feed(d, bad, 1, payload), ChunkedStatus::kMalformed) << bad;
  }
  AwsChunkedDecoder unsigned_needs_sig(StreamingExample::signing(), false);
  EXPECT_EQ(feed(unsigned_needs_sig, "3\r\nabc\r\n", 100, payload), ChunkedStatus::kSignatureMismatch);
  AwsChunkedDecoder too_long(std::nullopt, false);
  EXPECT_EQ(feed(too_long, std::string(5000, '1'), 100, payload), ChunkedStatus::kTooLarge);
}

TEST(AwsChunked, UnsignedTrailer) {
  std::string body = "5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n";
  AwsChunkedDecoder d(std::nullopt, true);
  std::string payload;
  EXPECT_EQ(feed(d, body, 3, payload), ChunkedStatus::kComplete);
  EXPECT_EQ(payload, "hello");
  ASSERT_EQ(d.trailers().size(), 1u);
  EXPECT_EQ(d.trailers()[0].first, "x-amz-checksum-crc32");
  EXPECT_EQ(d.trailers()[0].second, "NhCmhg==");
}

// Hand-built trailer sections that are not well formed: each refused with the status that answers it.
TEST(AwsChunked, CorruptedTrailers) {
  const std::string head = "5\r\nhello\r\n0\r\n";
  std::string many;
  for (int i = 0; i < 17; ++i) many += "x-amz-meta-" + std::to_string(i) + ":v\r\n";
  const std::pair<std::string, ChunkedStatus> cases[] = {
      {head + "x-amz-checksum-crc32 NhCmhg==\r\n\r\n", ChunkedStatus::kMalformed},  // no colon
      {head + ":NhCmhg==\r\n\r\n", ChunkedStatus::kMalformed},                      // no name
      {head + "x-amz-checksum-crc32:NhCmhg==\n\r\n", ChunkedStatus::kMalformed},    // bare LF
      {head + many + "\r\n", ChunkedStatus::kTooLarge},                             // too many
      {head + "x-amz-checksum-crc32:" + std::string(5000, 'A') + "\r\n\r\n", ChunkedStatus::kTooLarge},
  };
  for (size_t step : {size_t{1}, size_t{9}, size_t{1000}}) {
    for (const auto& [body, status] : cases) {
      AwsChunkedDecoder d(std::nullopt, true);
      std::string payload;
      EXPECT_EQ(feed(d, body, step, payload), status) << body.substr(0, 80) << " step " << step;
    }
  }
  // Trailers in a body that announced none.
  AwsChunkedDecoder none(std::nullopt, false);
  std::string payload;
  EXPECT_EQ(feed(none, head + "x-amz-checksum-crc32:NhCmhg==\r\n\r\n", 4, payload),
            ChunkedStatus::kMalformed);
  // Signed trailers without their signature.
  ChunkSigning s = StreamingExample::signing();
  auto chunk_sig = [&](const std::string& prev, std::string_view data) {
    std::string sts = "AWS4-HMAC-SHA256-PAYLOAD\n" + s.amz_date + "\n" + s.scope + "\n" + prev + "\n" +
                      std::string(kEmptySha256) + "\n" + sha256_hex(data);
    return hmac_sha256_hex(s.key, sts);
  };
  std::string sig1 = chunk_sig(s.seed_signature, "hello"), sig2 = chunk_sig(sig1, "");
  AwsChunkedDecoder unsigned_trailer(s, true);
  EXPECT_EQ(feed(unsigned_trailer,
                 "5;chunk-signature=" + sig1 + "\r\nhello\r\n0;chunk-signature=" + sig2 +
                     "\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n",
                 7, payload),
            ChunkedStatus::kSignatureMismatch);
}

TEST(AwsChunked, SignedTrailer) {
  // Built with the same chaining rules: chunk signatures, then the trailer signature over the canonical
  // trailers.
  ChunkSigning s = StreamingExample::signing();
  auto chunk_sig = [&](const std::string& prev, std::string_view data) {
    std::string sts = "AWS4-HMAC-SHA256-PAYLOAD\n" + s.amz_date + "\n" + s.scope + "\n" + prev + "\n" +
                      std::string(kEmptySha256) + "\n" + sha256_hex(data);
    return hmac_sha256_hex(s.key, sts);
  };
  std::string sig1 = chunk_sig(s.seed_signature, "hello");
  std::string sig2 = chunk_sig(sig1, "");
  std::string trailer = "x-amz-checksum-crc32:NhCmhg==\n";
  std::string tsig = hmac_sha256_hex(s.key, "AWS4-HMAC-SHA256-TRAILER\n" + s.amz_date + "\n" + s.scope +
                                                "\n" + sig2 + "\n" + sha256_hex(trailer));
  std::string body = "5;chunk-signature=" + sig1 + "\r\nhello\r\n0;chunk-signature=" + sig2 +
                     "\r\nx-amz-checksum-crc32:NhCmhg==\r\nx-amz-trailer-signature:" + tsig + "\r\n\r\n";
  AwsChunkedDecoder ok(s, true);
  std::string payload;
  EXPECT_EQ(feed(ok, body, 5, payload), ChunkedStatus::kComplete);
  std::string altered = body;
  altered.replace(altered.find("NhCmhg=="), 8, "AAAAAA==");
  AwsChunkedDecoder bad(s, true);
  EXPECT_EQ(feed(bad, altered, 5, payload), ChunkedStatus::kSignatureMismatch);
}

}  // namespace
}  // namespace cumulo::objstore
