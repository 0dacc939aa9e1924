// RedisJobQueue against a real redis-server: what two nodes sharing one
// queue rely on, one transition at a time.
#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <chrono>
#include <map>
#include <thread>

#include "RedisServer.hpp"
#include "tango/model/JobJson.hpp"
#include "tango/redis/RedisJobQueue.hpp"

namespace tango {
namespace {

using namespace std::chrono_literals;
using test::RedisServer;

class RedisJobQueueTest : public ::testing::Test {
 protected:
  std::unique_ptr<RedisJobQueue> node(const std::string& id, std::chrono::milliseconds lease) {
    return std::make_unique<RedisJobQueue>(
        server_.clientOptions(), "t:", id, lease,
        [](const std::string&, const std::string&) { return std::string("/labs/k-lab"); },
        /*wakeable=*/false);
  }
  static TangoJob job(const std::string& name) {
    TangoJob j;
    j.name = name;
    j.labDir = "/labs/k-lab";
    j.outputFile = "/labs/k-lab/output/" + name;
    j.input = {{"/labs/k-lab/Makefile", "Makefile"}};
    return j;
  }
  static auto any() {
    return [](const TangoJob&) { return true; };
  }
  static auto none() {
    return [](const TangoJob&) {};
  }
  RedisServer server_;
};

TEST_F(RedisJobQueueTest, IdsAreUniqueAcrossNodesAndATakeIsExclusive) {
  auto a = node("a", 5000ms), b = node("b", 5000ms);
  std::set<std::int64_t> ids;
  for (int i = 0; i < 20; ++i) {
    ids.insert(a->add(job("x")));
    ids.insert(b->add(job("y")));
  }
  EXPECT_EQ(ids.size(), 40u);
  EXPECT_NE(a->nextVmId(), b->nextVmId());
  std::set<std::int64_t> taken;
  for (int i = 0; i < 20; ++i) {
    for (auto* q : {a.get(), b.get()}) {
      auto t = q->take(any(), none());
      ASSERT_TRUE(t);
      EXPECT_TRUE(taken.insert(t->job.id).second) << "job " << t->job.id << " taken twice";
    }
  }
  EXPECT_FALSE(a->take(any(), none()));
  EXPECT_EQ(a->unassignedCount(), 0u);
  EXPECT_EQ(b->liveCount(), 40u);
}

TEST_F(RedisJobQueueTest, WritesAreFencedAndAFinishRetriedAfterALostAnswerSucceeds) {
  auto a = node("a", 5000ms);
  auto id = a->add(job("x"));
  auto t = a->take(any(), none());
  ASSERT_TRUE(t);
  EXPECT_FALSE(a->update({id, "forged"}, t->job));
  EXPECT_FALSE(a->finish({id, "forged"}, t->job));
  EXPECT_TRUE(a->update(t->lease, t->job));
  EXPECT_TRUE(a->finish(t->lease, t->job));
  // The same finish again (its first answer lost on the way): committed.
  EXPECT_TRUE(a->finish(t->lease, t->job));
  EXPECT_EQ(a->countFinished(), 1);
  EXPECT_EQ(a->liveCount(), 0u);
}

TEST_F(RedisJobQueueTest, ALapsedLeaseGoesToAnotherNodeAndItsHolderIsRefused) {
  auto a = node("a", 400ms), b = node("b", 400ms);
  auto id = a->add(job("x"));
  auto t = a->take(any(), none());
  ASSERT_TRUE(t);
  // b keeps the queue's clock going (as a live manager does) while a stalls.
  for (int i = 0; i < 8; ++i) {
    EXPECT_FALSE(b->take([](const TangoJob&) { return false; }, none()));
    std::this_thread::sleep_for(100ms);
  }
  auto again = b->take(any(), none());
  ASSERT_TRUE(again) << "the lapsed job went back and b took it";
  EXPECT_EQ(again->job.id, id);
  auto lost = a->renew({t->lease});
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].token, t->lease.token);
  EXPECT_FALSE(a->finish(t->lease, t->job));
  EXPECT_TRUE(b->finish(again->lease, again->job));
  // Only the stale lease is reported lost, not the one taken again.
  auto c = a->add(job("y"));
  auto u = a->take(any(), none());
  ASSERT_TRUE(u);
  EXPECT_EQ(u->job.id, c);
  EXPECT_TRUE(a->renew({u->lease}).empty());
}

