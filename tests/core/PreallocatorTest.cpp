// The Preallocator against a fake VMMS: pools made on demand, kept at their
// size, emptied for good by prealloc 0; an allocation given back.
#include "CoreFixture.hpp"

namespace tango::test {
namespace {

TEST_F(CoreTest, APoolIsMadeByPreallocAndEmptiedForGoodByZero) {
  start();
  EXPECT_EQ(vmms_->aliveCount(), 0u) << "no pool before an image is asked for";
  ASSERT_TRUE(server_->prealloc("autograding_image", 3, {}).ok);
  EXPECT_TRUE(eventually([&] { return vmms_->aliveCount() == 3; }));
  EXPECT_TRUE(eventually([&] {
    auto pools = server_->pools(std::string("autograding_image"));
    return pools.found && pools.pools.at("autograding_image").at("free").as_array().size() == 3u;
  })) << "the three VMs join the pool's free list";
  EXPECT_EQ(vmms_->aliveCount(), 3u) << "and no more are made";
  ASSERT_TRUE(server_->prealloc("autograding_image", 0, {}).ok);
  EXPECT_TRUE(eventually([&] { return vmms_->aliveCount() == 0; }));
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(vmms_->aliveCount(), 0u) << "a pool set to 0 stays empty";
  EXPECT_FALSE(server_->prealloc("no_such_image", 1, {}).ok);
  EXPECT_FALSE(server_->prealloc("autograding_image", -1, {}).ok);
}

TEST_F(CoreTest, AWarmVmServesTheNextJobAndIsReplaced) {
  cfg_.poolSize = 1;
  start();
  ASSERT_TRUE(server_->prealloc("autograding_image", 1, {}).ok);
  ASSERT_TRUE(eventually([&] { return vmms_->aliveCount() == 1; }));
  auto job = waitFinished(submit());
  ASSERT_TRUE(job);
  EXPECT_TRUE(traceHas(*job, "existing VM")) << "the warm VM ran it";
  EXPECT_TRUE(eventually([&] { return vmms_->aliveCount() == 1 && vmms_->inits == 2; }))
      << "its replacement is made";
}

TEST_F(CoreTest, PoolSparesKeepsThatManyReadyWhateverThePoolsSize) {
  cfg_.poolSize = 1;
  cfg_.poolSpares = 3;
  start();
  ASSERT_TRUE(server_->prealloc("autograding_image", 1, {}).ok);
  EXPECT_TRUE(eventually([&] {
    auto pools = server_->pools(std::string("autograding_image"));
    return pools.found && pools.pools.at("autograding_image").at("free").as_array().size() == 3u;
  })) << "three spares for a pool of one";
  auto job = waitFinished(submit());
  ASSERT_TRUE(job);
  EXPECT_TRUE(traceHas(*job, "existing VM")) << "a spare ran it";
  EXPECT_TRUE(eventually([&] { return vmms_->aliveCount() == 3 && vmms_->inits == 4; }))
      << "its replacement is made, and no more";
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(vmms_->aliveCount(), 3u);
  ASSERT_TRUE(server_->prealloc("autograding_image", 0, {}).ok);
  EXPECT_TRUE(eventually([&] { return vmms_->aliveCount() == 0; })) << "a pool set to 0 has none";
}

TEST_F(CoreTest, AWarmingThatThrowsDoesNotStopThePool) {
  configure = [](FakeVmms& f) {
    f.initHook = [](int n) -> std::string {
      if (n == 0) throw std::runtime_error("engine exploded");
      return "";
    };
  };
  start();
  ASSERT_TRUE(server_->prealloc("autograding_image", 1, {}).ok);
  EXPECT_TRUE(eventually([&] { return vmms_->aliveCount() == 1; }, 8000ms));
}

TEST(PreallocatorUnit, ACancelledAllocationGoesBackToItsPool) {
  Config cfg;
  cfg.poolSize = 1;
  cfg.nodeId = "n1";
  VmmsSet set;
  auto fake = std::make_unique<FakeVmms>();
  FakeVmms* f = fake.get();
  set.add(std::move(fake));
  const auto dir = fs::path(TEST_TMP_DIR) / ("prealloc-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  LocalJobQueue ids(std::make_unique<SqliteJobStore>(dir / "db.sqlite"), 1000ms);
  {
    Preallocator p(cfg, set, ids, {});
    TangoMachine want;
    want.name = "autograding_image";
    p.update("local", "autograding_image", 1, std::nullopt, std::nullopt);
    ASSERT_TRUE(eventually([&] { return p.pool("autograding_image")->free.size() == 1; }));
    auto a = p.allocVM(want);
    ASSERT_TRUE(a && a->warm);
    EXPECT_EQ(a->vm.node, "n1");
    EXPECT_FALSE(p.allocVM(want)) << "the pool's one VM is busy";
    p.cancel(*a);
    auto b = p.allocVM(want);
    ASSERT_TRUE(b && b->warm);
    EXPECT_EQ(b->vm.id, a->vm.id) << "the same warm VM, not a new one";
    p.cancel(*b);
  }
  EXPECT_EQ(f->aliveCount(), 0u) << "the pool's VMs go with it";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tango::test
