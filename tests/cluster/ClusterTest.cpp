// Several nodes on one Redis: no job lost or run twice when a node dies.
#include <random>

#include "../redis/TestCerts.hpp"
#include "ClusterFixture.hpp"
#include "tango/model/Job.hpp"

namespace tango::test {
namespace {

using namespace std::chrono_literals;

// Two API nodes and three managers: 300 jobs submitted across both API
// nodes all finish exactly once: each output complete and written once,
// each callback delivered once, ids unique; every node answers the same.
TEST_F(ClusterTest, ThreeHundredJobsAcrossTwoApiNodesAndThreeManagersFinishOnce) {
  startRedis();
  addApi();
  addApi();
  for (int i = 0; i < 3; ++i) addManager();
  uploadHello();
  const auto names = submitMany(300);
  ASSERT_EQ(names.size(), 300u);
  const auto ids = idsOf(names);
  ASSERT_TRUE(waitFinished(ids, 180s));
  for (auto& [id, name] : names) EXPECT_TRUE(outputIsHello(name, id)) << name;
  // Callbacks follow the outputs within moments.
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < end && callbacks().size() < names.size())
    std::this_thread::sleep_for(100ms);
  auto cbs = callbacks();
  auto lines = finishLines();
  std::set<std::string> nodesUsed;
  for (auto& [id, name] : names) {
    EXPECT_EQ(cbs[name], 1) << "callback of " << name;
    EXPECT_EQ(lines[id], 1) << "job " << id << " finished " << lines[id] << " times";
  }
  for (auto& [id, j] : finished()) nodesUsed.insert(std::string(j.at("node").as_string()));
  EXPECT_EQ(nodesUsed.size(), 3u) << "every manager ran jobs";
  // /info and /jobs answer the same on both API nodes.
  auto info0 = api(0).get("/info/test/").json()["info"].as_object();
  auto info1 = api(1).get("/info/test/").json()["info"].as_object();
  EXPECT_EQ(info0["jobs_finished"], info1["jobs_finished"]);
  EXPECT_EQ(info0["jobs_finished"].as_int64(), 300);
  EXPECT_EQ(info0["nodes"].as_array().size(), 5u);
  EXPECT_EQ(finished(0).size(), finished(1).size());
}

// A manager killed while it runs jobs: its jobs finish on the others
// within the lease time and a job's run time.
TEST_F(ClusterTest, JobsOfAKilledManagerFinishOnTheOthers) {
  startRedis();
  addApi();
  for (int i = 0; i < 3; ++i) addManager();
  uploadHello();
  const auto names = submitMany(60);
  ASSERT_EQ(names.size(), 60u);
  // Kill manager 0 once it holds a running job; note which jobs it held.
  // It is frozen (SIGSTOP) while we look, so none of them finishes there
  // between the look and the kill.
  const auto end = std::chrono::steady_clock::now() + 30s;
  std::set<std::int64_t> held;
  double killedAt = 0;
  while (held.empty() && std::chrono::steady_clock::now() < end) {
    ::kill(managers_[0]->pid(), SIGSTOP);
    auto live = api(0).get("/jobs/test/0/").json();
    for (auto& j : live["jobs"].as_array())
      if (j.as_object().at("assigned").as_bool() && j.as_object().at("node").as_string() == "mgr0")
        held.insert(j.as_object().at("id").as_int64());
    if (!held.empty()) {
      managers_[0]->stop(SIGKILL);
      killedAt = nowSeconds();
      break;
    }
    ::kill(managers_[0]->pid(), SIGCONT);
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_FALSE(held.empty()) << "manager 0 never ran a job";
  const auto ids = idsOf(names);
  ASSERT_TRUE(waitFinished(ids, 120s));
  for (auto& [id, name] : names) EXPECT_TRUE(outputIsHello(name, id)) << name;
  auto lines = finishLines();
  for (auto& [id, name] : names) EXPECT_LE(lines[id], 1) << "job " << id << " finished twice";
  // Its jobs finished elsewhere within the lease time and a job's time (a
  // trivial job: well under a second; 5 s for a dispatch pass and a loaded
  // machine).
  auto done = finished();
  for (auto id : held) {
    const auto& j = done.at(id);
    EXPECT_NE(j.at("node").as_string(), "mgr0") << "job " << id;
    const double at = j.at("times").at("finished").to_number<double>();
    EXPECT_LE(at - killedAt, leaseSecs_ + 5.0) << "job " << id << " of the killed manager";
  }
}

// Managers killed and started again at random during a 500-job run: none
// lost, none run twice to completion.
TEST_F(ClusterTest, FiveHundredJobsSurviveManagersKilledAndRestartedAtRandom) {
  leaseSecs_ = 1;
  startRedis();
  addApi();
  addApi();
  for (int i = 0; i < 3; ++i) addManager();
  uploadHello();
  std::map<std::int64_t, std::string> names;
  std::atomic<bool> submitting{true};
  std::thread chaos([&] {
    std::mt19937 rng(12345);
    while (submitting || finished().size() < 500) {
      std::this_thread::sleep_for(std::chrono::milliseconds(700 + rng() % 800));
      auto& m = *managers_[rng() % managers_.size()];
      m.stop(SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 500));
      m.start();
      if (finished().size() >= 500) break;
    }
  });
  for (int i = 0; i < 500; ++i) {
    const std::string name = "out-" + std::to_string(i);
    auto id = submit(static_cast<std::size_t>(i), name);
    EXPECT_GT(id, 0);
    names[id] = name;
  }
  submitting = false;
  const auto ids = idsOf(names);
  const bool all = waitFinished(ids, 300s);
  chaos.join();
  ASSERT_TRUE(all || waitFinished(ids, 60s)) << "jobs lost";
  int bad = 0, twice = 0;
  auto lines = finishLines();
  for (auto& [id, name] : names) {
    if (!outputIsHello(name, id)) {
      ++bad;
      ADD_FAILURE() << "job " << id << " (" << name << "): " << readFile(outputPath(name));
    }
    if (lines[id] > 1) ++twice;
  }
  EXPECT_EQ(bad, 0) << "outputs incomplete or wrong";
  EXPECT_EQ(twice, 0) << "jobs finished twice";
}

// Redis killed with kill -9 (AOF, appendfsync always) during the run, then
// started again: every job whose addJob was answered finishes.
TEST_F(ClusterTest, EveryAcknowledgedJobFinishesAfterRedisIsKilled) {
  startDurableRedis();
  addApi();
  addManager();
  addManager();
  uploadHello();
  std::map<std::int64_t, std::string> names;
  for (int i = 0; i < 80; ++i) {
    const std::string name = "out-" + std::to_string(i);
    if (i == 40) {
      redis_->kill9();
      // While Redis is down: a clear error, and the node keeps answering.
      auto r = api(0).post("/addJob/test/lab/", jobJson("refused"));
      EXPECT_NE(r.body.find("is unreachable"), std::string::npos) << r.body;
      EXPECT_EQ(r.status, 503);
      EXPECT_EQ(api(0).get("/").status, 200);
      std::this_thread::sleep_for(1s);
      redis_->restart();
    }
    auto id = submit(0, name);
    if (id > 0) names[id] = name;
  }
  EXPECT_GE(names.size(), 79u);
  const auto ids = idsOf(names);
  ASSERT_TRUE(waitFinished(ids, 180s));
  for (auto& [id, name] : names) EXPECT_TRUE(outputIsHello(name, id)) << name;
}

// Redis away for longer than a lease while a job runs: the job runs on,
// waits with its output until Redis is back, and finishes once, where it
// ran, rather than going back to the queue because nobody could renew.
TEST_F(ClusterTest, ARunningJobOutlivesARedisOutageLongerThanItsLease) {
  leaseSecs_ = 1;
  startDurableRedis();
  addApi();
  addManager();
  addManager();
  uploadHello();
  auto id = submitSlow(3);
  ASSERT_GT(id, 0);
  ASSERT_TRUE(waitRunning(id));
  redis_->kill9();
  std::this_thread::sleep_for(4s);  // four lease times
  redis_->restart();
  ASSERT_TRUE(waitFinished({id}, 30s));
  auto dead = finished().at(id);
  for (auto& t : dead.at("trace").as_array())
    EXPECT_EQ(std::string(t.as_string()).find("Requeued"), std::string::npos) << t.as_string();
  EXPECT_EQ(finishLines()[id], 1);
  const std::string out = readFile(outputPath("slow.out"));
  EXPECT_NE(out.find("Hello from the sandbox"), std::string::npos) << out;
}

// A manager paused (SIGSTOP) past its lease while it runs a job, then
// resumed: the job runs on another manager, and the paused one, awake
// again, neither overwrites that output nor sends a second callback.
TEST_F(ClusterTest, APausedManagerDoesNotOverwriteTheOutputOfTheNodeThatTookItsJob) {
  leaseSecs_ = 1;
  startRedis();
  addApi();
  addManager();
  uploadHello();
  // A job that runs 4 s.
  auto id = submitSlow(4);
  ASSERT_GT(id, 0);
  // Wait until manager 0 runs it, then pause that manager.
  ASSERT_TRUE(waitRunning(id));
  ::kill(managers_[0]->pid(), SIGSTOP);
  addManager();  // mgr1 takes the job once mgr0's lease lapses
  ASSERT_TRUE(waitFinished({id}, 40s));
  auto dead = finished().at(id);
  EXPECT_EQ(dead.at("node").as_string(), "mgr1");
  const auto out = outputPath("slow.out");
  const std::string first = readFile(out);
  struct stat st1 {};
  ASSERT_EQ(::stat(out.c_str(), &st1), 0);
  ::kill(managers_[0]->pid(), SIGCONT);
  // Long enough for mgr0 to finish its run and try to commit it.
  std::this_thread::sleep_for(6s);
  struct stat st2 {};
  ASSERT_EQ(::stat(out.c_str(), &st2), 0);
  EXPECT_EQ(readFile(out), first);
  EXPECT_EQ(st1.st_ino, st2.st_ino) << "the output file was replaced";
  EXPECT_EQ(st1.st_mtim.tv_nsec, st2.st_mtim.tv_nsec);
  EXPECT_EQ(callbacks()["slow.out"], 1);
  EXPECT_EQ(finishLines()[id], 1);
  EXPECT_NE(managers_[0]->allLogs().find("lease lost"), std::string::npos)
      << "mgr0 noticed it lost the job";
}

// Redis beyond loopback wants a password and TLS: nodes given both (and
// the CA that signed Redis's certificate) run jobs as usual, and the
// password shows in no log.
TEST_F(ClusterTest, NodesReachRedisOverTlsWithAPassword) {
  const TestCerts certs;
  const std::string password = "redis-secret-" + std::to_string(::getpid());
  RedisServerOptions o;
  o.password = password;
  o.tlsCertFile = certs.path("server.crt");
  o.tlsKeyFile = certs.path("server.key");
  o.tlsCaFile = certs.path("ca.crt");
  startRedis(o);
  const std::string tls = "REDIS_TLS = true\nREDIS_TLS_CA_FILE = \"" + certs.path("ca.crt") +
                          "\"\nREDIS_PASSWORD = \"" + password + "\"\n";
  addApi(tls);
  addManager(tls);
  uploadHello();
  auto id = submit(0, "tls.out");
  ASSERT_GT(id, 0);
  ASSERT_TRUE(waitFinished({id}, 60s));
  EXPECT_TRUE(outputIsHello("tls.out", id));
  for (auto* n : {apis_[0].get(), managers_[0].get()})
    EXPECT_EQ(n->allLogs().find(password), std::string::npos);
  // Without the password, a node cannot start its work: it says why.
  try {
    Tangod bad(
        nodeConfig("manager", "nopass",
                   "REDIS_TLS = true\nREDIS_TLS_CA_FILE = \"" + certs.path("ca.crt") + "\"\n"));
    ADD_FAILURE() << "a node without the password started";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("NOAUTH"), std::string::npos) << e.what();
  }
}

