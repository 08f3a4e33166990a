#include "objstore/wire/aws_chunked.h"

#include <algorithm>

#include "core/text.h"

namespace cumulo::objstore {

namespace {

constexpr size_t kMaxLine = 4096;
constexpr size_t kMaxTrailers = 16;
constexpr uint64_t kMaxChunk = uint64_t{1} << 40;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

AwsChunkedDecoder::AwsChunkedDecoder(std::optional<ChunkSigning> signing, bool trailer)
    : signing_(std::move(signing)), trailer_(trailer) {
  if (signing_) {
    previous_signature_ = signing_->seed_signature;
    chunk_hash_ = EVP_MD_CTX_new();
  }
}

AwsChunkedDecoder::~AwsChunkedDecoder() {
  if (chunk_hash_) EVP_MD_CTX_free(chunk_hash_);
}

ChunkedStatus AwsChunkedDecoder::fail(ChunkedStatus st, const char* why) {
  state_ = State::kError;
  error_ = st;
  reason_ = why;
  return st;
}

ChunkedStatus AwsChunkedDecoder::on_header_line() {
  std::string_view line = line_;
  size_t semi = line.find(';');
  std::string_view size_text = trim(line.substr(0, semi));
  if (size_text.empty() || size_text.size() > 16) return fail(ChunkedStatus::kMalformed, "bad chunk size");
  uint64_t size = 0;
  for (char c : size_text) {
    const int d = core::hex_digit_value(c);
    if (d < 0) return fail(ChunkedStatus::kMalformed, "chunk size is not hexadecimal");
    size = size * 16 + static_cast<uint64_t>(d);
  }
  if (size > kMaxChunk) return fail(ChunkedStatus::kTooLarge, "chunk too large");
  expected_signature_.clear();
  if (semi != std::string_view::npos) {
    std::string_view ext = trim(line.substr(semi + 1));
    constexpr std::string_view kSig = "chunk-signature=";
    if (ext.substr(0, kSig.size()) == kSig) expected_signature_.assign(ext.substr(kSig.size()));
  }
  if (signing_ && expected_signature_.size() != 64)
    return fail(ChunkedStatus::kSignatureMismatch, "chunk without a chunk-signature");
  if (signing_) EVP_DigestInit_ex(chunk_hash_, EVP_sha256(), nullptr);
  remaining_ = size;
  last_chunk_ = size == 0;
  line_.clear();
  if (last_chunk_) {
    // The final chunk signs the empty string; its CRLF has been consumed with the header line.
    if (signing_ && !chunk_signature_ok())
      return fail(ChunkedStatus::kSignatureMismatch, "the final chunk's signature does not match");
    state_ = State::kTrailer;
    return ChunkedStatus::kNeedMore;
  }
  state_ = State::kData;
  return ChunkedStatus::kNeedMore;
}

bool AwsChunkedDecoder::chunk_signature_ok() {
  uint8_t digest[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(chunk_hash_, digest, &len);
  std::string sts;
  sts.reserve(300);
  sts.append("AWS4-HMAC-SHA256-PAYLOAD\n").append(signing_->amz_date).append("\n");
  sts.append(signing_->scope).append("\n").append(previous_signature_).append("\n");
  sts.append(kEmptySha256).append("\n").append(hex_encode(digest, 32));
  std::string sig = hmac_sha256_hex(signing_->key, sts);
  if (!constant_time_equal(sig, expected_signature_)) return false;
  previous_signature_ = std::move(sig);
  return true;
}

ChunkedStatus AwsChunkedDecoder::on_trailer_line() {
  if (line_.empty()) {
    // The empty line ends the body. With signing and trailers, the trailer signature must be there and hold.
    if (signing_ && trailer_) {
      if (trailer_signature_.empty())
        return fail(ChunkedStatus::kSignatureMismatch, "trailers without x-amz-trailer-signature");
      std::string sts;
      sts.append("AWS4-HMAC-SHA256-TRAILER\n").append(signing_->amz_date).append("\n");
      sts.append(signing_->scope).append("\n").append(previous_signature_).append("\n");
      sts.append(sha256_hex(canonical_trailers_));
      if (!constant_time_equal(hmac_sha256_hex(signing_->key, sts), trailer_signature_))
        return fail(ChunkedStatus::kSignatureMismatch, "the trailer signature does not match");
    }
    state_ = State::kDone;
    return ChunkedStatus::kComplete;
  }
  if (!trailer_) return fail(ChunkedStatus::kMalformed, "trailing headers in a body that announced none");
  size_t colon = line_.find(':');
  if (colon == std::string::npos || colon == 0) return fail(ChunkedStatus::kMalformed, "bad trailer line");
  std::string name = core::to_lower(std::string_view(line_).substr(0, colon));
  std::string value(trim(std::string_view(line_).substr(colon + 1)));
  if (name == "x-amz-trailer-signature") {
    trailer_signature_ = std::move(value);
  } else {
    if (trailers_.size() >= kMaxTrailers) return fail(ChunkedStatus::kTooLarge, "too many trailers");
    canonical_trailers_.append(name).append(":").append(value).append("\n");
    trailers_.emplace_back(std::move(name), std::move(value));
  }
  line_.clear();
  return ChunkedStatus::kNeedMore;
}

ChunkedStatus AwsChunkedDecoder::decode(std::string_view in, size_t& consumed, std::string_view& payload) {
  consumed = 0;
  payload = {};
  while (consumed < in.size()) {
    switch (state_) {
      case State::kError:
        return error_;
      case State::kDone:
        return ChunkedStatus::kComplete;
      case State::kHeader:
      case State::kTrailer: {
        // Lines end with CRLF; a bare LF is refused so that framing is read one way only.
        size_t nl = in.find('\n', consumed);
        size_t end = nl == std::string_view::npos ? in.size() : nl + 1;
        line_.append(in.substr(consumed, end - consumed));
        consumed = end;
        if (line_.size() > kMaxLine) return fail(ChunkedStatus::kTooLarge, "framing line too long");
        if (nl == std::string_view::npos) return ChunkedStatus::kNeedMore;
        if (line_.size() < 2 || line_[line_.size() - 2] != '\r')
          return fail(ChunkedStatus::kMalformed, "framing line not ended by CRLF");
        line_.resize(line_.size() - 2);
        ChunkedStatus st = state_ == State::kHeader ? on_header_line() : on_trailer_line();
        if (st != ChunkedStatus::kNeedMore) return st;
        break;
      }
      case State::kData: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - consumed));
        payload = in.substr(consumed, n);
        if (signing_) EVP_DigestUpdate(chunk_hash_, payload.data(), payload.size());
        consumed += n;
        remaining_ -= n;
        total_ += n;
        if (remaining_ == 0) state_ = State::kDataCr;
        return ChunkedStatus::kNeedMore;
      }
      case State::kDataCr:
        if (in[consumed] != '\r') return fail(ChunkedStatus::kMalformed, "chunk data longer than its size");
        ++consumed;
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (in[consumed] != '\n') return fail(ChunkedStatus::kMalformed, "chunk data not followed by CRLF");
        ++consumed;
        if (signing_ && !chunk_signature_ok())
          return fail(ChunkedStatus::kSignatureMismatch, "a chunk's signature does not match");
        state_ = State::kHeader;
        break;
    }
  }
  if (state_ == State::kDone) return ChunkedStatus::kComplete;
  if (state_ == State::kError) return error_;
  return ChunkedStatus::kNeedMore;
}

}  // namespace cumulo::objstore
