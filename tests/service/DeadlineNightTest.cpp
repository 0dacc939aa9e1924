// A deadline night on `local` (README "Deadline night"): a course's big
// batch does not hold up another course's jobs, a `low` regrade never
// delays a `normal` job, queued jobs show where they stand (also after a
// restart), and jobs can be cancelled, queued or running.
#include <algorithm>
#include <set>

#include "Receiver.hpp"
#include "ServiceFixture.hpp"
#include "tango/model/Job.hpp"

namespace tango::test {
namespace {

using namespace std::chrono_literals;

class DeadlineNightTest : public ServiceTest {
 protected:
  std::string extraConfig() override {
    return "POOL_SIZE = 2\nMAX_CONCURRENT_JOBS = 2\nKEYS = [\"test\", \"other\"]\n"
           "OPERATOR_KEYS = [\"test\"]\n";
  }

  // Uploads a Makefile into `lab` once; jobs() then submit it many times.
  void prepare(const std::string& lab, const std::string& makefile) {
    openLab(lab);
    auto up = upload(lab, "autograde-Makefile", makefile);
    ASSERT_EQ(up["statusId"].as_int64(), 0);
  }
  std::int64_t add(const std::string& lab, const std::string& output, json::object extra = {},
                   const std::string& key = "test") {
    json::object job{{"image", "autograding_image"},
                     {"files", json::array{json::object{{"localFile", "autograde-Makefile"},
                                                        {"destFile", "Makefile"}}}},
                     {"output_file", output},
                     {"jobName", "job-" + output},
                     {"timeout", 60}};
    for (auto& [k, v] : extra) job[k] = v;
    auto r = http->post("/addJob/" + key + "/" + lab + "/", json::serialize(job)).json();
    EXPECT_EQ(r["statusId"].as_int64(), 0) << json::serialize(r);
    if (r["statusId"].as_int64() != 0) return -1;
    return std::stoll(std::string(r["jobId"].as_string()));
  }
  // Every job, live and finished, by id (an operator's view).
  std::map<std::int64_t, json::object> allJobs() {
    std::map<std::int64_t, json::object> out;
    for (const char* which : {"0", "1"}) {
      auto answer = http->get(std::string("/jobs/test/") + which + "/").json();
      for (auto& j : answer["jobs"].as_array())
        out[j.as_object().at("id").as_int64()] = j.as_object();
    }
    return out;
  }
  static double time(const json::object& job, const char* step) {
    return job.at("times").as_object().at(step).to_number<double>();
  }
  json::object cancel(std::int64_t id, const std::string& key = "test") {
    return http->post("/cancel/" + key + "/" + std::to_string(id) + "/", "").json();
  }
};

// Two courselabs: one with 500 queued jobs, one that submits 5 later. The
// 5 start within about one job's run time per VM, not after the 500.
TEST_F(DeadlineNightTest, ALateCourseIsNotStuckBehindABigBatch) {
  prepare("batch", "all:\n\t@sleep 0.3; echo batch\n");
  prepare("late", "all:\n\t@sleep 0.3; echo late\n");
  for (int i = 0; i < 500; ++i) ASSERT_GT(add("batch", "b" + std::to_string(i) + ".out"), 0);
  std::vector<std::int64_t> late;
  for (int i = 0; i < 5; ++i) late.push_back(add("late", "l" + std::to_string(i) + ".out"));
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(waitOutput("late", "l" + std::to_string(i) + ".out", 120s)) << i;
  auto jobs = allJobs();
  const double lateQueued = time(jobs.at(late[0]), "queued");
  double lastLateStart = 0;
  for (auto id : late) lastLateStart = std::max(lastLateStart, time(jobs.at(id), "assigned"));
  // The batch jobs that started between the late course's first submission
  // and the start of its last job: with fair shares the two courses
  // alternate on the two VMs (about 5); first in first out, hundreds.
  int batchStarted = 0, batchQueuedAhead = 0;
  std::vector<double> runs;
  for (auto& [id, j] : jobs) {
    if (j.at("courselab").as_string() != "batch") continue;
    const double started = time(j, "assigned");
    if (started > lateQueued && started < lastLateStart) ++batchStarted;
    if (started == 0 || started > lastLateStart) ++batchQueuedAhead;
    if (time(j, "finished") > 0) runs.push_back(time(j, "finished") - started);
  }
  EXPECT_GT(batchQueuedAhead, 300) << "the batch had not drained: the test shows nothing";
  EXPECT_LE(batchStarted, 8) << "batch jobs started while the late course waited";
  // Its first job waited about one run per VM (two VMs), not the batch.
  ASSERT_FALSE(runs.empty());
  std::sort(runs.begin(), runs.end());
  const double run = runs[runs.size() / 2];
  const double firstWait = time(jobs.at(late[0]), "assigned") - lateQueued;
  EXPECT_LT(firstWait, 2 * run + 1.0) << "median run " << run << " s";
  // Cancel the rest of the batch: every queued one, none of the late's.
  auto r = http->post("/cancelQueued/test/batch/", "").json();
  EXPECT_EQ(r["statusId"].as_int64(), 0) << json::serialize(r);
  EXPECT_GT(r["jobIds"].as_array().size(), 300u);
  auto liveAnswer = http->get("/jobs/test/0/").json();
  for (auto& j : liveAnswer["jobs"].as_array())
    EXPECT_TRUE(j.as_object().at("assigned").as_bool()) << json::serialize(j);
}

// A `low` regrade batch never delays a `normal` job of any course.
TEST_F(DeadlineNightTest, ALowRegradeNeverDelaysANormalJob) {
  prepare("regrade", "all:\n\t@sleep 0.2; echo regrade\n");
  prepare("live", "all:\n\t@echo live\n");
  for (int i = 0; i < 40; ++i)
    ASSERT_GT(add("regrade", "r" + std::to_string(i) + ".out", {{"priority", "low"}}), 0);
  std::vector<std::int64_t> normal;
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(300ms);
    normal.push_back(add("live", "n" + std::to_string(i) + ".out"));
  }
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(waitOutput("live", "n" + std::to_string(i) + ".out", 60s)) << i;
  auto jobs = allJobs();
  for (auto id : normal) {
    const double queued = time(jobs.at(id), "queued"), started = time(jobs.at(id), "assigned");
    int passed = 0;  // low jobs that started while this one waited
    for (auto& [lowId, j] : jobs)
      if (j.at("priority") == "low" && time(j, "assigned") > queued &&
          time(j, "assigned") < started)
        ++passed;
    // At most one: a VM being handed out as the job was being committed.
    EXPECT_LE(passed, 1) << "job " << id;
  }
  EXPECT_EQ(jobs.at(normal[0]).at("priority"), "normal");
  http->post("/cancelQueued/test/regrade/", "");
}

TEST_F(DeadlineNightTest, PrioritiesAreBoundedByTheKey) {
  prepare("lab", "all:\n\t@echo x\n");
  json::object job{{"image", "autograding_image"},
                   {"files", json::array{json::object{{"localFile", "autograde-Makefile"},
                                                      {"destFile", "Makefile"}}}},
                   {"output_file", "p.out"},
                   {"jobName", "p"}};
  for (auto [value, error] :
       {std::pair<json::value, std::string>{"high",
                                            "Invalid priority 'high': this key may ask for at most "
                                            "'normal'"},
        {"urgent", "field 'priority' must be low, normal or high"},
        {7, "field 'priority' must be low, normal or high"}}) {
    job["priority"] = value;
    auto r = http->post("/addJob/test/lab/", json::serialize(job)).json();
    EXPECT_EQ(r["statusId"].as_int64(), -1);
    EXPECT_NE(std::string(r["statusMsg"].as_string()).find(error), std::string::npos)
        << json::serialize(r);
  }
  EXPECT_TRUE(http->get("/jobs/test/0/").json()["jobs"].as_array().empty());
}

// Queued jobs show their position and an estimated start, in /jobs and in
// the poll's not-found answer; a restart keeps priorities and positions.
TEST_F(DeadlineNightTest, QueuePositionsAndTheirRestart) {
  prepare("lab", "all:\n\t@sleep 30\n");
  prepare("other", "all:\n\t@echo x\n");
  add("lab", "busy1.out");
  add("lab", "busy2.out");  // both VMs busy
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    int running = 0;
    auto answer = http->get("/jobs/test/0/").json();
    for (auto& j : answer["jobs"].as_array()) running += j.as_object().at("assigned").as_bool();
    if (running == 2) break;
    std::this_thread::sleep_for(50ms);
  }
  auto low = add("lab", "low.out", {{"priority", "low"}});
  auto a1 = add("lab", "a1.out");
  auto a2 = add("lab", "a2.out");
  auto o1 = add("other", "o1.out");
  // In start order: the other courselab's first (lab holds both VMs), then
  // lab's in order, then the low one.
  const std::map<std::int64_t, std::int64_t> want{{o1, 0}, {a1, 1}, {a2, 2}, {low, 3}};
  auto positions = [&] {
    std::map<std::int64_t, std::int64_t> got;
    auto answer = http->get("/jobs/test/0/").json();
    for (auto& j : answer["jobs"].as_array()) {
      auto& o = j.as_object();
      if (o.at("queuePosition").is_null()) continue;
      got[o.at("id").as_int64()] = o.at("queuePosition").as_int64();
      EXPECT_GT(o.at("estimatedStart").to_number<double>(), nowSeconds() - 1);
    }
    return got;
  };
  EXPECT_EQ(positions(), want);
  auto poll = http->get("/poll/test/lab/a2.out").json();
  EXPECT_EQ(poll["statusId"].as_int64(), -1);
  EXPECT_EQ(poll["statusMsg"].as_string(), "Output file not found");
  EXPECT_EQ(poll["queuePosition"].as_int64(), 2);
  EXPECT_EQ(poll["jobId"].as_int64(), a2);
  EXPECT_GT(poll["estimatedWaitSecs"].to_number<double>(), 0);
  // A running job's poll is Tango's answer alone.
  auto busy = http->get("/poll/test/lab/busy1.out").json();
  EXPECT_FALSE(busy.contains("queuePosition")) << json::serialize(busy);

