// Pools on localDocker are made on demand: start-up makes no container
// until a job or a prealloc asks for an image (or the operator lists it in
// WARM_IMAGES), a spare is made while a job runs, and a pool set to 0 stays
// empty even while VMs of it were being made.
#include "DockerFixture.hpp"
#include "tango/vmms/DockerLabels.hpp"

namespace tango::test {
namespace {

using namespace std::chrono_literals;

// The test image under two more names, so the engine holds several images
// that no job of the test asks for unless it says so.
class DockerPoolsOnDemandTest : public DockerTest {
 protected:
  void SetUp() override {
    for (const auto* img : {&imageA, &imageB}) engine.tagImage(testImage(), *img, "latest");
    DockerTest::SetUp();
  }
  void TearDown() override {
    DockerTest::TearDown();
    for (const auto* img : {&imageA, &imageB}) engine.removeImage(*img + ":latest", false);
  }
  int poolSize() override { return 2; }
  std::string dockerConfig() override { return warmImages; }

  // Containers of the prefix made for `image`.
  std::size_t containersOf(const std::string& image) {
    std::size_t n = 0;
    for (const auto& c : engine.listByLabel(kPrefixLabel, prefix)) {
      auto it = c.labels.find(kImageLabel);
      n += it != c.labels.end() && it->second == image;
    }
    return n;
  }
  // Waits until job `id` runs: its partial output says "begun".
  bool waitBegun(std::int64_t id) {
    for (auto deadline = std::chrono::steady_clock::now() + 10s;
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(50ms)) {
      auto r = http->get("/getPartialOutput/test/" + std::to_string(id) + "/").json();
      if (r["statusId"].as_int64() == 0 &&
          std::string(r["output"].as_string()).find("begun") != std::string::npos)
        return true;
    }
    return false;
  }
  // Waits until the pool of `image` has `n` free VMs; false after `limit`.
  bool waitFree(const std::string& image, std::size_t n, std::chrono::seconds limit = 60s) {
    for (auto deadline = std::chrono::steady_clock::now() + limit;
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(50ms)) {
      auto r = http->get("/pool/test/" + image + "/").json();
      if (r["statusId"].as_int64() == 0 &&
          r["pools"].as_object().at(image).as_object().at("free").as_array().size() == n)
        return true;
    }
    return false;
  }

