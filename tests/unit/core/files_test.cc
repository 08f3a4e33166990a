#include "core/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace cumulo::core {
namespace {

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cumulo-files-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(FilesTest, WritesReplacesAndReads) {
  const std::string path = dir_ + "/state.json";
  EXPECT_EQ(read_file(path), "");
  write_file_atomically(path, "first\n");
  EXPECT_EQ(read_file(path), "first\n");
  write_file_atomically(path, "second", /*durable=*/true, 0600);
  EXPECT_EQ(read_file(path), "second");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Nothing is left aside.
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST_F(FilesTest, AFailureNamesTheFileAndLeavesTheOldOne) {
  const std::string path = dir_ + "/missing-dir/state.json";
  try {
    write_file_atomically(path, "x");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing-dir/state.json.tmp"), std::string::npos) << e.what();
  }
  const std::string good = dir_ + "/good";
  write_file_atomically(good, "old");
  std::filesystem::create_directory(good + ".tmp");  // the aside file cannot be created
  EXPECT_THROW(write_file_atomically(good, "new"), std::runtime_error);
  EXPECT_EQ(read_file(good), "old");
}

TEST_F(FilesTest, SecretFilesAreOwnerOnlyEvenOverAStaleTemporaryFile) {
  const std::string path = dir_ + "/master.key";
  const mode_t old_umask = ::umask(0);
  write_file_atomically(path + ".tmp", "left by a crash", false, 0644);  // a wider mode must not carry over
  EXPECT_TRUE(write_secret_file(path, "k1\n"));
  ::umask(old_umask);
  EXPECT_EQ(read_file(path), "k1\n");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_TRUE(write_secret_file(path, "k2\n"));  // kReplace
  EXPECT_EQ(read_file(path), "k2\n");
}

TEST_F(FilesTest, KeepNeverReplacesAnExistingSecret) {
  const std::string path = dir_ + "/replication-password";
  EXPECT_TRUE(write_secret_file(path, "first", IfExists::kKeep));
  EXPECT_FALSE(write_secret_file(path, "second", IfExists::kKeep));
  EXPECT_EQ(read_file(path), "first");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_THROW(write_secret_file(dir_ + "/missing-dir/key", "x", IfExists::kKeep), std::runtime_error);
}

// A name with a '/' is taken as it is; a bare one is looked up in $PATH, skipping what is not a runnable
// file.
TEST(FindExecutable, PathSearchAndErrors) {
  char tmpl[] = "/tmp/cumulo-find-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string first = dir + "/a", second = dir + "/b";
  ASSERT_EQ(mkdir(first.c_str(), 0755), 0);
  ASSERT_EQ(mkdir(second.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((first + "/tool").c_str(), 0755), 0);  // a directory of that name comes first
  write_file_atomically(first + "/plain", "x");          // not executable
  write_file_atomically(second + "/tool", "#!/bin/sh\n");
  ASSERT_EQ(chmod((second + "/tool").c_str(), 0755), 0);
  const char* old = std::getenv("PATH");
  const std::string saved = old ? old : "";
  setenv("PATH", (first + ":" + second).c_str(), 1);
  int error = -1;
  EXPECT_EQ(find_executable("tool", &error), second + "/tool");
  EXPECT_EQ(error, 0);
  EXPECT_EQ(find_executable("missing", &error), "");
  EXPECT_EQ(error, ENOENT);
  EXPECT_EQ(find_executable("plain", &error), "");
  setenv("PATH", saved.c_str(), 1);
  EXPECT_EQ(find_executable(first + "/plain", &error), "");
  EXPECT_EQ(error, EACCES);
  EXPECT_EQ(find_executable(first + "/tool", &error), "");
  EXPECT_EQ(error, EISDIR);
  EXPECT_EQ(find_executable(second + "/tool"), second + "/tool");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace cumulo::core
