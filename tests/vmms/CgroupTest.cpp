// SandboxCgroups on every kind of host. This machine runs cgroup v1 (hybrid),
// so the v2 code is proved twice: against a directory tree shaped like a
// delegated cgroupfs (the files it writes and their values), and, for the
// part only a kernel can judge (moving the service into a leaf so that its
// group may hand controllers to children, and a process joining a VM's
// group), on the hybrid host's real v2 hierarchy with the one controller it
// has. The v1 limits are proved for real in LocalVmmsTest and the hostile suite.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tango/util/Process.hpp"
#include "tango/vmms/Cgroup.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using tango::CgroupHost;
using tango::CgroupLimits;
using tango::CgroupMode;
using tango::SandboxCgroups;

namespace {

std::string readFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeFile(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }

class TempTree {
 public:
  TempTree() {
    char tmpl[] = "/tmp/tango-cgtree-XXXXXX";
    root_ = ::mkdtemp(tmpl);
  }
  ~TempTree() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  const fs::path& root() const { return root_; }

 private:
  fs::path root_;
};

// The mode of /sys/fs/cgroup from /proc/self/mountinfo, independently of
// the code under test (which asks statfs).
CgroupMode modeFromMountinfo() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  bool v2Root = false, v2Unified = false, v1 = false;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, devno, root, mountPoint;
    f >> id >> parent >> devno >> root >> mountPoint;
    const auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string fstype;
    tail >> fstype;
    if (mountPoint == "/sys/fs/cgroup" && fstype == "cgroup2") v2Root = true;
    if (mountPoint == "/sys/fs/cgroup/unified" && fstype == "cgroup2") v2Unified = true;
    if (mountPoint.starts_with("/sys/fs/cgroup/") && fstype == "cgroup") v1 = true;
  }
  if (v2Root) return CgroupMode::V2;
  if (v1) return v2Unified ? CgroupMode::Hybrid : CgroupMode::V1;
  return CgroupMode::None;
}

CgroupHost fakeV2(const fs::path& root, const std::string& controllers) {
  const fs::path own = root / "system.slice/tangod.service";
  fs::create_directories(own);
  writeFile(own / "cgroup.controllers", controllers + "\n");
  writeFile(own / "cgroup.procs", "");
  CgroupHost h;
  h.mountRoot = root;
  h.mode = CgroupMode::V2;
  h.procSelfCgroup = "0::/system.slice/tangod.service\n";
  h.root = true;
  return h;
}

}  // namespace

TEST(CgroupTest, TheModeOfThisHostIsDetected) {
  const CgroupMode expected = modeFromMountinfo();
  EXPECT_EQ(SandboxCgroups(CgroupHost::thisHost()).mode(), expected)
      << "mountinfo says " << tango::cgroupModeName(expected);
  EXPECT_NE(SandboxCgroups().describe().find(tango::cgroupModeName(expected)), std::string::npos);
}

TEST(CgroupTest, V2GroupsGetMemoryWithoutSwapPidsAndCpuFromTheCores) {
  TempTree t;
  SandboxCgroups cg(fakeV2(t.root(), "cpuset cpu io memory hugetlb pids rdma misc"));
  EXPECT_EQ(cg.mode(), CgroupMode::V2);
  EXPECT_TRUE(cg.hasMemory());
  EXPECT_TRUE(cg.hasPids());
  EXPECT_TRUE(cg.hasCpu());
  EXPECT_EQ(cg.describe(), "cgroup v2: memory, pids, cpu limits in " +
                               (t.root() / "system.slice/tangod.service/tango").string());
  const fs::path base = t.root() / "system.slice/tangod.service/tango";
  ASSERT_EQ(cg.bases(), std::vector<fs::path>{base});
  // The VMs' parent hands the controllers down (the fake file keeps the last write).
  EXPECT_EQ(readFile(base / "cgroup.subtree_control"), "+cpu");

  ASSERT_EQ(cg.prepare("local-1001-img.64001", {256LL << 20, 116, 2}), "");
  const fs::path g = base / "local-1001-img.64001";
  writeFile(g / "cgroup.procs", "");  // cgroupfs makes it with the group
  EXPECT_EQ(readFile(g / "memory.max"), std::to_string(256LL << 20));
  EXPECT_EQ(readFile(g / "memory.swap.max"), "0");
  EXPECT_EQ(readFile(g / "pids.max"), "116");
  EXPECT_EQ(readFile(g / "cpu.max"), "200000 100000");
  EXPECT_EQ(cg.oomEventsFile("local-1001-img.64001"), g / "memory.events");
  std::string error;
  EXPECT_EQ(cg.openProcs("local-1001-img.64001", error).size(), 1u) << error;
  EXPECT_EQ(cg.list(), std::vector<std::string>{"local-1001-img.64001"});

  // A VM reused with no limits: every one is lifted, not left from before.
  ASSERT_EQ(cg.prepare("local-1001-img.64001", {}), "");
  EXPECT_EQ(readFile(g / "memory.max"), "max");
  EXPECT_EQ(readFile(g / "pids.max"), "max");
  EXPECT_EQ(readFile(g / "cpu.max"), "max 100000");

  EXPECT_NE(cg.prepare("../escape", {}), "");
  EXPECT_NE(cg.prepare("a/b", {}), "");
}

