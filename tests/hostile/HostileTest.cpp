// The hostile-job suite on the `local` VMMS: each case is a job directory
// tests/hostile/<case>/ (its README.md says what it attacks and what must
// hold) submitted to the real tangod through the REST API. For every case:
// the job ends with the right status within its timeout + 5 s, no process of
// a sandbox uid and no cgroup of the service's VMs is left, no file of a
// sandbox uid is left in the host's shared scratch places, free disk and
// memory are back where they were, and a normal job submitted right after
// runs normally. HostileDockerTest.cpp runs the same cases on localDocker.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "../service/Listener.hpp"
#include "../service/WarmPool.hpp"
#include "HostileCases.hpp"

namespace tango::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using hostile::kCleanupBound;
using Clock = hostile::Clock;

// The whole uid block of the test process (Tangod.hpp): its services' VM
// and keeper uids.
constexpr int kSlots = 1000;

// "<mount>/<our own group>/tango" in a v1 controller, where the service (our
// child, so in our groups) creates its per-VM groups; empty if absent.
fs::path cgroupBase(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    // "cpu,cpuacct" names two controllers; /sys/fs/cgroup/cpu links to it.
    const std::string names = "," + line.substr(a + 1, b - a - 1) + ",";
    if (names.find("," + controller + ",") == std::string::npos) continue;
    fs::path p = (fs::path("/sys/fs/cgroup") / controller /
                  fs::path(line.substr(b + 1)).relative_path() / "tango")
                     .lexically_normal();
    return p;
  }
  return {};
}

bool memoryCgroupUsable() {
  return ::geteuid() == 0 && ::access("/sys/fs/cgroup/memory/cgroup.procs", W_OK) == 0;
}

class HostileTest : public HostileCases<ServiceTest> {
 protected:
  std::string extraConfig() override {
    return "POOL_SIZE = " + std::to_string(poolSize()) +
           "\nVM_MEMORY_LIMIT = 128\nVM_DISK_LIMIT = 16\n";
  }
  virtual int poolSize() { return 3; }

  void prepareService() override {
    // The sandbox uid range Tangod gave this service.
    std::string toml = readFile(tangod->dir() / "tango.toml");
    auto pos = toml.find("UID_BASE = ");
    ASSERT_NE(pos, std::string::npos);
    uidBase_ = static_cast<uid_t>(std::stoul(toml.substr(pos + 11)));
    // Uid ranges come from pids, which repeat: groups of that range that a
    // killed service of an earlier test left are not this case's.
    for (auto& g : leftoverCgroups()) earlierGroups_.insert(g);
    // As an operator must: the config holds the API keys (README "Security model").
    fs::permissions(tangod->dir() / "tango.toml", fs::perms::owner_read | fs::perms::owner_write);
  }

  bool sandboxUid(uid_t u) const { return u >= uidBase_ && u < uidBase_ + kSlots; }
  bool sandboxProcess(const std::string& pid) const {
    const std::int64_t uid = statusField(pid, "Uid:");
    return uid >= 0 && sandboxUid(static_cast<uid_t>(uid));
  }
  // An escaped job process is no descendant of the test, but it is the case's.
  OursPredicate ours() override {
    return [this](const std::string& pid) { return sandboxProcess(pid); };
  }

