// The crash storm on `local` (CrashStorm.hpp): what a killed service may
// leave is a VM directory, a process of a sandbox uid or a cgroup; none may
// remain once the restarted service is idle, beyond its warm pool (each
// free VM's directory, cgroup and waiting sandbox).
#include <fstream>
#include <map>
#include <sstream>

#include "CrashStorm.hpp"
#include "WarmPool.hpp"
#include "tango/vmms/Cgroup.hpp"

namespace tango::test {
namespace {

namespace fs = std::filesystem;

class CrashStormTest : public CrashStorm<ServiceTest> {
 protected:
  static constexpr unsigned kSlots = 200;  // 2 x Tangod's [local] SLOTS: VM and keeper uids

  std::string extraConfig() override { return "POOL_SIZE = 2\n"; }
  std::string stormImage() override { return "autograding_image"; }

  void SetUp() override {
    CrashStorm::SetUp();
    if (::testing::Test::HasFatalFailure()) return;
    const std::string toml = readFile(tangod->dir() / "tango.toml");
    const auto pos = toml.find("UID_BASE = ");
    ASSERT_NE(pos, std::string::npos);
    uidBase_ = static_cast<uid_t>(std::stoul(toml.substr(pos + 11)));
    // Uid ranges come from pids, which repeat: an earlier test's groups are not ours.
    for (const auto& g : groupsOfOurUids()) earlierGroups_.insert(g);
  }

  bool ourUid(unsigned long u) const { return u >= uidBase_ && u < uidBase_ + kSlots; }

  std::vector<std::string> groupsOfOurUids() const {
    std::vector<std::string> found;
    for (const auto& g : SandboxCgroups().list()) {
      const auto dot = g.rfind('.');
      if (dot == std::string::npos) continue;
      const std::string digits = g.substr(dot + 1);
      if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos &&
          ourUid(std::stoul(digits)))
        found.push_back(g);
    }
    return found;
  }

  std::vector<std::string> leftovers() override {
    std::vector<std::string> left;
    // Each free VM's directory, cgroup and waiting sandbox stay (WarmPool.hpp).
    const auto pools = http->get("/pool/test/").json();
    WarmPool warm = warmPoolOf(pools, *tangod);
    std::set<std::string> free;
    for (const auto& g : warm.groups) free.insert(g.substr(0, g.rfind('.')));
    for (const auto& d : tangod->vmDirs())
      if (!free.count(d)) left.push_back("VM directory " + d);
    for (const auto& g : groupsOfOurUids())
      if (!earlierGroups_.count(g) && !warm.allowsGroup(g)) left.push_back("cgroup " + g);
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc", ec)) {
      const std::string pid = e.path().filename().string();
      if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream in(e.path() / "status");
      for (std::string line; std::getline(in, line);) {
        if (!line.starts_with("Uid:")) continue;
        std::istringstream f(line.substr(4));
        unsigned long u = 0;
        if (f >> u && ourUid(u) && !warm.allowsProcess(u))
          left.push_back("process " + pid + " of uid " + std::to_string(u));
        break;
      }
    }
    return left;
  }

  uid_t uidBase_ = 0;
  std::set<std::string> earlierGroups_;
};

TEST_F(CrashStormTest, KillNineAtRandomMomentsLosesNoJobRunsNoneTwiceAndLeavesNothing) { storm(); }

}  // namespace
}  // namespace tango::test
