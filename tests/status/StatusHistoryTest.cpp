// The status page's last hour: per-courselab load from the live jobs, one
// sample per call, an hour kept, and only the busiest courselabs per sample.
#include <gtest/gtest.h>

#include "tango/status/StatusHistory.hpp"

namespace tango::status {
namespace {

TangoJob job(std::int64_t id, const std::string& lab, double queuedAt) {
  TangoJob j;
  j.id = id;
  j.courselab = lab;
  j.times.queued = queuedAt;
  return j;
}

TEST(StatusHistory, LoadsCountQueuedAndRunningPerCourselab) {
  std::vector<std::pair<TangoJob, std::optional<std::int64_t>>> live;
  live.emplace_back(job(1, "malloclab", 100), 0);
  live.emplace_back(job(2, "malloclab", 160), 1);
  live.emplace_back(job(3, "malloclab", 50), std::nullopt);  // running: not a wait
  live.emplace_back(job(4, "datalab", 190), 2);
  auto loads = courselabLoads(live, 200);
  ASSERT_EQ(loads.size(), 2u);
  EXPECT_EQ(loads["malloclab"].queued, 2);
  EXPECT_EQ(loads["malloclab"].running, 1);
  EXPECT_DOUBLE_EQ(loads["malloclab"].oldestWaitSecs, 100);
  EXPECT_EQ(loads["datalab"].queued, 1);
  EXPECT_DOUBLE_EQ(loads["datalab"].oldestWaitSecs, 10);
}

TEST(StatusHistory, KeepsAnHourAndTheBusiestCourselabs) {
  StatusHistory h;
  for (std::size_t i = 0; i < StatusHistory::kSamples + 40; ++i) {
    std::map<std::string, CourselabLoad> loads;
    for (int lab = 0; lab < 20; ++lab)
      loads["lab" + std::to_string(lab)] = {lab + 1, 0, static_cast<double>(lab)};
    h.record(1000.0 + static_cast<double>(i) * StatusHistory::kEverySecs, loads,
             static_cast<std::int64_t>(i));
  }
  auto j = h.json();
  auto& samples = j["samples"].as_array();
  ASSERT_EQ(samples.size(), StatusHistory::kSamples);
  auto& first = samples.front().as_object();
  EXPECT_DOUBLE_EQ(first.at("t").as_double(), 1000.0 + 40 * StatusHistory::kEverySecs);
  EXPECT_EQ(first.at("finished").to_number<std::int64_t>(), 40);
  EXPECT_EQ(first.at("queued").to_number<std::int64_t>(), 210);  // 1 + ... + 20
  auto& waits = first.at("waits").as_object();
  ASSERT_EQ(waits.size(), StatusHistory::kCourselabsPerSample);
  EXPECT_TRUE(waits.contains("lab19"));  // the longest queue
  EXPECT_DOUBLE_EQ(waits.at("lab19").as_double(), 19);
  EXPECT_FALSE(waits.contains("lab0"));  // the shortest one left out
}

}  // namespace
}  // namespace tango::status
