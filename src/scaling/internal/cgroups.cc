// cgroup v1 and v2 placement of instances (cgroups.h).
#include "scaling/internal/cgroups.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "core/net.h"

namespace cumulo::scaling::internal {

namespace {

namespace fs = std::filesystem;

constexpr long kCfsPeriodUs = 100'000;

struct WriteFailure {
  int err;           // errno
  std::string text;  // what failed, for a warning
};

// One write(2) of the whole value: a cgroup file takes each write as one value. (O_CREAT is for the fake
// trees of tests; a cgroup file system refuses to create a file that the kernel did not make.)
std::optional<WriteFailure> write_file(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    int err = errno;
    return WriteFailure{err, "cannot open " + path + ": " + core::errno_text(err)};
  }
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = n < 0 ? errno : EIO;
  ::close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    return WriteFailure{err, "cannot write \"" + value + "\" to " + path + ": " +
                                 (n < 0 ? core::errno_text(err) : std::string("short write"))};
  }
  return std::nullopt;
}

std::set<std::string> read_words(const std::string& path) {
  std::ifstream in(path);
  std::set<std::string> words;
  for (std::string w; in >> w;) words.insert(w);
  return words;
}

std::string without_trailing_slash(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

bool has_type(const FsTypeProbe& fs_type, const std::string& path, int64_t magic) {
  std::optional<int64_t> t = fs_type(path);
  return t && *t == magic;
}

}  // namespace

std::optional<int64_t> statfs_type(const std::string& path) {
  struct statfs s {};
  if (::statfs(path.c_str(), &s) != 0) return std::nullopt;
  return static_cast<int64_t>(s.f_type);
}

std::string explain_missing_controller(std::string_view controller) {
  // "#subsys_name hierarchy num_cgroups enabled"; hierarchy 0 is the unified one (or none).
  std::ifstream in("/proc/cgroups");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string name;
    int hierarchy = 0, cgroups = 0, enabled = 0;
    if (!(fields >> name >> hierarchy >> cgroups >> enabled) || name != controller) continue;
    if (!enabled) return "disabled on the kernel command line";
    if (hierarchy != 0) return "bound to a cgroup v1 hierarchy";
    return "not passed down to this cgroup by its parent's cgroup.subtree_control";
  }
  return "not in this kernel";
}

CgroupLayout detect_cgroup_layout(const std::string& root, const FsTypeProbe& fs_type) {
  if (has_type(fs_type, root, CGROUP2_SUPER_MAGIC)) return CgroupLayout::kV2;
  // v1 and hybrid: a tmpfs holding one mount per controller (and, hybrid, a cgroup2 at ROOT/unified that
  // none of the controllers we need is bound to while they are bound to v1).
  if (has_type(fs_type, root + "/cpu", CGROUP_SUPER_MAGIC) ||
      has_type(fs_type, root + "/memory", CGROUP_SUPER_MAGIC)) {
    return CgroupLayout::kV1;
  }
  return CgroupLayout::kNone;
}

Cgroups::Cgroups(std::string root, FsTypeProbe fs_type, ControllerExplainer explain)
    : root_(without_trailing_slash(std::move(root))),
      fs_type_(std::move(fs_type)),
      explain_(std::move(explain)),
      layout_(detect_cgroup_layout(root_, fs_type_)) {}

std::string Cgroups::describe() const {
  switch (layout_) {
    case CgroupLayout::kV2:
      return "cgroup v2 at " + root_;
    case CgroupLayout::kV1:
      return "cgroup v1 at " + root_ + "/cpu and " + root_ + "/memory";
    case CgroupLayout::kNone:
      break;
  }
  return "no cgroup file system at " + root_;
}

void Cgroups::warn(CgroupPlacement& out, const std::string& limit, std::string reason) {
  if (warned_.insert(limit).second) out.warnings.push_back({limit, std::move(reason)});
}

CgroupPlacement Cgroups::enter(const std::string& path, const CgroupLimits& limits, pid_t pid) {
  CgroupPlacement out;
  if (path.empty() || (limits.cpu <= 0 && limits.memory_bytes == 0)) return out;
  switch (layout_) {
    case CgroupLayout::kV2:
      enter_v2(path, limits, pid, out);
      break;
    case CgroupLayout::kV1:
      enter_v1(path, limits, pid, out);
      break;
    case CgroupLayout::kNone:
      warn(out, "cpu and memory",
           root_ + " is neither a cgroup2 file system nor holds cgroup v1 hierarchies at " + root_ +
               "/cpu or " + root_ + "/memory");
      break;
  }
  return out;
}

