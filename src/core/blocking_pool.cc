#include "core/blocking_pool.h"

#include <pthread.h>

#include <algorithm>

namespace cumulo::core {

BlockingPool::BlockingPool(size_t threads, std::string name) {
  name.resize(std::min<size_t>(name.size(), 15));  // the kernel's limit, without the NUL
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { loop(); });
    ::pthread_setname_np(threads_.back().native_handle(), name.c_str());
  }
}

BlockingPool::~BlockingPool() {
  stop();
}

void BlockingPool::run(std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void BlockingPool::stop() {
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    dropped.swap(jobs_);
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  // `dropped` goes here, outside the lock: what the jobs captured may take locks of its own when destroyed.
}

size_t BlockingPool::queued() const {
  std::lock_guard lock(mu_);
  return jobs_.size();
}

void BlockingPool::loop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

}  // namespace cumulo::core
