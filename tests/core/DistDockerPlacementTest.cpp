// DistDockerVmms's placement and health over fake engines (each a FakeVmms
// behind a driver whose ping the test controls): spread by free slots, never
// more runs than capacity, an engine that stops answering leaves placement
// and comes back clean, images only where they are.
#include <gtest/gtest.h>

#include <thread>

#include "FakeVmms.hpp"
#include "tango/vmms/DistDockerVmms.hpp"

namespace tango::test {
namespace {

using namespace std::chrono_literals;

class FakeEngine final : public EngineDriver {
 public:
  explicit FakeEngine(std::shared_ptr<FakeVmms> v) : v_(std::move(v)) {}
  Vmms& vmms() override { return *v_; }
  std::string probe() override {
    std::lock_guard lock(mu);
    return problem;
  }
  docker::Engine::SystemInfo systemInfo() override { return {4, 1LL << 30, true}; }
  void setProblem(const std::string& p) {
    std::lock_guard lock(mu);
    problem = p;
  }

 private:
  std::shared_ptr<FakeVmms> v_;
  std::mutex mu;
  std::string problem;
};

class DistDockerPlacementTest : public ::testing::Test {
 protected:
  // Engines "a", "b", ... with these capacities (0: derived from CPUs and memory).
  void start(const std::vector<int>& capacities) {
    cfg.nodeId = "n1";
    cfg.dockerPingSecs = 1;
    std::vector<DistEngine> list;
    for (std::size_t i = 0; i < capacities.size(); ++i) {
      auto v = std::make_shared<FakeVmms>();
      auto d = std::make_unique<FakeEngine>(v);
      fakes.push_back(v);
      drivers.push_back(d.get());
      list.push_back({std::string(1, static_cast<char>('a' + i)), capacities[i], std::move(d)});
    }
    dist = std::make_unique<DistDockerVmms>(cfg, std::move(list));
    ASSERT_EQ(dist->preflight(), "");
  }
  TangoMachine vm(std::int64_t id, const std::string& image = "autograding_image") {
    TangoMachine m;
    m.id = id;
    m.name = m.image = image;
    m.node = "n1";
    return m;
  }
  std::map<std::string, int> placedOn(int n, std::int64_t firstId = 1) {
    std::map<std::string, int> count;
    for (int i = 0; i < n; ++i) {
      auto m = vm(firstId + i);
      EXPECT_TRUE(dist->initializeVM(m, 5s).ok);
      ++count[dist->hostOf(m)];
    }
    return count;
  }
  HostStatus status(const std::string& name) {
    for (auto& h : dist->hosts())
      if (h.name == name) return h;
    return {};
  }
  bool waitHealthy(const std::string& name, bool healthy) {
    for (int i = 0; i < 100; ++i) {
      if (status(name).healthy == healthy) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  Config cfg;
  std::vector<std::shared_ptr<FakeVmms>> fakes;
  std::vector<FakeEngine*> drivers;
  std::unique_ptr<DistDockerVmms> dist;
};

TEST_F(DistDockerPlacementTest, ContainersGoWhereMostSlotsAreFreeInProportionToCapacity) {
  start({1, 3, 0});  // "c": derived, 4 CPUs and 1 GB at 512 MB a job: 2
  EXPECT_EQ(status("c").capacity, 2);
  auto n = placedOn(6);
  EXPECT_EQ(n["a"], 1);
  EXPECT_EQ(n["b"], 3);
  EXPECT_EQ(n["c"], 2);
  EXPECT_EQ(dist->jobsAtOnce("autograding_image"), 6);
  // getVMs says where each VM is.
  std::map<std::string, int> listed;
  for (const auto& v : dist->getVMs()) {
    EXPECT_EQ(v.vmms, "distDocker");
    ++listed[v.host];
  }
  EXPECT_EQ(listed, n);
  // A warm VM is preferred where more run slots are free: b (3) over a (1).
  std::map<std::string, TangoMachine> one;
  for (std::int64_t id = 1; id <= 6; ++id) one.emplace(dist->hostOf(vm(id)), vm(id));
  EXPECT_GT(dist->preference(one["b"]), dist->preference(one["a"]));
  // Destroyed, a VM frees its engine's slot for the next one.
  EXPECT_TRUE(dist->destroyVM(one["a"]).ok);
  EXPECT_EQ(dist->hostOf(one["a"]), "");
  EXPECT_EQ(placedOn(1, 100)["a"], 1);
}

// A VM whose making failed may exist half made on its engine: it stays
// placed, so destroying it reaches that engine.
TEST_F(DistDockerPlacementTest, AFailedInitializeStillDestroysOnItsEngine) {
  start({2});
  fakes[0]->initHook = [](int) { return std::string("start failed"); };
  auto m = vm(1);
  auto r = dist->initializeVM(m, 5s);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "a: start failed");
  EXPECT_EQ(dist->hostOf(m), "a");
  const int before = fakes[0]->destroys;
  EXPECT_TRUE(dist->safeDestroyVM(m).ok);
  EXPECT_EQ(fakes[0]->destroys, before + 1);
  EXPECT_EQ(status("a").held, 0);
}

TEST_F(DistDockerPlacementTest, AnEngineNeverRunsMoreJobsThanItsCapacity) {
  start({1});
  for (auto& f : fakes) f->holdRuns = true;
  auto one = vm(1), two = vm(2);
  ASSERT_TRUE(dist->initializeVM(one, 5s).ok);
  ASSERT_TRUE(dist->initializeVM(two, 5s).ok);  // a spare may wait beside a run
  RunSpec spec;
  spec.hardTimeout = 20s;
  std::thread first([&] { EXPECT_EQ(dist->runJob(one, spec).status, 0); });
  ASSERT_TRUE(fakes[0]->waitForRun(5s));
  std::atomic<bool> secondDone{false};
  std::thread second([&] {
    EXPECT_EQ(dist->runJob(two, spec).status, 0);
    secondDone = true;
  });
  std::this_thread::sleep_for(300ms);
  {
    std::lock_guard lock(fakes[0]->mu);
    EXPECT_EQ(fakes[0]->running.size(), 1u) << "two runs at once on an engine of capacity 1";
  }
  EXPECT_FALSE(secondDone);
  EXPECT_EQ(status("a").running, 1);
  fakes[0]->holdRuns = false;
  fakes[0]->cv.notify_all();
  first.join();
  second.join();
  EXPECT_EQ(status("a").maxRunning, 1);
  EXPECT_EQ(status("a").jobsRun, 2);
}

TEST_F(DistDockerPlacementTest, AnEngineThatStopsAnsweringLeavesAndComesBackClean) {
  start({2, 2});
  auto n = placedOn(4);
  ASSERT_EQ(n["a"], 2);
  std::vector<std::int64_t> onA;
  for (std::int64_t id = 1; id <= 4; ++id)
    if (dist->hostOf(vm(id)) == "a") onA.push_back(id);
  ASSERT_EQ(onA.size(), 2u);
  drivers[0]->setProblem("a: connection refused");
  ASSERT_TRUE(waitHealthy("a", false));
  EXPECT_EQ(status("a").problem, "a: connection refused");
  // Its VMs are lost to their pools and its jobs' calls fail; new VMs go to b.
  for (auto id : onA) {
    EXPECT_EQ(dist->preference(vm(id)), -1) << id;
    EXPECT_FALSE(dist->copyIn(vm(id), {}, 5s).ok) << id;
  }
  EXPECT_EQ(dist->jobsAtOnce("autograding_image"), 2);
  EXPECT_EQ(placedOn(1, 10)["b"], 1);
  // Back: what this node left there is removed before it takes jobs again.
  const auto leftovers = fakes[0]->aliveCount();
  ASSERT_EQ(leftovers, 2u);
  drivers[0]->setProblem("");
  ASSERT_TRUE(waitHealthy("a", true));
  EXPECT_EQ(fakes[0]->aliveCount(), 0u);
  EXPECT_EQ(status("a").held, 0);
  EXPECT_EQ(placedOn(1, 20)["a"], 1);
}

TEST_F(DistDockerPlacementTest, AnImageOnSomeEnginesGoesOnlyThere) {
  cfg.nodeId = "n1";
  start({4, 4});
  fakes[1]->images = {"autograding_image", "only_b"};
  // The engines' image lists are refreshed at each ping.
  for (int i = 0; i < 60 && dist->jobsAtOnce("only_b") == 0; ++i) std::this_thread::sleep_for(50ms);
  EXPECT_EQ(dist->jobsAtOnce("only_b"), 4);
  auto images = dist->getImages();
  EXPECT_NE(std::find(images.begin(), images.end(), "only_b"), images.end());
  for (std::int64_t id = 1; id <= 6; ++id) {
    auto m = vm(id, "only_b");
    ASSERT_TRUE(dist->initializeVM(m, 5s).ok);
    EXPECT_EQ(dist->hostOf(m), "b");
  }
  auto none = vm(50, "nowhere");
  auto r = dist->initializeVM(none, 5s);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("nowhere"), std::string::npos) << r.error;
}

}  // namespace
}  // namespace tango::test
