// The job, pool and info routes against the real service (the REST layer's
// own tests cover every route against a stand-in JobService).
#include <signal.h>
#include <sys/wait.h>

#include "ServiceFixture.hpp"

namespace tango::test {
namespace {

class ServiceRoutesTest : public ServiceTest {
 protected:
  std::string extraConfig() override { return "POOL_SIZE = 1\n"; }
};

TEST_F(ServiceRoutesTest, LiveJobsShowQueuePositionStateAndStep) {
  // One VM: the first job sleeps, the next three wait in FIFO order.
  auto blocker = submit("lab0", {{"autograde-Makefile", "all:\n\t@sleep 10\n"}}, "block.out");
  std::vector<std::int64_t> waiting;
  for (int i = 1; i <= 3; ++i)
    waiting.push_back(submit("lab" + std::to_string(i),
                             {{"autograde-Makefile", "all:\n\t@echo " + std::to_string(i) + "\n"}},
                             "w" + std::to_string(i) + ".out"));
  // Wait until the blocker runs.
  json::array live;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    auto r = http->get("/jobs/test/0/").json();
    EXPECT_EQ(r["statusMsg"].as_string(), "Found list of jobs");
    live = r["jobs"].as_array();
    if (!live.empty() && live[0].as_object().at("assigned").as_bool()) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(live.size(), 4u);
  auto& first = live[0].as_object();
  EXPECT_EQ(first.at("id").as_int64(), blocker);
  EXPECT_EQ(first.at("state").as_string(), "running");
  EXPECT_TRUE(first.at("queuePosition").is_null());
  EXPECT_GT(first.at("vm").as_object().at("id").as_int64(), 0);
  for (std::size_t i = 0; i < waiting.size(); ++i) {
    auto& j = live[i + 1].as_object();
    EXPECT_EQ(j.at("id").as_int64(), waiting[i]);
    EXPECT_FALSE(j.at("assigned").as_bool());
    EXPECT_EQ(j.at("state").as_string(), "queued");
    EXPECT_EQ(j.at("queuePosition").as_int64(), static_cast<std::int64_t>(i));
    EXPECT_EQ(j.at("timeout").as_int64(), 20);
    EXPECT_EQ(j.at("maxOutputFileSize").as_int64(), 1000 * 1024);
    EXPECT_TRUE(j.at("input").as_array()[0].as_object().at("destFile") == "Makefile");
  }
  for (int i = 1; i <= 3; ++i)
    ASSERT_TRUE(waitOutput("lab" + std::to_string(i), "w" + std::to_string(i) + ".out"));
}

TEST_F(ServiceRoutesTest, InfoPoolAndPrealloc) {
  auto info = http->get("/info/test/").json();
  EXPECT_EQ(info["statusId"].as_int64(), 0);
  auto& i = info["info"].as_object();
  for (const char* k :
       {"elapsed_secs", "job_requests", "job_retries", "waitvm_timeouts", "runjob_timeouts",
        "copyin_errors", "runjob_errors", "copyout_errors", "num_threads"})
    EXPECT_TRUE(i.contains(k)) << k;

  auto pre = http->post("/prealloc/test/autograding_image/3/", "").json();
  EXPECT_EQ(pre["statusMsg"].as_string(), "VMs preallocated");
  // Autolab sends prealloc as GET with a JSON body.
  auto pre2 = http->get("/prealloc/test/autograding_image/3/",
                        R"({"vmms": "local", "cores": 1, "memory": 512})")
                  .json();
  EXPECT_EQ(pre2["statusMsg"].as_string(), "VMs preallocated");
  json::object pool;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    auto r = http->get("/pool/test/autograding_image/").json();
    EXPECT_EQ(r["statusMsg"].as_string(), "Found pool");
    pool = r["pools"].as_object().at("autograding_image").as_object();
    if (pool.at("free").as_array().size() == 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(pool.at("total").as_array().size(), 3u);
  EXPECT_EQ(pool.at("free").as_array().size(), 3u);
  // Every warm VM exists on disk.
  for (auto& id : pool.at("free").as_array())
    EXPECT_TRUE(std::filesystem::exists(
        tangod->sandboxDir() / ("local-" + std::to_string(id.as_int64()) + "-autograding_image")));
  auto all = http->get("/pool/test/").json();
  EXPECT_EQ(all["statusMsg"].as_string(), "Found all pools");
  EXPECT_TRUE(all["pools"].as_object().contains("autograding_image"));

  // Shrinking destroys the surplus.
  http->post("/prealloc/test/autograding_image/1/", "");
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::size_t onDisk = 99;
  while (std::chrono::steady_clock::now() < deadline && onDisk != 1) {
    onDisk = tangod->vmDirs().size();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(onDisk, 1u);
}

TEST_F(ServiceRoutesTest, OpenReturnsTheMd5OfUploadedFiles) {
  auto first = openLab("md5lab");
  EXPECT_EQ(first["statusMsg"].as_string(), "Created directory");
  upload("md5lab", "hello.txt", "hello\n");
  auto again = openLab("md5lab");
  EXPECT_EQ(again["statusMsg"].as_string(), "Found directory");
  EXPECT_EQ(again["files"].as_object().at("hello.txt").as_string(),
            "b1946ac92492d2347c6235b4d2611184");
  EXPECT_EQ(upload("md5lab", "hello.txt", "hello\n")["statusMsg"].as_string(), "File exists");
}

TEST_F(ServiceRoutesTest, SigtermStopsTheServiceCleanly) {
  auto id = submit("lab", {{"autograde-Makefile", "all:\n\t@sleep 30\n"}}, "long.out");
  ASSERT_GT(id, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto start = std::chrono::steady_clock::now();
  int status = tangod->stop(SIGTERM);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  // Exit 0 (under ASan, a leak would make this non-zero).
  ASSERT_TRUE(WIFEXITED(status)) << tangod->log();
  EXPECT_EQ(WEXITSTATUS(status), 0) << tangod->log();
  // The interrupted job runs again after a restart.
  tangod->start();
  restartHttp();
  auto live = http->get("/jobs/test/0/").json()["jobs"].as_array();
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].as_object().at("id").as_int64(), id);
}

TEST(ServiceStartupTest, InvalidConfigStopsStartUpNamingTheKey) {
  EXPECT_THROW(
      {
        try {
          Tangod bad("JOB_RETRIES = \"many\"\n");
        } catch (const std::runtime_error& e) {
          EXPECT_NE(std::string(e.what()).find("JOB_RETRIES"), std::string::npos) << e.what();
          throw;
        }
      },
      std::runtime_error);
}

}  // namespace
}  // namespace tango::test
