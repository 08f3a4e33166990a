#include "gateway/internal/identity.h"

namespace cumulo::gateway {

namespace {
bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
}  // namespace

bool valid_server_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxServerIdBytes) return false;
  for (char c : id)
    if (!is_alnum(c) && c != '-' && c != '_' && c != '.') return false;
  return true;
}

bool valid_lease_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxLeaseNameBytes) return false;
  for (char c : name)
    if (!is_alnum(c) && c != '-' && c != '_') return false;
  return true;
}

bool valid_monitor_uri(std::string_view path) {
  if (path.empty() || path[0] != '/') return false;
  for (char c : path) {
    auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || u == 0x7f || c == '?' || c == '#') return false;
  }
  return true;
}

std::string render_identity_field(std::string_view server_id, const Leases& leases) {
  if (server_id.empty()) return {};
  std::string field;
  field.reserve(kIdentityFieldName.size() + 4 + server_id.size() + leases.size() * 24);
  field.append(kIdentityFieldName).append(": ").append(server_id);
  for (const auto& [name, term] : leases)
    field.append(" ").append(name).append("=").append(std::to_string(term));
  field.append("\r\n");
  return field;
}

}  // namespace cumulo::gateway