TEST(CgroupTest, V2WithoutDelegatedControllersHasNoLimitsAndSaysWhy) {
  TempTree t;
  SandboxCgroups cg(fakeV2(t.root(), "cpuset io"));
  EXPECT_FALSE(cg.hasMemory());
  EXPECT_FALSE(cg.hasPids());
  EXPECT_FALSE(cg.hasCpu());
  EXPECT_TRUE(cg.bases().empty());
  EXPECT_EQ(cg.describe(),
            "cgroup v2: no cgroup limits (memory falls back to RLIMIT_AS per process)");
  EXPECT_EQ(cg.prepare("vm.1", {1 << 20, 10, 1}), "");  // nothing to do
  EXPECT_FALSE(cg.oomEventsFile("vm.1").has_value());
}

TEST(CgroupTest, V2OnlyWhatIsAvailableIsUsed) {
  TempTree t;
  SandboxCgroups cg(fakeV2(t.root(), "memory pids"));
  EXPECT_TRUE(cg.hasMemory());
  EXPECT_TRUE(cg.hasPids());
  EXPECT_FALSE(cg.hasCpu());
  ASSERT_EQ(cg.prepare("vm.2", {64LL << 20, 20, 1}), "");
  EXPECT_FALSE(fs::exists(t.root() / "system.slice/tangod.service/tango/vm.2/cpu.max"));
}

TEST(CgroupTest, V1GroupsPerControllerWithTheCfsQuota) {
  TempTree t;
  for (const char* c : {"memory", "pids", "cpu"}) {
    fs::create_directories(t.root() / c / "svc");
    writeFile(t.root() / c / "cgroup.procs", "");
  }
  CgroupHost h;
  h.mountRoot = t.root();
  h.mode = CgroupMode::V1;
  h.procSelfCgroup = "9:pids:/svc\n4:memory:/svc\n2:cpu,cpuacct:/svc\n0::/\n";
  h.root = true;
  SandboxCgroups cg(h);
  EXPECT_TRUE(cg.hasMemory() && cg.hasPids() && cg.hasCpu());
  EXPECT_EQ(cg.bases().size(), 3u);
  ASSERT_EQ(cg.prepare("vm.3", {32LL << 20, 50, 1}), "");
  for (const char* c : {"memory", "pids", "cpu"})
    writeFile(t.root() / c / "svc/tango/vm.3/cgroup.procs", "");
  EXPECT_EQ(readFile(t.root() / "memory/svc/tango/vm.3/memory.limit_in_bytes"),
            std::to_string(32LL << 20));
  EXPECT_EQ(readFile(t.root() / "pids/svc/tango/vm.3/pids.max"), "50");
  EXPECT_EQ(readFile(t.root() / "cpu/svc/tango/vm.3/cpu.cfs_quota_us"), "100000");
  EXPECT_EQ(readFile(t.root() / "cpu/svc/tango/vm.3/cpu.cfs_period_us"), "100000");
  EXPECT_EQ(cg.oomEventsFile("vm.3"), t.root() / "memory/svc/tango/vm.3/memory.oom_control");
  ASSERT_EQ(cg.prepare("vm.3", {}), "");
  EXPECT_EQ(readFile(t.root() / "cpu/svc/tango/vm.3/cpu.cfs_quota_us"), "-1");
  std::string error;
  EXPECT_EQ(cg.openProcs("vm.3", error).size(), 3u) << error;
}

TEST(CgroupTest, NotRootMakesNoGroups) {
  TempTree t;
  CgroupHost h = fakeV2(t.root(), "memory pids cpu");
  h.root = false;
  SandboxCgroups cg(h);
  EXPECT_TRUE(cg.bases().empty());
  EXPECT_FALSE(fs::exists(t.root() / "system.slice/tangod.service/tango"));
}

