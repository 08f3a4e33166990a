// Small file helpers that several components need: whole-file reads and writes that a crash never leaves half
// done.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace cumulo::core {

// The whole file as text; "" when it cannot be read (missing, unreadable).
std::string read_file(const std::string& path);

// Writes `text` to PATH.tmp (created with `mode`), then renames it over `path`: a reader sees the old file or
// the new one, never half of one. With `durable`, the data and the rename are on disk before it returns, so
// that a crash of the machine also leaves one or the other. Throws std::runtime_error naming the file and the
// reason.
void write_file_atomically(const std::string& path, std::string_view text, bool durable = false,
                           mode_t mode = 0644);

}  // namespace cumulo::core
