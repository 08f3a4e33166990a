// A few threads for work that blocks (opening files, reading a cold disk, a long SQLite scan), so that an
// event loop never waits on it: nginx's `aio threads`, Seastar's syscall thread. The loop hands over a
// function and names itself; the function runs on a pool thread and its result comes back to the loop through
// EventLoop::post, where `done` runs. Nothing else crosses threads: the work must not touch the loop's state,
// and `done` must not assume that what the request belonged to is still there (a client may have left
// meanwhile); it checks, as http::Responder does.
//
// Jobs start in the order they were submitted. stop() lets each thread finish the job it is running, drops
// the jobs still queued (with what they captured) and joins; a result posted to a loop that has stopped is
// dropped with that loop's posted work. So the pool is stopped after the loops it answers to stop running and
// before they are destroyed.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/event_loop.h"

namespace cumulo::core {

namespace blocking_pool_detail {
template <typename R>
struct ResultSlot {
  std::optional<R> value;
};
template <>
struct ResultSlot<void> {};
}  // namespace blocking_pool_detail

class BlockingPool {
 public:
  // `name` names the threads (15 characters at most are kept) for top, gdb and /proc.
  explicit BlockingPool(size_t threads, std::string name = "blocking");
  ~BlockingPool();  // stop()
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // Runs work() on a pool thread, then done(result) on `loop` (done() without an argument for void work).
  // Any thread; `loop` must outlive the job (see above). Work and result may be move-only. After stop(),
  // neither runs.
  template <typename Work, typename Done>
  void submit(EventLoop& loop, Work work, Done done) {
    using R = std::invoke_result_t<Work&>;
    // std::function (EventLoop::post, the queue) copies its target, so move-only pieces travel in a box.
    struct Box {
      Work work;
      Done done;
      blocking_pool_detail::ResultSlot<R> result;
    };
    auto box = std::make_shared<Box>(Box{std::move(work), std::move(done), {}});
    // The box moves on to the loop with the result, so that what the job captured is destroyed there (or with
    // the loop's dropped work), never on the pool thread.
    run([box = std::move(box), &loop]() mutable {
      if constexpr (std::is_void_v<R>) {
        box->work();
        loop.post([box = std::move(box)] { box->done(); });
      } else {
        box->result.value.emplace(box->work());
        loop.post([box = std::move(box)] { box->done(std::move(*box->result.value)); });
      }
    });
  }

  // Runs job on a pool thread. Any thread; dropped after stop().
  void run(std::function<void()> job);
  // Finishes the running jobs, drops the queued ones, joins the threads. Idempotent; any thread but the
  // pool's.
  void stop();

  size_t threads() const { return threads_.size(); }
  // Jobs waiting for a thread (not those running).
  size_t queued() const;

 private:
  void loop();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace cumulo::core