// Nobody renewed or took for longer than a lease (Redis was away, or every
// manager was): every lease gets one more lease time instead of going back.
TEST_F(RedisJobQueueTest, ASilenceLongerThanALeaseExtendsLeasesInsteadOfRequeuing) {
  auto a = node("a", 400ms), b = node("b", 400ms);
  auto id = a->add(job("x"));
  auto t = a->take(any(), none());
  ASSERT_TRUE(t);
  std::this_thread::sleep_for(1200ms);  // three lease times without a word to Redis
  EXPECT_FALSE(b->take(any(), none())) << "requeued after a silence";
  EXPECT_TRUE(a->renew({t->lease}).empty()) << "its holder still has it";
  EXPECT_TRUE(a->finish(t->lease, t->job));
  EXPECT_EQ(a->get(id)->state, JobState::Finished);
}

TEST_F(RedisJobQueueTest, ARestartedNodePutsBackWhatItsEarlierInstanceHeld) {
  auto b = node("b", 5000ms);
  std::int64_t id = 0;
  {
    auto a = node("a", 5000ms);
    id = a->add(job("x"));
    b->add(job("y"));
    ASSERT_TRUE(a->take([](const TangoJob& j) { return j.name == "x"; }, none()));
    ASSERT_TRUE(b->take([](const TangoJob& j) { return j.name == "y"; }, none()));
  }
  auto a = node("a", 5000ms);
  EXPECT_EQ(a->recover(), 1) << "only node a's job";
  auto t = a->take(any(), none());
  ASSERT_TRUE(t);
  EXPECT_EQ(t->job.id, id);
  bool said = false;
  for (const auto& line : t->job.trace) said = said || line.find("Requeued") != std::string::npos;
  EXPECT_TRUE(said);
}

// A document in Redis that names a file outside its courselab is not run.
TEST_F(RedisJobQueueTest, ADocumentWithAPathOutsideItsCourselabIsIgnored) {
  auto a = node("a", 5000ms);
  auto id = a->add(job("x"));
  RedisClient raw(server_.clientOptions());
  auto doc = raw.command({"GET", "t:job:" + std::to_string(id)}).str;
  const auto at = doc.find("\"Makefile\"");
  ASSERT_NE(at, std::string::npos);
  doc.replace(at, 10, "\"/etc/shadow\"");
  ASSERT_TRUE(raw.command({"SET", "t:job:" + std::to_string(id), doc}).isOk());
  EXPECT_FALSE(a->get(id));
  EXPECT_FALSE(a->take(any(), none()));
}

// Every node walks the queue in the one start order (StartOrder.hpp): a
// courselab that queued late is not stuck behind another's batch, whoever
// added which, and a low job waits for every normal one; positions follow.
TEST_F(RedisJobQueueTest, EveryNodeTakesInTheStartOrder) {
  auto a = node("a", 5000ms), b = node("b", 5000ms);
  auto in = [](const std::string& lab, JobPriority p = JobPriority::Normal) {
    TangoJob j = job(lab);
    j.courselab = lab;
    j.priority = p;
    return j;
  };
  auto low = a->add(in("regrade", JobPriority::Low));
  for (int i = 0; i < 20; ++i) a->add(in("batch"));
  ASSERT_TRUE(a->take(any(), none()));  // two batch jobs hold the VMs
  ASSERT_TRUE(b->take(any(), none()));
  std::vector<std::int64_t> late;
  for (int i = 0; i < 3; ++i) late.push_back(b->add(in("late")));
  std::map<std::int64_t, std::int64_t> position;
  for (const auto& [j, pos] : a->liveJobs())
    if (pos) position[j.id] = *pos;
  EXPECT_EQ(position.at(late[0]), 0);
  EXPECT_EQ(position.at(late[1]), 1);
  EXPECT_EQ(position.at(low), 21);  // last: 18 batch + 3 late ahead of it
  std::string labs;
  for (int i = 0; i < 8; ++i) {
    auto t = (i % 2 ? a : b)->take(any(), none());
    ASSERT_TRUE(t);
    labs += t->job.courselab == "late" ? 'L' : 'B';
  }
  EXPECT_EQ(labs, "LLBLBBBB");
}

