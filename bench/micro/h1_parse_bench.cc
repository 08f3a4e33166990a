// Micro-benchmarks of the HTTP/1.1 wire parser on the heads a gateway sees most: wrk's GET, a browser GET
// with cookies, an nginx 200. Each iteration is one complete parse of an already received head.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <string_view>

#include "http/wire/h1.h"

namespace {

using cumulo::http::ChunkedDecoder;
using cumulo::http::Method;
using cumulo::http::ParseStatus;
using cumulo::http::RequestHead;
using cumulo::http::RequestParser;
using cumulo::http::ResponseHead;
using cumulo::http::ResponseParser;

// What wrk sends by default.
constexpr std::string_view kWrkGet = "GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n";

// A typical small API GET: 88 bytes, 4 headers.
constexpr std::string_view kSmallGet =
    "GET /index.html HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n"
    "Connection: keep-alive\r\n\r\n";

constexpr std::string_view kBrowserGet =
    "GET /static/app.js?v=3f2a9c HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
    "Safari/537.36\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Referer: https://www.example.com/\r\n"
    "Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; _ga=GA1.2.1234567890.1700000000\r\n"
    "Connection: keep-alive\r\n"
    "Sec-Fetch-Dest: script\r\n"
    "Sec-Fetch-Mode: no-cors\r\n"
    "Sec-Fetch-Site: same-origin\r\n\r\n";

constexpr std::string_view kNginxOk =
    "HTTP/1.1 200 OK\r\n"
    "Server: nginx/1.24.0\r\n"
    "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
    "Content-Type: text/html\r\n"
    "Content-Length: 615\r\n"
    "Last-Modified: Tue, 11 Apr 2023 01:45:34 GMT\r\n"
    "Connection: keep-alive\r\n"
    "ETag: \"6434bbbe-267\"\r\n"
    "Accept-Ranges: bytes\r\n\r\n";

void parse_request_loop(benchmark::State& state, std::string_view in) {
  auto head = std::make_unique<RequestHead>();
  RequestParser parser;
  for (auto _ : state) {
    parser.reset();
    ParseStatus s = parser.parse(in, *head);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(head->header_count);
    if (s != ParseStatus::kComplete) state.SkipWithError(parser.error().reason);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * in.size()));
}

void BM_ParseWrkGet(benchmark::State& state) {
  parse_request_loop(state, kWrkGet);
}
void BM_ParseSmallGet(benchmark::State& state) {
  parse_request_loop(state, kSmallGet);
}
void BM_ParseBrowserGet(benchmark::State& state) {
  parse_request_loop(state, kBrowserGet);
}

// The head arrives in two reads; the second call only scans the new bytes.
void BM_ParseSmallGetInTwoReads(benchmark::State& state) {
  auto head = std::make_unique<RequestHead>();
  RequestParser parser;
  const std::string_view first = kSmallGet.substr(0, kSmallGet.size() / 2);
  for (auto _ : state) {
    parser.reset();
    benchmark::DoNotOptimize(parser.parse(first, *head));
    ParseStatus s = parser.parse(kSmallGet, *head);
    benchmark::DoNotOptimize(s);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kSmallGet.size()));
}

void BM_ParseNginxResponse(benchmark::State& state) {
  auto head = std::make_unique<ResponseHead>();
  ResponseParser parser;
  for (auto _ : state) {
    parser.reset();
    ParseStatus s = parser.parse(kNginxOk, Method::kGet, *head);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(head->header_count);
    if (s != ParseStatus::kComplete) state.SkipWithError(parser.error().reason);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kNginxOk.size()));
}

// 64 KiB of payload in 4 KiB chunks with their framing.
void BM_DecodeChunked(benchmark::State& state) {
  std::string body;
  for (int i = 0; i < 16; ++i) body += "1000\r\n" + std::string(4096, 'x') + "\r\n";
  body += "0\r\n\r\n";
  for (auto _ : state) {
    ChunkedDecoder decoder;
    std::string_view rest = body;
    size_t payload_bytes = 0;
    ParseStatus s;
    do {
      size_t consumed = 0;
      std::string_view payload;
      s = decoder.decode(rest, consumed, payload);
      payload_bytes += payload.size();
      rest.remove_prefix(consumed);
    } while (s == ParseStatus::kNeedMore && !rest.empty());
    benchmark::DoNotOptimize(payload_bytes);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}

BENCHMARK(BM_ParseWrkGet);
BENCHMARK(BM_ParseSmallGet);
BENCHMARK(BM_ParseBrowserGet);
BENCHMARK(BM_ParseSmallGetInTwoReads);
BENCHMARK(BM_ParseNginxResponse);
BENCHMARK(BM_DecodeChunked);

}  // namespace
