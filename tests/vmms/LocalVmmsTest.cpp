// The local VMMS against the real thing: bubblewrap sandboxes on this host and
// the project's autodriver, no mocks. Needs root (per-VM host uids).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "../service/TestHost.hpp"
#include "tango/util/Fd.hpp"
#include "tango/util/Process.hpp"
#include "tango/vmms/LocalVmms.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using tango::Config;
using tango::InputFile;
using tango::LocalVmms;
using tango::RunResult;
using tango::RunSpec;
using tango::TangoMachine;

namespace {

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeFile(const fs::path& p, const std::string& content, fs::perms perms = fs::perms(0644)) {
  std::ofstream(p, std::ios::binary) << content;
  fs::permissions(p, perms);
}

double secondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// A TCP listener on 127.0.0.1 that answers every connection with "NETOK".
class Listener {
 public:
  Listener() {
    fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_.get(), 8), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{fd_.get(), POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        tango::Fd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (c) tango::writeAll(c.get(), "NETOK\n");
      }
    });
  }
  ~Listener() {
    stop_ = true;
    thread_.join();
  }
  int port() const { return port_; }

 private:
  tango::Fd fd_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class LocalVmmsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the local VMMS needs root";
      // Not under /tmp: the sandbox mounts a fresh /tmp, which would hide the
      // data dir for the wrong reason and make the hiding test meaningless.
#ifdef TEST_TMP_DIR
    const fs::path tmpRoot = TEST_TMP_DIR;
#else
    const fs::path tmpRoot = fs::current_path();
#endif
    fs::create_directories(tmpRoot);
    std::string tmpl = (tmpRoot / "vmms-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    base_ = tmpl;
    fs::permissions(base_, fs::perms(0711));
    cfg_.dataDir = base_ / "data";
    cfg_.courselabs = base_ / "labs";
    cfg_.sandboxDir = base_ / "sandboxes";
    fs::create_directories(cfg_.dataDir);
    fs::create_directories(cfg_.courselabs / "test-lab");
    cfg_.prefix = "vmmstest";
    cfg_.autodriver = AUTODRIVER_PATH;
    // A uid range of our own: ctest runs test processes in parallel, and one
    // test's destroy kills every process of its uids.
    // Two uids per slot (the VM's and its keeper's): 2 x 16 per process.
    cfg_.local.uidBase = 300000 + static_cast<std::uint32_t>(::getpid() % 4000) * 32;
    cfg_.local.slots = 16;
    vmms_ = std::make_unique<LocalVmms>(cfg_);
  }

  void TearDown() override {
    if (base_.empty()) return;
    if (vmms_) {
      for (const auto& vm : vmms_->getVMs()) vmms_->destroyVM(vm);
    }
    vmms_.reset();
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  static TangoMachine machine(std::int64_t id) {
    TangoMachine vm;
    vm.name = "autograding_image";
    vm.image = "autograding_image";
    vm.vmms = "local";
    vm.id = id;
    return vm;
  }

  fs::path lab() const { return cfg_.courselabs / "test-lab"; }

  InputFile makefile(const std::string& content) {
    fs::path p = lab() / ("Makefile-" + std::to_string(counter_++));
    writeFile(p, content);
    return {p.string(), "Makefile"};
  }

  static RunSpec spec(int timeoutSecs = 20) {
    RunSpec s;
    s.timeoutSecs = timeoutSecs;
    s.maxOutputBytes = 1 << 20;
    s.disableNetwork = true;
    s.ulimitProcs = 100;
    s.ulimitFileSize = 100LL << 20;
    s.hardTimeout = std::chrono::seconds(timeoutSecs + 10);
    return s;
  }

  void prepare(const TangoMachine& vm, const std::string& makefileText) {
    ASSERT_TRUE(vmms_->initializeVM(vm, 10s).ok);
    ASSERT_TRUE(vmms_->waitVM(vm, 10s).ok);
    auto r = vmms_->copyIn(vm, {makefile(makefileText)}, 10s);
    ASSERT_TRUE(r.ok) << r.error;
  }

  // Runs a Makefile in a fresh VM; returns the result and the copied-out output.
  std::pair<RunResult, std::string> runMakefile(const TangoMachine& vm, const std::string& text,
                                                const RunSpec& s) {
    prepare(vm, text);
    RunResult r = vmms_->runJob(vm, s);
    fs::path out = base_ / ("out-" + std::to_string(vm.id));
    auto c = vmms_->copyOut(vm, out, 10s);
    EXPECT_TRUE(c.ok) << c.error;
    return {r, readFile(out)};
  }

  // No process of the VM's uid nor of its keeper's (bwrap, the autodriver).
  bool noSandboxProcesses(uid_t vmUid) const {
    return tango::processesOfUid(vmUid).empty() &&
           tango::processesOfUid(vmUid + cfg_.local.slots).empty();
  }

  Config cfg_;
  fs::path base_;
  std::unique_ptr<LocalVmms> vmms_;
  int counter_ = 0;
};

