#include "core/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace cumulo::core {

namespace {
thread_local EventLoop* t_current = nullptr;

// Runs until nothing is left: a destructor may hand a part of itself to destroy_later() (and deferred work
// may defer more), which appends to the vector being drained.
template <typename Grave>
void bury(std::vector<Grave>& graveyard) {
  while (!graveyard.empty()) {
    auto graves = std::move(graveyard);
    graveyard.clear();
    for (auto& g : graves) g.del(g.ptr);
  }
}

void run_all(std::vector<std::function<void()>>& work_list) {
  while (!work_list.empty()) {
    auto work = std::move(work_list);
    work_list.clear();
    for (auto& fn : work) fn();
  }
}

// The wake-up eventfd is registered with this handler pointer; it is never dereferenced.
IoHandler* const kWakeTag = reinterpret_cast<IoHandler*>(uintptr_t{1});
}  // namespace

Timer::Timer(EventLoop& loop, std::function<void()> on_expire)
    : loop_(loop), on_expire_(std::move(on_expire)) {}

Timer::~Timer() {
  cancel();
}

void Timer::arm(Millis after) {
  arm_at(loop_.now() + after);
}

void Timer::arm_at(TimePoint when) {
  deadline_ = when;
  armed_ = true;
  if (heap_index_ != SIZE_MAX) {
    if (when >= queued_at_) return;  // later than the queued entry: moved when that entry comes due
    loop_.heap_remove(this);
  }
  queued_at_ = when;
  loop_.heap_push(this);
}

void Timer::cancel() {
  armed_ = false;
  if (heap_index_ != SIZE_MAX) loop_.heap_remove(this);
}

EventLoop::EventLoop() : now_(Clock::now()) {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
  wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakefd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = kWakeTag;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
}

EventLoop::~EventLoop() {
  bury(graveyard_);
  for (Timer* t : heap_) t->heap_index_ = SIZE_MAX;
  ::close(wakefd_);
  ::close(epfd_);
}

EventLoop* EventLoop::current() {
  return t_current;
}

TimePoint EventLoop::update_now() {
  return now_ = Clock::now();
}

void EventLoop::add(int fd, IoHandler* handler, uint32_t events) {
  epoll_event ev{};
  ev.events = EPOLLET | EPOLLRDHUP;
  if (events & kReadable) ev.events |= EPOLLIN;
  if (events & kWritable) ev.events |= EPOLLOUT;
  ev.data.ptr = handler;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0)
    throw std::runtime_error(std::string("epoll_ctl add: ") + std::strerror(errno));
}

void EventLoop::remove(int fd) {
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::stop() {
  stop_.store(true);
  wake();
}

void EventLoop::wake() {
  uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wakefd_, &one, sizeof one);
}

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard lock(posted_mu_);
    posted_.push_back(std::move(fn));
  }
  if (!wake_pending_.exchange(true)) wake();
}

void EventLoop::defer(std::function<void()> fn) {
  deferred_.push_back(std::move(fn));
}

int EventLoop::next_timeout_ms() const {
  if (!deferred_.empty()) return 0;
  if (heap_.empty()) return 1000;
  auto d = std::chrono::duration_cast<Millis>(heap_[0]->queued_at_ - now_).count();
  if (d <= 0) return 0;
  return d > 1000 ? 1000 : static_cast<int>(d) + 1;
}

void EventLoop::run() {
  EventLoop* outer = t_current;  // a private loop (fetch_blocking) may run inside another loop's thread
  t_current = this;
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  while (!stop_.load(std::memory_order_relaxed)) {
    int n = epoll_wait(epfd_, events, kMaxEvents, next_timeout_ms());
    update_now();
    for (int i = 0; i < n; ++i) {
      auto* h = static_cast<IoHandler*>(events[i].data.ptr);
      if (h == kWakeTag) {
        uint64_t v;
        [[maybe_unused]] auto r = ::read(wakefd_, &v, sizeof v);
        continue;
      }
      uint32_t e = events[i].events, bits = 0;
      if (e & EPOLLIN) bits |= kReadable;
      if (e & EPOLLOUT) bits |= kWritable;
      if (e & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) bits |= kHangup | kReadable;
      h->on_io(bits);
    }
    run_timers();
    run_posted();
    run_all(deferred_);
    bury(graveyard_);
  }
  // Let deferred work and destructions finish so nothing leaks at exit.
  run_posted();
  run_all(deferred_);
  bury(graveyard_);
  t_current = outer;
}

void EventLoop::run_posted() {
  if (!wake_pending_.load(std::memory_order_acquire)) return;
  std::vector<std::function<void()>> work;
  {
    std::lock_guard lock(posted_mu_);
    work.swap(posted_);
    wake_pending_.store(false);
  }
  for (auto& fn : work) fn();
}

void EventLoop::run_timers() {
  // At most one pop per entry queued on entry: a callback that re-arms its timer for now_ (arm(0ms)) would
  // otherwise be popped again for ever, and run() would never get back to epoll or see stop(). What the bound
  // leaves due runs on the next iteration, which does not block (next_timeout_ms() is 0).
  size_t budget = heap_.size();
  while (budget-- > 0 && !heap_.empty() && heap_[0]->queued_at_ <= now_) {
    Timer* t = heap_[0];
    heap_remove(t);
    if (!t->armed_) continue;
    if (t->deadline_ > now_) {  // pushed back since it was queued
      t->queued_at_ = t->deadline_;
      heap_push(t);
      continue;
    }
    t->armed_ = false;
    t->on_expire_();  // may destroy or re-arm t
  }
}

void EventLoop::heap_push(Timer* t) {
  t->heap_index_ = heap_.size();
  heap_.push_back(t);
  heap_sift_up(t->heap_index_);
}

void EventLoop::heap_remove(Timer* t) {
  size_t i = t->heap_index_;
  t->heap_index_ = SIZE_MAX;
  Timer* last = heap_.back();
  heap_.pop_back();
  if (last == t) return;
  heap_[i] = last;
  last->heap_index_ = i;
  heap_sift_up(i);
  heap_sift_down(last->heap_index_);
}

void EventLoop::heap_sift_up(size_t i) {
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (heap_[parent]->queued_at_ <= heap_[i]->queued_at_) break;
    std::swap(heap_[parent], heap_[i]);
    heap_[parent]->heap_index_ = parent;
    heap_[i]->heap_index_ = i;
    i = parent;
  }
}

void EventLoop::heap_sift_down(size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < heap_.size() && heap_[l]->queued_at_ < heap_[m]->queued_at_) m = l;
    if (r < heap_.size() && heap_[r]->queued_at_ < heap_[m]->queued_at_) m = r;
    if (m == i) break;
    std::swap(heap_[m], heap_[i]);
    heap_[m]->heap_index_ = m;
    heap_[i]->heap_index_ = i;
    i = m;
  }
}

}  // namespace cumulo::core
