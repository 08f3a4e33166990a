// Child processes of the database tier: mariadbd servers and the MariaDB tools, each with an explicit command
// line and its output in a file. Stopped by PID only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace cumulo::db {

// Starts argv[0] with stdin from /dev/null (or stdin_path) and stdout+stderr appended to output_path. Throws
// std::runtime_error when it cannot be started.
pid_t spawn(const std::vector<std::string>& argv, const std::string& output_path,
            const std::string& stdin_path = "", const std::string& stdout_path = "");

// Runs a tool to completion; returns its exit code (128+signal when killed). stdout_path: where its standard
// output goes (empty: with stderr into output_path).
int run_tool(const std::vector<std::string>& argv, const std::string& output_path,
             const std::string& stdin_path = "", const std::string& stdout_path = "");

// True when pid has exited (reaped here); false while it runs.
bool reap(pid_t pid, int* status = nullptr);

// SIGTERM, then SIGKILL after `grace`; waits for the exit. Safe on a PID already reaped (returns at once).
void stop_process(pid_t pid, std::chrono::milliseconds grace);

// The last lines of a file (for start-up failures).
std::string file_tail(const std::string& path, size_t lines);

}  // namespace cumulo::db
