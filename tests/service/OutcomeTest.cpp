// How a finished job reads for Autolab: its trace ends with the outcome
// line whatever happened after it (a callback), and a job that could not be
// completed says why in its output file, in one plain line, while the log
// carries the details under the job's id.
#include <filesystem>

#include "Receiver.hpp"
#include "ServiceFixture.hpp"

namespace tango::test {
namespace {

class OutcomeTest : public ServiceTest {
 protected:
  // One job at a time, so a queued job can be tampered with before it runs.
  std::string extraConfig() override { return "POOL_SIZE = 1\nMAX_CONCURRENT_JOBS = 1\n"; }

  // The job's trace once it is finished and, with a callback, once the
  // callback's fate is recorded.
  json::array finishedTrace(std::int64_t id, bool callback) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      auto job = deadJob(id);
      if (job && (!callback || (*job)["callback"].as_object()["state"] == "delivered"))
        return (*job)["trace"].as_array();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "job " << id << " did not finish" << (callback ? " with its callback" : "");
    return {};
  }

  static std::string last(const json::array& trace) {
    if (trace.empty()) return "";
    std::string entry(trace.back().as_string());
    return entry.substr(entry.find('|') + 1);
  }
};

TEST_F(OutcomeTest, TheOutcomeIsTheLastTraceEntryWithAndWithoutACallback) {
  Receiver receiver;
  const std::string url = "http://127.0.0.1:" + std::to_string(receiver.port()) + "/cb";
  struct Case {
    std::string name, makefile, outcome;
    int timeout;
  };
  const std::vector<Case> cases{
      {"ok", "all:\n\t@echo fine\n", "Success: Autodriver returned normally", 20},
      {"fails", "all:\n\t@echo broken; exit 3\n", "Success: Autodriver returned normally", 20},
      {"slow", "all:\n\t@sleep 30\n", "Error: Job timed out after 1 seconds", 1},
  };
  for (const auto& c : cases) {
    for (bool withCallback : {false, true}) {
      SCOPED_TRACE(c.name + (withCallback ? " with a callback" : " without a callback"));
      const std::string out = c.name + (withCallback ? "-cb" : "") + ".out";
      json::object extra{{"timeout", c.timeout}};
      if (withCallback) extra["callback_url"] = url;
      auto id = submit("lab", {{"autograde-Makefile", c.makefile}}, out, extra);
      ASSERT_GT(id, 0);
      auto trace = finishedTrace(id, withCallback);
      EXPECT_EQ(last(trace), c.outcome) << json::serialize(trace);
      for (const auto& t : trace)
        EXPECT_EQ(std::string(t.as_string()).find("Callback"), std::string::npos)
            << "callbacks are not traced";
    }
  }
}

TEST_F(OutcomeTest, AJobThatCannotBeCompletedSaysWhyInItsOutputAndTheLogHasTheDetails) {
  Receiver receiver;
  const std::string url = "http://127.0.0.1:" + std::to_string(receiver.port()) + "/cb";
  // The blocker holds the only slot while the next jobs' inputs disappear
  // from their courselabs: every copy-in of those jobs then fails.
  // Its own courselab: its Makefile must not be replaced by the next upload.
  auto blocker =
      submit("blocker-lab", {{"autograde-Makefile", "all:\n\t@sleep 2\n"}}, "blocker.out");
  ASSERT_GT(blocker, 0);
  auto id = submit("lab", {{"autograde-Makefile", "all:\n\t@cat data.txt\n"}, {"data.txt", "x"}},
                   "lost.out", {{"callback_url", url}});
  ASSERT_GT(id, 0);
  auto quiet = submit(
      "lab2", {{"autograde-Makefile", "all:\n\t@cat data.txt\n"}, {"data.txt", "y"}}, "quiet.out");
  ASSERT_GT(quiet, 0);
  const auto labs = tangod->dataDir() / "courselabs";
  ASSERT_TRUE(std::filesystem::remove(labs / "test-lab" / "data.txt"));
  ASSERT_TRUE(std::filesystem::remove(labs / "test-lab2" / "data.txt"));
  auto out = waitOutput("lab", "lost.out");
  ASSERT_TRUE(out) << tangod->log();
  // Tango's header lines, then the cause in plain words; no host path.
  const std::regex re("^Autograder \\[" + ctimeRe() + "\\]: Received job job-lost.out:" +
                      std::to_string(id) + "\nAutograder \\[" + ctimeRe() +
                      "\\]: Internal error: Unable to complete job after 3 tries. Please "
                      "resubmit\nAutograder \\[" +
                      ctimeRe() +
                      "\\]: Job status: waitVM=0 copyIn=-1 runJob=None copyOut=None\n"
                      "Autograder \\[" +
                      ctimeRe() +
                      "\\]: Cause: the job's files could not be copied into the VM \\(details "
                      "in the service's log under job " +
                      std::to_string(id) + "\\)\n$");
  EXPECT_TRUE(std::regex_match(*out, re)) << *out;
  EXPECT_EQ(out->find(labs.string()), std::string::npos);
  // The log line with the details names the job.
  const std::string log = tangod->log();
  const std::regex logLine("job " + std::to_string(id) +
                           " \\(job-lost.out:\\d+\\): could not be completed after 3 tries: "
                           "copyIn failed: [^\\n]*data.txt");
  EXPECT_TRUE(std::regex_search(log, logLine)) << log;
  // Its trace ends with the outcome, after the callback was delivered too,
  // and so does the trace of the same failure without a callback.
  auto trace = finishedTrace(id, /*callback=*/true);
  EXPECT_TRUE(last(trace).starts_with("Error: job failed after 3 tries")) << json::serialize(trace);
  ASSERT_TRUE(waitOutput("lab2", "quiet.out"));
  auto quietTrace = finishedTrace(quiet, /*callback=*/false);
  EXPECT_TRUE(last(quietTrace).starts_with("Error: job failed after 3 tries"))
      << json::serialize(quietTrace);
}

}  // namespace
}  // namespace tango::test