// The real kernel's v2 rules, on the hybrid host's v2 hierarchy: a group
// holding a process cannot give its children controllers (EBUSY) until the
// process moves to the leaf "supervisor"; then a spawned process joins the
// VM's group from its first instruction.
TEST(CgroupTest, RealV2DelegationMovesTheServiceIntoALeaf) {
  const fs::path unified = "/sys/fs/cgroup/unified";
  const bool haveV2 = modeFromMountinfo() == CgroupMode::Hybrid &&
                      readFile(unified / "cgroup.controllers").find("hugetlb") != std::string::npos;
  if (::geteuid() != 0 || !haveV2)
    GTEST_SKIP() << "needs root and a v2 hierarchy with a controller (hugetlb on this kind of "
                    "hybrid host); the fake-tree cases above cover the rest";
  // The root hands hugetlb to its children (the root group is exempt from
  // the no-process rule); put back as it was afterwards.
  const bool rootHadIt =
      readFile(unified / "cgroup.subtree_control").find("hugetlb") != std::string::npos;
  if (!rootHadIt) writeFile(unified / "cgroup.subtree_control", "+hugetlb");
  ASSERT_NE(readFile(unified / "cgroup.subtree_control").find("hugetlb"), std::string::npos);
  const std::string name = "tango-cgtest-" + std::to_string(::getpid());
  const fs::path group = unified / name;
  ASSERT_TRUE(fs::create_directory(group));
  // The "service": a process sitting in the group.
  tango::SpawnOptions sleeper;
  sleeper.argv = {"/bin/sleep", "60"};
  auto serviceProcess = tango::Process::spawn(sleeper);
  const pid_t service = serviceProcess.pid();
  // However the test ends: the process killed, the groups removed.
  struct Cleanup {
    tango::Process& process;
    fs::path group;
    bool rootHadIt;
    ~Cleanup() {
      process.signal(SIGKILL);
      process.reap();
      for (const auto& g : {group / "tango/vm.4", group / "tango", group / "supervisor", group}) {
        for (int i = 0; i < 100 && ::rmdir(g.c_str()) != 0 && errno == EBUSY; ++i)
          std::this_thread::sleep_for(10ms);
      }
      if (!rootHadIt) writeFile(group.parent_path() / "cgroup.subtree_control", "-hugetlb");
    }
  };
  std::optional<Cleanup> cleanup;
  cleanup.emplace(serviceProcess, group, rootHadIt);
  writeFile(group / "cgroup.procs", std::to_string(service));
  ASSERT_EQ(readFile(group / "cgroup.procs"), std::to_string(service) + "\n");

  CgroupHost h;
  h.mountRoot = unified;
  h.mode = CgroupMode::V2;
  h.procSelfCgroup = "0::/" + name + "\n";
  h.root = true;
  h.v2Controllers = {"hugetlb"};
  std::optional<pid_t> joined;
  {
    SandboxCgroups cg(h);
    EXPECT_EQ(readFile(group / "cgroup.procs"), "");
    EXPECT_EQ(readFile(group / "supervisor/cgroup.procs"), std::to_string(service) + "\n");
    EXPECT_NE(readFile(group / "cgroup.subtree_control").find("hugetlb"), std::string::npos);
    EXPECT_NE(readFile(group / "tango/cgroup.subtree_control").find("hugetlb"), std::string::npos);
    ASSERT_EQ(cg.prepare("vm.4", {}), "");
    std::string error;
    auto fds = cg.openProcs("vm.4", error);
    ASSERT_EQ(fds.size(), 1u) << error;
    tango::SpawnOptions o;
    o.argv = {"/bin/cat", "/proc/self/cgroup"};
    o.joinCgroupFds.push_back(fds[0].get());
    auto p = tango::Process::spawn(o);
    std::string out;
    p.communicate([&](std::string_view s) { out += s; }, [](std::string_view) {},
                  tango::SteadyClock::now() + 10s);
    EXPECT_EQ(p.reap(), 0);
    EXPECT_NE(out.find("0::/" + name + "/tango/vm.4\n"), std::string::npos) << out;
    EXPECT_EQ(cg.remove("vm.4"), "");
    EXPECT_FALSE(fs::exists(group / "tango/vm.4"));
  }
  cleanup.reset();
  EXPECT_FALSE(fs::exists(group));
}
