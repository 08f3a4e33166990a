#include "core/buffer.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <vector>

namespace cumulo::core {

namespace {
// Blocks beyond this many stay with the allocator, so a burst does not pin memory for ever.
constexpr size_t kMaxPooled = 64;

struct Pool {
  std::vector<char*> free;
  ~Pool() {
    for (char* b : free) std::free(b);
  }
};
thread_local Pool t_pool;
}  // namespace

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    release();
    block_ = o.block_;
    head_ = o.head_;
    tail_ = o.tail_;
    o.block_ = nullptr;
    o.head_ = o.tail_ = 0;
  }
  return *this;
}

void Buffer::ensure() {
  if (block_) return;
  if (!t_pool.free.empty()) {
    block_ = t_pool.free.back();
    t_pool.free.pop_back();
  } else {
    block_ = static_cast<char*>(std::malloc(kCapacity));
    if (!block_) throw std::bad_alloc();
  }
  head_ = tail_ = 0;
}

void Buffer::release() {
  if (!block_) return;
  if (t_pool.free.size() < kMaxPooled) {
    t_pool.free.push_back(block_);
  } else {
    std::free(block_);
  }
  block_ = nullptr;
  head_ = tail_ = 0;
}

void Buffer::compact() {
  if (!block_ || head_ == 0) return;
  std::memmove(block_, block_ + head_, tail_ - head_);
  tail_ -= head_;
  head_ = 0;
}

size_t Buffer::append(std::string_view s) {
  if (s.empty()) return 0;  // an empty buffer holds no block
  ensure();
  if (kCapacity - tail_ < s.size()) compact();
  size_t n = std::min(s.size(), kCapacity - tail_);
  std::memcpy(block_ + tail_, s.data(), n);
  tail_ += n;
  return n;
}

size_t Buffer::pooled_blocks() {
  return t_pool.free.size();
}

}  // namespace cumulo::core
