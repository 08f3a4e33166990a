// The demo application's /guestbook page: entries are written through the database tier's writer endpoint and
// read back through its reader endpoint, and the page says which server answered each.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "core/event_loop.h"
#include "http/server.h"

namespace webapp {

struct GuestbookOptions {
  std::string writer;  // "127.0.0.1:3306"
  std::string reader;
  std::string user = "app";
  std::string password;
  std::string database = "app";
};

// MariaDB calls block, so they run on one thread of their own; answers go back to the loop with post().
class Guestbook {
 public:
  Guestbook(cumulo::core::EventLoop& loop, GuestbookOptions options);
  ~Guestbook();
  Guestbook(const Guestbook&) = delete;
  Guestbook& operator=(const Guestbook&) = delete;

  void handle(cumulo::http::Request& req, cumulo::http::Responder respond);

 private:
  cumulo::http::Response page(const std::string& notice);
  cumulo::http::Response post(const std::string& body);
  void run();

  cumulo::core::EventLoop& loop_;
  GuestbookOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace webapp
