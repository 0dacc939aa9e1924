// The status page's JSON with a deadline-night queue: capped lists, correct
// totals, and an answer small and fast enough to poll every second.
#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <chrono>

#include "tango/status/StatusData.hpp"

namespace tango::status {
namespace {

TEST(StatusData, FiveThousandQueuedJobsStayASmallAnswer) {
  StatusInput in;
  in.prefix = "local";
  for (std::int64_t i = 1; i <= 5000; ++i) {
    TangoJob j;
    j.id = i;
    j.name = "job-" + std::to_string(i);
    j.courselab = "15213-f26-malloclab";
    j.times.queued = 1000.0 + static_cast<double>(i);
    j.trace = {"Sat Nov 28 01:00:00 2026|Added job to queue"};
    in.live.emplace_back(std::move(j), i - 1);
  }
  TangoJob running;
  running.id = 6000;
  running.name = "running";
  running.assigned = true;
  running.step = "runJob";
  running.vm.id = 1001;
  running.vm.name = "autograding_image";
  running.times.assigned = 9000;
  in.live.emplace_back(running, std::nullopt);

  const auto t0 = std::chrono::steady_clock::now();
  auto d = statusData(in, 9010);
  const std::string text = boost::json::serialize(d);
  const auto took = std::chrono::steady_clock::now() - t0;

  EXPECT_EQ(d["queueTotal"].to_number<std::int64_t>(), 5000);
  ASSERT_EQ(d["queue"].as_array().size(), kQueueShown);
  auto& first = d["queue"].as_array()[0].as_object();
  EXPECT_EQ(first.at("position").to_number<std::int64_t>(), 0);
  EXPECT_DOUBLE_EQ(first.at("waitingSecs").as_double(), 9010.0 - 1001.0);
  ASSERT_EQ(d["running"].as_array().size(), 1u);
  auto& r = d["running"].as_array()[0].as_object();
  EXPECT_EQ(r.at("vm").as_string(), "local-1001-autograding_image");
  EXPECT_DOUBLE_EQ(r.at("elapsedSecs").as_double(), 10.0);
  EXPECT_LT(text.size(), 64u * 1024) << "the page polls this every second";
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(took).count(), 500);
}

}  // namespace
}  // namespace tango::status
