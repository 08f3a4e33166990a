// The database tier (`cumulo db`): managed MariaDB instances, a primary and replicas across zones with
// semi-synchronous GTID replication, automatic failover, and the writer and reader endpoints applications
// connect to. Configuration: docs/configuration.md, "Database tier"; design and operations: docs/db.md.
#pragma once

#include <string>

namespace cumulo::db {

// The manager: runs until SIGINT or SIGTERM, then stops the endpoints and every mariadbd cleanly. Servers and
// endpoints that an earlier run left running (it was killed) are adopted, not restarted. Returns the exit
// code: 0 after a clean stop, 2 for an invalid configuration, 1 when start-up fails (a port in use, a server
// that does not start).
int run(const std::string& config_path);

// The writer and reader endpoints alone (`cumulo db endpoints -c FILE`), as `run` starts them: a process
// apart from the manager, so that clients keep their connections while the manager is down or restarting.
// Runs until SIGINT or SIGTERM; SIGHUP re-reads the routes the manager wrote (docs/db.md, "Endpoints").
int run_endpoints(const std::string& config_path);

// Parses and validates a configuration file; throws core::ConfigError naming file, line and column.
void check_config(const std::string& config_path);

// The admin address ("127.0.0.1:PORT") named by a configuration file; throws core::ConfigError.
std::string admin_address(const std::string& config_path);

// `cumulo db status` and `cumulo db switchover` against a running tier's admin address. Return exit codes
// (0, or 1 with the reason on stderr).
int command_status(const std::string& admin, bool json);
int command_switchover(const std::string& admin, const std::string& target);

}  // namespace cumulo::db
