#include "core/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

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

}  // namespace
}  // namespace cumulo::core
