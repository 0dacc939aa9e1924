// poll with ?wait=N: answers as soon as the output is there (a job of this
// node announces it; another node's is found by a sweep), or after N
// seconds with Tango's usual not-found answer; waiting polls hold no thread.
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <future>
#include <vector>

#include "TestServer.hpp"

namespace tango::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Written whole under another name, then renamed: as the Worker publishes.
void publish(const std::filesystem::path& p, const std::string& data) {
  std::filesystem::create_directories(p.parent_path());
  const auto tmp = p.parent_path() / (".tmp-" + p.filename().string());
  std::ofstream(tmp, std::ios::binary) << data;
  std::filesystem::rename(tmp, p);
}

long msSince(Clock::time_point t) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

class PollWaitTest : public RestTest {};

TEST_F(PollWaitTest, AnsweredWithinMillisecondsOfTheJobsOutputBeingWritten) {
  get("/open/test/lab/");
  const auto t0 = Clock::now();
  auto poll = std::async(std::launch::async, [&] { return get("/poll/test/lab/out/?wait=10"); });
  std::this_thread::sleep_for(400ms);
  ASSERT_EQ(poll.wait_for(0s), std::future_status::timeout) << "answered before the output";
  publish(labDir() / "output" / "out", "the output\n");
  const auto written = Clock::now();
  jobs_.announceOutput("out");
  auto r = poll.get();
  const long after = msSince(written);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("content-type"), "application/octet-stream");
  EXPECT_EQ(r->body, "the output\n");
  EXPECT_LT(after, 50) << "ms between the output and the answer";
  EXPECT_GE(msSince(t0), 400);
}

TEST_F(PollWaitTest, AnOutputNoJobHereAnnouncedIsFoundByTheSweep) {
  // Another node's job: its output appears in the shared courselab, and
  // nothing here is told.
  get("/open/test/lab/");
  auto poll = std::async(std::launch::async, [&] { return get("/poll/test/lab/other/?wait=10"); });
  std::this_thread::sleep_for(300ms);
  publish(labDir() / "output" / "other", "from another node\n");
  const auto written = Clock::now();
  auto r = poll.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "from another node\n");
  EXPECT_LT(msSince(written), 500);
}

TEST_F(PollWaitTest, AtTheEndOfTheWaitTheUsualNotFoundAnswer) {
  get("/open/test/lab/");
  const auto t0 = Clock::now();
  auto r = get("/poll/test/lab/never/?wait=1");
  const long took = msSince(t0);
  ASSERT_TRUE(r);
  EXPECT_EQ(statusOf(*r).id, -1);
  EXPECT_EQ(statusOf(*r).msg, "Output file not found");
  EXPECT_GE(took, 1000);
  EXPECT_LT(took, 1600);
  // Another output's announcement does not answer it early.
  auto other = std::async(std::launch::async, [&] { return get("/poll/test/lab/never/?wait=1"); });
  std::this_thread::sleep_for(200ms);
  jobs_.announceOutput("something-else");
  EXPECT_EQ(other.wait_for(300ms), std::future_status::timeout);
  EXPECT_EQ(statusOf(*other.get()).msg, "Output file not found");
}

TEST_F(PollWaitTest, WithoutAWaitOrWithZeroNothingChanges) {
  get("/open/test/lab/");
  for (const char* target : {"/poll/test/lab/none/", "/poll/test/lab/none/?wait=0"}) {
    const auto t0 = Clock::now();
    auto r = get(target);
    ASSERT_TRUE(r) << target;
    EXPECT_EQ(statusOf(*r).msg, "Output file not found") << target;
    EXPECT_LT(msSince(t0), 500) << target;
  }
  publish(labDir() / "output" / "there", "x");
  EXPECT_EQ(get("/poll/test/lab/there/?wait=30")->body, "x");  // there already: at once
}

TEST_F(PollWaitTest, ABadWaitIsAClearErrorAndBadNamesAreRefusedAtOnce) {
  get("/open/test/lab/");
  for (const char* wait : {"abc", "-1", "61", "1.5", "", "99999999999999999999"}) {
    auto r = get(std::string("/poll/test/lab/out/?wait=") + wait);
    ASSERT_TRUE(r) << wait;
    EXPECT_EQ(statusOf(*r).id, -1) << wait;
    EXPECT_EQ(statusOf(*r).msg, "Invalid wait: a whole number of seconds from 0 to 60") << wait;
  }
  const auto t0 = Clock::now();
  EXPECT_EQ(statusOf(*get("/poll/wrong-key/lab/out/?wait=30")).msg, "Key not recognized");
  EXPECT_EQ(statusOf(*get("/poll/test/lab/..%2Fx/?wait=30")).msg, "Invalid output file name");
  EXPECT_EQ(statusOf(*get("/poll/test/no-such-lab/out/?wait=30")).msg, "Output file not found");
  EXPECT_LT(msSince(t0), 500) << "a refused poll waited";
}

TEST_F(PollWaitTest, ManyWaitingPollsHoldNoThreadAndTheServerStopsWithThemWaiting) {
  // The server has 2 I/O and 2 worker threads: 40 waiting polls would
  // starve it if each held one.
  get("/open/test/lab/");
  std::vector<std::future<std::optional<Response>>> polls;
  for (int i = 0; i < 40; ++i)
    polls.push_back(std::async(std::launch::async, [this, i] {
      return get("/poll/test/lab/o" + std::to_string(i) + "/?wait=30");
    }));
  std::this_thread::sleep_for(500ms);
  const auto t0 = Clock::now();
  auto info = get("/info/test/");
  ASSERT_TRUE(info);
  EXPECT_EQ(statusOf(*info).id, 0);
  EXPECT_LT(msSince(t0), 300) << "other requests waited behind the polls";
  // Half of them get their output.
  for (int i = 0; i < 20; ++i) {
    publish(labDir() / "output" / ("o" + std::to_string(i)), "out " + std::to_string(i));
    jobs_.announceOutput("o" + std::to_string(i));
  }
  for (int i = 0; i < 20; ++i) {
    auto r = polls[static_cast<std::size_t>(i)].get();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body, "out " + std::to_string(i));
  }
  // The rest still wait when the server stops: it stops at once, and their
  // connections close without an answer.
  const auto t1 = Clock::now();
  stopServer();
  EXPECT_LT(msSince(t1), 2000);
  for (int i = 20; i < 40; ++i) EXPECT_FALSE(polls[static_cast<std::size_t>(i)].get()) << i;
}

}  // namespace
}  // namespace tango::test
