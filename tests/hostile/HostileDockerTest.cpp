// The hostile-job suite on localDocker: the same case directories as
// HostileTest.cpp, run in containers of the test image (Debian minbase +
// make). For every case: the job ends with the right status within its
// timeout + 5 s; its container is gone (no container of the service's prefix
// but the warm pool's free ones) and no host process is left in the cgroup of
// a removed container; free disk (/var/lib/docker included) and memory are
// back where they were; a normal job right after runs normally. Where the
// container changes what holds, the case's README.md says so.
#include <atomic>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "../docker/DockerFixture.hpp"
#include "HostileCases.hpp"

namespace tango::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using hostile::kCleanupBound;
using Clock = hostile::Clock;

// Ids of every container of a prefix seen while it lives: a container that
// ran a job is removed after it, and its id is what a leftover process's
// /proc/<pid>/cgroup would still name.
class ContainerWatch {
 public:
  explicit ContainerWatch(std::string prefix)
      : thread_([this, prefix = std::move(prefix)](std::stop_token stop) {
          docker::Engine engine;
          while (!stop.stop_requested()) {
            try {
              for (const auto& c : engine.listByLabel("tango.prefix", prefix)) {
                std::lock_guard lock(mu_);
                seen_.insert(c.id);
              }
            } catch (const std::exception&) {
              // The engine is checked by the fixture; a lost poll only narrows the watch.
            }
            std::this_thread::sleep_for(100ms);
          }
        }) {}
  std::set<std::string> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  std::mutex mu_;
  std::set<std::string> seen_;
  std::jthread thread_;  // last: stopped and joined before the set goes
};

// Host processes whose cgroup names one of `ids`.
std::vector<std::string> processesInContainers(const std::set<std::string>& ids) {
  std::vector<std::string> found;
  if (ids.empty()) return found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string groups = readFile(e.path() / "cgroup");
    for (const auto& id : ids)
      if (groups.find(id) != std::string::npos) found.push_back(pid + " in " + id.substr(0, 12));
  }
  return found;
}

// The IPv4 address of a host interface (docker0: the bridge's gateway).
std::string interfaceAddress(const std::string& name) {
  std::string out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || name != i->ifa_name) continue;
    char buf[INET_ADDRSTRLEN];
    if (::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf,
                    sizeof buf))
      out = buf;
  }
  ::freeifaddrs(list);
  return out;
}

class HostileDockerTest : public HostileCases<DockerTest> {
 protected:
  int poolSize() override { return 3; }
  // The limits of the `local` suite, where they apply to containers.
  std::string dockerConfig() override { return "DOCKER_MEMORY_LIMIT = 128\nVM_DISK_LIMIT = 16\n"; }
  json::object jobDefaults() override { return {{"image", testImage()}}; }
  std::vector<fs::path> resourcePaths() override {
    auto paths = HostileCases::resourcePaths();
    paths.emplace_back("/var/lib/docker");
    return paths;
  }

  // The processes of the service's containers, whatever their parent.
  OursPredicate ours() override {
    return [this](const std::string& pid) {
      const std::string groups = readFile("/proc/" + pid + "/cgroup");
      if (groups.find("docker") == std::string::npos || !watch_) return false;
      for (const auto& id : watch_->seen())
        if (groups.find(id) != std::string::npos) return true;
      return false;
    };
  }

  // The pool warm before the baseline: its containers are there before and after.
  void prepareService() override {
    watch_.emplace(prefix);
    auto p =
        http->get("/prealloc/test/" + testImage() + "/" + std::to_string(poolSize()) + "/").json();
    ASSERT_EQ(p["statusId"].as_int64(), 0) << json::serialize(p);
    std::set<std::string> free, extra;
    ASSERT_TRUE(poolSettles(60s, free, extra))
        << "pool not warm: " << free.size()
        << " free, other containers: " << ::testing::PrintToString(extra);
  }

