// LocalJobQueue (SQLite): FIFO takes with leases, fenced writes, a lapsed
// lease putting its job back, recovery after a restart.
#include "CoreFixture.hpp"

namespace tango::test {
namespace {

class LocalJobQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(TEST_TMP_DIR) / ("queue-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::unique_ptr<LocalJobQueue> open(std::chrono::milliseconds lease = 300ms) {
    return std::make_unique<LocalJobQueue>(
        std::make_unique<SqliteJobStore>(
            dir_ / "db.sqlite",
            [](const std::string&, const std::string&) { return std::string("/lab"); }),
        lease);
  }
  static TangoJob job(const std::string& name) {
    TangoJob j;
    j.name = name;
    j.labDir = "/lab";
    j.outputFile = "/lab/output/" + name;
    return j;
  }
  static auto any() {
    return [](const TangoJob&) { return true; };
  }
  static auto none() {
    return [](const TangoJob&) {};
  }
  fs::path dir_;
};

TEST_F(LocalJobQueueTest, TakesInOrderAndFencesWritesByLease) {
  auto q = open();
  auto a = q->add(job("a"));
  auto b = q->add(job("b"));
  EXPECT_LT(a, b);
  auto t = q->take(any(), none());
  ASSERT_TRUE(t);
  EXPECT_EQ(t->job.id, a);
  EXPECT_TRUE(t->job.assigned);
  EXPECT_EQ(q->unassignedCount(), 1u);
  Lease forged{a, "someone-else"};
  EXPECT_FALSE(q->update(forged, t->job)) << "a write without the lease is refused";
  EXPECT_FALSE(q->finish(forged, t->job));
  EXPECT_TRUE(q->update(t->lease, t->job));
  EXPECT_TRUE(q->finish(t->lease, t->job));
  EXPECT_FALSE(q->finish(t->lease, t->job)) << "finished once";
  EXPECT_EQ(q->countFinished(), 1);
  auto u = q->take(any(), none());
  ASSERT_TRUE(u);
  EXPECT_EQ(u->job.id, b);
  EXPECT_NE(u->lease.token, t->lease.token);
}

TEST_F(LocalJobQueueTest, ALapsedLeasePutsTheJobBackAndItsHolderIsRefused) {
  auto q = open(200ms);
  auto id = q->add(job("a"));
  auto t = q->take(any(), none());
  ASSERT_TRUE(t);
  EXPECT_TRUE(q->renew({t->lease}).empty()) << "renewed in time";
  std::this_thread::sleep_for(300ms);
  auto again = q->take(any(), none());
  ASSERT_TRUE(again) << "the lapsed job is queued again";
  EXPECT_EQ(again->job.id, id);
  auto lost = q->renew({t->lease});
  ASSERT_EQ(lost.size(), 1u) << "its old holder lost it";
  EXPECT_EQ(lost[0].token, t->lease.token);
  EXPECT_FALSE(q->update(t->lease, t->job));
  EXPECT_FALSE(q->finish(t->lease, t->job));
  EXPECT_TRUE(q->finish(again->lease, again->job));
}

TEST_F(LocalJobQueueTest, AcceptSkipsJobsAndUnassignKeepsTheirPlace) {
  auto q = open();
  auto a = q->add(job("a"));
  auto b = q->add(job("b"));
  auto t = q->take([](const TangoJob& j) { return j.name == "b"; }, none());
  ASSERT_TRUE(t);
  EXPECT_EQ(t->job.id, b);
  EXPECT_TRUE(q->unassign(t->lease, t->job));
  auto live = q->liveJobs();
  ASSERT_EQ(live.size(), 2u);
  EXPECT_EQ(live[0].first.id, a);
  EXPECT_EQ(live[0].second, 0);
  EXPECT_EQ(live[1].second, 1);
}

TEST_F(LocalJobQueueTest, ARestartRequeuesWhatWasRunning) {
  std::int64_t id = 0;
  {
    auto q = open();
    id = q->add(job("a"));
    ASSERT_TRUE(q->take(any(), none()));
  }
  auto q = open();
  EXPECT_EQ(q->recover(), 1);
  auto t = q->take(any(), none());
  ASSERT_TRUE(t);
  EXPECT_EQ(t->job.id, id);
  EXPECT_TRUE(traceHas(t->job, "after a service restart"));
  EXPECT_GE(q->nextVmId(), 1000);
}

}  // namespace
}  // namespace tango::test
