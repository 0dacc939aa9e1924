#pragma once
// Where each queued job stands and when it should start: its position in
// the start order (StartOrder.hpp) and an estimate from recent run times.
// Every waiting student's poll asks, so the view is a snapshot rebuilt at
// most every half second, not a walk of the queue per request.
#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>

#include "tango/core/JobQueue.hpp"

namespace tango {

class QueueView {
 public:
  explicit QueueView(JobQueue& queue) : queue_(queue) {}

  // The extra fields a queued job's answers carry: "jobId",
  // "queuePosition" (0 starts next), "estimatedStart" (seconds since the
  // epoch) and "estimatedWaitSecs". nullopt when no queued job of this
  // key's courselab writes `outputFile`.
  std::optional<boost::json::object> spotOf(const std::string& keyId, const std::string& courselab,
                                            const std::string& outputFile);
  // The estimated wait, in seconds, of the job at `position`: a queued job
  // starts when the jobs ahead of it have, with as many at a time as run
  // now, each taking the median of recent run times.
  double estimatedWait(std::int64_t position);
  // A job was added here: the next answer rebuilds the view, so the poll
  // that follows a submission finds its job. (Jobs added through another
  // node show within the half second.)
  void changed();

 private:
  struct Spot {
    std::int64_t jobId = 0;
    std::int64_t position = 0;
  };
  void refresh();  // mu_ held

  JobQueue& queue_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point builtAt_{};
  bool built_ = false;
  // (keyId, courselab, output file name) -> spot; the newest job wins.
  std::map<std::tuple<std::string, std::string, std::string>, Spot> spots_;
  double medianRunSecs_ = 0;
  std::int64_t slots_ = 1;
};

}  // namespace tango
