// Runs the external commands of the net component (iproute2's `ip`, nftables' `nft`): one way to start them
// (posix_spawnp with an argument vector, no shell), to feed them stdin and to turn their failure into an
// error that names the command line and what it wrote to stderr.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "net/net.h"

namespace cumulo::net::internal {

// Runs argv[0] (looked up in PATH) with `input` on its stdin, waits for it and returns its stdout. An exit
// status other than 0, a signal, or a failure to start is an error whose message holds the command line and
// its stderr: "ip -n cu-s.router route add 10.20.0.2/32 dev v1a2b3c4d: exit status 2: Error: ...".
Result<std::string> run_command(const std::vector<std::string>& argv, std::string_view input = {});

// `ip -n NS -batch -` with `commands` (one per line) on stdin: one process for several netlink requests.
// iproute2 stops at the first failing line and names it.
Result<void> ip_batch(const std::string& ns, const std::string& commands);

}  // namespace cumulo::net::internal