// An API node alone reaches the managers: a prealloc made through it sets
// every manager's pool (shown by /pool on any node), and getPartialOutput
// of a job running on a manager comes from that manager.
TEST_F(ClusterTest, AnApiNodeReachesTheManagersForPoolsAndPartialOutput) {
  startRedis();
  addApi();
  addApi();
  addManager();
  addManager();
  uploadHello();
  auto r = api(0).get("/prealloc/test/autograding_image/3/").json();
  ASSERT_EQ(r["statusId"].as_int64(), 0) << json::serialize(r);
  auto freeVms = [&](std::size_t via) -> std::size_t {
    auto p = api(via).get("/pool/test/autograding_image/").json();
    if (p["statusId"].as_int64() != 0) return 0;
    return p["pools"].as_object().at("autograding_image").as_object().at("free").as_array().size();
  };
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < end && freeVms(1) < 6)
    std::this_thread::sleep_for(100ms);
  EXPECT_EQ(freeVms(1), 6u) << "three warm VMs on each of the two managers";
  EXPECT_EQ(freeVms(0), 6u);

  auto id = submitSlow(3);
  ASSERT_GT(id, 0);
  bool seen = false;
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (!seen && std::chrono::steady_clock::now() < until) {
    auto p = api(1).get("/getPartialOutput/test/" + std::to_string(id) + "/").json();
    seen = p["statusId"].as_int64() == 0 &&
           std::string(p["output"].as_string()).find("begun") != std::string::npos;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(seen) << "the second API node got the running job's output from its manager";
  ASSERT_TRUE(waitFinished({id}, 30s));
}

}  // namespace
}  // namespace tango::test

