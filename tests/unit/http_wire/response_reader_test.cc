// ResponseReader: whole responses from bytes as they come, over every split of the input.
#include "http/wire/response_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace cumulo::http {
namespace {

using Step = ResponseReader::Step;

// Feeds `in` in pieces of `piece` bytes (keeping what the reader did not take, as a caller's buffer does);
// returns the last step and how many bytes of `in` were not taken (in the buffer or not fed yet).
Step feed_in_pieces(ResponseReader& r, std::string_view in, size_t piece, size_t& left) {
  std::string buffer;
  size_t pos = 0;
  Step st = Step::kNeedMore;
  while (true) {
    size_t used = 0;
    st = r.feed(buffer, used);
    buffer.erase(0, used);
    if (st != Step::kNeedMore || pos == in.size()) break;
    size_t n = std::min(piece, in.size() - pos);
    buffer.append(in.substr(pos, n));
    pos += n;
  }
  left = buffer.size() + (in.size() - pos);
  return st;
}

TEST(ResponseReader, ContentLengthBodyOverEverySplitAfterAnInterimResponse) {
  const std::string in =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhelloHTTP/1.1 204";
  for (size_t piece = 1; piece <= in.size(); ++piece) {
    ResponseReader r;
    r.start(Method::kGet);
    size_t left = 0;
    ASSERT_EQ(feed_in_pieces(r, in, piece, left), Step::kDone) << piece;
    EXPECT_EQ(r.status(), 200);
    EXPECT_EQ(r.body(), "hello");
    ASSERT_EQ(r.headers().size(), 2u);
    EXPECT_EQ(r.headers()[1].first, "X-A");
    EXPECT_TRUE(r.keep_alive());
    EXPECT_EQ(left, std::string_view("HTTP/1.1 204").size())
        << "the next response's bytes stay with the caller";
  }
}

TEST(ResponseReader, ChunkedBodyWithTrailers) {
  const std::string in =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: v\r\n\r\n";
  for (size_t piece : {size_t{1}, size_t{7}, in.size()}) {
    ResponseReader r;
    r.start(Method::kGet);
    size_t left = 0;
    ASSERT_EQ(feed_in_pieces(r, in, piece, left), Step::kDone) << piece;
    EXPECT_EQ(r.body(), "abcde");
    EXPECT_EQ(left, 0u);
  }
}

TEST(ResponseReader, BodyUntilCloseEndsAtTheClose) {
  ResponseReader r;
  r.start(Method::kGet);
  size_t used = 0;
  EXPECT_EQ(r.feed("HTTP/1.0 200 OK\r\n\r\nsome", used), Step::kNeedMore);
  EXPECT_EQ(r.feed(" more", used), Step::kNeedMore);
  EXPECT_EQ(used, 5u);
  EXPECT_EQ(r.finish_at_close(), Step::kDone);
  EXPECT_EQ(r.body(), "some more");
  EXPECT_FALSE(r.keep_alive());
}

TEST(ResponseReader, HeadResponseHasNoBody) {
  ResponseReader r;
  r.start(Method::kHead);
  size_t used = 0;
  EXPECT_EQ(r.feed("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", used), Step::kDone);
  EXPECT_TRUE(r.body().empty());
  EXPECT_TRUE(r.keep_alive());
}

TEST(ResponseReader, BodiesOverTheLimitFailAsTooLarge) {
  ResponseReader declared(4);
  declared.start(Method::kGet);
  size_t used = 0;
  EXPECT_EQ(declared.feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", used), Step::kFailed);
  EXPECT_EQ(declared.error().kind, "too_large");
  ResponseReader chunked(4);
  chunked.start(Method::kGet);
  EXPECT_EQ(
      chunked.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n", used),
      Step::kFailed);
  EXPECT_EQ(chunked.error().kind, "too_large");
  EXPECT_EQ(chunked.feed("0\r\n\r\n", used), Step::kFailed);  // sticky
}

TEST(ResponseReader, BadBytesAndAnEarlyCloseFailAsBadResponses) {
  ResponseReader r;
  r.start(Method::kGet);
  size_t used = 0;
  EXPECT_EQ(r.feed("HTTP/1.1 2OO OK\r\n\r\n", used), Step::kFailed);
  EXPECT_EQ(r.error().kind, "bad_response");
  EXPECT_EQ(r.error().source, core::ErrorSource::kUpstream);
  EXPECT_FALSE(r.error().retry_safe());

  r.start(Method::kGet);  // reusable for the next exchange
  EXPECT_EQ(r.feed("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", used), Step::kNeedMore);
  EXPECT_TRUE(r.head_read());
  EXPECT_EQ(r.finish_at_close(), Step::kFailed);
  EXPECT_EQ(r.error().kind, "bad_response");

  r.start(Method::kGet);
  EXPECT_EQ(r.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", used), Step::kFailed);
  EXPECT_EQ(r.error().kind, "bad_response");
}

// Feeds `in` in pieces as feed_in_pieces does, in stream mode, collecting the body pieces the reader hands
// out (fed again with the rest while one came out, as the contract asks).
Step stream_in_pieces(ResponseReader& r, std::string_view in, size_t piece, std::string& body, size_t& left) {
  std::string buffer;
  size_t pos = 0;
  Step st = Step::kNeedMore;
  while (true) {
    size_t used = 0;
    st = r.feed(buffer, used);
    body += r.body_piece();
    bool gave_piece = !r.body_piece().empty();
    buffer.erase(0, used);
    if (st != Step::kNeedMore) break;
    if (gave_piece) continue;
    if (pos == in.size()) break;
    size_t n = std::min(piece, in.size() - pos);
    buffer.append(in.substr(pos, n));
    pos += n;
  }
  left = buffer.size() + (in.size() - pos);
  return st;
}

TEST(ResponseReader, StreamModeHandsOutChunkedBodyOverEverySplitWithoutKeepingIt) {
  const std::string in =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
      "chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n10\r\n0123456789abcdef\r\n"
      "0\r\nT: v\r\n\r\nHTTP/1.1 204";
  for (size_t piece = 1; piece <= in.size(); ++piece) {
    ResponseReader r(/*max_body_bytes=*/4);  // no limit applies to a streamed body
    r.start(Method::kGet, ResponseReader::BodyMode::kStream);
    std::string body;
    size_t left = 0;
    ASSERT_EQ(stream_in_pieces(r, in, piece, body, left), Step::kDone) << piece;
    EXPECT_EQ(body, "abcde0123456789abcdef") << piece;
    EXPECT_EQ(r.body(), "");
    EXPECT_TRUE(r.keep_alive());
    EXPECT_EQ(left, std::string_view("HTTP/1.1 204").size()) << piece;
  }
}

TEST(ResponseReader, StreamModeContentLengthAndUntilClose) {
  const std::string sized = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
  for (size_t piece = 1; piece <= sized.size(); ++piece) {
    ResponseReader r(/*max_body_bytes=*/2);
    r.start(Method::kGet, ResponseReader::BodyMode::kStream);
    std::string body;
    size_t left = 0;
    ASSERT_EQ(stream_in_pieces(r, sized, piece, body, left), Step::kDone) << piece;
    EXPECT_EQ(body, "0123456789");
  }
  ResponseReader r;
  r.start(Method::kGet, ResponseReader::BodyMode::kStream);
  std::string body;
  size_t left = 0;
  EXPECT_EQ(stream_in_pieces(r, "HTTP/1.0 200 OK\r\n\r\nuntil the end", 3, body, left), Step::kNeedMore);
  EXPECT_EQ(body, "until the end");
  EXPECT_EQ(r.finish_at_close(), Step::kDone);
  // The next exchange gathers again.
  r.start(Method::kGet);
  size_t used = 0;
  EXPECT_EQ(r.feed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", used), Step::kDone);
  EXPECT_EQ(r.body(), "ok");
  EXPECT_EQ(r.body_piece(), "");
}

}  // namespace
}  // namespace cumulo::http
