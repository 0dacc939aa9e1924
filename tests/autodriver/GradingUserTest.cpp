#include <gtest/gtest.h>

#include "autodriver/GradingUser.hpp"

namespace tango::autodriver {
namespace {

constexpr const char* kPasswd =
    "root:x:0:0:root:/root:/bin/bash\n"
    "# a comment line is not an entry\n"
    "broken:x:notanumber:1:::\n"
    "autograde:x:1001:1002:Autograder,,,:/home/autograde:/bin/bash\n"
    "1003:x:1004:1004::/home/numeric-name:/bin/sh\n"
    "other:x:1003:1003::/home/other:/bin/sh\n"
    "nohome:x:1005:1005:::/bin/sh\n"
    "last:x:1006:1007::/home/last:/bin/sh";  // no trailing newline

TEST(GradingUser, FindsByName) {
  const auto user = find_in_passwd(kPasswd, "autograde");
  ASSERT_TRUE(user);
  EXPECT_EQ(user->name, "autograde");
  EXPECT_EQ(user->uid, 1001u);
  EXPECT_EQ(user->gid, 1002u);
  EXPECT_EQ(user->home, "/home/autograde");
  ASSERT_TRUE(find_in_passwd(kPasswd, "last"));
  EXPECT_EQ(find_in_passwd(kPasswd, "last")->gid, 1007u);
}

TEST(GradingUser, FindsByUidButNamesWin) {
  const auto by_uid = find_in_passwd(kPasswd, "1001");
  ASSERT_TRUE(by_uid);
  EXPECT_EQ(by_uid->name, "autograde");
  // "1003" is both a user name and another user's uid: the name wins.
  EXPECT_EQ(find_in_passwd(kPasswd, "1003")->home, "/home/numeric-name");
}

TEST(GradingUser, RejectsMissingAndMalformed) {
  EXPECT_FALSE(find_in_passwd(kPasswd, "nobody"));
  EXPECT_FALSE(find_in_passwd(kPasswd, "broken"));
  EXPECT_FALSE(find_in_passwd(kPasswd, "nohome"));
  EXPECT_FALSE(find_in_passwd(kPasswd, "99999"));
  EXPECT_FALSE(find_in_passwd(kPasswd, ""));
  EXPECT_FALSE(find_in_passwd("", "root"));
}

TEST(GradingUser, ReadsTheRealPasswdFile) {
  const auto root = lookup_grading_user("root");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->uid, 0u);
  EXPECT_FALSE(lookup_grading_user("no_such_user_for_autodriver_tests"));
}

}  // namespace
}  // namespace tango::autodriver