  const std::string imageA = "tdt-pool-a-" + std::to_string(::getpid());
  const std::string imageB = "tdt-pool-b-" + std::to_string(::getpid());
  std::string warmImages;
};

TEST_F(DockerPoolsOnDemandTest, StartUpMakesNoContainerUntilAJobOrAPreallocAsks) {
  // Four warmers make a container in well under a second here: three
  // seconds without one means none is being made.
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(containersOfPrefix(), 0u) << tangod->log();
  auto pools = http->get("/pool/test/").json();
  EXPECT_TRUE(pools["pools"].as_object().empty()) << json::serialize(pools);

  // A job for A makes A's pool: its spares, and nothing for B.
  submitTo("lab", {{"autograde-Makefile", "all:\n\t@echo first\n"}}, "a.out", {{"image", imageA}});
  auto out = waitOutput("lab", "a.out");
  ASSERT_TRUE(out) << tangod->log();
  EXPECT_TRUE(out->ends_with("status 0\nfirst\n")) << *out;
  ASSERT_TRUE(waitFree(imageA, 2)) << tangod->log();
  EXPECT_EQ(containersOf(imageB), 0u);
  EXPECT_EQ(http->get("/pool/test/" + imageB + "/").json()["statusMsg"].as_string(),
            "Pool not found");

  // A prealloc makes B's.
  auto p = http->post("/prealloc/test/" + imageB + "/1/", "").json();
  ASSERT_EQ(p["statusId"].as_int64(), 0) << json::serialize(p);
  ASSERT_TRUE(waitFree(imageB, 1)) << tangod->log();
  EXPECT_EQ(containersOf(imageB), 1u);
  EXPECT_EQ(containersOfPrefix(), 3u);
  EXPECT_EQ(containersOf(testImage()), 0u) << "the image nobody asked for has no pool";
}

class DockerWarmImagesTest : public DockerPoolsOnDemandTest {
 protected:
  void SetUp() override {
    warmImages = "WARM_IMAGES = [\"" + imageA + "\"]\n";
    DockerPoolsOnDemandTest::SetUp();
  }
};

TEST_F(DockerWarmImagesTest, OnlyTheListedImagesAreWarmedAtStartUp) {
  ASSERT_TRUE(waitFree(imageA, 2)) << tangod->log();
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(containersOf(imageA), 2u);
  EXPECT_EQ(containersOfPrefix(), 2u) << "no container for any other image";
}

TEST_F(DockerPoolsOnDemandTest, ASpareIsReadyWhileAJobRuns) {
  // A pool of 1: its VM taken by a running job is replaced at once, not when
  // the job ends, so the next job finds one ready.
  auto p = http->post("/prealloc/test/" + imageA + "/1/", "").json();
  ASSERT_EQ(p["statusId"].as_int64(), 0) << json::serialize(p);
  ASSERT_TRUE(waitFree(imageA, 1)) << tangod->log();
  auto id = submitTo("lab", {{"autograde-Makefile", "all:\n\t@echo begun\n\t@sleep 4\n"}},
                     "long.out", {{"image", imageA}});
  ASSERT_GT(id, 0);
  // While it runs (it sleeps 4 s), the pool gets a free VM again.
  ASSERT_TRUE(waitBegun(id)) << tangod->log();
  EXPECT_TRUE(waitFree(imageA, 1, 3s)) << "no spare while the job runs";
  EXPECT_EQ(http->get("/pool/test/" + imageA + "/")
                .json()["pools"]
                .as_object()[imageA]
                .as_object()["total"]
                .as_array()
                .size(),
            2u);
  EXPECT_FALSE(waitOutput("lab", "long.out", 100ms)) << "the job still runs";
  ASSERT_TRUE(waitOutput("lab", "long.out"));
}

TEST_F(DockerPoolsOnDemandTest, AnImagesFirstJobStartsItsSparesWhileItRuns) {
  // No prealloc: the job makes the pool, and its spares are made while it
  // runs, not once it ends.
  auto id = submitTo("lab", {{"autograde-Makefile", "all:\n\t@echo begun\n\t@sleep 4\n"}},
                     "first.out", {{"image", imageA}});
  ASSERT_GT(id, 0);
  ASSERT_TRUE(waitBegun(id)) << tangod->log();
  EXPECT_TRUE(waitFree(imageA, 2, 3s)) << "no spares while the first job runs";
  EXPECT_FALSE(waitOutput("lab", "first.out", 100ms)) << "the job still runs";
  ASSERT_TRUE(waitOutput("lab", "first.out"));
}

TEST_F(DockerPoolsOnDemandTest, APoolSetToZeroStaysEmptyEvenWhileItsVmsWereBeingMade) {
  // Set to 0 while the warmers are making its VMs: none of them may join
  // the pool once made.
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(http->post("/prealloc/test/" + imageA + "/4/", "").json()["statusId"].as_int64(), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + 100 * round));
    ASSERT_EQ(http->post("/prealloc/test/" + imageA + "/0/", "").json()["statusId"].as_int64(), 0);
  }
  std::size_t left = 99;
  for (auto deadline = std::chrono::steady_clock::now() + 20s;
       left && std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(100ms))
    left = containersOfPrefix();
  EXPECT_EQ(left, 0u) << tangod->log();
  // And it stays empty.
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(containersOfPrefix(), 0u);
  auto pool = http->get("/pool/test/" + imageA + "/").json();
  EXPECT_TRUE(pool["pools"].as_object()[imageA].as_object()["total"].as_array().empty())
      << json::serialize(pool);
}

}  // namespace
}  // namespace tango::test
