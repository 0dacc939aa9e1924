// Which autodriver runs a job on localDocker, and what that allows:
// - the image ships the service's own (tango-image's label says so): it runs
//   in place and the container's root is read-only;
// - the image ships another one (Tango's images do): the service's is copied
//   in, and the root stays writable.
#include <fstream>

#include "DockerFixture.hpp"
#include "tango/util/Sha256.hpp"

namespace tango::test {
namespace {

// What each job prints: where it can write, and which autodriver is there.
const std::string kProbeMakefile =
    "all:\n"
    "\t@touch /usr/probe 2>&1 || true\n"
    "\t@touch $$HOME/h && echo home-writable\n"
    "\t@touch /tmp/t && echo tmp-writable\n"
    "\t@ls -l /opt/tango/autodriver 2>/dev/null || echo nothing-copied-in\n"
    "\t@id -un\n"
    "\t@echo \"lang=$$LANG path=$$PATH\"\n";

using DockerReadOnlyRootTest = DockerTest;

TEST_F(DockerReadOnlyRootTest, AnImageShippingTheServicesAutodriverRunsItUnderAReadOnlyRoot) {
  const std::string ours = sha256Hex(readFile(AUTODRIVER_PATH));
  ASSERT_EQ(engine.imageLabel(testImage() + ":latest", "tango.autodriver.sha256"), ours)
      << "the test image must carry this build's autodriver: ./dev test builds it with "
         "tango-image --autodriver build/asan/apps/autodriver";
  submitTo("ro", {{"autograde-Makefile", kProbeMakefile}}, "ro.out");
  auto out = waitOutput("ro", "ro.out");
  ASSERT_TRUE(out) << tangod->log();
  EXPECT_NE(out->find("Success: Autodriver returned normally"), std::string::npos) << *out;
  EXPECT_NE(out->find("/usr/probe': Read-only file system"), std::string::npos) << *out;
  EXPECT_NE(out->find("home-writable\ntmp-writable\nnothing-copied-in\nautograde\n"),
            std::string::npos)
      << *out;
  // The job's environment is the service's, not whatever the image sets.
  EXPECT_NE(out->find("lang=C.UTF-8 path=/usr/local/bin:/usr/bin:/bin\n"), std::string::npos)
      << *out;
}

class DockerCopiedAutodriverTest : public DockerTest {
 protected:
  // The same program with one byte more: not what the image ships.
  std::string autodriver() override {
    const auto path =
        std::filesystem::path(TEST_TMP_DIR) / ("autodriver-copy-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << readFile(AUTODRIVER_PATH) << '\n';
    std::filesystem::permissions(path, std::filesystem::perms(0755));
    copy_ = path;
    return path.string();
  }
  void TearDown() override {
    DockerTest::TearDown();
    std::error_code ec;
    std::filesystem::remove(copy_, ec);
  }
  std::filesystem::path copy_;
};

TEST_F(DockerCopiedAutodriverTest, AnotherAutodriverIsCopiedInAndTheRootStaysWritable) {
  submitTo("copied", {{"autograde-Makefile", kProbeMakefile}}, "copied.out");
  auto out = waitOutput("copied", "copied.out");
  ASSERT_TRUE(out) << tangod->log();
  EXPECT_NE(out->find("Success: Autodriver returned normally"), std::string::npos) << *out;
  // Root's file, which the job can neither change nor replace.
  EXPECT_NE(out->find("-rwxr-xr-x 1 root root"), std::string::npos) << *out;
  EXPECT_NE(out->find(" /opt/tango/autodriver\n"), std::string::npos) << *out;
  EXPECT_NE(out->find("/usr/probe': Permission denied"), std::string::npos) << *out;
  EXPECT_NE(out->find("home-writable\ntmp-writable\n"), std::string::npos) << *out;
}

}  // namespace
}  // namespace tango::test
