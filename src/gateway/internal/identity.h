// Who answered a response: the `cumulo-gateway` field that names this gateway (`server_id`) and the
// elastic-IP leases the admin API gave it, for whoever moves a public address between gateways
// (docs/admin-api.md, Elastic IPs). The control thread renders the field once per change and posts it to
// every worker, which adds the same bytes to each response it writes: no lock and no formatting per response.
//
// The field is never stored with a cached object and is dropped from targets' responses, so a response always
// names the gateway that wrote it to the client, whoever stored or sent it first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace cumulo::gateway {

inline constexpr std::string_view kIdentityFieldName = "cumulo-gateway";
inline constexpr size_t kMaxServerIdBytes = 64;
inline constexpr size_t kMaxLeaseNameBytes = 64;
// A bound on the field's size (every response carries it): far more addresses than one gateway holds.
inline constexpr size_t kMaxLeases = 16;
// The most bytes render_identity_field gives ("NAME=TERM" with a 19-digit term per lease): room a response
// head keeps free for it.
inline constexpr size_t kMaxIdentityFieldBytes =
    kIdentityFieldName.size() + 2 + kMaxServerIdBytes + kMaxLeases * (1 + kMaxLeaseNameBytes + 1 + 19) + 2;

// Lease name to term, sorted by name as the field lists them.
using Leases = std::map<std::string, int64_t, std::less<>>;

// Letters, digits, '-', '_', '.'; 1 to kMaxServerIdBytes.
bool valid_server_id(std::string_view id);
// Letters, digits, '-', '_'; 1 to kMaxLeaseNameBytes ('=' and spaces would make the field ambiguous).
bool valid_lease_name(std::string_view name);
// A path starting with '/', without '?', '#', spaces or control characters (it is compared with the request's
// path, which has none of them).
bool valid_monitor_uri(std::string_view path);

// "cumulo-gateway: SERVER_ID NAME=TERM NAME=TERM\r\n" (leases by name), or "" when server_id is empty: no
// field at all.
std::string render_identity_field(std::string_view server_id, const Leases& leases);

}  // namespace cumulo::gateway
