// Instance cgroups over fake trees in a temporary directory: the layout by file system type, and the files
// written for cgroup v2 (controllers offered or not) and v1, hybrid included.
#include "scaling/internal/cgroups.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

namespace cumulo::scaling::internal {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;
using testing::IsEmpty;

constexpr uint64_t k256MiB = 256ull * 1024 * 1024;
constexpr pid_t kPid = 4242;

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

class FakeTree : public testing::Test {
 protected:
  FakeTree() {
    std::string tmpl = (fs::temp_directory_path() / "cumulo-cgroups-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root_ = tmpl;
  }
  ~FakeTree() override { fs::remove_all(root_); }

  // The file system types the probe reports; paths not listed cannot be reached.
  FsTypeProbe probe() {
    return [this](const std::string& path) -> std::optional<int64_t> {
      auto it = types_.find(path);
      if (it == types_.end()) return std::nullopt;
      return it->second;
    };
  }
  static std::string explain(std::string_view controller) {
    return std::string(controller) + " is bound to a cgroup v1 hierarchy";
  }
  Cgroups cgroups() { return Cgroups(root_.string(), probe(), explain); }

  // A v2 root offering `controllers` (as the kernel writes cgroup.controllers: one line, spaces between).
  void make_v2(const std::string& controllers) {
    types_[root_.string()] = CGROUP2_SUPER_MAGIC;
    write(root_ / "cgroup.controllers", controllers + "\n");
    write(root_ / "cgroup.subtree_control", "");
    write(root_ / "cgroup.procs", "1\n");
  }
  // A tmpfs with a v1 hierarchy per controller listed.
  void make_v1(std::initializer_list<const char*> controllers) {
    types_[root_.string()] = TMPFS_MAGIC;
    for (const char* c : controllers) {
      fs::create_directories(root_ / c);
      types_[(root_ / c).string()] = CGROUP_SUPER_MAGIC;
    }
  }

  fs::path root_;
  std::map<std::string, int64_t> types_;
};

TEST_F(FakeTree, TheLayoutIsTheFileSystemTypeOfTheRootAndOfTheControllerMounts) {
  const std::string root = root_.string();
  EXPECT_EQ(detect_cgroup_layout(root, probe()), CgroupLayout::kNone) << "nothing reachable";
  types_[root] = TMPFS_MAGIC;
  EXPECT_EQ(detect_cgroup_layout(root, probe()), CgroupLayout::kNone) << "a tmpfs without cgroup mounts";
  types_[root + "/cpu"] = TMPFS_MAGIC;
  EXPECT_EQ(detect_cgroup_layout(root, probe()), CgroupLayout::kNone) << "cpu is a plain directory";
  types_[root + "/memory"] = CGROUP_SUPER_MAGIC;
  EXPECT_EQ(detect_cgroup_layout(root, probe()), CgroupLayout::kV1) << "memory alone on v1";
  types_[root + "/cpu"] = CGROUP_SUPER_MAGIC;
  EXPECT_EQ(detect_cgroup_layout(root, probe()), CgroupLayout::kV1);
  types_[root + "/unified"] = CGROUP2_SUPER_MAGIC;
  EXPECT_EQ(detect_cgroup_layout(root, probe()), CgroupLayout::kV1) << "hybrid: the controllers are on v1";
  types_.clear();
  types_[root] = CGROUP2_SUPER_MAGIC;
  EXPECT_EQ(detect_cgroup_layout(root, probe()), CgroupLayout::kV2);
  types_[root] = EXT4_SUPER_MAGIC;
  EXPECT_EQ(detect_cgroup_layout(root, probe()), CgroupLayout::kNone);
}

TEST_F(FakeTree, TheRealProbeReadsStatfs) {
  EXPECT_EQ(statfs_type("/proc"), PROC_SUPER_MAGIC);
  EXPECT_EQ(statfs_type((root_ / "missing").string()), std::nullopt);
  EXPECT_EQ(detect_cgroup_layout(root_.string(), statfs_type), CgroupLayout::kNone)
      << "a temporary directory is no cgroup file system";
}

TEST_F(FakeTree, V2WritesTheLimitsEnablesTheControllersInEveryAncestorAndPutsThePidInTheLeaf) {
  make_v2("cpuset cpu io memory hugetlb pids");
  Cgroups cg = cgroups();
  EXPECT_EQ(cg.layout(), CgroupLayout::kV2);
  CgroupPlacement placed = cg.enter("shop/web-a-1", {0.25, k256MiB}, kPid);

  const fs::path leaf = root_ / "cumulo/shop/web-a-1";
  EXPECT_EQ(placed.dirs, std::vector<std::string>{leaf.string()});
  EXPECT_THAT(placed.warnings, IsEmpty());
  EXPECT_EQ(read_file(leaf / "cpu.max"), "25000 100000");
  EXPECT_EQ(read_file(leaf / "memory.max"), "268435456");
  EXPECT_EQ(read_file(leaf / "cgroup.procs"), "4242");
  for (const fs::path& dir : {root_, root_ / "cumulo", root_ / "cumulo/shop"}) {
    EXPECT_EQ(read_file(dir / "cgroup.subtree_control"), "+cpu +memory") << dir;
  }
  for (const fs::path& dir : {root_ / "cumulo", root_ / "cumulo/shop"}) {
    EXPECT_FALSE(fs::exists(dir / "cgroup.procs")) << dir << ": processes only in leaves";
  }
  EXPECT_FALSE(fs::exists(leaf / "cgroup.subtree_control")) << "a leaf passes nothing down";
  EXPECT_EQ(read_file(root_ / "cgroup.procs"), "1\n");
}

TEST_F(FakeTree, V2WritesOnlyTheControllersNotYetEnabled) {
  make_v2("cpu memory pids");
  // As the kernel shows them: without '+'.
  write(root_ / "cgroup.subtree_control", "memory pids\n");
  write(root_ / "cumulo/cgroup.subtree_control", "cpu memory\n");
  CgroupPlacement placed = cgroups().enter("shop/web-a-1", {1.5, k256MiB}, kPid);
  EXPECT_THAT(placed.warnings, IsEmpty());
  EXPECT_EQ(read_file(root_ / "cgroup.subtree_control"), "+cpu");
  EXPECT_EQ(read_file(root_ / "cumulo/cgroup.subtree_control"), "cpu memory\n") << "left alone";
  EXPECT_EQ(read_file(root_ / "cumulo/shop/cgroup.subtree_control"), "+cpu +memory");
  EXPECT_EQ(read_file(root_ / "cumulo/shop/web-a-1/cpu.max"), "150000 100000");
}

TEST_F(FakeTree, V2WithoutTheCpuControllerLimitsMemoryWarnsOnceAndStillPlacesTheInstance) {
  make_v2("memory pids");
  Cgroups cg = cgroups();
  CgroupPlacement placed = cg.enter("shop/web-a-1", {0.25, k256MiB}, kPid);

  const fs::path leaf = root_ / "cumulo/shop/web-a-1";
  EXPECT_FALSE(fs::exists(leaf / "cpu.max"));
  EXPECT_EQ(read_file(leaf / "memory.max"), "268435456");
  EXPECT_EQ(read_file(leaf / "cgroup.procs"), "4242");
  EXPECT_EQ(read_file(root_ / "cumulo/shop/cgroup.subtree_control"), "+memory");
  ASSERT_EQ(placed.warnings.size(), 1u);
  EXPECT_EQ(placed.warnings[0].limit, "cpu");
  EXPECT_EQ(placed.warnings[0].reason,
            "the cpu controller is not available in " + (root_ / "cgroup.controllers").string() +
                " (cpu is bound to a cgroup v1 hierarchy); instances still run, each in its cgroup");

  CgroupPlacement second = cg.enter("shop/web-a-2", {0.25, k256MiB}, kPid + 1);
  EXPECT_THAT(second.warnings, IsEmpty()) << "one warning per limit";
  EXPECT_EQ(read_file(root_ / "cumulo/shop/web-a-2/cgroup.procs"), "4243");
}

TEST_F(FakeTree, V2WithNeitherControllerStillPlacesTheInstanceInItsLeaf) {
  make_v2("hugetlb");  // what a cgroup2 mount offers on a machine with cpu and memory bound to v1
  CgroupPlacement placed = cgroups().enter("shop/web-a-1", {0.25, k256MiB}, kPid);
  const fs::path leaf = root_ / "cumulo/shop/web-a-1";
  EXPECT_EQ(placed.dirs, std::vector<std::string>{leaf.string()});
  EXPECT_EQ(read_file(leaf / "cgroup.procs"), "4242");
  EXPECT_FALSE(fs::exists(leaf / "cpu.max"));
  EXPECT_FALSE(fs::exists(leaf / "memory.max"));
  EXPECT_EQ(read_file(root_ / "cgroup.subtree_control"), "") << "nothing to enable";
  ASSERT_EQ(placed.warnings.size(), 2u);
  EXPECT_EQ(placed.warnings[0].limit, "cpu");
  EXPECT_EQ(placed.warnings[1].limit, "memory");
  EXPECT_THAT(placed.warnings[1].reason, HasSubstr("the memory controller is not available in"));
}

TEST_F(FakeTree, V2OnlyTheLimitsAskedForAreEnabled) {
  make_v2("cpu memory");
  CgroupPlacement placed = cgroups().enter("shop/web-a-1", {0, k256MiB}, kPid);
  EXPECT_THAT(placed.warnings, IsEmpty());
  EXPECT_EQ(read_file(root_ / "cgroup.subtree_control"), "+memory");
  EXPECT_FALSE(fs::exists(root_ / "cumulo/shop/web-a-1/cpu.max"));
}

TEST_F(FakeTree, V2AControllerThatCannotBeEnabledIsAWarningNamingTheFile) {
  make_v2("cpu memory");
  fs::create_directories(root_ / "cumulo/shop/cgroup.subtree_control");  // a directory: opening it fails
  CgroupPlacement placed = cgroups().enter("shop/web-a-1", {0.25, k256MiB}, kPid);
  ASSERT_EQ(placed.warnings.size(), 2u);
  EXPECT_THAT(placed.warnings[0].reason,
              HasSubstr("cannot open " + (root_ / "cumulo/shop/cgroup.subtree_control").string()));
  EXPECT_FALSE(fs::exists(root_ / "cumulo/shop/web-a-1/cpu.max")) << "no limit the kernel would refuse";
  EXPECT_EQ(read_file(root_ / "cumulo/shop/web-a-1/cgroup.procs"), "4242");
}

TEST_F(FakeTree, V2ALeafThatCannotBeMadeLeavesTheInstanceOutsideWithAWarning) {
  make_v2("cpu memory");
  write(root_ / "cumulo", "not a directory");
  CgroupPlacement placed = cgroups().enter("shop/web-a-1", {0.25, k256MiB}, kPid);
  EXPECT_THAT(placed.dirs, IsEmpty());
  ASSERT_EQ(placed.warnings.size(), 1u);
  EXPECT_EQ(placed.warnings[0].limit, "cpu and memory");
  EXPECT_THAT(placed.warnings[0].reason, HasSubstr("cannot create the cgroup " + root_.string()));
}

TEST_F(FakeTree, V1WritesTheQuotaAndTheMemoryLimitInEachHierarchy) {
  make_v1({"cpu", "memory", "pids"});
  Cgroups cg = cgroups();
  EXPECT_EQ(cg.layout(), CgroupLayout::kV1);
  CgroupPlacement placed = cg.enter("shop/web-a-1", {0.25, k256MiB}, kPid);
  const fs::path cpu = root_ / "cpu/cumulo/shop/web-a-1", memory = root_ / "memory/cumulo/shop/web-a-1";
  EXPECT_EQ(placed.dirs, (std::vector<std::string>{cpu.string(), memory.string()}));
  EXPECT_THAT(placed.warnings, IsEmpty());
  EXPECT_EQ(read_file(cpu / "cpu.cfs_period_us"), "100000");
  EXPECT_EQ(read_file(cpu / "cpu.cfs_quota_us"), "25000");
  EXPECT_EQ(read_file(cpu / "cgroup.procs"), "4242");
  EXPECT_EQ(read_file(memory / "memory.limit_in_bytes"), "268435456");
  EXPECT_EQ(read_file(memory / "cgroup.procs"), "4242");
  EXPECT_FALSE(fs::exists(root_ / "cumulo")) << "nothing of v2";
  EXPECT_FALSE(fs::exists(cpu / "cpu.max"));
}

TEST_F(FakeTree, HybridIsV1AndLeavesTheUnifiedHierarchyAlone) {
  make_v1({"cpu", "memory"});
  fs::create_directories(root_ / "unified");
  types_[(root_ / "unified").string()] = CGROUP2_SUPER_MAGIC;
  write(root_ / "unified/cgroup.controllers", "hugetlb\n");
  CgroupPlacement placed = cgroups().enter("shop/web-a-1", {0.5, k256MiB}, kPid);
  EXPECT_THAT(placed.warnings, IsEmpty());
  EXPECT_EQ(read_file(root_ / "cpu/cumulo/shop/web-a-1/cpu.cfs_quota_us"), "50000");
  EXPECT_EQ(read_file(root_ / "memory/cumulo/shop/web-a-1/memory.limit_in_bytes"), "268435456");
  EXPECT_FALSE(fs::exists(root_ / "unified/cumulo"));
}

TEST_F(FakeTree, V1WithoutACpuHierarchyLimitsMemoryAndWarnsOfCpu) {
  make_v1({"memory"});
  fs::create_directories(root_ / "cpu");  // a plain directory of the tmpfs, not a mount
  types_[(root_ / "cpu").string()] = TMPFS_MAGIC;
  CgroupPlacement placed = cgroups().enter("shop/web-a-1", {0.25, k256MiB}, kPid);
  ASSERT_EQ(placed.warnings.size(), 1u);
  EXPECT_EQ(placed.warnings[0].limit, "cpu");
  EXPECT_EQ(placed.warnings[0].reason, (root_ / "cpu").string() + " is not a cgroup v1 file system");
  EXPECT_FALSE(fs::exists(root_ / "cpu/cumulo")) << "nothing made on the tmpfs";
  EXPECT_EQ(read_file(root_ / "memory/cumulo/shop/web-a-1/cgroup.procs"), "4242");
}

TEST_F(FakeTree, NoCgroupFileSystemIsOneWarningAndNothingMade) {
  types_[root_.string()] = TMPFS_MAGIC;
  Cgroups cg = cgroups();
  CgroupPlacement placed = cg.enter("shop/web-a-1", {0.25, k256MiB}, kPid);
  EXPECT_THAT(placed.dirs, IsEmpty());
  ASSERT_EQ(placed.warnings.size(), 1u);
  EXPECT_EQ(placed.warnings[0].limit, "cpu and memory");
  EXPECT_THAT(placed.warnings[0].reason, HasSubstr("is neither a cgroup2 file system nor holds cgroup v1"));
  EXPECT_THAT(cg.enter("shop/web-a-2", {0.25, k256MiB}, kPid).warnings, IsEmpty());
  EXPECT_TRUE(fs::is_empty(root_));
}

TEST_F(FakeTree, NoLimitsOrNoPathIsNoCgroup) {
  make_v2("cpu memory");
  Cgroups cg = cgroups();
  EXPECT_THAT(cg.enter("shop/web-a-1", {0, 0}, kPid).dirs, IsEmpty());
  EXPECT_THAT(cg.enter("", {0.25, k256MiB}, kPid).dirs, IsEmpty());
  EXPECT_FALSE(fs::exists(root_ / "cumulo"));
}

TEST_F(FakeTree, RemoveTakesTheLeafAndTheStacksDirectoryOnceEmpty) {
  fs::create_directories(root_ / "cumulo/shop/web-a-1");
  fs::create_directories(root_ / "cumulo/shop/web-a-2");
  Cgroups::remove({(root_ / "cumulo/shop/web-a-1").string()});
  EXPECT_FALSE(fs::exists(root_ / "cumulo/shop/web-a-1"));
  EXPECT_TRUE(fs::exists(root_ / "cumulo/shop/web-a-2"));
  Cgroups::remove({(root_ / "cumulo/shop/web-a-2").string()});
  EXPECT_FALSE(fs::exists(root_ / "cumulo/shop"));
  EXPECT_TRUE(fs::exists(root_ / "cumulo"));
}

TEST(ExplainMissingController, NamesWhyFromProcCgroups) {
  // This machine's answer depends on its kernel; each answer is one of the four.
  std::string why = explain_missing_controller("cpu");
  EXPECT_THAT(why, testing::AnyOf("disabled on the kernel command line", "bound to a cgroup v1 hierarchy",
                                  "not passed down to this cgroup by its parent's cgroup.subtree_control",
                                  "not in this kernel"));
  EXPECT_EQ(explain_missing_controller("no-such-controller"), "not in this kernel");
}

}  // namespace
}  // namespace cumulo::scaling::internal
