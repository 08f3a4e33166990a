#include "core/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string_view>

namespace cumulo::core {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

[[noreturn]] void fail(const std::string& what, int err) {
  throw std::runtime_error("cannot write " + what + ": " + std::strerror(err));
}

void sync_directory_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

// The whole of `text` in a new file `tmp` of `mode`.
void write_new_file(const std::string& tmp, std::string_view text, bool durable, mode_t mode) {
  ::unlink(tmp.c_str());  // O_CREAT alone would keep the mode of a file left by a crash
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) fail(tmp, errno);
  auto abandon = [&](int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    fail(tmp, err);
  };
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) abandon(n < 0 ? errno : EIO);
    off += static_cast<size_t>(n);
  }
  if (durable && ::fsync(fd) != 0) abandon(errno);
  ::close(fd);
}

}  // namespace

void write_file_atomically(const std::string& path, std::string_view text, bool durable, mode_t mode) {
  const std::string tmp = path + ".tmp";
  write_new_file(tmp, text, durable, mode);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail(path, errno);
  if (durable) sync_directory_of(path);
}

bool write_secret_file(const std::string& path, std::string_view text, IfExists if_exists) {
  if (if_exists == IfExists::kReplace) {
    write_file_atomically(path, text, /*durable=*/true, 0600);
    return true;
  }
  const std::string tmp = path + ".tmp";
  write_new_file(tmp, text, /*durable=*/true, 0600);
  const int rc = ::link(tmp.c_str(), path.c_str());
  const int err = errno;
  ::unlink(tmp.c_str());
  if (rc != 0 && err == EEXIST) return false;
  if (rc != 0) fail(path, err);
  sync_directory_of(path);
  return true;
}

std::string find_executable(const std::string& name, int* error) {
  int last = ENOENT;
  auto runnable = [&last](const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      last = errno;
      return false;
    }
    if (!S_ISREG(st.st_mode)) {
      last = EISDIR;
      return false;
    }
    if (::access(path.c_str(), X_OK) != 0) {
      last = errno;
      return false;
    }
    return true;
  };
  auto done = [&](std::string found) {
    if (error) *error = found.empty() ? last : 0;
    return found;
  };
  if (name.find('/') != std::string::npos) return done(runnable(name) ? name : std::string());
  const char* path_env = std::getenv("PATH");
  std::string_view dirs = path_env && *path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t colon = dirs.find(':', start);
    std::string dir(
        dirs.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    if (runnable(candidate)) return done(candidate);
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  return done(std::string());
}

}  // namespace cumulo::core
