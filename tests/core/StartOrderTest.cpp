// The start order (core/StartOrder.hpp): priorities first, then fair
// shares between keys and between a key's courselabs by weight, then FIFO.
#include <gtest/gtest.h>

#include <deque>

#include "tango/core/StartOrder.hpp"
#include "tango/util/KeyId.hpp"

namespace tango {
namespace {

class StartOrderTest : public ::testing::Test {
 protected:
  // Queued jobs, oldest first; the returned id is its index.
  std::size_t queue(const std::string& key, const std::string& lab,
                    JobPriority p = JobPriority::Normal) {
    TangoJob j;
    j.id = static_cast<std::int64_t>(jobs_.size());
    j.keyId = key;
    j.courselab = lab;
    j.priority = p;
    jobs_.push_back(j);
    return jobs_.size() - 1;
  }
  void run(const std::string& key, const std::string& lab) {
    TangoJob j;
    j.keyId = key;
    j.courselab = lab;
    running_.push_back(j);
  }
  std::vector<std::size_t> order(const SharePolicy& policy = {}) {
    std::vector<const TangoJob*> q, r;
    for (const auto& j : jobs_) q.push_back(&j);
    for (const auto& j : running_) r.push_back(&j);
    return startOrder(q, r, policy);
  }
  std::string labsOf(const std::vector<std::size_t>& order) {
    std::string s;
    for (auto i : order) s += jobs_[i].courselab;
    return s;
  }

  std::deque<TangoJob> jobs_, running_;  // deque: pointers stay valid
};

TEST_F(StartOrderTest, OneCourselabIsFirstInFirstOut) {
  for (int i = 0; i < 5; ++i) queue("k", "a");
  EXPECT_EQ(order(), (std::vector<std::size_t>{0, 1, 2, 3, 4}));
}

TEST_F(StartOrderTest, ALateCourselabIsNotStuckBehindABigBatch) {
  for (int i = 0; i < 500; ++i) queue("k", "a");
  for (int i = 0; i < 5; ++i) queue("k", "b");
  // Two VMs busy with the batch: the late courselab's jobs alternate with
  // the batch's from the first free VM on.
  run("k", "a");
  run("k", "a");
  auto o = order();
  ASSERT_EQ(o.size(), 505u);
  EXPECT_EQ(labsOf({o.begin(), o.begin() + 12}), "bbabababaaaa");
  // Within each courselab, first in first out.
  std::vector<std::size_t> b;
  for (auto i : o)
    if (jobs_[i].courselab == "b") b.push_back(i);
  EXPECT_EQ(b, (std::vector<std::size_t>{500, 501, 502, 503, 504}));
}

TEST_F(StartOrderTest, KeysShareBeforeTheirCourselabsDo) {
  // Key k has three courselabs queued, key m one: m gets half the VMs, not a quarter.
  for (int i = 0; i < 6; ++i) {
    queue("k", "a");
    queue("k", "b");
    queue("k", "c");
  }
  for (int i = 0; i < 6; ++i) queue("m", "z");
  auto o = order();
  int m = 0;
  for (int i = 0; i < 8; ++i) m += jobs_[o[static_cast<std::size_t>(i)]].keyId == "m";
  EXPECT_EQ(m, 4) << labsOf(o);
}

TEST_F(StartOrderTest, WeightsSetTheShares) {
  for (int i = 0; i < 30; ++i) queue("k", "a");
  for (int i = 0; i < 30; ++i) queue("k", "b");
  SharePolicy p;
  p.courselabWeight["a"] = 3;
  auto o = order(p);
  int a = 0;
  for (int i = 0; i < 20; ++i) a += jobs_[o[static_cast<std::size_t>(i)]].courselab == "a";
  EXPECT_EQ(a, 15) << labsOf(o);

  SharePolicy keys;
  keys.keyWeight["m"] = 2;
  jobs_.clear();
  for (int i = 0; i < 30; ++i) queue("k", "a");
  for (int i = 0; i < 30; ++i) queue("m", "b");
  o = order(keys);
  int m = 0;
  for (int i = 0; i < 30; ++i) m += jobs_[o[static_cast<std::size_t>(i)]].keyId == "m";
  EXPECT_EQ(m, 20) << labsOf(o);
}

TEST_F(StartOrderTest, EveryHigherPriorityJobStartsBeforeAnyLowerOne) {
  for (int i = 0; i < 10; ++i) queue("k", "r", JobPriority::Low);
  queue("k", "a");
  queue("m", "b", JobPriority::High);
  queue("k", "a");
  // Running jobs of the normal courselab do not let the low ones pass.
  for (int i = 0; i < 5; ++i) run("k", "a");
  auto o = order();
  ASSERT_EQ(o.size(), 13u);
  EXPECT_EQ(o[0], 11u);
  EXPECT_EQ(o[1], 10u);
  EXPECT_EQ(o[2], 12u);
  for (std::size_t i = 3; i < 13; ++i) EXPECT_EQ(jobs_[o[i]].priority, JobPriority::Low);
}

TEST_F(StartOrderTest, RunningJobsCountAgainstTheirShare) {
  for (int i = 0; i < 3; ++i) queue("k", "a");
  for (int i = 0; i < 3; ++i) queue("k", "b");
  run("k", "a");
  run("k", "a");
  // b is two VMs behind: its first two jobs go first, then they alternate
  // (a tie goes to the older job).
  EXPECT_EQ(labsOf(order()), "bbabaa");
}

TEST_F(StartOrderTest, PolicyFromConfig) {
  Config cfg;
  cfg.keys = {"one", "two"};
  cfg.maxPriority = "low";
  cfg.keyPolicies.push_back({"two", 4, "high"});
  cfg.courselabWeights["lab"] = 2.5;
  auto p = SharePolicy::fromConfig(cfg);
  EXPECT_EQ(p.maxPriorityOf(keyId("one")), JobPriority::Low);
  EXPECT_EQ(p.maxPriorityOf(keyId("two")), JobPriority::High);
  EXPECT_EQ(p.weightOfKey(keyId("two")), 4);
  EXPECT_EQ(p.weightOfKey(keyId("one")), 1);
  EXPECT_EQ(p.weightOfCourselab("lab"), 2.5);
  EXPECT_EQ(p.weightOfCourselab("other"), 1);
}

}  // namespace
}  // namespace tango