// A cancel reaches the node that runs the job through its renewals, and a
// queued job can be claimed (to cancel it) by any node, once.
TEST_F(RedisJobQueueTest, CancelsReachTheNodeThatRunsTheJob) {
  auto a = node("a", 5000ms), b = node("b", 5000ms);
  auto running = a->add(job("x"));
  auto queued = a->add(job("y"));
  auto t = a->take([&](const TangoJob& j) { return j.id == running; }, none());
  ASSERT_TRUE(t);
  EXPECT_TRUE(a->cancelsAsked({t->lease}).empty());
  b->requestCancel(running);
  EXPECT_EQ(a->cancelsAsked({t->lease}), (std::vector<std::int64_t>{running}));
  EXPECT_FALSE(b->claim(running)) << "running: not claimed";
  auto c = b->claim(queued);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->job.id, queued);
  EXPECT_FALSE(a->claim(queued)) << "claimed once";
  EXPECT_FALSE(a->take(any(), none()));
  // The finish clears the record; a finished job takes no new one.
  EXPECT_TRUE(a->finish(t->lease, t->job));
  b->requestCancel(running);
  RedisClient raw(server_.clientOptions());
  EXPECT_EQ(raw.command({"HLEN", "t:cancel"}).integer, 0);
}

}  // namespace
}  // namespace tango

namespace tango {
namespace {

// MAX_LIVE_JOBS_PER_KEY on several nodes: each node counts every node's
// live jobs of a key, its own additions at once, without loading the live
// set on every addJob (commands counted).
class RedisLiveCountTest : public ::testing::Test {
 protected:
  std::unique_ptr<RedisJobQueue> node(const std::string& id) {
    return std::make_unique<RedisJobQueue>(
        server_.clientOptions(), "t:", id, std::chrono::milliseconds(5000),
        [](const std::string&, const std::string&) { return std::string("/labs/k-lab"); },
        /*wakeable=*/false);
  }
  static TangoJob job(const std::string& keyId) {
    TangoJob j;
    j.name = "j";
    j.keyId = keyId;
    j.labDir = "/labs/k-lab";
    j.outputFile = "/labs/k-lab/output/j";
    j.input = {{"/labs/k-lab/Makefile", "Makefile"}};
    return j;
  }
  test::RedisServer server_;
};

TEST_F(RedisLiveCountTest, EachNodeCountsEveryNodesLiveJobsOfAKey) {
  auto a = node("a"), b = node("b");
  for (int i = 0; i < 3; ++i) a->add(job("key-1"));
  b->add(job("key-2"));
  EXPECT_EQ(a->liveCountOf("key-1"), 3u);
  EXPECT_EQ(a->liveCountOf("key-2"), 1u);
  EXPECT_EQ(b->liveCountOf("key-1"), 3u);
  // A node's own additions count at once; many checks within a second cost
  // no more Redis commands.
  const auto before = a->commandsSent();
  for (int i = 0; i < 50; ++i) {
    a->add(job("key-1"));
    EXPECT_EQ(a->liveCountOf("key-1"), 4u + static_cast<unsigned>(i));
  }
  EXPECT_LE(a->commandsSent() - before, 50 * 3 + 5);  // the adds themselves, a recount at most
  // Another node's finished jobs stop counting at the next count.
  while (auto t = b->take([](const TangoJob& j) { return j.keyId == "key-2"; },
                          [](const TangoJob&) {})) {
    ASSERT_TRUE(b->finish(t->lease, t->job));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(a->liveCountOf("key-2"), 0u);
  EXPECT_EQ(a->liveCountOf("key-1"), 53u);
}

}  // namespace
}  // namespace tango
