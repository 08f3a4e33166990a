// One event loop per worker thread (epoll, edge-triggered). Everything a loop owns is touched only on its
// thread; other threads hand it work with post().
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace cumulo::core {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Millis = std::chrono::milliseconds;

// Readiness bits passed to IoHandler::on_io.
inline constexpr uint32_t kReadable = 1;
inline constexpr uint32_t kWritable = 2;
inline constexpr uint32_t kHangup =
    4;  // peer closed or the socket has an error; a read or write will say which

class IoHandler {
 public:
  virtual ~IoHandler() = default;
  virtual void on_io(uint32_t events) = 0;
};

class EventLoop;

// A one-shot timer owned by its user; destroying it cancels it. Re-arming to a later time is O(1) (the heap
// entry is moved lazily when it comes due), so idle timeouts can be pushed back on every read.
class Timer {
 public:
  Timer(EventLoop& loop, std::function<void()> on_expire);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void arm(Millis after);
  void arm_at(TimePoint when);
  void cancel();
  bool armed() const { return armed_; }
  TimePoint deadline() const { return deadline_; }

 private:
  friend class EventLoop;
  EventLoop& loop_;
  std::function<void()> on_expire_;
  TimePoint deadline_{};
  TimePoint queued_at_{};  // deadline of the heap entry, <= deadline_
  size_t heap_index_ = SIZE_MAX;
  bool armed_ = false;
};

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Watches fd for readability and writability, edge-triggered, until remove(). The handler must outlive the
  // registration; after remove() (or close) it may still get events from the current batch, so destroy
  // handlers through destroy_later().
  void add(int fd, IoHandler* handler, uint32_t events = kReadable | kWritable);
  void remove(int fd);

  // Runs until stop(). Each iteration: wait for events (or the next timer), dispatch them, run timers, run
  // posted and deferred work.
  void run();
  void stop();  // any thread
  bool stopping() const { return stop_.load(std::memory_order_relaxed); }

  // Runs fn on this loop's thread soon. Any thread.
  void post(std::function<void()> fn);
  // Runs fn on this thread after the current batch of events. Loop thread only.
  void defer(std::function<void()> fn);
  // Destroys obj after the current batch of events, when no event of this batch can reach it any more.
  template <typename T>
  void destroy_later(std::unique_ptr<T> obj) {
    graveyard_.emplace_back(obj.release(), [](void* p) { delete static_cast<T*>(p); });
  }

  // Time of the current iteration (cheap, no syscall).
  TimePoint now() const { return now_; }
  TimePoint update_now();

  static EventLoop* current();  // the loop running on this thread, or nullptr

 private:
  friend class Timer;
  void heap_push(Timer* t);
  void heap_remove(Timer* t);
  void heap_sift_up(size_t i);
  void heap_sift_down(size_t i);
  void run_timers();
  void run_posted();
  void wake();  // makes epoll_wait return, from any thread (a write to the eventfd)
  int next_timeout_ms() const;

  int epfd_ = -1;
  int wakefd_ = -1;
  std::atomic<bool> stop_{false};
  TimePoint now_;
  std::vector<Timer*> heap_;
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;
  std::atomic<bool> wake_pending_{false};
  std::vector<std::function<void()>> deferred_;
  struct Grave {
    Grave(void* p, void (*d)(void*)) : ptr(p), del(d) {}
    void* ptr;
    void (*del)(void*);
  };
  std::vector<Grave> graveyard_;
};

}  // namespace cumulo::core