  // The vmIds of the free containers of every pool: the service keeps
  // POOL_SIZE warm for each image of the engine, not only the test's.
  std::set<std::string> freeVms(std::size_t& ofTestImage) {
    std::set<std::string> ids;
    ofTestImage = 0;
    auto r = http->get("/pool/test/").json();
    if (r["statusId"].as_int64() != 0) return ids;
    for (auto& [image, pool] : r["pools"].as_object())
      for (auto& v : pool.as_object().at("free").as_array()) {
        ids.insert(std::to_string(v.as_int64()));
        if (image == testImage()) ++ofTestImage;
      }
    return ids;
  }
  // Waits until the pool is full and every container of the prefix is one of
  // its free ones; `extra` says which containers were not.
  bool poolSettles(std::chrono::seconds limit, std::set<std::string>& free,
                   std::set<std::string>& extra) {
    const auto deadline = Clock::now() + limit;
    do {
      std::size_t ours = 0;
      free = freeVms(ours);
      extra.clear();
      for (const auto& c : engine.listByLabel("tango.prefix", prefix)) {
        auto id = c.labels.find("tango.vmId");
        if (id == c.labels.end() || !free.count(id->second)) extra.insert(c.name);
      }
      if (extra.empty() && ours == static_cast<std::size_t>(poolSize())) return true;
      std::this_thread::sleep_for(100ms);
    } while (Clock::now() < deadline);
    return false;
  }

  void expectHostClean() override {
    // The containers of the finished jobs go within the bound.
    std::set<std::string> jobVms;
    auto jobs = http->get("/jobs/test/1/").json();
    for (auto& j : jobs["jobs"].as_array())
      jobVms.insert(std::to_string(j.as_object().at("vm").as_object().at("id").as_int64()));
    std::vector<std::string> left;
    const auto deadline = Clock::now() + kCleanupBound;
    do {
      left.clear();
      for (const auto& c : engine.listByLabel("tango.prefix", prefix)) {
        auto id = c.labels.find("tango.vmId");
        if (id != c.labels.end() && jobVms.count(id->second)) left.push_back(c.name);
      }
      if (left.empty()) break;
      std::this_thread::sleep_for(100ms);
    } while (Clock::now() < deadline);
    EXPECT_TRUE(left.empty()) << "job containers left: " << left.size() << ", first: " << left[0];
    // Nothing else of the prefix but the refilled pool (refilling takes longer).
    std::set<std::string> free, extra;
    EXPECT_TRUE(poolSettles(60s, free, extra))
        << free.size() << " free, containers not free in the pool: " << extra.size()
        << (extra.empty() ? "" : ", first: " + *extra.begin());
    // No process survives in a removed container's cgroup.
    std::set<std::string> gone = watch_->seen();
    for (const auto& c : engine.listByLabel("tango.prefix", prefix)) gone.erase(c.id);
    auto procs = processesInContainers(gone);
    EXPECT_TRUE(procs.empty()) << "processes of removed containers: " << procs.size()
                               << ", first: " << procs[0];
    EXPECT_GT(gone.size(), 0u) << "no removed container was seen: the watch is blind";
  }

  std::optional<ContainerWatch> watch_;
};

TEST_F(HostileDockerTest, ForkBomb) { checkForkBomb(); }

TEST_F(HostileDockerTest, ProcessHogDoesNotStarveAJobRunningBesideIt) {
  expectNormalJobBesideAProcessHog();
}

TEST_F(HostileDockerTest, ThreadBomb) {
  // The image has no compiler: the job gets tb.c prebuilt.
  auto r = runCase("thread_bomb", "threads", 4, {{"tb", readFile(THREAD_BOMB_PATH)}});
  EXPECT_EQ(outcome(r), "timeout") << r.output;
  EXPECT_NE(r.output.find("thread limit after "), std::string::npos) << r.output;
  expectNormalJob();
}

TEST_F(HostileDockerTest, OneGigabyteToStdout) { checkOneGigabyteToStdout(); }

TEST_F(HostileDockerTest, DiskFillStopsAtTheDiskLimit) {
  // The job's home and /tmp are tmpfs mounts of VM_DISK_LIMIT (16 MB here):
  // nothing reaches the container's layer under /var/lib/docker.
  auto r = runCase("disk_fill", "disk", 5);
  EXPECT_EQ(outcome(r), "success") << r.output;
  EXPECT_TRUE(
      body(r).ends_with("No space left on device\nNo space left on device\ndisk-fill done\n"))
      << body(r);
  expectNormalJob();
}

