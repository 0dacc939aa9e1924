// Which images a build may replace: new names, the ones this service built
// (remembered across restarts), the ones BUILD_IMAGES lists; never another.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>

#include "tango/core/BuiltImages.hpp"

namespace tango {
namespace {

TEST(BuiltImagesTest, OnlyNewBuiltOrListedImagesMayBeReplaced) {
  std::string templ = (std::filesystem::temp_directory_path() / "built-images-XXXXXX").string();
  ASSERT_NE(::mkdtemp(templ.data()), nullptr);
  const std::filesystem::path dir = templ;
  const auto file = dir / "built-images";
  const std::vector<std::string> engine = {"autograding_image", "course_image", "mine"};
  {
    BuiltImages b(file, {"course_image"});
    EXPECT_FALSE(b.refusal("brand_new", engine));     // a new name
    EXPECT_FALSE(b.refusal("course_image", engine));  // listed
    auto why = b.refusal("autograding_image", engine);
    ASSERT_TRUE(why);
    EXPECT_NE(why->find("BUILD_IMAGES"), std::string::npos) << *why;
    EXPECT_TRUE(b.refusal("mine", engine));
    b.record("mine");
    EXPECT_FALSE(b.refusal("mine", engine));
  }
  // A restart remembers what was built; the file is the service's alone.
  BuiltImages again(file, {});
  EXPECT_FALSE(again.refusal("mine", engine));
  EXPECT_TRUE(again.refusal("course_image", engine));
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tango
