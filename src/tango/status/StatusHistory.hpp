#pragma once
// The last hour of the queue, for the status page's charts: a sample every
// 10 s of how many jobs wait and run, how many have finished, and how long
// the oldest queued job of each courselab has waited. The page draws them
// itself (no external resources); /metrics has the same per-courselab load.
#include <boost/json/object.hpp>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tango/model/Job.hpp"

namespace tango::status {

// One courselab's share of the live jobs (courselabs of several keys with
// one name count together).
struct CourselabLoad {
  std::int64_t queued = 0, running = 0;
  double oldestWaitSecs = 0;  // of its queued jobs
};
std::map<std::string, CourselabLoad> courselabLoads(
    const std::vector<std::pair<TangoJob, std::optional<std::int64_t>>>& live, double now);

class StatusHistory {
 public:
  static constexpr double kEverySecs = 10;
  static constexpr std::size_t kSamples = 360;  // an hour
  // The busiest courselabs kept per sample: a night with hundreds of
  // courselabs keeps a bounded answer.
  static constexpr std::size_t kCourselabsPerSample = 8;

  void record(double now, const std::map<std::string, CourselabLoad>& loads,
              std::int64_t finishedTotal);
  // {"everySecs", "samples": [{"t", "queued", "running", "finished", "waits": {lab: secs}}]}
  boost::json::object json() const;

 private:
  struct Sample {
    double t = 0;
    std::int64_t queued = 0, running = 0, finished = 0;
    std::vector<std::pair<std::string, double>> waits;
  };
  mutable std::mutex mu_;
  std::deque<Sample> samples_;
};

}  // namespace tango::status