TEST_F(HostileDockerTest, SyscallsTheEnginesProfileDeniesFailWithEperm) {
  auto r = runCase("syscalls", "sys", 10);
  EXPECT_EQ(outcome(r), "success") << r.output;
  const std::string b = body(r);
  EXPECT_TRUE(b.starts_with("Autodriver: Job exited with status 0\nseccomp mode 2\n")) << b;
  EXPECT_TRUE(b.ends_with("probe done\n")) << b;
  // Docker 20.10's default profile allows these (ptrace on kernels from
  // 4.8, io_uring, adjtimex to read the clock); each is documented there.
  const std::set<std::string> enginesChoice{"adjtimex", "io_uring_setup", "ptrace_attach",
                                            "ptrace_seize"};
  std::size_t denied = 0;
  std::istringstream lines(b.substr(b.find("seccomp mode")));
  std::string line;
  std::getline(lines, line);
  while (std::getline(lines, line) && line != "probe done") {
    const std::string name = line.substr(0, line.find(' '));
    if (enginesChoice.count(name)) continue;
    ++denied;
    EXPECT_TRUE(line.ends_with(" EPERM")) << line;
  }
  EXPECT_EQ(denied, 27u) << b;
  expectNormalJob();
}

TEST_F(HostileDockerTest, DevShmStopsAtTheDiskLimit) {
  auto r = runCase("dev_shm_fill", "shm", 10);
  EXPECT_EQ(outcome(r), "success") << r.output;
  EXPECT_NE(body(r).find("No space left on device\nshm MB: 16\n"), std::string::npos) << body(r);
  EXPECT_TRUE(body(r).ends_with("shm-fill done\n")) << body(r);
  expectNormalJob();
}

TEST_F(HostileDockerTest, MemoryHogIsKilledAtTheLimitWithAClearMessage) {
  auto r = runCase("memory_hog", "memory", 5);
  EXPECT_EQ(outcome(r), "make_failed") << r.output;
  EXPECT_NE(
      header(r).find("]: Error: the job was killed for exceeding the memory limit of 128 MB\n"),
      std::string::npos)
      << r.output;
  EXPECT_TRUE(body(r).starts_with("Autodriver: Job exited with status 2\nallocating\n")) << body(r);
  EXPECT_LT(r.ran, 5) << r.output;  // at the limit, not at the timeout
  expectNormalJob();
}

TEST_F(HostileDockerTest, LoopIgnoringSigtermIsKilledAtTheTimeout) {
  checkLoopIgnoringSigtermIsKilledAtTheTimeout();
}

TEST_F(HostileDockerTest, DoubleForkedDaemonDiesWithTheJob) {
  checkDoubleForkedDaemonDiesWithTheJob();
}

TEST_F(HostileDockerTest, ClosedStdoutAndSleepEndsAtTheTimeout) {
  checkClosedStdoutAndSleepEndsAtTheTimeout();
}

TEST_F(HostileDockerTest, NoNetworkWhenDisabled) {
  Listener listener;
  const std::string bridge = interfaceAddress("docker0");
  ASSERT_FALSE(bridge.empty()) << "no docker0 bridge on this host";
  const auto hosts = hostIpv4Addresses();  // the bridge's gateway among them
  std::string list;
  for (const auto& h : hosts) list += " " + h;
  const std::string mk = "PORT = " + std::to_string(listener.port()) + "\nHOSTS =" + list + "\n";
  auto off = runCase("network", "net", 8, {{"paths.mk", mk}}, {{"disable_network", true}});
  EXPECT_EQ(outcome(off), "success") << off.output;
  EXPECT_EQ(off.output.find("CONNECTED"), std::string::npos) << off.output;
  EXPECT_NE(off.output.find("blocked 127.0.0.1\n"), std::string::npos) << off.output;
  for (const auto& h : hosts)
    EXPECT_NE(off.output.find("blocked " + h + "\n"), std::string::npos) << h << off.output;
  // With the network on, the host's own (non-loopback) addresses answer
  // through the bridge; the container's 127.0.0.1 is its own.
  auto on = runCase("network", "neton", 8, {{"paths.mk", mk}}, {{"disable_network", false}});
  EXPECT_NE(on.output.find("CONNECTED " + bridge + "\n"), std::string::npos) << on.output;
  EXPECT_NE(on.output.find("blocked 127.0.0.1\n"), std::string::npos) << on.output;
  expectNormalJob();
}

