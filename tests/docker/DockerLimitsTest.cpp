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

TEST_F(DockerLimitsTest, LimitsAskedForByTheJobReplaceTheContainersOnes) {
  // Read inside the container: its cgroup's memory and pids limits, the
  // rlimits the autodriver set, the size of the job's tmpfs places.
  const std::string mk =
      "all:\n\t@cat /sys/fs/cgroup/memory.max 2>/dev/null || cat "
      "/sys/fs/cgroup/memory/memory.limit_in_bytes\n"
      "\t@cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max\n"
      "\t@ulimit -f; ulimit -t\n"
      "\t@df -m /tmp /home/autograde | tail -2 | tr -s ' ' | cut -d' ' -f2,6\n"
      "\t@pwd\n";
  const json::object limits{
      {"procs", 20}, {"file_size_mb", 3}, {"memory_mb", 48}, {"disk_mb", 8}, {"cpu_seconds", 7}};
  submitTo("own", {{"autograde-Makefile", mk}}, "own.out", {{"limits", limits}});
  auto own = waitOutput("own", "own.out");
  ASSERT_TRUE(own) << tangod->log();
  // 48 MB, 20 + 4 pids (init, autodriver, two spare), 3 MB in dash's 512-byte blocks, 7
  // s, 8 MB tmpfs; the job runs in its home, on the tmpfs.
  EXPECT_TRUE(
      own->ends_with("---\nAutodriver: Job exited with status 0\n50331648\n24\n6144\n7\n"
                     "8 /tmp\n8 /home/autograde\n/home/autograde/job\n"))
      << *own;

  // Without limits of its own: the configured ones (64 MB, 100 + 4 pids,
  // VM_DISK_LIMIT 128 MB).
  submitTo("cfg", {{"autograde-Makefile", mk}}, "cfg.out");
  auto cfg = waitOutput("cfg", "cfg.out");
  ASSERT_TRUE(cfg) << tangod->log();
  EXPECT_NE(
      cfg->find("status 0\n67108864\n104\n204800\nunlimited\n128 /tmp\n128 /home/autograde\n"),
      std::string::npos)
      << *cfg;
}

TEST_F(DockerLimitsTest, AJobFillingItsDiskStopsAtTheTmpfsAndLeavesTheHostDiskAlone) {
  // 40 MB into a 16 MB home and /tmp: both end with ENOSPC.
  submitTo(
      "fill",
      {{"autograde-Makefile",
        "all:\n\t@dd if=/dev/zero of=big bs=1M count=40 2>&1 | grep -o 'No space left on device'"
        "\n\t@dd if=/dev/zero of=/tmp/big bs=1M count=40 2>&1 | grep -o 'No space left on "
        "device'\n\t@echo filled\n"}},
      "fill.out", {{"limits", json::object{{"disk_mb", 16}}}});
  auto out = waitOutput("fill", "fill.out");
  ASSERT_TRUE(out) << tangod->log();
  EXPECT_TRUE(
      out->ends_with("status 0\nNo space left on device\nNo space left on device\nfilled\n"))

      << *out;
}

TEST_F(DockerLimitsTest, JobsRunProgramsTheyWriteInTheirHomeAndTmp) {
  // The tmpfs mounts must not be noexec (Docker's default): students run what
  // they compile.
  submitTo("exec",
           {{"autograde-Makefile",
             "all:\n\t@cp /bin/echo ./myecho && ./myecho home-ok\n"
             "\t@cp /bin/echo /tmp/myecho && /tmp/myecho tmp-ok\n"}},
           "exec.out");
  auto out = waitOutput("exec", "exec.out");
  ASSERT_TRUE(out) << tangod->log();
  EXPECT_TRUE(out->ends_with("status 0\nhome-ok\ntmp-ok\n")) << *out;
}

class DockerPidsLimitTest : public DockerTest {
 protected:
  // The job's process limit: the container's pids limit is 8 + 4.
  std::string dockerConfig() override { return "VM_ULIMIT_USER_PROC = 8\n"; }
};

TEST_F(DockerPidsLimitTest, AJobOverTheProcessLimitGetsAClearMessage) {
  // 60 background sleeps: well beyond the process limit.
  submitTo("pids",
           {{"autograde-Makefile",
             "all:\n\t@echo forking\n\t@for i in $$(seq 1 60); do sleep 5 & done; wait\n"}},
           "pids.out", {{"timeout", 20}});
  auto out = waitOutput("pids", "pids.out");
  ASSERT_TRUE(out) << tangod->log();
  const auto notice = out->find("]: Error: the job hit the limit on the number of processes (8)\n");
  EXPECT_NE(notice, std::string::npos) << *out;
  // In the header, before the job's own output.
  EXPECT_LT(notice, out->find("\n---\n")) << *out;
  EXPECT_NE(out->find("\n---\nAutodriver: Job exited with status 2\nforking\n"), std::string::npos)
      << *out;
}

}  // namespace
}  // namespace tango::test
