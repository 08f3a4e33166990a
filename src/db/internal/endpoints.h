// The writer and reader endpoints run in a process of their own (`cumulo db endpoints -c FILE`), apart from
// the manager (`cumulo db run`), so that the manager's crash or restart cuts no client connection: the
// endpoints keep the last routes they were given until the manager is back.
//
// The manager hands routes over through DATA_DIR/routes.json (written aside and renamed) and a SIGHUP to the
// endpoints process, which then reads the file again. A publication is state, not a command (cluster.h), so a
// signal that merges with the next one loses nothing. The endpoints process writes its PID to
// DATA_DIR/endpoints.pid once it listens; a manager that starts finds it there and adopts it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <mutex>
#include <optional>
#include <string>

#include "db/internal/cluster.h"
#include "db/internal/config.h"
#include "db/internal/process.h"

namespace cumulo::db {

std::string routes_to_json(const Publication& p);
// nullopt when the text is not a routes file.
std::optional<Publication> routes_from_json(const std::string& text);

// The endpoints process: listens on the writer and reader addresses with cfg.workers loops, applies
// DATA_DIR/routes.json at start and on SIGHUP, stops on SIGINT or SIGTERM. Returns the exit code.
int run_endpoints(const DbConfig& cfg);

// The manager's side of it.
class EndpointsProcess {
 public:
  // `binary` and `config_path` (absolute) make its command line: BINARY db endpoints -c CONFIG_PATH.
  EndpointsProcess(const DbConfig& cfg, std::string binary, std::string config_path);
  ~EndpointsProcess() = default;
  EndpointsProcess(const EndpointsProcess&) = delete;
  EndpointsProcess& operator=(const EndpointsProcess&) = delete;

  // Takes over the endpoints process an earlier manager left running; false when there is none.
  bool adopt();
  // Starts it and waits until it listens. Throws std::runtime_error with the reason (and its log's tail).
  void start();
  // Writes routes.json and tells the process. Any thread.
  void publish(const Publication& p);
  // Starts it again when it died (its clients are then gone; new ones find the last routes). Any thread.
  void watch();
  // SIGTERM, waiting for it to close its listeners.
  void stop();

  pid_t pid() const;
  bool adopted() const;

 private:
  bool alive_locked();
  void start_locked();

  DbConfig cfg_;
  std::string binary_;
  std::string config_path_;
  mutable std::mutex mu_;
  pid_t pid_ = 0;
  bool adopted_ = false;
  AdoptedProcess adopted_process_;
  std::optional<Publication> last_;
  std::chrono::steady_clock::time_point next_restart_{};
};

}  // namespace cumulo::db
