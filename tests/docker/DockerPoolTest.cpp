// Warm pools and crash recovery on localDocker: a pool refills with fresh
// containers after its jobs, and after `kill -9` of the service mid-job a
// restart finishes the job and leaves no container of the prefix behind.
#include "DockerFixture.hpp"

namespace tango::test {
namespace {

using DockerPoolTest = DockerTest;

json::object poolOf(HttpClient& http, const std::string& image) {
  auto r = http.get("/pool/test/" + image + "/").json();
  if (r["statusId"].as_int64() != 0) return {};
  return r["pools"].as_object().at(image).as_object();
}

TEST_F(DockerPoolTest, WarmPoolRefillsWithFreshContainersAfterJobs) {
  const std::string image = testImage();
  auto p = http->post("/prealloc/test/" + image + "/2/", "").json();
  ASSERT_EQ(p["statusId"].as_int64(), 0) << json::serialize(p);
  auto waitFree = [&](std::size_t n) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      auto pool = poolOf(*http, image);
      if (!pool.empty() && pool["free"].as_array().size() == n) return pool;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return json::object{};
  };
  auto before = waitFree(2);
  ASSERT_FALSE(before.empty()) << tangod->log();
  EXPECT_EQ(containersOfPrefix(), 2u);

  for (int i = 0; i < 2; ++i)
    submitTo("lab" + std::to_string(i), {{"autograde-Makefile", "all:\n\t@echo warm\n"}},
             "w" + std::to_string(i) + ".out");
  for (int i = 0; i < 2; ++i) {
    auto out = waitOutput("lab" + std::to_string(i), "w" + std::to_string(i) + ".out");
    ASSERT_TRUE(out) << tangod->log();
    EXPECT_TRUE(out->ends_with("status 0\nwarm\n")) << *out;
    EXPECT_NE(out->find("Success"), std::string::npos);
  }
  auto after = waitFree(2);
  ASSERT_FALSE(after.empty()) << tangod->log();
  // Fresh containers: none of the used ones came back.
  for (auto& id : after["free"].as_array())
    for (auto& old : before["free"].as_array()) EXPECT_NE(id.as_int64(), old.as_int64());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (containersOfPrefix() != 2u && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(containersOfPrefix(), 2u);
}

TEST_F(DockerPoolTest, AJobAskingForItsOwnDiskSizeGetsAContainerMadeForIt) {
  // A warm container's tmpfs mounts were sized when it was made: a job
  // asking for another size must not be given it.
  const std::string image = testImage();
  auto p = http->post("/prealloc/test/" + image + "/1/", "").json();
  ASSERT_EQ(p["statusId"].as_int64(), 0) << json::serialize(p);
  std::optional<std::int64_t> warm;
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
       !warm && std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(std::chrono::milliseconds(100))) {
    auto pool = poolOf(*http, image);
    if (!pool.empty() && pool["free"].as_array().size() == 1)
      warm = pool["free"].as_array()[0].as_int64();
  }
  ASSERT_TRUE(warm) << tangod->log();
  const std::string df = "all:\n\t@df -k /tmp | tail -1 | awk '{print $$2}'\n";
  submitTo("own", {{"autograde-Makefile", df}}, "own.out",
           {{"limits", json::object{{"disk_mb", 8}}}});
  auto own = waitOutput("own", "own.out");
  ASSERT_TRUE(own) << tangod->log();
  EXPECT_TRUE(own->ends_with("status 0\n8192\n")) << *own;
  // The warm container is still there for the next job, which has the
  // configured size (VM_DISK_LIMIT, 128 MB).
  auto pool = poolOf(*http, image);
  ASSERT_FALSE(pool.empty());
  ASSERT_EQ(pool["free"].as_array().size(), 1u) << json::serialize(pool);
  EXPECT_EQ(pool["free"].as_array()[0].as_int64(), *warm);
  submitTo("next", {{"autograde-Makefile", df}}, "next.out");
  auto next = waitOutput("next", "next.out");
  ASSERT_TRUE(next) << tangod->log();
  EXPECT_TRUE(next->ends_with("status 0\n131072\n")) << *next;
  EXPECT_NE(tangod->log().find("existing VM"), std::string::npos) << tangod->log();
}

TEST_F(DockerPoolTest, KillNineMidJobThenRestartFinishesItAndLeavesNoContainer) {
  auto id =
      submitTo("lab", {{"autograde-Makefile", "all:\n\t@echo begun\n\t@sleep 3\n\t@echo done\n"}},
               "crash.out");
  ASSERT_GT(id, 0);
  // Wait until it runs in a container.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  bool running = false;
  while (!running && std::chrono::steady_clock::now() < deadline) {
    auto r = http->get("/getPartialOutput/test/" + std::to_string(id) + "/").json();
    running = r["statusId"].as_int64() == 0 &&
              std::string(r["output"].as_string()).find("begun") != std::string::npos;
    if (!running) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(running) << tangod->log();
  ASSERT_EQ(containersOfPrefix(), 1u);
  tangod->stop(SIGKILL);

  tangod->start();
  restartHttp();
  auto out = waitOutput("lab", "crash.out");
  ASSERT_TRUE(out) << tangod->log();
  EXPECT_TRUE(out->ends_with("status 0\nbegun\ndone\n")) << *out;
  // The job's container goes once its output is in place.
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (containersOfPrefix() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  tangod->stop(SIGTERM);
  EXPECT_EQ(containersOfPrefix(), 0u);
}

}  // namespace
}  // namespace tango::test
