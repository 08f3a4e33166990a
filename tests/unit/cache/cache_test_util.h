// Builders of parsed heads for the cache policy tests. Header names and values must outlive the head: the
// tests pass string literals.
#pragma once

#include <initializer_list>

#include "http/wire/h1.h"

namespace cumulo::cache::test {

inline void fill(http::MessageHead& head, std::initializer_list<http::Header> headers) {
  head.header_count = 0;
  for (const http::Header& h : headers) head.headers[head.header_count++] = h;
}

inline http::RequestHead request(std::initializer_list<http::Header> headers,
                                 http::Method method = http::Method::kGet) {
  http::RequestHead req;
  req.method = method;
  req.method_name = method == http::Method::kGet ? "GET" : method == http::Method::kHead ? "HEAD" : "POST";
  req.target = "/";
  req.path = "/";
  fill(req, headers);
  return req;
}

inline http::ResponseHead response(int status, std::initializer_list<http::Header> headers) {
  http::ResponseHead resp;
  resp.status = status;
  resp.reason = http::reason_phrase(status);
  fill(resp, headers);
  return resp;
}

}  // namespace cumulo::cache::test