// The job runs as the VM's uid with no capability; the autodriver and the
// sandbox's init run as the keeper uid, which the job cannot touch.
TEST_F(LocalVmmsTest, TheJobAndItsAutodriverRunAsDifferentUids) {
  auto vm = machine(1030);
  auto [r, out] = runMakefile(vm,
                              "all:\n\t@id -u\n\t@grep -E '^Cap(Inh|Prm|Eff|Amb)' "
                              "/proc/self/status\n\t@stat -c '%u' /proc/1 /run/tango-out/partial\n",
                              spec());
  EXPECT_EQ(r.status, 0) << r.error;
  const auto uid = vmms_->vmUid(vm);
  ASSERT_TRUE(uid);
  // uid 0 of the sandbox's namespace is the keeper: the job sees it as 0.
  EXPECT_EQ(out, "Autodriver: Job exited with status 0\n" + std::to_string(*uid) +
                     "\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n"
                     "CapEff:\t0000000000000000\nCapAmb:\t0000000000000000\n0\n0\n");
  struct stat st {};
  ASSERT_EQ(::stat((vmms_->vmDir(vm) / "run" / "partial").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, *uid + cfg_.local.slots) << "the partial output is the keeper's";
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

// The sandbox is made with its VM, its autodriver waiting for the job
// (LocalWarm.cpp): a job that fits takes it, one that does not (another
// disk size) gets a sandbox made for it. A job tells which it got by the
// age of its sandbox's PID 1, in tenths of a second.
TEST_F(LocalVmmsTest, AVmsSandboxWaitsForItsJobAndOnlyAFittingJobTakesIt) {
  const std::string age =
      "all:\n\t@awk -v st=$$(cut -d' ' -f22 /proc/1/stat) "
      "'{printf \"%d\\n\", ($$1 - st / 100) * 10}' /proc/uptime\n";
  auto warm = machine(1040), misfit = machine(1041);
  ASSERT_TRUE(vmms_->initializeVM(warm, 10s).ok);
  ASSERT_TRUE(vmms_->initializeVM(misfit, 10s).ok);
  const auto uid = vmms_->vmUid(warm), misfitUid = vmms_->vmUid(misfit);
  ASSERT_TRUE(uid && misfitUid);
  // Before any job: the keeper's bwrap and autodriver wait; nothing of the job's uid.
  EXPECT_FALSE(tango::processesOfUid(*uid + cfg_.local.slots).empty());
  EXPECT_TRUE(tango::processesOfUid(*uid).empty());
  std::this_thread::sleep_for(1500ms);
  // The rest of a job's steps in a VM made above.
  auto runIn = [&](const TangoMachine& vm, const std::string& text, const RunSpec& s) {
    EXPECT_TRUE(vmms_->waitVM(vm, 10s).ok);
    EXPECT_TRUE(vmms_->copyIn(vm, {makefile(text)}, 10s).ok);
    RunResult result = vmms_->runJob(vm, s);
    const fs::path out = base_ / ("out-" + std::to_string(vm.id));
    EXPECT_TRUE(vmms_->copyOut(vm, out, 10s).ok);
    return std::make_pair(result, readFile(out));
  };

  auto [r, out] = runIn(warm, age, spec());
  EXPECT_EQ(r.status, 0) << r.error;
  ASSERT_TRUE(out.starts_with("Autodriver: Job exited with status 0\n")) << out;
  EXPECT_GE(std::stoi(out.substr(out.find('\n') + 1)), 12) << "not the warm sandbox: " << out;

  auto bigger = spec();
  bigger.diskLimitBytes = 8LL << 20;
  auto [m, mout] =
      runIn(misfit, age + "\t@df -k /home/autograde | tail -1 | awk '{print $$2}'\n", bigger);
  EXPECT_EQ(m.status, 0) << m.error;
  ASSERT_TRUE(mout.starts_with("Autodriver: Job exited with status 0\n")) << mout;
  EXPECT_LT(std::stoi(mout.substr(mout.find('\n') + 1)), 10) << "not a fresh sandbox: " << mout;
  EXPECT_TRUE(mout.ends_with("\n8192\n")) << mout;

  // After a job that did not fit, the next VM gets no sandbox ahead (it
  // would most likely be killed unused); a job that fits brings them back.
  auto after = machine(1045);
  ASSERT_TRUE(vmms_->initializeVM(after, 10s).ok);
  const auto afterUid = vmms_->vmUid(after);
  ASSERT_TRUE(afterUid);
  EXPECT_TRUE(noSandboxProcesses(*afterUid));
  auto [a, aout] = runIn(after, "all:\n\t@echo fits\n", spec());
  EXPECT_EQ(a.status, 0) << a.error;
  EXPECT_EQ(aout, "Autodriver: Job exited with status 0\nfits\n");
  EXPECT_TRUE(vmms_->safeDestroyVM(after).ok);

  // A VM destroyed while its sandbox waits leaves no process behind.
  auto idle = machine(1042);
  ASSERT_TRUE(vmms_->initializeVM(idle, 10s).ok);
  const auto idleUid = vmms_->vmUid(idle);
  ASSERT_TRUE(idleUid);
  EXPECT_FALSE(tango::processesOfUid(*idleUid + cfg_.local.slots).empty());
  EXPECT_TRUE(vmms_->safeDestroyVM(idle).ok);
  EXPECT_TRUE(noSandboxProcesses(*idleUid));
  for (const auto& vm : {warm, misfit}) EXPECT_TRUE(vmms_->safeDestroyVM(vm).ok);
  EXPECT_TRUE(noSandboxProcesses(*uid));
  EXPECT_TRUE(noSandboxProcesses(*misfitUid));
}

TEST_F(LocalVmmsTest, WithoutWarmSandboxesEachJobGetsASandboxMadeForIt) {
  cfg_.local.warmSandboxes = false;
  vmms_ = std::make_unique<LocalVmms>(cfg_);
  auto idle = machine(1043);
  ASSERT_TRUE(vmms_->initializeVM(idle, 10s).ok);
  const auto uid = vmms_->vmUid(idle);
  ASSERT_TRUE(uid);
  EXPECT_TRUE(noSandboxProcesses(*uid));
  EXPECT_TRUE(vmms_->safeDestroyVM(idle).ok);
  auto [r, out] = runMakefile(machine(1044), "all:\n\t@echo cold\n", spec());
  EXPECT_EQ(r.status, 0) << r.error;
  EXPECT_EQ(out, "Autodriver: Job exited with status 0\ncold\n");
}

TEST_F(LocalVmmsTest, NameAndImages) {
  EXPECT_EQ(vmms_->name(), "local");
  EXPECT_EQ(vmms_->getImages(), std::vector<std::string>{"autograding_image"});
}

TEST_F(LocalVmmsTest, FullLifecycle) {
  auto vm = machine(1001);
  auto [r, out] = runMakefile(vm, "all:\n\t@echo hello-from-job\n", spec());
  EXPECT_EQ(r.status, 0) << r.error;
  EXPECT_EQ(out, "Autodriver: Job exited with status 0\nhello-from-job\n");
  ASSERT_TRUE(r.usage.has_value());
  EXPECT_EQ(r.usage->exitStatus, 0);
  EXPECT_FALSE(r.usage->timedOut);
  EXPECT_GT(r.usage->outputBytes, 0);

  fs::path dir = vmms_->vmDir(vm);
  EXPECT_TRUE(fs::exists(dir));
  EXPECT_EQ(fs::status(dir).permissions(), fs::perms(0711));
  auto uid = vmms_->vmUid(vm);
  ASSERT_TRUE(uid.has_value());
  EXPECT_TRUE(vmms_->destroyVM(vm).ok);
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_TRUE(noSandboxProcesses(*uid));
  EXPECT_FALSE(vmms_->waitVM(vm, 1s).ok);
}

TEST_F(LocalVmmsTest, JobRunsAsTheVmUidInItsHome) {
  auto vm = machine(1002);
  auto [r, out] =
      runMakefile(vm, "all:\n\t@id -u; pwd; echo $$HOME; ls -l Makefile | cut -c1-10\n", spec());
  EXPECT_EQ(r.status, 0) << r.error;
  auto uid = vmms_->vmUid(vm);
  ASSERT_TRUE(uid.has_value());
  EXPECT_EQ(out, "Autodriver: Job exited with status 0\n" + std::to_string(*uid) +
                     "\n/home/autograde\n/home/autograde\n-rw-------\n");
}

TEST_F(LocalVmmsTest, MakeFailureIsANormalRun) {
  auto vm = machine(1003);
  auto [r, out] = runMakefile(vm, "all:\n\t@echo failing\n\t@false\n", spec());
  EXPECT_EQ(r.status, 0) << r.error;
  EXPECT_TRUE(out.starts_with("Autodriver: Job exited with status 2\n")) << out;
  EXPECT_NE(out.find("failing"), std::string::npos);
  ASSERT_TRUE(r.usage.has_value());
  EXPECT_EQ(r.usage->exitStatus, 2);
}

TEST_F(LocalVmmsTest, AutodriverTimeout) {
  auto vm = machine(1004);
  auto s = spec(2);
  s.hardTimeout = 30s;
  auto start = std::chrono::steady_clock::now();
  auto [r, out] = runMakefile(vm, "all:\n\t@echo before\n\t@sleep 60\n", s);
  EXPECT_LT(secondsSince(start),
            2 + 8.0);  // at the 2 s timeout, far from the 60 s sleep or the 30 s hard one
  EXPECT_EQ(r.status, 2) << r.error;
  EXPECT_TRUE(out.starts_with("Autodriver: Job timed out after 2 seconds\n")) << out;
  ASSERT_TRUE(r.usage.has_value());
  EXPECT_TRUE(r.usage->timedOut);
}

TEST_F(LocalVmmsTest, HardTimeoutKillsAHangingSandbox) {
  auto vm = machine(1005);
  auto s = spec(1000);
  s.hardTimeout = 2s;
  prepare(vm, "all:\n\t@echo started\n\t@sleep 1000\n");
  auto uid = vmms_->vmUid(vm);
  ASSERT_TRUE(uid.has_value());
  auto start = std::chrono::steady_clock::now();
  RunResult r = vmms_->runJob(vm, s);
  EXPECT_LT(secondsSince(start), 2 + 6.0);  // at the 2 s hard timeout, far from the 1000 s ones
  EXPECT_EQ(r.status, -1);
  EXPECT_NE(r.error.find("hard timeout"), std::string::npos) << r.error;
  EXPECT_TRUE(noSandboxProcesses(*uid));
  EXPECT_TRUE(vmms_->safeDestroyVM(vm).ok);
}

TEST_F(LocalVmmsTest, NetworkCanBeDisabled) {
  Listener listener;
  tango::test::TestHost outside;
  const std::string mk =
      "all:\n\t@bash -c 'exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(listener.port()) +
      " && cat <&3'\n\t@bash -c 'exec 3<>/dev/tcp/" + outside.address() + "/7777 && cat <&3'\n";
  auto off = spec();
  off.disableNetwork = true;
  auto [r1, out1] = runMakefile(machine(1006), mk, off);
  EXPECT_EQ(r1.status, 0) << r1.error;
  EXPECT_EQ(out1.find("NETOK"), std::string::npos) << out1;
  EXPECT_EQ(out1.find("TESTHOST"), std::string::npos) << out1;
  EXPECT_EQ(out1.find("status 0\n"), std::string::npos) << out1;

  // On: a network of its own through slirp4netns. The outside (the test's
  // own host) answers; the host's loopback service does not, 127.0.0.1
  // being the sandbox's own (make stops at that first line).
  auto on = spec();
  on.disableNetwork = false;
  const std::string outsideFirst = "all:\n\t@bash -c 'exec 3<>/dev/tcp/" + outside.address() +
                                   "/7777 && cat <&3'\n\t@bash -c 'exec 3<>/dev/tcp/127.0.0.1/" +
                                   std::to_string(listener.port()) + " && cat <&3'\n";
  auto [r2, out2] = runMakefile(machine(1007), outsideFirst, on);
  EXPECT_EQ(r2.status, 0) << r2.error;
  EXPECT_TRUE(out2.starts_with("Autodriver: Job exited with status 2\nTESTHOST\n")) << out2;
  EXPECT_EQ(out2.find("NETOK"), std::string::npos) << out2;
  EXPECT_NE(out2.find("Connection refused"), std::string::npos) << out2;
}

TEST_F(LocalVmmsTest, ServiceStateIsInvisible) {
  writeFile(cfg_.dataDir / "tango.sqlite", "secret-state");
  writeFile(lab() / "other-student.c", "secret-code");
  auto vm = machine(1008);
  const std::string mk = "all:\n\t@ls -A " + cfg_.dataDir.string() + "; ls -A " +
                         cfg_.courselabs.string() + "; cat " +
                         (lab() / "other-student.c").string() + " 2>/dev/null; echo END\n";
  auto [r, out] = runMakefile(vm, mk, spec());
  EXPECT_EQ(r.status, 0) << r.error;
  EXPECT_EQ(out, "Autodriver: Job exited with status 0\nEND\n");
}

TEST_F(LocalVmmsTest, VmsGetDistinctUids) {
  auto a = machine(1009), b = machine(1010);
  ASSERT_TRUE(vmms_->initializeVM(a, 10s).ok);
  ASSERT_TRUE(vmms_->initializeVM(b, 10s).ok);
  auto ua = vmms_->vmUid(a), ub = vmms_->vmUid(b);
  ASSERT_TRUE(ua && ub);
  EXPECT_NE(*ua, *ub);
  for (auto u : {*ua, *ub}) {
    EXPECT_GE(u, cfg_.local.uidBase);
    EXPECT_LT(u, cfg_.local.uidBase + cfg_.local.slots);
  }
  EXPECT_FALSE(vmms_->initializeVM(a, 10s).ok) << "a VM cannot be created twice";
}

// Two services on one host (two nodes) whose uid ranges overlap never
// hand out the same uid: each uid in use is locked host-wide.
TEST_F(LocalVmmsTest, AnotherServiceOnThisHostNeverGetsAUidInUse) {
  auto a = machine(1012);
  ASSERT_TRUE(vmms_->initializeVM(a, 10s).ok);
  const auto ua = vmms_->vmUid(a);
  ASSERT_TRUE(ua);
  Config other = cfg_;
  other.sandboxDir = base_ / "sandboxes-other";
  other.dataDir = base_ / "data-other";
  other.local.uidBase = *ua;  // its first uid is the one in use
  other.local.slots = 2;
  LocalVmms second(other);
  auto b = machine(1013), c = machine(1014);
  auto rb = second.initializeVM(b, 10s);
  ASSERT_TRUE(rb.ok) << rb.error;
  EXPECT_EQ(second.vmUid(b), *ua + 1) << "the uid in use is skipped";
  auto rc = second.initializeVM(c, 10s);
  EXPECT_FALSE(rc.ok) << "its only other uid is the first service's";
  EXPECT_TRUE(vmms_->safeDestroyVM(a).ok);
  rc = second.initializeVM(c, 10s);
  EXPECT_TRUE(rc.ok) << "free once the first service let it go: " << rc.error;
  EXPECT_TRUE(second.safeDestroyVM(b).ok);
  EXPECT_TRUE(second.safeDestroyVM(c).ok);
}

TEST_F(LocalVmmsTest, RestartFindsVmsOnDisk) {
  auto a = machine(1011);
  ASSERT_TRUE(vmms_->initializeVM(a, 10s).ok);
  auto ua = vmms_->vmUid(a);
  vmms_ = std::make_unique<LocalVmms>(cfg_);  // a restarted service
  auto vms = vmms_->getVMs();
  ASSERT_EQ(vms.size(), 1u);
  EXPECT_EQ(vms[0].id, 1011);
  EXPECT_EQ(vms[0].name, "autograding_image");
  EXPECT_EQ(vmms_->vmUid(vms[0]), ua);
  EXPECT_TRUE(vmms_->waitVM(vms[0], 1s).ok);
  // Its uid stays taken: every new VM gets another one.
  for (int i = 0; i < 4; ++i) {
    auto b = machine(2000 + i);
    ASSERT_TRUE(vmms_->initializeVM(b, 10s).ok);
    EXPECT_NE(vmms_->vmUid(b), ua);
  }
  EXPECT_TRUE(vmms_->safeDestroyVM(vms[0]).ok);
  EXPECT_EQ(vmms_->getVMs().size(), 4u);
}

TEST_F(LocalVmmsTest, CopyInRejectsUnsafeInput) {
  auto vm = machine(1012);
  ASSERT_TRUE(vmms_->initializeVM(vm, 10s).ok);
  fs::path good = lab() / "good.c";
  writeFile(good, "int main(){}\n");
  for (const char* bad : {"../escape", "a/b", "", "..", "."}) {
    EXPECT_FALSE(vmms_->copyIn(vm, {{good.string(), bad}}, 10s).ok) << bad;
  }
  fs::create_symlink("/etc/shadow", lab() / "link");
  EXPECT_FALSE(vmms_->copyIn(vm, {{(lab() / "link").string(), "link"}}, 10s).ok);
  EXPECT_FALSE(vmms_->copyIn(vm, {{lab().string(), "dir"}}, 10s).ok);
  EXPECT_FALSE(vmms_->copyIn(vm, {{"relative/good.c", "good.c"}}, 10s).ok);
  ASSERT_EQ(::mkfifo((lab() / "fifo").c_str(), 0600), 0);
  EXPECT_FALSE(vmms_->copyIn(vm, {{(lab() / "fifo").string(), "fifo"}}, 10s).ok);
  EXPECT_TRUE(fs::is_empty(vmms_->vmDir(vm) / "job"));

  // An executable keeps its exec bit; the file belongs to the VM's keeper
  // uid (the autodriver hands the job its copy), never to the job's uid.
  fs::path script = lab() / "run.sh";
  writeFile(script, "#!/bin/sh\n", fs::perms(0755));
  ASSERT_TRUE(vmms_->copyIn(vm, {{good.string(), "good.c"}, {script.string(), "run.sh"}}, 10s).ok);
  struct stat st {};
  ASSERT_EQ(::stat((vmms_->vmDir(vm) / "job" / "run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, *vmms_->vmUid(vm) + cfg_.local.slots);
  ASSERT_EQ(::stat((vmms_->vmDir(vm) / "job" / "good.c").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // No overwriting a file already there.
  EXPECT_FALSE(vmms_->copyIn(vm, {{good.string(), "good.c"}}, 10s).ok);
}

TEST_F(LocalVmmsTest, PartialOutputWhileRunningAndDestroyDuringRun) {
  auto vm = machine(1013);
  prepare(vm, "all:\n\t@echo partial-line\n\t@sleep 60\n");
  EXPECT_FALSE(vmms_->getPartialOutput(vm).has_value() && !vmms_->getPartialOutput(vm)->empty());
  RunResult r;
  std::thread runner([&] { r = vmms_->runJob(vm, spec(30)); });
  std::optional<std::string> partial;
  auto start = std::chrono::steady_clock::now();
  while (secondsSince(start) < 10) {
    partial = vmms_->getPartialOutput(vm);
    if (partial && partial->find("partial-line") != std::string::npos) break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(partial.has_value());
  EXPECT_NE(partial->find("partial-line\n"), std::string::npos) << *partial;

  auto uid = vmms_->vmUid(vm);
  auto destroyStart = std::chrono::steady_clock::now();
  EXPECT_TRUE(vmms_->destroyVM(vm).ok);
  runner.join();
  EXPECT_LT(secondsSince(destroyStart), 5);
  EXPECT_EQ(r.status, -1);
  EXPECT_FALSE(fs::exists(vmms_->vmDir(vm)));
  ASSERT_TRUE(uid.has_value());
  EXPECT_TRUE(noSandboxProcesses(*uid));
}

TEST_F(LocalVmmsTest, DestroyKillsLeftoverProcesses) {
  auto vm = machine(1014);
  // The job leaves a background process behind.
  auto [r, out] =
      runMakefile(vm, "all:\n\t@(setsid sleep 1000 > /dev/null 2>&1 &); echo started\n", spec());
  EXPECT_EQ(r.status, 0) << r.error;
  auto uid = vmms_->vmUid(vm);
  ASSERT_TRUE(uid.has_value());
  // And a process of the VM uid outside any sandbox (as if one escaped).
  tango::SpawnOptions o;
  o.argv = {"/bin/sleep", "1000"};
  o.credentials = std::make_pair(*uid, static_cast<gid_t>(*uid));
  auto escaped = tango::Process::spawn(o);
  EXPECT_FALSE(tango::processesOfUid(*uid).empty());
  EXPECT_TRUE(vmms_->safeDestroyVM(vm).ok);
  EXPECT_TRUE(escaped.waitExit(std::chrono::steady_clock::now() + 2s));
  EXPECT_TRUE(noSandboxProcesses(*uid));
}

TEST_F(LocalVmmsTest, DestroyRemovesHostileTrees) {
  auto vm = machine(1015);
  // Deeper than the remover's fd depth, with symlinks to host files on the way.
  auto [r, out] = runMakefile(
      vm,
      "all:\n\t@ln -s /etc/passwd pw; ln -s / root; for i in $$(seq 80); do mkdir x && cd x && "
      "ln -s /etc l; done; chmod 000 .; echo done\n",
      spec());
  EXPECT_EQ(r.status, 0) << r.error;
  EXPECT_TRUE(fs::exists("/etc/passwd"));
  EXPECT_TRUE(vmms_->safeDestroyVM(vm).ok);
  EXPECT_FALSE(fs::exists(vmms_->vmDir(vm)));
  EXPECT_TRUE(fs::exists("/etc/passwd"));
}

// The memory group of a VM: <mount>/<our own group>/tango/<instance>.<uid>.
fs::path memoryGroup(const std::string& name) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos ||
        line.substr(a + 1, b - a - 1) != "memory")
      continue;
    return (fs::path("/sys/fs/cgroup/memory") / fs::path(line.substr(b + 1)).relative_path() /
            "tango" / name)
        .lexically_normal();
  }
  return {};
}

TEST_F(LocalVmmsTest, MemoryAndDiskLimitsAndTheirCgroupsGoWithTheVm) {
  auto vm = machine(1016);
  auto s = spec(20);
  s.memoryLimitBytes = 48LL << 20;
  s.diskLimitBytes = 8LL << 20;
  // The home is a tmpfs of the disk limit; the job cannot create files in
  // /run/tango-out (the host disk); then it eats memory.
  auto [r, out] = runMakefile(vm,
                              "all:\n\t@df -k /home/autograde /tmp | tail -2 | awk '{print $$2}'\n"
                              "\t@touch /run/tango-out/x 2>/dev/null || echo no-host-files\n"
                              "\t@tail /dev/zero\n",
                              s);
  EXPECT_EQ(r.status, 0) << r.error;
  EXPECT_TRUE(out.starts_with("Autodriver: Job exited with status 2\n")) << out;
  EXPECT_NE(out.find("\n8192\n8192\nno-host-files\n"), std::string::npos) << out;
  auto uid = vmms_->vmUid(vm);
  ASSERT_TRUE(uid.has_value());
  const fs::path group =
      memoryGroup(vmms_->vmDir(vm).filename().string() + "." + std::to_string(*uid));
  if (::access("/sys/fs/cgroup/memory/cgroup.procs", W_OK) == 0) {
    EXPECT_NE(out.find("Autodriver: Job killed: out of memory (limit 48 MB)\n"), std::string::npos)
        << out;
    EXPECT_EQ(readFile(group / "memory.limit_in_bytes"), std::to_string(48 << 20) + "\n");
  }
  EXPECT_TRUE(vmms_->safeDestroyVM(vm).ok);
  EXPECT_FALSE(fs::exists(group));
}

TEST_F(LocalVmmsTest, CpuQuotaFromTheVmsCores) {
  tango::SandboxCgroups cgroups;
  if (!cgroups.hasCpu()) FAIL() << "no cpu cgroup to test: " << cgroups.describe();
  auto vm = machine(1017);
  vm.cores = 1;
  // Two busy loops for 2 s: with one core's quota they share it.
  auto [r, out] = runMakefile(
      vm,
      "all:\n\t@timeout 2 sh -c 'while :; do :; done' & timeout 2 sh -c 'while :; do :; done' & "
      "wait; echo spun\n",
      spec(20));
  EXPECT_EQ(r.status, 0) << r.error;
  EXPECT_EQ(out, "Autodriver: Job exited with status 0\nspun\n");
  ASSERT_TRUE(r.usage.has_value());
  const double cpu = static_cast<double>(r.usage->userMs + r.usage->sysMs);
  EXPECT_LT(cpu, 1.3 * static_cast<double>(r.usage->wallMs))
      << "cpu " << cpu << " ms in " << r.usage->wallMs << " ms";
  auto uid = vmms_->vmUid(vm);
  ASSERT_TRUE(uid.has_value());
  const std::string group = vmms_->vmDir(vm).filename().string() + "." + std::to_string(*uid);
  bool found = false;
  for (const auto& base : cgroups.bases()) {
    if (!fs::exists(base / group / "cpu.cfs_quota_us")) continue;
    found = true;
    EXPECT_EQ(readFile(base / group / "cpu.cfs_quota_us"), "100000\n");
  }
  EXPECT_TRUE(found) << "no cpu group " << group;
  EXPECT_TRUE(vmms_->safeDestroyVM(vm).ok);
}

TEST_F(LocalVmmsTest, ConcurrentJobsInSeveralVms) {
  constexpr int kVms = 4;
  for (int i = 0; i < kVms; ++i) prepare(machine(3000 + i), "all:\n\t@echo job-$$(id -u)\n");
  std::vector<RunResult> results(kVms);
  std::vector<std::thread> threads;
  for (int i = 0; i < kVms; ++i)
    threads.emplace_back([&, i] { results[i] = vmms_->runJob(machine(3000 + i), spec()); });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kVms; ++i) {
    EXPECT_EQ(results[i].status, 0) << results[i].error;
    fs::path out = base_ / ("c" + std::to_string(i));
    ASSERT_TRUE(vmms_->copyOut(machine(3000 + i), out, 10s).ok);
    EXPECT_EQ(readFile(out), "Autodriver: Job exited with status 0\njob-" +
                                 std::to_string(*vmms_->vmUid(machine(3000 + i))) + "\n");
  }
  for (int i = 0; i < kVms; ++i) EXPECT_TRUE(vmms_->safeDestroyVM(machine(3000 + i)).ok);
  EXPECT_TRUE(vmms_->getVMs().empty());
}

TEST_F(LocalVmmsTest, UnknownVmsAndBadNames) {
  auto ghost = machine(4242);
  EXPECT_FALSE(vmms_->waitVM(ghost, 1s).ok);
  EXPECT_EQ(vmms_->runJob(ghost, spec()).status, -1);
  EXPECT_FALSE(vmms_->copyOut(ghost, base_ / "x", 1s).ok);
  EXPECT_FALSE(vmms_->getPartialOutput(ghost).has_value());
  EXPECT_TRUE(vmms_->destroyVM(ghost).ok);  // nothing to do

  auto bad = machine(5);
  bad.name = "../../etc";
  EXPECT_FALSE(vmms_->initializeVM(bad, 1s).ok);
  auto unknown = machine(6);
  unknown.name = unknown.image = "no_such_image";
  EXPECT_FALSE(vmms_->initializeVM(unknown, 1s).ok);
}

}  // namespace