  tangod->stop(SIGKILL);
  tangod->start();
  restartHttp();
  // The two that ran are queued again, first (they are the oldest of lab,
  // which now holds no VM)... and the order of the rest is kept.
  auto jobs = allJobs();
  EXPECT_EQ(jobs.at(low).at("priority"), "low");
  auto after = positions();
  // Whatever started since the restart has no position; the rest keep
  // their relative order, the low one last.
  std::vector<std::int64_t> order;
  for (auto& [id, pos] : after) order.push_back(id);
  std::sort(order.begin(), order.end(), [&](auto x, auto y) { return after[x] < after[y]; });
  ASSERT_FALSE(order.empty());
  EXPECT_EQ(order.back(), low);
  std::vector<std::int64_t> mine;
  for (auto id : order)
    if (id == a1 || id == a2) mine.push_back(id);
  if (mine.size() == 2) {
    EXPECT_EQ(mine, (std::vector<std::int64_t>{a1, a2}));
  }
}

TEST_F(DeadlineNightTest, CancelAQueuedAndARunningJob) {
  Receiver receiver;
  const std::string url = "http://127.0.0.1:" + std::to_string(receiver.port()) + "/cb";
  prepare("lab", "all:\n\t@echo started; sleep 60\n");
  auto running1 = add("lab", "run1.out", {{"callback_url", url}});
  auto running2 = add("lab", "run2.out");
  auto queued = add("lab", "queued.out", {{"callback_url", url}});
  // Wait until both run, on their VMs.
  std::map<std::int64_t, json::object> jobs;
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    jobs = allJobs();
    if (jobs.at(running1).at("step") == "runJob" && jobs.at(running2).at("step") == "runJob") break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(jobs.at(running1).at("step"), "runJob") << json::serialize(jobs.at(running1));
  const auto vmId = jobs.at(running1).at("vm").as_object().at("id").as_int64();

  // Queued: cancelled at once, its output says so, its callback goes.
  auto r = cancel(queued);
  EXPECT_EQ(r["statusId"].as_int64(), 0) << json::serialize(r);
  EXPECT_EQ(r["statusMsg"].as_string(),
            "Job " + std::to_string(queued) + " cancelled while queued");
  auto out = http->get("/poll/test/lab/queued.out");
  ASSERT_EQ(out.contentType, "application/octet-stream") << out.body;
  EXPECT_TRUE(std::regex_match(
      out.body, std::regex("Autograder \\[" + ctimeRe() + "\\]: Received job job-queued.out:" +
                           std::to_string(queued) + "\nAutograder \\[" + ctimeRe() +
                           "\\]: Error: Job cancelled while queued\n")))
      << out.body;

  // Running: its VM is stopped, its output says so within moments.
  const auto t0 = std::chrono::steady_clock::now();
  r = cancel(running1);
  EXPECT_EQ(r["statusId"].as_int64(), 0) << json::serialize(r);
  auto runOut = waitOutput("lab", "run1.out", 20s);
  ASSERT_TRUE(runOut) << tangod->log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_NE(runOut->find("Error: Job cancelled while running"), std::string::npos) << *runOut;
  auto dead = waitDead(running1);
  ASSERT_TRUE(dead);
  EXPECT_EQ((*dead)["outcome"], "cancelled");
  std::string last(dead->at("trace").as_array().back().as_string());
  EXPECT_EQ(last.substr(last.find('|') + 1), "Error: Job cancelled while running");
  // Its VM is gone (the pool made another), the other job still runs.
  auto pools = http->get("/pool/test/").json()["pools"].as_object();
  for (auto& [image, p] : pools)
    for (auto& id : p.as_object().at("total").as_array()) EXPECT_NE(id.as_int64(), vmId);
  EXPECT_FALSE(std::filesystem::exists(tangod->dataDir() / "courselabs/test-lab/output/run2.out"));

  // Each callback once, with the cancelled output.
  deadline = std::chrono::steady_clock::now() + 20s;
  while (receiver.completeRequests().size() < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  std::this_thread::sleep_for(500ms);
  auto calls = receiver.completeRequests();
  ASSERT_EQ(calls.size(), 2u);
  int queuedCalls = 0, runCalls = 0;
  for (const auto& c : calls) {
    queuedCalls += c.find("queued.out") != std::string::npos;
    runCalls += c.find("run1.out") != std::string::npos;
    EXPECT_NE(c.find("Error: Job cancelled while"), std::string::npos) << c;
  }
  EXPECT_EQ(queuedCalls, 1);
  EXPECT_EQ(runCalls, 1);

  // A finished job, an unknown one, another key's, a bad id: clear errors.
  r = cancel(queued);
  EXPECT_EQ(r["statusId"].as_int64(), -1);
  EXPECT_EQ(r["statusMsg"].as_string(),
            "Job " + std::to_string(queued) + " has already finished: nothing to cancel");
  r = cancel(999999);
  EXPECT_EQ(r["statusMsg"].as_string(), "Job 999999 not found");
  r = cancel(running2, "other");
  EXPECT_EQ(r["statusMsg"].as_string(), "Job " + std::to_string(running2) + " not found");
  r = http->post("/cancel/test/x1/", "").json();
  EXPECT_EQ(r["statusMsg"].as_string(), "Invalid job id: must be a positive integer");
  EXPECT_EQ(http->get("/cancel/test/1/").json()["statusId"].as_int64(), -1);
  r = http->post("/cancel/nokey/1/", "").json();
  EXPECT_EQ(r["statusMsg"].as_string(), "Key not recognized");
  // The other job ran on untouched.
  auto live = allJobs();
  EXPECT_EQ(live.at(running2).at("state"), "running");
  cancel(running2);
  ASSERT_TRUE(waitOutput("lab", "run2.out", 20s));
}

}  // namespace
}  // namespace tango::test
