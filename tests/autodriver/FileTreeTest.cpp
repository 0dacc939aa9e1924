#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "autodriver/FileTree.hpp"

namespace tango::autodriver {
namespace {

namespace fs = std::filesystem;

class FileTree : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/autodriver-filetree-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    base_ = pattern;
    // A tree with a file, a nested dir, and symlinks pointing outside it.
    fs::create_directories(base_ / "tree/sub/deeper");
    write(base_ / "tree/file", "content");
    write(base_ / "tree/sub/deeper/exe", "#!/bin/sh\n");
    fs::permissions(base_ / "tree/sub/deeper/exe", fs::perms(0750));
    fs::create_directory(base_ / "outside");
    write(base_ / "outside/precious", "keep me");
    fs::create_directory_symlink(base_ / "outside", base_ / "tree/link_to_dir");
    fs::create_symlink(base_ / "outside/precious", base_ / "tree/sub/link_to_file");
  }
  void TearDown() override { fs::remove_all(base_); }

  static void write(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }
  static std::string read(const fs::path& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  fs::path base_;
};

TEST_F(FileTree, RemoveDoesNotFollowSymlinks) {
  if (geteuid() == 0) fs::permissions(base_ / "tree/sub", fs::perms::none);  // root can remove it
  remove_tree(base_ / "tree");
  EXPECT_FALSE(fs::exists(fs::symlink_status(base_ / "tree")));
  EXPECT_EQ(read(base_ / "outside/precious"), "keep me");
  EXPECT_NO_THROW(remove_tree(base_ / "tree"));  // already gone: fine
}

TEST_F(FileTree, RemoveOfASymlinkRemovesOnlyTheLink) {
  fs::create_directory_symlink(base_ / "outside", base_ / "dirlink");
  remove_tree(base_ / "dirlink/");
  EXPECT_FALSE(fs::exists(fs::symlink_status(base_ / "dirlink")));
  EXPECT_TRUE(fs::exists(base_ / "outside/precious"));
}

TEST_F(FileTree, CopyKeepsContentModesAndLinks) {
  copy_tree(base_ / "tree", base_ / "copy");
  EXPECT_EQ(read(base_ / "copy/file"), "content");
  EXPECT_EQ(fs::status(base_ / "copy/sub/deeper/exe").permissions(), fs::perms(0750));
  EXPECT_TRUE(fs::is_symlink(base_ / "copy/link_to_dir"));
  EXPECT_EQ(fs::read_symlink(base_ / "copy/sub/link_to_file"), base_ / "outside/precious");
  EXPECT_THROW(copy_tree(base_ / "tree", base_ / "copy"), std::system_error);
  EXPECT_TRUE(fs::exists(base_ / "copy/file"));  // a failed copy leaves dst alone
}

TEST_F(FileTree, MoveRenamesWithinAFilesystem) {
  move_tree(base_ / "tree", base_ / "moved");
  EXPECT_FALSE(fs::exists(base_ / "tree"));
  EXPECT_EQ(read(base_ / "moved/file"), "content");
}

TEST_F(FileTree, MoveCopiesAcrossFilesystems) {
  struct stat tmp_st {
  }, shm_st{};
  if (stat("/dev/shm", &shm_st) != 0 || stat(base_.c_str(), &tmp_st) != 0 ||
      tmp_st.st_dev == shm_st.st_dev) {
    GTEST_SKIP() << "/dev/shm is not a separate filesystem here";
  }
  const fs::path target = fs::path("/dev/shm") / base_.filename();
  move_tree(base_ / "tree", target);
  EXPECT_FALSE(fs::exists(base_ / "tree"));
  EXPECT_EQ(read(target / "file"), "content");
  EXPECT_TRUE(fs::is_symlink(target / "link_to_dir"));
  fs::remove_all(target);
}

TEST_F(FileTree, ChownDoesNotFollowSymlinks) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  chown_tree(base_ / "tree", 65534, 65534);
  struct stat st {};
  ASSERT_EQ(lstat((base_ / "tree/sub/deeper/exe").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  ASSERT_EQ(lstat((base_ / "tree/link_to_dir").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  ASSERT_EQ(stat((base_ / "outside/precious").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  ASSERT_EQ(stat((base_ / "outside").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
}

}  // namespace
}  // namespace tango::autodriver