  // Live processes of the sandbox uids (real, effective or saved), zombies
  // included, beyond the free pool VMs' waiting sandboxes (`warm`).
  std::vector<std::string> strayProcesses(WarmPool warm = {}) const {
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc", ec)) {
      const std::string pid = e.path().filename().string();
      if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream in(e.path() / "status");
      std::string line, name;
      while (std::getline(in, line)) {
        if (line.starts_with("Name:")) name = line;
        if (!line.starts_with("Uid:")) continue;
        std::istringstream fields(line.substr(4));
        std::vector<uid_t> uids;
        for (uid_t u = 0; uids.size() < 3 && fields >> u;) uids.push_back(u);
        bool sandboxed = false;
        for (uid_t u : uids) sandboxed = sandboxed || sandboxUid(u);
        const bool oneUid = uids.size() == 3 && uids[0] == uids[1] && uids[1] == uids[2];
        if (sandboxed && !(oneUid && warm.allowsProcess(uids[0])))
          found.push_back(pid + " " + name);
        break;
      }
    }
    return found;
  }

  std::vector<std::string> leftoverCgroups(const WarmPool& warm = {}) const {
    std::vector<std::string> found;
    for (const char* c : {"memory", "pids", "cpu"}) {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(cgroupBase(c), ec)) {
        const std::string n = e.path().filename().string();
        auto dot = n.rfind('.');
        if (dot == std::string::npos) continue;
        const std::string digits = n.substr(dot + 1);
        if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
        if (sandboxUid(static_cast<uid_t>(std::stoul(digits))) && !earlierGroups_.count(e.path()) &&
            !warm.allowsGroup(n))
          found.push_back(e.path());
      }
    }
    return found;
  }

  // Files of sandbox uids in the host's shared scratch places.
  std::vector<std::string> leftoverFiles() const {
    std::vector<std::string> found;
    for (const char* top : {"/tmp", "/var/tmp", "/dev/shm"}) {
      std::error_code ec;
      fs::recursive_directory_iterator it(top, fs::directory_options::skip_permission_denied, ec);
      for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it.depth() > 2) it.disable_recursion_pending();
        struct stat st {};
        if (::lstat(it->path().c_str(), &st) == 0 && sandboxUid(st.st_uid))
          found.push_back(it->path());
      }
    }
    return found;
  }

  // Destroying a VM follows its output by a moment: wait (bounded) for it.
  void expectHostClean() override {
    const auto deadline = Clock::now() + kCleanupBound;
    std::vector<std::string> procs, groups;
    while (Clock::now() < deadline) {
      const WarmPool warm = warmPoolOf(http->get("/pool/test/").json(), *tangod);
      procs = strayProcesses(warm);
      groups = leftoverCgroups(warm);
      if (procs.empty() && groups.empty()) break;
      std::this_thread::sleep_for(50ms);
    }
    EXPECT_TRUE(procs.empty()) << "stray processes: " << procs.size() << ", first: " << procs[0];
    EXPECT_TRUE(groups.empty()) << "leftover cgroups: " << groups.size()
                                << ", first: " << groups[0];
    auto files = leftoverFiles();
    EXPECT_TRUE(files.empty()) << "leftover files: " << files.size() << ", first: " << files[0];
  }

  std::string pathsMk(const std::string& extra = "") const {
    return "DATA = " + tangod->dataDir().string() +
           "\nCONFIG = " + (tangod->dir() / "tango.toml").string() + "\n" + extra;
  }

  // Bytes in the service's test directory (data dir, config, logs).
  std::uintmax_t serviceDirBytes() const {
    std::uintmax_t total = 0;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(tangod->dir(), ec), end; !ec && it != end;
         it.increment(ec))
      if (it->is_regular_file(ec) && !it->is_symlink(ec)) total += it->file_size(ec);
    return total;
  }

  uid_t uidBase_ = 0;
  std::set<std::string> earlierGroups_;
};

TEST_F(HostileTest, ForkBomb) { checkForkBomb(); }

TEST_F(HostileTest, ProcessHogDoesNotStarveAJobRunningBesideIt) {
  expectNormalJobBesideAProcessHog();
}

TEST_F(HostileTest, ThreadBomb) {
  auto r = runCase("thread_bomb", "threads", 4);
  EXPECT_EQ(outcome(r), "timeout") << r.output;
  EXPECT_NE(r.output.find("thread limit after "), std::string::npos) << r.output;
  expectNormalJob();
}

TEST_F(HostileTest, OneGigabyteToStdout) { checkOneGigabyteToStdout(); }