void Cgroups::enter_v1(const std::string& path, const CgroupLimits& limits, pid_t pid, CgroupPlacement& out) {
  // One hierarchy per controller; each limit is enforced or not on its own.
  auto place = [&](const std::string& controller,
                   const std::vector<std::pair<std::string, std::string>>& files) {
    const std::string hierarchy = root_ + "/" + controller;
    if (!has_type(fs_type_, hierarchy, CGROUP_SUPER_MAGIC)) {
      warn(out, controller, hierarchy + " is not a cgroup v1 file system");
      return;
    }
    const std::string dir = hierarchy + "/cumulo/" + path;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
      warn(out, controller, "cannot create " + dir + ": " + ec.message());
      return;
    }
    out.dirs.push_back(dir);
    for (const auto& [name, value] : files) {
      if (auto failure = write_file(dir + "/" + name, value)) {
        warn(out, controller, failure->text);
        return;
      }
    }
  };
  const std::string pid_text = std::to_string(pid);
  if (limits.cpu > 0) {
    const long quota = static_cast<long>(limits.cpu * kCfsPeriodUs);
    place("cpu", {{"cpu.cfs_period_us", std::to_string(kCfsPeriodUs)},
                  {"cpu.cfs_quota_us", std::to_string(quota)},
                  {"cgroup.procs", pid_text}});
  }
  if (limits.memory_bytes > 0) {
    place("memory",
          {{"memory.limit_in_bytes", std::to_string(limits.memory_bytes)}, {"cgroup.procs", pid_text}});
  }
}

void Cgroups::enter_v2(const std::string& path, const CgroupLimits& limits, pid_t pid, CgroupPlacement& out) {
  const std::string base = root_ + "/cumulo";
  const std::string leaf = base + "/" + path;
  std::error_code ec;
  fs::create_directories(leaf, ec);
  if (ec) {
    warn(out, "cpu and memory", "cannot create the cgroup " + leaf + ": " + ec.message());
    return;
  }
  out.dirs.push_back(leaf);

  // The controllers the limits need, of those the root offers.
  const std::string offered_file = root_ + "/cgroup.controllers";
  const std::set<std::string> offered = read_words(offered_file);
  std::vector<std::string> wanted;
  if (limits.cpu > 0) wanted.push_back("cpu");
  if (limits.memory_bytes > 0) wanted.push_back("memory");
  std::vector<std::string> usable;
  for (const std::string& c : wanted) {
    if (offered.count(c)) {
      usable.push_back(c);
    } else {
      warn(out, c,
           "the " + c + " controller is not available in " + offered_file + " (" + explain_(c) +
               "); instances still run, each in its cgroup");
    }
  }

  // Top down, each directory from the root to the leaf's parent passes the controllers to its children.
  // Controllers already enabled are left alone (the root's usually are).
  std::vector<std::string> ancestors{root_, base};
  std::string ancestor = base;
  for (size_t start = 0, slash; (slash = path.find('/', start)) != std::string::npos; start = slash + 1) {
    ancestor += "/" + path.substr(start, slash - start);
    ancestors.push_back(ancestor);
  }
  for (const std::string& dir : ancestors) {
    if (usable.empty()) break;
    const std::string control = dir + "/cgroup.subtree_control";
    const std::set<std::string> enabled = read_words(control);
    std::string add;
    for (const std::string& c : usable) {
      if (!enabled.count(c)) add += (add.empty() ? "+" : " +") + c;
    }
    if (add.empty()) continue;
    if (auto failure = write_file(control, add)) {
      std::string reason = failure->text;
      if (failure->err == EBUSY) {
        reason +=
            " (" + dir + " holds processes, and a v2 cgroup with processes cannot pass controllers down)";
      }
      for (const std::string& c : usable) warn(out, c, reason);
      usable.clear();
    }
  }

  for (const std::string& c : usable) {
    std::optional<WriteFailure> failure;
    if (c == "cpu") {
      const long quota = static_cast<long>(limits.cpu * kCfsPeriodUs);
      failure = write_file(leaf + "/cpu.max", std::to_string(quota) + " " + std::to_string(kCfsPeriodUs));
    } else {
      failure = write_file(leaf + "/memory.max", std::to_string(limits.memory_bytes));
    }
    if (failure) warn(out, c, failure->text);
  }
  if (auto failure = write_file(leaf + "/cgroup.procs", std::to_string(pid))) {
    warn(out, "cpu and memory", failure->text + "; the instance runs outside its cgroup");
  }
}

void Cgroups::remove(const std::vector<std::string>& dirs) {
  for (const std::string& d : dirs) {
    ::rmdir(d.c_str());
    ::rmdir(fs::path(d).parent_path().c_str());
  }
}

}  // namespace cumulo::scaling::internal