TEST_F(HostileDockerTest, HostLoopbackUnreachableWithNetworkOn) {
  checkHostLoopbackUnreachableWithNetworkOn({"127.0.0.1", "0.0.0.0"});
}

TEST_F(HostileDockerTest, CannotReadOtherJobsOrTheCourselabs) {
  // The victim holds a secret in its container while the attacker runs in
  // another; the service's data dir is not in the attacker's file system.
  const std::string secret = "TOPSECRET answers\n";
  auto victim = submitJob(
      "victim",
      {{"autograde-Makefile", "all:\n\t@sleep 3; echo victim done\n"}, {"secret.txt", secret}},
      "victim.out", {{"timeout", 10}});
  ASSERT_GT(victim, 0);
  std::this_thread::sleep_for(1s);
  const std::string data = tangod->dataDir().string();
  auto r = runCase("read_other_jobs", "thief", 5, {{"paths.mk", "DATA = " + data + "\n"}});
  EXPECT_EQ(outcome(r), "success") << r.output;
  EXPECT_EQ(r.output.find("TOPSECRET"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("secret.txt"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ls: cannot access '" + data +
                          "': No such file or directory\n"
                          "entries listed\n0\n0\n"),
            std::string::npos)
      << r.output;
  auto v = waitOutput("victim", "victim.out", 20s);
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->ends_with("status 0\nvictim done\n")) << *v;
  expectNormalJob();
}

TEST_F(HostileDockerTest, CannotReadShadowOrTheServiceConfig) {
  // The config is not in the container's file system at all.
  const std::string config = (tangod->dir() / "tango.toml").string();
  auto r = runCase("read_secrets", "secrets", 5, {{"paths.mk", "CONFIG = " + config + "\n"}});
  EXPECT_EQ(outcome(r), "success") << r.output;
  const std::string b = body(r);
  EXPECT_NE(b.find("cat: /etc/shadow: Permission denied\n"), std::string::npos) << b;
  EXPECT_NE(b.find("cat: " + config + ": No such file or directory\n"), std::string::npos) << b;
  EXPECT_EQ(b.find("root:"), std::string::npos) << b;
  EXPECT_EQ(b.find("UID_BASE"), std::string::npos) << b;
  EXPECT_EQ(b.find("DATA_DIR"), std::string::npos) << b;
  expectNormalJob();
}

TEST_F(HostileDockerTest, TmpFilesDoNotReachTheNextJob) { checkTmpFilesDoNotReachTheNextJob(); }

TEST_F(HostileDockerTest, SymlinkNamedLikeTheOutputLeaksNothing) {
  // No file holds the partial output (it comes through the attach
  // connection): the links go into /run, root's, as a file there would.
  auto r = runCase("symlink_output", "links", 5,
                   {{"paths.mk", "OUTPUT = symlink_output.out\nPARTIAL = /run/partial\n"}});
  EXPECT_EQ(outcome(r), "success") << r.output;
  EXPECT_TRUE(
      body(r).ends_with("status 0\nlinks made\npartial link refused\nextra link refused\n"
                        "symlink job done\n"))
      << body(r);
  EXPECT_EQ(r.output.find("root:"), std::string::npos);
  expectNormalJob();
}

TEST_F(HostileDockerTest, NulBytesInvalidUtf8AndA50MegabyteLine) {
  checkNulBytesInvalidUtf8AndA50MegabyteLine();
}

TEST_F(HostileDockerTest, MakeKilledBySignal) { checkMakeKilledBySignal(); }

TEST_F(HostileDockerTest, TheJobCannotTouchTheAutodriver) { checkTheJobCannotTouchTheAutodriver(); }

TEST_F(HostileDockerTest, MakefileReadingStdinEndsAtOnce) { checkMakefileReadingStdinEndsAtOnce(); }

class HostileDockerMixTest : public HostileDockerTest {
 protected:
  int poolSize() override { return 8; }
};

TEST_F(HostileDockerMixTest, TwentyHostileAndTwentyNormalJobsAtOnce) {
  // 40 jobs on 8 containers, each created, prepared and removed: slower than `local`.
  runMix(300s);
}

}  // namespace
}  // namespace tango::test
