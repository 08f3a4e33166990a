// The configuration of the database tier that `cumulo up` writes for its stack's `database:` section (schema:
// docs/configuration.md, "Database tier"), and the replication password a stack makes at its first start.
#pragma once

#include <string>

#include "stack/stack_file.h"

namespace cumulo::stack::internal {

// Reads STATE_DIR/db/replication-password, or makes it (0600) at the first start.
void prepare_database_secret(DatabaseSpec& db, const std::string& state_dir);

std::string render_db_config(const DatabaseSpec& db, const std::string& data_dir);

}  // namespace cumulo::stack::internal
