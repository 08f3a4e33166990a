// A value or an error, for the data plane's expected failures (bad bytes from a peer, a storage read that
// failed): the caller must look before using the value. In the style of std::expected (C++23) and
// tl::expected, reduced to what the code base uses. Programmer errors still throw or assert (CONVENTIONS.md,
// "Errors"). Header-only and free of the rest of the tree, so wire code and fuzz targets can include it.
//
//   Result<ListResult, S3Error> r = storage.list(...);
//   if (!r) return error_response(r.error());
//   use(r.value());
//
// core::Error is the generic error value for code that has no protocol table of its own: what went wrong
// (a kind), a message that says what happened to what, where the fault lies (Pingora's ErrorSource) and
// whether the same request may be tried again (Pingora's RetryType).
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace cumulo::core {

// Wraps an error so that Result's constructor cannot mistake it for a value: `return Err(S3Error::kX);`.
template <typename E>
struct Err {
  E error;
};
template <typename E>
Err(E) -> Err<E>;

template <typename T, typename E>
class [[nodiscard]] Result {
  static_assert(!std::is_reference_v<T> && !std::is_reference_v<E>, "Result holds values");
  static_assert(!std::is_same_v<std::remove_cv_t<T>, std::remove_cv_t<E>>,
                "value and error of one type would be ambiguous");

 public:
  using value_type = T;
  using error_type = E;

  // A value.
  Result(const T& v) : v_(std::in_place_index<0>, v) {}
  Result(T&& v) : v_(std::in_place_index<0>, std::move(v)) {}
  // An error.
  template <typename G, typename = std::enable_if_t<std::is_constructible_v<E, G&&>>>
  Result(Err<G> e) : v_(std::in_place_index<1>, std::move(e.error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  // Only when ok(): asserted in debug builds.
  T& value() & {
    assert(ok());
    return *std::get_if<0>(&v_);
  }
  const T& value() const& {
    assert(ok());
    return *std::get_if<0>(&v_);
  }
  T&& value() && {
    assert(ok());
    return std::move(*std::get_if<0>(&v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  // Only when !ok(): asserted in debug builds.
  const E& error() const {
    assert(!ok());
    return *std::get_if<1>(&v_);
  }

  template <typename U>
  T value_or(U&& fallback) const& {
    return ok() ? value() : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  std::variant<T, E> v_;
};

// Success without a value, or an error.
template <typename E>
class [[nodiscard]] Result<void, E> {
 public:
  using value_type = void;
  using error_type = E;

  Result() = default;
  template <typename G, typename = std::enable_if_t<std::is_constructible_v<E, G&&>>>
  Result(Err<G> e) : failed_(true), error_(std::move(e.error)) {}

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  void value() const { assert(ok()); }
  const E& error() const {
    assert(!ok());
    return error_;
  }

 private:
  bool failed_ = false;
  E error_{};
};

// Who is at fault, which decides the status a proxy answers with and which peer's error counters grow.
enum class ErrorSource : unsigned char {
  kClient,    // the request was wrong: answering it again the same way fails again
  kUpstream,  // a server behind this one: a target, a replication peer
  kInternal,  // this process: a bug, a resource exhausted
  kStorage,   // the local disk or index (SQLite)
};

// Whether the same request may be sent again (to the same or another target) without doing harm twice.
enum class Retry : unsigned char {
  kNo,    // the request may have taken effect, or will fail the same way
  kSafe,  // nothing took effect (a refused connection, a read that failed): trying again is harmless
};

constexpr std::string_view error_source_name(ErrorSource s) {
  switch (s) {
    case ErrorSource::kClient:
      return "client";
    case ErrorSource::kUpstream:
      return "upstream";
    case ErrorSource::kInternal:
      return "internal";
    case ErrorSource::kStorage:
      return "storage";
  }
  return "?";
}

struct Error {
  // What went wrong, in words a switch and a metric label can use ("connect", "timeout", "sqlite_step").
  std::string kind;
  // What happened to what, for logs and error bodies: "reading the listing of bucket b1: database is locked".
  std::string message;
  ErrorSource source = ErrorSource::kInternal;
  Retry retry = Retry::kNo;

  bool retry_safe() const { return retry == Retry::kSafe; }
  // "storage error (sqlite_step, retry safe): reading ...", for logs.
  std::string describe() const {
    std::string out(error_source_name(source));
    out += " error (";
    out += kind;
    out += retry_safe() ? ", retry safe): " : "): ";
    out += message;
    return out;
  }
};

}  // namespace cumulo::core
