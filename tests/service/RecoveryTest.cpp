// Durability: kill -9 at any moment loses nothing; callbacks are delivered.
#include <signal.h>

#include <fstream>
#include <set>

#include "Receiver.hpp"
#include "ServiceFixture.hpp"

namespace tango::test {
namespace {

class RecoveryTest : public ServiceTest {
 protected:
  std::string extraConfig() override { return "POOL_SIZE = 2\n"; }
};

TEST_F(RecoveryTest, FiftyJobsSurviveKillNineAndFinishExactlyOnce) {
  openLab("lab");
  // Exactly-once is checked from the outside: each job's output is its own,
  // and the dead list holds every id once. Each job has its own Makefile name
  // (jobs of one courselab share its files, as in Tango).
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 50; ++i)
    ids.push_back(submit("lab",
                         {{"autograde-Makefile-" + std::to_string(i),
                           "all:\n\t@sleep 0.2; echo job " + std::to_string(i) + "\n"}},
                         "r" + std::to_string(i) + ".out"));
  // Let some finish and some run, then kill -9 in the middle of it: at a
  // moment when a job runs (jobs end in pairs, and for a few ms between a
  // pair and the next none is assigned).
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  int running = 0;
  const auto runningBy = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (running == 0 && std::chrono::steady_clock::now() < runningBy) {
    auto live = http->get("/jobs/test/0/").json()["jobs"].as_array();
    for (auto& j : live) running += j.as_object().at("assigned").as_bool() ? 1 : 0;
  }
  EXPECT_GT(running, 0) << "the kill should hit running jobs";
  int status = tangod->stop(SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(status));

  tangod->start();
  restartHttp();
  for (int i = 0; i < 50; ++i) {
    auto out = waitOutput("lab", "r" + std::to_string(i) + ".out", std::chrono::seconds(120));
    ASSERT_TRUE(out) << "job " << i;
    EXPECT_TRUE(
        out->ends_with("Autodriver: Job exited with status 0\njob " + std::to_string(i) + "\n"))
        << *out;
  }
  // Wait until the live list is empty, then every id is dead exactly once.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline &&
         !http->get("/jobs/test/0/").json()["jobs"].as_array().empty())
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto dead = http->get("/jobs/test/1/").json()["jobs"].as_array();
  std::multiset<std::int64_t> seen;
  for (auto& j : dead) seen.insert(j.as_object().at("id").as_int64());
  for (auto id : ids) EXPECT_EQ(seen.count(id), 1u) << "job " << id;
  EXPECT_EQ(dead.size(), ids.size());
  // No sandbox directory of a killed run is left over.
  EXPECT_LE(tangod->vmDirs().size(), 2u) << "only the warm pool remains";
}

TEST_F(RecoveryTest, CallbackDeliversTheOutputAsMultipart) {
  Receiver receiver;
  auto id =
      submit("lab", {{"autograde-Makefile", "all:\n\t@echo called back\n"}}, "cb.out",
             {{"callback_url", "http://127.0.0.1:" + std::to_string(receiver.port()) + "/cb"}});
  auto out = waitOutput("lab", "cb.out");
  ASSERT_TRUE(out);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline && receiver.requests().empty())
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto reqs = receiver.requests();
  ASSERT_EQ(reqs.size(), 1u);
  const auto& req = reqs.front();
  EXPECT_EQ(req.rfind("POST /cb HTTP/1.1\r\n", 0), 0u);
  EXPECT_NE(req.find("Filename: cb.out\r\n"), std::string::npos);
  EXPECT_NE(req.find("multipart/form-data"), std::string::npos);
  EXPECT_NE(req.find("name=\"file\""), std::string::npos);
  EXPECT_NE(req.find(*out), std::string::npos) << "the whole output file is the form field";
  auto job = waitDead(id);
  ASSERT_TRUE(job);
  // The delivery is recorded beside the trace; the trace still ends with
  // the outcome (Autolab reads its last entry as the job's status).
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::string state;
  while (state != "delivered" && std::chrono::steady_clock::now() < deadline) {
    job = deadJob(id);
    state = std::string((*job)["callback"].as_object()["state"].as_string());
    if (state != "delivered") std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(state, "delivered");
  auto& trace = (*job)["trace"].as_array();
  EXPECT_TRUE(
      std::string(trace.back().as_string()).ends_with("|Success: Autodriver returned normally"))
      << json::serialize(trace);
}

