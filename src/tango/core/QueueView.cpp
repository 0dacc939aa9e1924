#include "tango/core/QueueView.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>

namespace tango {

namespace {
constexpr auto kRebuildEvery = std::chrono::milliseconds(500);
constexpr int kRecentRuns = 50;
// Before any job has finished, a guess rather than "now".
constexpr double kFirstGuessSecs = 10;
}  // namespace

void QueueView::refresh() {
  const auto now = std::chrono::steady_clock::now();
  if (built_ && now - builtAt_ < kRebuildEvery) return;
  spots_.clear();
  std::int64_t running = 0;
  for (const auto& [job, pos] : queue_.liveJobs()) {
    if (!pos) {
      ++running;
      continue;
    }
    const std::string name = std::filesystem::path(job.outputFile).filename().string();
    auto& spot = spots_[{job.keyId, job.courselab, name}];
    if (job.id > spot.jobId) spot = {job.id, *pos};
  }
  std::vector<double> runs;
  for (const auto& job : queue_.finished(kRecentRuns))
    if (job.times.assigned > 0 && job.times.finished >= job.times.assigned)
      runs.push_back(job.times.finished - job.times.assigned);
  if (!runs.empty()) {
    std::nth_element(runs.begin(), runs.begin() + static_cast<long>(runs.size() / 2), runs.end());
    medianRunSecs_ = runs[runs.size() / 2];
  } else {
    medianRunSecs_ = kFirstGuessSecs;
  }
  slots_ = std::max<std::int64_t>(1, running);
  builtAt_ = now;
  built_ = true;
}

void QueueView::changed() {
  std::lock_guard lock(mu_);
  built_ = false;
}

double QueueView::estimatedWait(std::int64_t position) {
  std::lock_guard lock(mu_);
  refresh();
  // Rounds of `slots_` jobs ahead of it, then its own start.
  const auto rounds = static_cast<double>(position / slots_ + 1);
  return rounds * medianRunSecs_;
}

std::optional<boost::json::object> QueueView::spotOf(const std::string& keyId,
                                                     const std::string& courselab,
                                                     const std::string& outputFile) {
  std::int64_t jobId = 0, position = 0;
  {
    std::lock_guard lock(mu_);
    refresh();
    auto it = spots_.find({keyId, courselab, outputFile});
    if (it == spots_.end()) return std::nullopt;
    jobId = it->second.jobId;
    position = it->second.position;
  }
  const double wait = estimatedWait(position);
  const double now = nowSeconds();
  return boost::json::object{{"jobId", jobId},
                             {"queuePosition", position},
                             {"estimatedWaitSecs", std::round(wait * 10) / 10},
                             {"estimatedStart", std::round((now + wait) * 10) / 10}};
}

}  // namespace tango