TEST_F(HostileTest, DiskFillStopsAtTheDiskLimit) {
  const auto before = serviceDirBytes();
  auto r = runCase("disk_fill", "disk", 5);
  EXPECT_EQ(outcome(r), "success") << r.output;
  EXPECT_TRUE(
      body(r).ends_with("No space left on device\nNo space left on device\ndisk-fill done\n"))
      << body(r);
  // Nothing the job wrote landed on the host disk (logs grow a little).
  EXPECT_LT(serviceDirBytes(), before + 4 * 1024 * 1024);
  expectNormalJob();
}

TEST_F(HostileTest, MemoryHogIsKilledAtTheLimitWithAClearMessage) {
  auto r = runCase("memory_hog", "memory", 5);
  EXPECT_EQ(outcome(r), "make_failed") << r.output;
  if (memoryCgroupUsable()) {
    EXPECT_TRUE(
        body(r).starts_with("Autodriver: Job exited with status 2\n"
                            "Autodriver: Job killed: out of memory (limit 128 MB)\n"
                            "allocating\n"))
        << body(r);
  } else {
    // RLIMIT_AS fallback: the allocation fails instead.
    EXPECT_NE(body(r).find("memory"), std::string::npos) << body(r);
  }
  expectNormalJob();
}

TEST_F(HostileTest, SyscallsAGraderNeverNeedsFailWithEpermAndTheJobGoesOn) {
  auto r = runCase("syscalls", "sys", 10);
  EXPECT_EQ(outcome(r), "success") << r.output;
  const std::string b = body(r);
  EXPECT_TRUE(b.starts_with("Autodriver: Job exited with status 0\nseccomp mode 2\n")) << b;
  // Every probe line between the mode and the end says EPERM.
  std::size_t probes = 0;
  std::istringstream lines(b.substr(b.find("seccomp mode")));
  std::string line;
  std::getline(lines, line);
  while (std::getline(lines, line) && line != "probe done") {
    ++probes;
    EXPECT_TRUE(line.ends_with(" EPERM")) << line;
  }
  EXPECT_EQ(line, "probe done") << b;
  EXPECT_EQ(probes, 31u) << b;
  expectNormalJob();
}

TEST_F(HostileTest, DevShmStopsAtTheDiskLimitAndDevIsReadOnly) {
  auto r = runCase("dev_shm_fill", "shm", 10);
  EXPECT_EQ(outcome(r), "success") << r.output;
  // VM_DISK_LIMIT is 16 MB here, the memory limit 128 MB: the tmpfs fills
  // long before the memory cgroup would step in.
  EXPECT_TRUE(
      body(r).ends_with("No space left on device\nshm MB: 16\nRead-only file system\n"
                        "shm-fill done\n"))
      << body(r);
  expectNormalJob();
}

TEST_F(HostileTest, LoopIgnoringSigtermIsKilledAtTheTimeout) {
  checkLoopIgnoringSigtermIsKilledAtTheTimeout();
}

TEST_F(HostileTest, DoubleForkedDaemonDiesWithTheJob) { checkDoubleForkedDaemonDiesWithTheJob(); }

TEST_F(HostileTest, ClosedStdoutAndSleepEndsAtTheTimeout) {
  checkClosedStdoutAndSleepEndsAtTheTimeout();
}

