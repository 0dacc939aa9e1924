// Cancel on localDocker: a queued job and a running one. The running job's
// container is gone, both outputs say they were cancelled, and each
// callback goes once.
#include "../service/Receiver.hpp"
#include "DockerFixture.hpp"
#include "tango/model/Job.hpp"

namespace tango::test {
namespace {

using namespace std::chrono_literals;

class DockerCancelTest : public DockerTest {
 protected:
  std::string dockerConfig() override { return "MAX_CONCURRENT_JOBS = 1\n"; }
};

TEST_F(DockerCancelTest, AQueuedAndARunningJob) {
  Receiver receiver;
  const std::string url = "http://127.0.0.1:" + std::to_string(receiver.port()) + "/cb";
  const std::map<std::string, std::string> files{
      {"autograde-Makefile", "all:\n\t@echo started; sleep 60\n"}};
  auto running = submitTo("lab", files, "run.out", {{"callback_url", url}});
  auto queued = submitTo("lab", files, "queued.out", {{"callback_url", url}});
  ASSERT_GT(running, 0);
  ASSERT_GT(queued, 0);
  json::object job;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto answer = http->get("/jobs/test/0/").json();
    for (auto& j : answer["jobs"].as_array())
      if (j.as_object().at("id").as_int64() == running) job = j.as_object();
    if (job.contains("step") && job.at("step") == "runJob") break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(job.at("step"), "runJob") << json::serialize(job) << tangod->log();
  TangoMachine vm;
  vm.id = job.at("vm").as_object().at("id").as_int64();
  vm.name = std::string(job.at("vm").as_object().at("name").as_string());
  const std::string container = instanceName(prefix, vm);
  ASSERT_TRUE(engine.inspectContainer(container)) << container;

  auto r = http->post("/cancel/test/" + std::to_string(queued) + "/", "").json();
  EXPECT_EQ(r["statusId"].as_int64(), 0) << json::serialize(r);
  auto out = waitOutput("lab", "queued.out", 5s);
  ASSERT_TRUE(out);
  EXPECT_NE(out->find("Error: Job cancelled while queued"), std::string::npos) << *out;

  const auto t0 = std::chrono::steady_clock::now();
  r = http->post("/cancel/test/" + std::to_string(running) + "/", "").json();
  EXPECT_EQ(r["statusId"].as_int64(), 0) << json::serialize(r);
  out = waitOutput("lab", "run.out", 30s);
  ASSERT_TRUE(out) << tangod->log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 15s);
  EXPECT_NE(out->find("Error: Job cancelled while running"), std::string::npos) << *out;
  EXPECT_FALSE(engine.inspectContainer(container)) << container << " is still there";
  deadline = std::chrono::steady_clock::now() + 20s;
  while (containersOfPrefix() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(100ms);
  EXPECT_EQ(containersOfPrefix(), 0u);

  deadline = std::chrono::steady_clock::now() + 20s;
  while (receiver.completeRequests().size() < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  std::this_thread::sleep_for(500ms);
  auto calls = receiver.completeRequests();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_NE(calls[0].find("Error: Job cancelled while"), std::string::npos);
  EXPECT_NE(calls[1].find("Error: Job cancelled while"), std::string::npos);
  const bool oneEach = (calls[0].find("run.out") != std::string::npos) !=
                       (calls[1].find("run.out") != std::string::npos);
  EXPECT_TRUE(oneEach) << "each job's callback once";
}

}  // namespace
}  // namespace tango::test
