// A poll that waits (`?wait=N`) for a real job on `local` answers within
// 50 ms of the output file being complete, and a poll of a job that takes
// longer than its wait gets Tango's not-found answer at the end of it.
#include <sys/stat.h>

#include <chrono>

#include "ServiceFixture.hpp"

namespace tango::test {
namespace {

using namespace std::chrono_literals;

class PollWaitJobTest : public ServiceTest {
 protected:
  std::string extraConfig() override { return "POOL_SIZE = 1\n"; }
};

TEST_F(PollWaitJobTest, AnsweredWithin50msOfTheOutputBeingComplete) {
  for (int i = 0; i < 3; ++i) {
    const std::string out = "w" + std::to_string(i) + ".out";
    auto id = submit("lab", {{"autograde-Makefile", "all:\n\t@sleep 1; echo done waiting\n"}}, out);
    ASSERT_GT(id, 0);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = http->get("/poll/test/lab/" + out + "?wait=30");  // Autolab's form: no slash
    const auto answered = std::chrono::system_clock::now();
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms) << "answered before the job ran";
    ASSERT_EQ(r.contentType, "application/octet-stream") << r.body;
    EXPECT_NE(r.body.find("done waiting"), std::string::npos) << r.body;
    // The output became whole when it was linked into place (its ctime).
    struct stat st {};
    const auto path = tangod->dataDir() / "courselabs/test-lab/output" / out;
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    const auto complete = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::seconds(st.st_ctim.tv_sec) +
            std::chrono::nanoseconds(st.st_ctim.tv_nsec)));
    const auto late =
        std::chrono::duration_cast<std::chrono::milliseconds>(answered - complete).count();
    EXPECT_LT(late, 50) << "ms from the output being complete to the answer";
    EXPECT_GT(late, -50);
  }
}

TEST_F(PollWaitJobTest, AJobLongerThanTheWaitGetsTheNotFoundAnswerThenItsOutput) {
  auto id = submit("lab", {{"autograde-Makefile", "all:\n\t@sleep 3; echo late\n"}}, "late.out");
  ASSERT_GT(id, 0);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = http->get("/poll/test/lab/late.out/?wait=1");
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 1s);
  EXPECT_LT(took, 2s);
  EXPECT_EQ(r.json()["statusMsg"].as_string(), "Output file not found");
  auto again = http->get("/poll/test/lab/late.out/?wait=30");
  EXPECT_NE(again.body.find("late"), std::string::npos) << again.body;
}

}  // namespace
}  // namespace tango::test
