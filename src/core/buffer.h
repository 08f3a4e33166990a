// Fixed-size I/O buffers taken from a per-thread pool only while they hold bytes, so an idle keep-alive
// connection owns no buffer memory (HAProxy's buffer allocation on demand).
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>

namespace cumulo::core {

class Buffer {
 public:
  static constexpr size_t kCapacity = 64 * 1024;

  Buffer() = default;
  ~Buffer() { release(); }
  Buffer(Buffer&& o) noexcept : block_(o.block_), head_(o.head_), tail_(o.tail_) {
    o.block_ = nullptr;
    o.head_ = o.tail_ = 0;
  }
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  bool empty() const { return head_ == tail_; }
  size_t size() const { return tail_ - head_; }
  const char* data() const { return block_ + head_; }
  char* data() { return block_ + head_; }
  std::string_view view() const { return {block_ + head_, tail_ - head_}; }

  // Space to read into: takes a block from the pool when there is none, and moves the bytes to the front when
  // the free space at the end is short.
  // Moving the few bytes left at the front is cheaper than a short read; the threshold keeps large moves
  // rare.
  char* write_ptr() {
    ensure();
    if (head_ > 0 && kCapacity - tail_ < kCapacity / 4) compact();
    return block_ + tail_;
  }
  // Space at write_ptr() once it has been called (before that, possibly more).
  size_t write_space() const { return block_ ? kCapacity - tail_ : kCapacity; }
  bool full() const { return block_ && head_ == 0 && tail_ == kCapacity; }
  void commit(size_t n) { tail_ += n; }
  // Drops n bytes from the front; an emptied buffer goes back to the pool.
  void consume(size_t n) {
    head_ += n;
    if (head_ == tail_) release();
  }
  // Appends as much of s as fits; returns how much.
  size_t append(std::string_view s);
  void compact();
  void clear() { release(); }
  void ensure();
  void release();

  // Blocks kept in this thread's pool (for tests and metrics).
  static size_t pooled_blocks();

 private:
  char* block_ = nullptr;
  size_t head_ = 0;
  size_t tail_ = 0;
};

}  // namespace cumulo::core
