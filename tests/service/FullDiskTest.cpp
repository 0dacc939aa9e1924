// A full disk never ends the service. DATA_DIR (the SQLite state, the
// courselabs, the outputs) lies on a tmpfs of 8 MB made for the test, which
// the test fills: uploads and addJob get a clear error and store nothing,
// a running job waits for space (its VM freed once its output is in hand)
// and ends with its whole output when space returns, and the service goes
// on as before.
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <fstream>

#include "ServiceFixture.hpp"

namespace tango::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class FullDiskTest : public ServiceTest {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "mounting the test's tmpfs needs root";
    disk_ = fs::path(TEST_TMP_DIR) / ("full-disk-" + std::to_string(::getpid()));
    fs::create_directories(disk_);
    ASSERT_EQ(::mount("tango-full-disk", disk_.c_str(), "tmpfs", 0, "size=8m,mode=0700"), 0)
        << std::strerror(errno);
    mounted_ = true;
    ServiceTest::SetUp();
  }
  void TearDown() override {
    ServiceTest::TearDown();
    tangod.reset();
    if (mounted_) ::umount2(disk_.c_str(), MNT_DETACH);
    std::error_code ec;
    fs::remove(disk_, ec);
  }
  // MIN_FREE_DISK = 0: this test is about the disk truly running out (the
  // floor that refuses work earlier has its own test, FreeDiskTest).
  std::string extraConfig() override {
    return "POOL_SIZE = 1\nMIN_FREE_DISK = 0\nDATA_DIR = \"" + (disk_ / "data").string() + "\"\n";
  }

  // Writes until the filesystem says it is full.
  void fill() {
    std::ofstream f(disk_ / "filler", std::ios::binary);
    const std::string chunk(64 * 1024, 'x');
    while (f.write(chunk.data(), static_cast<std::streamsize>(chunk.size())) && f.flush()) {
    }
    ASSERT_EQ(fs::space(disk_).available, 0u);
  }
  void unfill() { fs::remove(disk_ / "filler"); }

  bool serviceAlive() const { return ::kill(tangod->pid(), 0) == 0; }

  std::string addJob(const std::string& lab, const std::string& output, int timeout = 20) {
    json::object job{
        {"image", "autograding_image"},
        {"files",
         json::array{json::object{{"localFile", "autograde-Makefile"}, {"destFile", "Makefile"}},
                     json::object{{"localFile", "hello.sh"}, {"destFile", "hello.sh"}}}},
        {"output_file", output},
        {"jobName", "job-" + output},
        {"timeout", timeout}};
    return json::serialize(http->post("/addJob/test/" + lab + "/", json::serialize(job)).json());
  }

  fs::path disk_;
  bool mounted_ = false;
};

TEST_F(FullDiskTest, UploadAndAddJobGetAClearErrorStoreNothingAndWorkOnceThereIsSpace) {
  openLab("lab");
  ASSERT_EQ(upload("lab", "autograde-Makefile", kHelloMakefile)["statusId"].as_int64(), 0);
  ASSERT_EQ(upload("lab", "hello.sh", kHelloScript)["statusId"].as_int64(), 0);
  const fs::path labDir = disk_ / "data/courselabs/test-lab";
  std::set<std::string> before;
  for (const auto& e : fs::directory_iterator(labDir)) before.insert(e.path().filename());

  fill();
  auto up = upload("lab", "big.txt", std::string(256 * 1024, 'y'));
  EXPECT_EQ(up["statusId"].as_int64(), -1) << json::serialize(up);
  // Refused from its Content-Length, before a byte reaches the disk.
  EXPECT_NE(json::serialize(up).find("Not enough free disk space: 0 KB free in DATA_DIR, this "
                                     "request needs 256 KB"),
            std::string::npos)
      << json::serialize(up);
  const std::string add = addJob("lab", "full.out");
  EXPECT_NE(add.find("\"statusId\":-1"), std::string::npos) << add;
  EXPECT_NE(add.find("disk is full"), std::string::npos) << add;
  // Nothing was kept: no file, no temporary, no job.
  std::set<std::string> after;
  for (const auto& e : fs::directory_iterator(labDir)) after.insert(e.path().filename());
  EXPECT_EQ(after, before);
  auto jobs = http->get("/jobs/test/0/").json();
  EXPECT_TRUE(jobs["jobs"].as_array().empty()) << json::serialize(jobs);
  EXPECT_TRUE(serviceAlive());

  unfill();
  const std::string again = addJob("lab", "hello.out");
  EXPECT_NE(again.find("\"statusId\":0"), std::string::npos) << again;
  auto out = waitOutput("lab", "hello.out");
  ASSERT_TRUE(out);
  EXPECT_TRUE(out->ends_with("Hello from the sandbox\n{\"scores\": {\"hello\": 100}}\n")) << *out;
}

TEST_F(FullDiskTest, ARunningJobWaitsForSpaceAndEndsWithItsWholeOutput) {
  auto id = submit("lab",
                   {{"autograde-Makefile", "all:\n\t@sleep 2; echo slept; bash hello.sh\n"},
                    {"hello.sh", kHelloScript}},
                   "slow.out");
  ASSERT_GT(id, 0);
  // Full while the job runs: its output cannot be copied out nor written.
  std::this_thread::sleep_for(500ms);
  fill();
  std::this_thread::sleep_for(4s);
  EXPECT_FALSE(deadJob(id).has_value());
  EXPECT_FALSE(fs::exists(disk_ / "data/courselabs/test-lab/output/slow.out"));
  EXPECT_TRUE(serviceAlive());
  EXPECT_NE(tangod->log().find("the disk is full; trying again"), std::string::npos);

  unfill();
  auto out = waitOutput("lab", "slow.out", 30s);
  ASSERT_TRUE(out);
  EXPECT_NE(out->find("Success: Autodriver returned normally\n"), std::string::npos) << *out;
  EXPECT_TRUE(out->ends_with("slept\nHello from the sandbox\n{\"scores\": {\"hello\": 100}}\n"))
      << *out;
  auto dead = waitDead(id);
  ASSERT_TRUE(dead);
  EXPECT_EQ((*dead)["outcome"].as_string(), "success");
  // Its VM went back: the next job runs at once on the pool of one.
  ASSERT_GT(submit("lab", {{"autograde-Makefile", kHelloMakefile}, {"hello.sh", kHelloScript}},
                   "next.out"),
            0);
  auto next = waitOutput("lab", "next.out", 30s);
  ASSERT_TRUE(next);
  EXPECT_TRUE(next->ends_with("{\"scores\": {\"hello\": 100}}\n")) << *next;
}

}  // namespace
}  // namespace tango::test