TEST_F(RecoveryTest, PendingCallbackIsSentAfterRestart) {
  // The receiver is down while the job finishes; the service is killed while
  // it is still retrying; after the restart the callback arrives.
  int port;
  {
    Receiver probe;  // a free port, closed again
    port = probe.port();
  }
  auto id = submit("lab", {{"autograde-Makefile", "all:\n\t@echo later\n"}}, "late.out",
                   {{"callback_url", "http://127.0.0.1:" + std::to_string(port) + "/cb"}});
  ASSERT_TRUE(waitOutput("lab", "late.out"));
  ASSERT_TRUE(waitDead(id));
  tangod->stop(SIGKILL);

  Receiver receiver(port);
  ASSERT_EQ(receiver.port(), port);
  tangod->start();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline && receiver.requests().empty())
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(receiver.requests().size(), 1u);
  EXPECT_NE(receiver.requests().front().find("later"), std::string::npos);
}

TEST_F(RecoveryTest, AJobWhoseWholeOutputWasPublishedBeforeACrashIsNotRunAgain) {
  // A run published the job's output, then the service died before it could
  // record the finish (the window is too short to hit at will, so the test
  // plants that output while the service is down). After the restart the job
  // finishes from it: not run again, its callback sent once.
  Receiver receiver;
  const std::string cb = "http://127.0.0.1:" + std::to_string(receiver.port()) + "/cb";
  const std::string blocker = "all:\n\t@sleep 3; echo blocker\n";
  for (int i = 0; i < 2; ++i)
    ASSERT_GT(submit("lab", {{"autograde-Makefile-b" + std::to_string(i), blocker}},
                     "b" + std::to_string(i) + ".out"),
              0);
  auto id = submit("lab", {{"autograde-Makefile-j", "all:\n\t@echo second run\n"}}, "j.out",
                   {{"callback_url", cb}});
  ASSERT_GT(id, 0);
  std::string outputFile;
  auto live = http->get("/jobs/test/0/").json();
  for (auto& j : live["jobs"].as_array())
    if (j.as_object().at("id").as_int64() == id) {
      EXPECT_FALSE(j.as_object().at("assigned").as_bool()) << "still queued behind the blockers";
      outputFile = std::string(j.as_object().at("outputFile").as_string());
    }
  ASSERT_FALSE(outputFile.empty());
  tangod->stop(SIGKILL);
  const std::string published =
      "Autograder [Thu Dec  3 10:00:00 2026]: Received job job-j.out:" + std::to_string(id) +
      "\nAutograder [Thu Dec  3 10:00:00 2026]: Success: Autodriver returned normally\n"
      "Autograder [Thu Dec  3 10:00:00 2026]: Here is the output from the autograder:\n---\n"
      "Autodriver: Job exited with status 0\nfirst run\n";
  std::ofstream(outputFile) << published;

  tangod->start();
  restartHttp();
  auto job = waitDead(id);
  ASSERT_TRUE(job);
  EXPECT_EQ(readFile(outputFile), published);
  EXPECT_EQ((*job)["outcome"].as_string(), "success");
  const auto& trace = (*job)["trace"].as_array();
  const std::string all = json::serialize(trace);
  EXPECT_NE(all.find("not run again: its output was complete before the service stopped"),
            std::string::npos)
      << all;
  EXPECT_EQ(all.find("Dispatched job job-j.out"), std::string::npos) << all;
  EXPECT_TRUE(
      std::string(trace.back().as_string()).ends_with("|Success: Autodriver returned normally"))
      << all;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline && receiver.requests().empty())
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // a second one would come now
  ASSERT_EQ(receiver.requests().size(), 1u);
  EXPECT_NE(receiver.requests().front().find("first run"), std::string::npos);
  // The blockers, running when the service died, ran again to the end.
  for (int i = 0; i < 2; ++i) {
    auto out = waitOutput("lab", "b" + std::to_string(i) + ".out", std::chrono::seconds(60));
    ASSERT_TRUE(out);
    EXPECT_TRUE(out->ends_with("blocker\n")) << *out;
  }
}

}  // namespace
}  // namespace tango::test
