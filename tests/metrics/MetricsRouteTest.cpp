// GET /metrics of a real tangod after a job: key rules, content type, the
// values, and the whole page through promtool (a parser we did not write).
#include <regex>

#include "../service/ServiceFixture.hpp"
#include "PromTool.hpp"

namespace tango::test {
namespace {

using MetricsRoute = ServiceTest;

double value(const std::string& text, const std::string& series) {
  auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

TEST_F(MetricsRoute, NeedsAKey) {
  EXPECT_EQ(http->get("/metrics").status, 403);
  EXPECT_EQ(http->get("/metrics?key=wrong").status, 403);
  auto byQuery = http->get("/metrics?key=test");
  EXPECT_EQ(byQuery.status, 200);
  EXPECT_EQ(byQuery.contentType, "text/plain; version=0.0.4; charset=utf-8");
  auto byHeader = http->request("GET", "/metrics", "", {{"X-Tango-Key", "test"}});
  EXPECT_EQ(byHeader.status, 200);
  EXPECT_EQ(http->request("GET", "/metrics", "", {{"X-Tango-Key", "nope"}}).status, 403);
}

class OpenMetricsRoute : public ServiceTest {
 protected:
  std::string extraConfig() override { return "OPERATOR_ROUTES_NEED_KEY = false\n"; }
};

TEST_F(OpenMetricsRoute, ConfigCanOpenTheOperatorRoutes) {
  EXPECT_EQ(http->get("/metrics").status, 200);
  EXPECT_EQ(http->get("/status/").status, 200);
  // The Tango routes still need their key.
  EXPECT_EQ(http->get("/info/nokey/").json()["statusMsg"].as_string(), "Key not recognized");
}

TEST_F(MetricsRoute, CountsAJobAndParsesWithPromtool) {
  auto id = submit("lab", {{"autograde-Makefile", kHelloMakefile}, {"hello.sh", kHelloScript}},
                   "hello.out");
  ASSERT_GT(id, 0);
  // Its own courselab: jobs of one courselab share its files, so uploading
  // this Makefile to "lab" could replace the hello job's before it runs.
  auto fail = submit("lab2", {{"autograde-Makefile", "all:\n\t@exit 3\n"}}, "fail.out");
  // The metrics must agree with the outcomes the service recorded.
  std::map<std::string, int> outcomes;
  for (auto job : {id, fail}) {
    auto done = waitDead(job);
    ASSERT_TRUE(done);
    ++outcomes[std::string((*done)["outcome"].as_string())];
  }
  EXPECT_EQ(outcomes["success"], 1);
  EXPECT_EQ(outcomes["make_failed"], 1);

  std::string text;
  // The VM is destroyed (and the worker thread reaped) just after the job is
  // marked finished: wait for that to be counted.
  for (int i = 0; i < 100; ++i) {
    text = http->get("/metrics?key=test").body;
    if (value(text, "tango_vmms_step_duration_seconds_count{step=\"destroyVM\"}") >= 2 &&
        value(text, "tango_running_jobs") == 0)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto check = promtoolCheck(text);
  EXPECT_TRUE(check.ok) << check.output << "\n" << text;

  EXPECT_EQ(value(text, "tango_jobs_received_total"), 2) << text;
  EXPECT_EQ(value(text, "tango_jobs_finished_total{outcome=\"success\"}"), outcomes["success"])
      << text;
  EXPECT_EQ(value(text, "tango_jobs_finished_total{outcome=\"make_failed\"}"),
            outcomes["make_failed"])
      << text;
  EXPECT_EQ(value(text, "tango_jobs_finished_total{outcome=\"timeout\"}"), 0) << text;
  EXPECT_EQ(value(text, "tango_job_retries_total"), 0) << text;
  EXPECT_EQ(value(text, "tango_queue_length"), 0) << text;
  EXPECT_EQ(value(text, "tango_running_jobs"), 0) << text;
  EXPECT_EQ(value(text, "tango_job_latency_seconds_count"), 2) << text;
  EXPECT_EQ(value(text, "tango_job_latency_seconds_bucket{le=\"+Inf\"}"), 2) << text;
  for (const char* step : {"waitVM", "copyIn", "runJob", "copyOut", "destroyVM"}) {
    EXPECT_EQ(
        value(text, std::string("tango_vmms_step_duration_seconds_count{step=\"") + step + "\"}"),
        2)
        << step << "\n"
        << text;
  }
  EXPECT_EQ(value(text, "tango_vmms_errors_total{call=\"copyIn\"}"), 0) << text;
  EXPECT_GE(value(text, "tango_pool_vms{image=\"autograding_image\",state=\"total\"}"), 1) << text;
  EXPECT_GE(value(text, "tango_pool_vms{image=\"autograding_image\",state=\"free\"}"), 0) << text;
  EXPECT_EQ(value(text, "tango_callbacks_delivered_total"), 0) << text;
  EXPECT_EQ(value(text, "tango_callbacks_failed_total"), 0) << text;
  for (const char* family :
       {"tango_jobs_received_total counter", "tango_vmms_step_duration_seconds histogram",
        "tango_job_latency_seconds histogram", "tango_pool_vms gauge"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + family + "\n"), std::string::npos) << family;
  }
}

// One VM: a job holds it while another courselab's job waits, and /metrics
// shows both per courselab, with the wait, then the wait in the histogram.
class OneVmMetrics : public ServiceTest {
 protected:
  std::string extraConfig() override { return "POOL_SIZE = 1\nMAX_CONCURRENT_JOBS = 1\n"; }
};

TEST_F(OneVmMetrics, ShowsEachCourselabsQueueAndWait) {
  auto slow = submit("malloclab", {{"autograde-Makefile", "autograde:\n\t@sleep 3\n"}}, "slow.out");
  ASSERT_GT(slow, 0);
  std::string text;
  for (int i = 0;
       i < 200 &&
       value(text, "tango_courselab_jobs{courselab=\"malloclab\",state=\"running\"}") != 1;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    text = http->get("/metrics?key=test").body;
  }
  auto waiting = submit("datalab", {{"autograde-Makefile", "autograde:\n\t@true\n"}}, "quick.out");
  ASSERT_GT(waiting, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  text = http->get("/metrics?key=test").body;
  EXPECT_EQ(value(text, "tango_courselab_jobs{courselab=\"malloclab\",state=\"running\"}"), 1)
      << text;
  EXPECT_EQ(value(text, "tango_courselab_jobs{courselab=\"datalab\",state=\"queued\"}"), 1) << text;
  EXPECT_EQ(value(text, "tango_courselab_jobs{courselab=\"datalab\",state=\"running\"}"), 0)
      << text;
  EXPECT_GE(value(text, "tango_courselab_oldest_wait_seconds{courselab=\"datalab\"}"), 1.0) << text;
  auto check = promtoolCheck(text);
  EXPECT_TRUE(check.ok) << check.output << "\n" << text;

  ASSERT_TRUE(waitDead(slow));
  ASSERT_TRUE(waitDead(waiting));
  text = http->get("/metrics?key=test").body;
  // Both started once; the second waited about as long as the first ran.
  EXPECT_EQ(value(text, "tango_job_queue_wait_seconds_count"), 2) << text;
  EXPECT_GE(value(text, "tango_job_queue_wait_seconds_sum"), 1.0) << text;
  // No live jobs: no per-courselab series left behind.
  EXPECT_EQ(text.find("tango_courselab_jobs{"), std::string::npos) << text;
}

}  // namespace
}  // namespace tango::test
