// Small file helpers that several components need: whole-file reads and writes that a crash never leaves half
// done.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace cumulo::core {

// The whole file as text; "" when it cannot be read (missing, unreadable).
std::string read_file(const std::string& path);

// Writes `text` to PATH.tmp (created anew with `mode`: a PATH.tmp left by a crash is removed first, so that
// its mode does not carry over), then renames it over `path`: a reader sees the old file or the new one,
// never half of one. With `durable`, the data and the rename are on disk before it returns, so that a crash
// of the machine also leaves one or the other. Throws std::runtime_error naming the file and the reason.
void write_file_atomically(const std::string& path, std::string_view text, bool durable = false,
                           mode_t mode = 0644);

// For keys, passwords and tokens: written like write_file_atomically, durably and with mode 0600, so that the
// secret is readable by its owner only from the first byte and is never seen half written, even after a
// crash. With IfExists::kKeep an existing file is left as it is (a key that already wraps data must never be
// replaced; the new file is linked into place, which fails rather than replaces) and false is returned.
enum class IfExists { kReplace, kKeep };
bool write_secret_file(const std::string& path, std::string_view text,
                       IfExists if_exists = IfExists::kReplace);

// Where `name` runs from: itself when it holds a '/', else the first runnable regular file of that name in
// $PATH (/usr/local/bin:/usr/bin:/bin when unset). Empty when there is none, with *error (if given) the errno
// of the last candidate (ENOENT when nothing of that name exists, EACCES, EISDIR for a directory).
std::string find_executable(const std::string& name, int* error = nullptr);

}  // namespace cumulo::core
