// Child processes of the database tier: mariadbd servers and the MariaDB tools, each with an explicit command
// line and its output in a file. Stopped by PID only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cumulo::db {

// Starts argv[0] with stdin from /dev/null (or stdin_path) and stdout+stderr appended to output_path, in the
// network namespace /run/netns/NETNS when netns is not empty (joining it needs CAP_SYS_ADMIN). Throws
// std::runtime_error when it cannot be started.
pid_t spawn(const std::vector<std::string>& argv, const std::string& output_path,
            const std::string& stdin_path = "", const std::string& stdout_path = "",
            const std::string& netns = "");

// Runs a tool to completion; returns its exit code (128+signal when killed). stdout_path: where its standard
// output goes (empty: with stderr into output_path).
int run_tool(const std::vector<std::string>& argv, const std::string& output_path,
             const std::string& stdin_path = "", const std::string& stdout_path = "");

// True when pid has exited (reaped here); false while it runs.
bool reap(pid_t pid, int* status = nullptr);

// SIGTERM, then SIGKILL after `grace`; waits for the exit. Safe on a PID already reaped (returns at once).
void stop_process(pid_t pid, std::chrono::milliseconds grace);

// A process started by an earlier run of the tier (adopted: not a child of this one, so not reaped here),
// known by its PID and its start time, which together tell it from a later process that got the same PID.
struct AdoptedProcess {
  pid_t pid = 0;
  uint64_t start_ticks = 0;  // field 22 of /proc/PID/stat
};

// The process in `pid_file` when it runs and its command line contains each of `needles` (a data directory,
// say); nullopt when the file is missing, the process is gone or a zombie, or it is some other program.
std::optional<AdoptedProcess> find_running(const std::string& pid_file,
                                           const std::vector<std::string>& needles);
// True while an adopted process runs (gone, a zombie, or its PID reused: false).
bool running(const AdoptedProcess& p);

// stop_process for an adopted process: SIGTERM, then SIGKILL after `grace`; waits until it is gone.
void stop_adopted(const AdoptedProcess& p, std::chrono::milliseconds grace);

// Ends a process at once (SIGKILL also ends a stopped one) and waits up to `limit` until it is gone; a child
// is reaped. True when it is gone.
bool kill_now(pid_t pid, bool child, std::chrono::milliseconds limit);

// The last lines of a file (for start-up failures).
std::string file_tail(const std::string& path, size_t lines);

}  // namespace cumulo::db
