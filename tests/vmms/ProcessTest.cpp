// Process::communicate with a stop condition: the SSH backends read a job's
// result as soon as the autodriver reports its exit, while the same remote
// command goes on to reset the machine, and read that end later.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <string>

#include "tango/util/Process.hpp"

namespace tango {
namespace {

using namespace std::chrono_literals;

TEST(ProcessTest, CommunicateStopsWhenAskedAndALaterCallReadsToTheEnd) {
  SpawnOptions opt;
  opt.argv = {"/bin/sh", "-c", "echo first; echo said >&2; sleep 0.5; echo second; exit 7"};
  opt.env = {"PATH=/usr/bin:/bin"};
  Process p = Process::spawn(opt);
  std::string out, err;
  auto toOut = [&](std::string_view c) { out.append(c); };
  auto toErr = [&](std::string_view c) { err.append(c); };
  const auto t0 = SteadyClock::now();
  auto r = p.communicate(toOut, toErr, SteadyClock::now() + 10s, 1s,
                         [&] { return out == "first\n" && err == "said\n"; });
  EXPECT_EQ(r, Process::IoResult::Stopped);
  EXPECT_LT(SteadyClock::now() - t0, 400ms) << "it waited for the child";
  EXPECT_EQ(out, "first\n");
  EXPECT_EQ(err, "said\n");
  EXPECT_FALSE(p.waitExit(SteadyClock::now())) << "the child was left running";

  r = p.communicate(toOut, toErr, SteadyClock::now() + 10s);
  EXPECT_EQ(r, Process::IoResult::Done);
  EXPECT_EQ(out, "first\nsecond\n");
  const int status = p.reap();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 7);
}

TEST(ProcessTest, AStopConditionThatNeverHoldsReadsToTheEndOrTheDeadline) {
  SpawnOptions opt;
  opt.argv = {"/bin/sh", "-c", "echo a; sleep 5"};
  opt.env = {"PATH=/usr/bin:/bin"};
  Process p = Process::spawn(opt);
  std::string out;
  const auto t0 = SteadyClock::now();
  auto r = p.communicate([&](std::string_view c) { out.append(c); }, nullptr,
                         SteadyClock::now() + 300ms, 1s, [] { return false; });
  EXPECT_EQ(r, Process::IoResult::Deadline);
  EXPECT_GE(SteadyClock::now() - t0, 300ms);
  EXPECT_EQ(out, "a\n");
}

}  // namespace
}  // namespace tango