namespace tango::test {
namespace {

using namespace std::chrono_literals;

// A job running on a manager is cancelled through an API node, which runs
// no job itself: the manager learns of it at its next lease renewal, stops
// the VM, and the output and the one callback say it was cancelled.
TEST_F(ClusterTest, ACancelThroughAnApiNodeStopsTheJobOnItsManager) {
  startRedis();
  addApi();
  addManager();
  uploadHello();
  auto id = submitSlow(60);
  ASSERT_GT(id, 0);
  ASSERT_TRUE(waitRunning(id));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = api(0).post("/cancel/test/" + std::to_string(id) + "/", "").json();
  EXPECT_EQ(r["statusId"].as_int64(), 0) << json::serialize(r);
  ASSERT_TRUE(waitFinished({id}, 30s));
  // A renewal every third of the lease (2 s), plus the VM's stop.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_EQ(finished().at(id).at("outcome"), "cancelled");
  const std::string text = readFile(outputPath("slow.out"));
  EXPECT_NE(text.find("Error: Job cancelled while running"), std::string::npos) << text;
  const auto end = std::chrono::steady_clock::now() + 20s;
  while (callbacks()["slow.out"] < 1 && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(100ms);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(callbacks()["slow.out"], 1);
}

}  // namespace
}  // namespace tango::test
