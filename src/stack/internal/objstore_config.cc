#include "stack/internal/objstore_config.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "core/config.h"
#include "core/files.h"
#include "core/text.h"
#include "stack/internal/control_api.h"
#include "stack/internal/gateway_config.h"

namespace cumulo::stack::internal {

namespace {

namespace fs = std::filesystem;

}  // namespace

std::string render_store_config(const StackSpec& stack, const StoreNodeSpec& node, const StoreFiles& files) {
  const ObjectStoreSpec& store = stack.object_store;
  std::string y;
  y += "# Written by `cumulo up` for the zone " + core::yaml_quoted(node.zone) +
       " object-store node of stack " + core::yaml_quoted(stack.name) + " from " + stack.source + ".\n";
  y += "# Rewritten on every start: change the stack file instead.\n";
  y += "listen: " + core::yaml_quoted(node.listen) + "\n";
  y += "data_dir: " + core::yaml_quoted(files.data_dir) + "\n";
  y += "master_key_file: " + core::yaml_quoted(files.master_key_file) + "\n";
  y += "log_level: " + core::yaml_quoted(stack.gateway.log_level) + "\n";
  y += "users:\n";
  for (const S3UserSpec& u : store.users) {
    y += "  - name: " + core::yaml_quoted(u.name) + "\n";
    y += "    access_key: " + core::yaml_quoted(u.access_key) + "\n";
    y += "    secret_key: " + core::yaml_quoted(u.secret_key) + "\n";
  }
  if (store.nodes.size() > 1) {
    // Every node is the others' peer; the first user signs what the nodes send each other.
    y += "replication:\n";
    y += "  zone: " + core::yaml_quoted(node.zone) + "\n";
    y += "  ack: " + core::yaml_quoted(store.replication_ack) + "\n";
    y += "  on_peer_down: " + core::yaml_quoted(store.on_peer_down) + "\n";
    y += "  peers:\n";
    for (const StoreNodeSpec& peer : store.nodes) {
      if (peer.zone == node.zone) continue;
      y += "    - zone: " + core::yaml_quoted(peer.zone) + "\n";
      y += "      url: " + core::yaml_quoted("http://" + peer.listen) + "\n";
    }
  }
  if (!store.buckets.empty()) {
    y += "buckets:\n";
    for (const BucketSpec& b : store.buckets) {
      y += "  - name: " + core::yaml_quoted(b.name) + "\n";
      y += std::string("    public: ") + (b.is_public ? "true" : "false") + "\n";
    }
  }
  return y;
}

void prepare_store_secrets(ObjectStoreSpec& store, const std::string& state_dir) {
  const fs::path dir = fs::absolute(fs::path(state_dir) / "objstore");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create " + dir.string() + ": " + ec.message());
  if (store.master_key_file.empty()) {
    const fs::path key = dir / "master.key";
    // Made once: an existing key wraps the data already, so it is never replaced.
    if (!fs::exists(key)) core::write_secret_file(key.string(), random_token() + "\n", core::IfExists::kKeep);
    store.master_key_file = key.string();
  } else {
    store.master_key_file = fs::absolute(store.master_key_file).string();
  }
  if (!store.users.empty()) return;
  // One user for the stack's own use, the same on every start: its buckets and their objects stay its own.
  const fs::path credentials = dir / "credentials";
  if (!fs::exists(credentials)) {
    const std::string token = random_token();
    core::write_secret_file(
        credentials.string(),
        "admin " + core::to_upper("AK" + token.substr(0, 18)) + " " + token.substr(18, 40) + "\n",
        core::IfExists::kKeep);
  }
  std::ifstream in(credentials);
  S3UserSpec user;
  if (!(in >> user.name >> user.access_key >> user.secret_key)) {
    throw std::runtime_error(
        credentials.string() +
        ": expected 'NAME ACCESS_KEY SECRET_KEY'; remove the file to have new keys made");
  }
  store.users.push_back(std::move(user));
}

}  // namespace cumulo::stack::internal
