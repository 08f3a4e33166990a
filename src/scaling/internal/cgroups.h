// Where the CPU and memory limits of local instances live: cgroup v1 or v2, whichever the machine mounts.
//
// The layout comes from the file system types under the root (statfs(2)), not from guesses over /proc:
//   - ROOT is a cgroup2 file system: the unified hierarchy (v2). An instance gets ROOT/cumulo/PATH (PATH is
//     LaunchSpec::cgroup, "STACK/INSTANCE"); the controllers it needs ("cpu", "memory"), those of them that
//     ROOT/cgroup.controllers lists, are enabled in the cgroup.subtree_control of ROOT and of every directory
//     between ROOT and the leaf, top down; then cpu.max ("QUOTA 100000") and memory.max are written in the
//     leaf, and last its pid into the leaf's cgroup.procs.
//   - ROOT/cpu or ROOT/memory is a cgroup (v1) file system, ROOT itself being a tmpfs: v1, one hierarchy per
//     controller. An instance gets ROOT/cpu/cumulo/PATH with cpu.cfs_period_us and cpu.cfs_quota_us, and
//     ROOT/memory/cumulo/PATH with memory.limit_in_bytes, its pid in each cgroup.procs. A hybrid machine (a
//     cgroup2 at ROOT/unified beside the v1 mounts) is v1: its cpu and memory controllers are bound to v1.
//   - Neither: no limits.
// Guarantees:
//   - Limits are written before the pid, so a process is never in its cgroup without them. (It may run a few
//     instructions before it is moved at all: the limits bound a long-running instance, not its first
//     microseconds.)
//   - Processes are only ever written into leaves: cumulo's directories above them hold none, as cgroup v2
//     demands of a cgroup that passes controllers down (the no-internal-process rule).
//   - A limit that cannot be enforced never stops an instance. It runs without that limit (on v2 still in its
//     leaf, so that it can be counted and killed with its cgroup), and the reason is returned once per limit
//     and Cgroups object, for the caller to log.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace cumulo::scaling::internal {

enum class CgroupLayout { kNone, kV1, kV2 };

// f_type of statfs(2) at path (CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, TMPFS_MAGIC of <linux/magic.h>);
// nullopt when path cannot be reached.
using FsTypeProbe = std::function<std::optional<int64_t>(const std::string& path)>;
std::optional<int64_t> statfs_type(const std::string& path);

// Why a v2 controller is missing from cgroup.controllers, for the warning: "bound to a cgroup v1 hierarchy",
// "disabled on the kernel command line", ... The default reads /proc/cgroups. (This only explains; the layout
// itself is never decided from /proc.)
using ControllerExplainer = std::function<std::string(std::string_view controller)>;
std::string explain_missing_controller(std::string_view controller);

CgroupLayout detect_cgroup_layout(const std::string& root, const FsTypeProbe& fs_type);

struct CgroupLimits {
  double cpu = 0;             // vCPUs; 0: no limit
  uint64_t memory_bytes = 0;  // 0: no limit
};

struct CgroupWarning {
  std::string limit;   // "cpu", "memory" or "cpu and memory": what is not enforced
  std::string reason;  // why, naming the file or directory
};

struct CgroupPlacement {
  // The leaves made for the process (one per v1 hierarchy, one on v2): remove() them once it has been reaped.
  std::vector<std::string> dirs;
  // Only those not returned before by the same Cgroups.
  std::vector<CgroupWarning> warnings;
};

class Cgroups {
 public:
  // root: where cgroup file systems are mounted, /sys/fs/cgroup but for tests. The layout is detected here.
  explicit Cgroups(std::string root, FsTypeProbe fs_type = statfs_type,
                   ControllerExplainer explain = explain_missing_controller);

  CgroupLayout layout() const { return layout_; }
  // "cgroup v2 at /sys/fs/cgroup", for the log.
  std::string describe() const;

  // Puts pid into the cgroup(s) of path ("STACK/INSTANCE") with the limits. Nothing when path is empty or
  // there is no limit.
  CgroupPlacement enter(const std::string& path, const CgroupLimits& limits, pid_t pid);

  // rmdir of each leaf and then of its parent (the stack's directory), which fails harmlessly while other
  // instances are in it. A cgroup can only be removed once no process is in it: call after the reap.
  static void remove(const std::vector<std::string>& dirs);

 private:
  void enter_v1(const std::string& path, const CgroupLimits& limits, pid_t pid, CgroupPlacement& out);
  void enter_v2(const std::string& path, const CgroupLimits& limits, pid_t pid, CgroupPlacement& out);
  void warn(CgroupPlacement& out, const std::string& limit, std::string reason);

  std::string root_;
  FsTypeProbe fs_type_;
  ControllerExplainer explain_;
  CgroupLayout layout_;
  std::set<std::string> warned_;  // limits already warned about
};

}  // namespace cumulo::scaling::internal
