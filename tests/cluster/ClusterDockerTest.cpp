// Managers on one Redis that share a Docker engine: one started again
// removes only its own leftovers; when one dies for good, another removes
// its containers (and only its).
#include "../docker/DockerFixture.hpp"
#include "ClusterFixture.hpp"
#include "tango/vmms/DockerLabels.hpp"

namespace tango::test {
namespace {

using namespace std::chrono_literals;

TEST_F(ClusterTest, ADeadManagersContainersOnASharedEngineAreRemovedByAnother) {
  docker::Engine engine;
  if (auto why = engineProblem(engine); !why.empty()) GTEST_FAIL() << why;
  const std::string prefix = "tcd" + std::to_string(::getpid());
  auto byNode = [&] {
    std::map<std::string, std::size_t> n;
    for (const auto& c : engine.listByLabel(kPrefixLabel, prefix)) {
      auto it = c.labels.find(kNodeLabel);
      ++n[it == c.labels.end() ? "" : it->second];
    }
    return n;
  };
  auto eventually = [](const std::function<bool()>& cond, std::chrono::seconds within) {
    for (auto end = std::chrono::steady_clock::now() + within;
         std::chrono::steady_clock::now() < end; std::this_thread::sleep_for(100ms))
      if (cond()) return true;
    return cond();
  };
  startRedis();
  const std::string docker = "VMMS_NAME = \"localDocker\"\nPREFIX = \"" + prefix +
                             "\"\nWARM_IMAGES = [\"" + testImage() + "\"]\n";
  addManager(docker);
  addManager(docker);
  ASSERT_TRUE(eventually([&] { return byNode()["mgr0"] == 2 && byNode()["mgr1"] == 2; }, 60s));
  // mgr0 killed and started again at once: at start-up it removes its own
  // leftovers, never mgr1's.
  std::set<std::string> mgr1Before;
  auto namesOf = [&](const std::string& node) {
    std::set<std::string> out;
    for (const auto& c : engine.listByLabel(kPrefixLabel, prefix)) {
      auto it = c.labels.find(kNodeLabel);
      if (it != c.labels.end() && it->second == node) out.insert(c.name);
    }
    return out;
  };
  const auto mgr0Before = namesOf("mgr0");
  mgr1Before = namesOf("mgr1");
  managers_[0]->stop(SIGKILL);
  managers_[0]->start();
  ASSERT_TRUE(eventually(
      [&] {
        auto now = namesOf("mgr0");
        if (now.size() != 2) return false;
        for (const auto& n : now)
          if (mgr0Before.count(n)) return false;
        return true;
      },
      60s))
      << "mgr0's leftovers replaced by new warm containers";
  EXPECT_EQ(namesOf("mgr1"), mgr1Before) << "mgr1's containers untouched";
  managers_[0]->stop(SIGKILL);
  // Now it stays dead: its registration lapses (LEASE_SECS), then mgr1's
  // janitor cleans up.
  EXPECT_TRUE(eventually([&] { return byNode()["mgr0"] == 0; }, 20s))
      << "the dead node's containers are still there";
  EXPECT_EQ(byNode()["mgr1"], 2u) << "the live node's containers are its own";
  EXPECT_NE(managers_[1]->allLogs().find("node mgr0 stopped answering"), std::string::npos);
  managers_.clear();
  for (const auto& c : engine.listByLabel(kPrefixLabel, prefix)) engine.removeContainer(c.name);
}

}  // namespace
}  // namespace tango::test
