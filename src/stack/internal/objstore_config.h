// The object-store node configs that `cumulo up` writes for its stack (schema: docs/configuration.md, "Object
// store"), and the key material a stack makes for itself at its first start.
#pragma once

#include <string>

#include "stack/stack_file.h"

namespace cumulo::stack::internal {

struct StoreFiles {
  std::string data_dir;         // absolute: this node's data directory
  std::string master_key_file;  // absolute
};

// One node's config: its zone's listener and data, every user and bucket, and the other zones' nodes as its
// replication peers.
std::string render_store_config(const StackSpec& stack, const StoreNodeSpec& node, const StoreFiles& files);

// Fills in what the stack file left to the stack: the master key file (made once, 0600, beside the data) and
// a user when none is configured (its keys kept in CREDENTIALS_FILE, 0600, and read back on later starts).
// Throws std::runtime_error naming the file it could not read or write.
void prepare_store_secrets(ObjectStoreSpec& store, const std::string& state_dir);

}  // namespace cumulo::stack::internal
