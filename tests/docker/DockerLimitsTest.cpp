// Limits from config on localDocker: cores and memory visible inside the
// container, and a memory hog ended with a clear message in the header.
#include "DockerFixture.hpp"

namespace tango::test {
namespace {

class DockerLimitsTest : public DockerTest {
 protected:
  std::string dockerConfig() override {
    return "DOCKER_MEMORY_LIMIT = 64\nDOCKER_CORES_LIMIT = 1\n";
  }
};

TEST_F(DockerLimitsTest, CoresAndMemoryAreVisibleAndAHogIsKilledWithAClearMessage) {
  submitTo(
      "limits",
      {{"autograde-Makefile",
        "all:\n\t@cat /sys/fs/cgroup/memory.max 2>/dev/null || cat "
        "/sys/fs/cgroup/memory/memory.limit_in_bytes\n"
        "\t@cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us\n"}},
      "limits.out");
  // tail keeps every byte of a stream without newlines in memory.
  submitTo("hog", {{"autograde-Makefile", "all:\n\t@head -c 1000m /dev/zero | tail > /dev/null\n"}},
           "hog.out");
  auto limits = waitOutput("limits", "limits.out");
  ASSERT_TRUE(limits) << tangod->log();
  EXPECT_NE(limits->find("status 0\n67108864\n"), std::string::npos) << *limits;
  EXPECT_TRUE(limits->ends_with("\n100000 100000\n") || limits->ends_with("\n100000\n")) << *limits;

  auto hog = waitOutput("hog", "hog.out");
  ASSERT_TRUE(hog) << tangod->log();
  EXPECT_NE(hog->find("]: Error: the job was killed for exceeding the memory limit of 64 MB\n"),
            std::string::npos)
      << *hog;
  // The message is in the header, before the job's own output.
  EXPECT_LT(hog->find("memory limit"), hog->find("---\n")) << *hog;
}

}  // namespace
}  // namespace tango::test