TEST_F(HostileTest, NoNetworkWhenDisabled) {
  Listener listener;
  std::string hosts;
  for (const auto& h : hostIpv4Addresses()) hosts += " " + h;
  const std::string mk = "PORT = " + std::to_string(listener.port()) + "\nHOSTS =" + hosts + "\n";
  auto r = runCase("network", "net", 8, {{"paths.mk", mk}}, {{"disable_network", true}});
  EXPECT_EQ(outcome(r), "success") << r.output;
  EXPECT_EQ(r.output.find("CONNECTED"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("blocked 127.0.0.1\n"), std::string::npos) << r.output;
  // The probe itself works: with the network on, the host's own addresses
  // answer (a service on all of them); its 127.0.0.1 is the sandbox's own.
  auto on = runCase("network", "neton", 8, {{"paths.mk", mk}}, {{"disable_network", false}});
  EXPECT_NE(on.output.find("CONNECTED"), std::string::npos) << on.output;
  EXPECT_NE(on.output.find("blocked 127.0.0.1\n"), std::string::npos) << on.output;
  expectNormalJob();
}

TEST_F(HostileTest, HostLoopbackUnreachableWithNetworkOn) {
  checkHostLoopbackUnreachableWithNetworkOn({"127.0.0.1", "10.0.2.2", "0.0.0.0"});
  // slirp4netns ends with its job.
  EXPECT_NE(std::system("pgrep -x slirp4netns >/dev/null"), 0);
}

TEST_F(HostileTest, CannotReadOtherJobsOrTheCourselabs) {
  // The victim holds a secret in its home (and its courselab) while the attacker runs.
  const std::string secret = "TOPSECRET answers\n";
  auto victim = submit(
      "victim",
      {{"autograde-Makefile", "all:\n\t@sleep 3; echo victim done\n"}, {"secret.txt", secret}},
      "victim.out", {{"timeout", 10}});
  ASSERT_GT(victim, 0);
  std::this_thread::sleep_for(1s);
  auto r = runCase("read_other_jobs", "thief", 5, {{"paths.mk", pathsMk()}});
  EXPECT_EQ(outcome(r), "success") << r.output;
  EXPECT_EQ(r.output.find("TOPSECRET"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("secret.txt"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("entries listed\n0\n0\n"), std::string::npos) << r.output;
  auto v = waitOutput("victim", "victim.out", 20s);
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->ends_with("status 0\nvictim done\n")) << *v;
  expectNormalJob();
}

TEST_F(HostileTest, CannotReadShadowOrTheServiceConfig) {
  auto r = runCase("read_secrets", "secrets", 5, {{"paths.mk", pathsMk()}});
  EXPECT_EQ(outcome(r), "success") << r.output;
  const std::string b = body(r);
  EXPECT_NE(b.find("cat: /etc/shadow: Permission denied\n"), std::string::npos) << b;
  EXPECT_NE(b.find("tango.toml: Permission denied\n"), std::string::npos) << b;
  EXPECT_EQ(b.find("root:"), std::string::npos) << b;
  EXPECT_EQ(b.find("UID_BASE"), std::string::npos) << b;
  EXPECT_EQ(b.find("DATA_DIR"), std::string::npos) << b;
  expectNormalJob();
}

TEST_F(HostileTest, TmpFilesDoNotReachTheNextJob) { checkTmpFilesDoNotReachTheNextJob(); }

TEST_F(HostileTest, SymlinkNamedLikeTheOutputLeaksNothing) {
  auto r = runCase("symlink_output", "links", 5, {{"paths.mk", "OUTPUT = symlink_output.out\n"}});
  EXPECT_EQ(outcome(r), "success") << r.output;
  EXPECT_TRUE(
      body(r).ends_with("status 0\nlinks made\npartial link refused\nextra link refused\n"
                        "symlink job done\n"))
      << body(r);
  EXPECT_EQ(r.output.find("root:"), std::string::npos);
  expectNormalJob();
}

TEST_F(HostileTest, NulBytesInvalidUtf8AndA50MegabyteLine) {
  checkNulBytesInvalidUtf8AndA50MegabyteLine();
}

TEST_F(HostileTest, MakeKilledBySignal) { checkMakeKilledBySignal(); }

TEST_F(HostileTest, TheJobCannotTouchTheAutodriver) { checkTheJobCannotTouchTheAutodriver(); }

TEST_F(HostileTest, MakefileReadingStdinEndsAtOnce) { checkMakefileReadingStdinEndsAtOnce(); }

class HostileMixTest : public HostileTest {
 protected:
  int poolSize() override { return 8; }
};

TEST_F(HostileMixTest, TwentyHostileAndTwentyNormalJobsAtOnce) {
  // 40 jobs on 8 VMs: 20 hostile ones of at most ~2 s each.
  runMix(180s);
}

}  // namespace
}  // namespace tango::test
