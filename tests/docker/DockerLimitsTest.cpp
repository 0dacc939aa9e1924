// Limits from config on localDocker: cores and memory visible inside the
// container, and a memory hog or a job over the process limit ended with a
// clear message in the header.
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

class DockerPidsLimitTest : public DockerTest {
 protected:
  // The container's pids limit is VM_ULIMIT_USER_PROC + 32 = 40.
  std::string dockerConfig() override { return "VM_ULIMIT_USER_PROC = 8\n"; }
};

TEST_F(DockerPidsLimitTest, AJobOverTheProcessLimitGetsAClearMessage) {
  // 60 background sleeps: well beyond both the process limit and the pids limit.
  submitTo("pids",
           {{"autograde-Makefile",
             "all:\n\t@echo forking\n\t@for i in $$(seq 1 60); do sleep 5 & done; wait\n"}},
           "pids.out", {{"timeout", 20}});
  auto out = waitOutput("pids", "pids.out");
  ASSERT_TRUE(out) << tangod->log();
  // The number in brackets is the limit: 40 (the pids limit) or 8 (the
  // job's own), whichever the VMMS enforces.
  const auto notice = out->find("]: Error: the job hit the limit on the number of processes (");
  EXPECT_NE(notice, std::string::npos) << *out;
  // In the header, before the job's own output.
  EXPECT_LT(notice, out->find("\n---\n")) << *out;
  EXPECT_NE(out->find("\n---\nAutodriver: Job exited with status 2\nforking\n"), std::string::npos)
      << *out;
}

}  // namespace
}  // namespace tango::test
