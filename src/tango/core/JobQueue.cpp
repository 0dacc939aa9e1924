#include "tango/core/JobQueue.hpp"

namespace tango {

JobQueue::JobQueue(JobStore& store) : store_(store) {}

std::int64_t JobQueue::add(TangoJob job) {
  job.state = JobState::Queued;
  job.assigned = false;
  job.times.queued = nowSeconds();
  job.step = "queued";
  // The store assigns the id; the trace line that names it is part of the
  // same commit, so a job is never visible without it.
  store_.insert(job, [](TangoJob& j) {
    j.appendTrace("Added job " + j.name + ":" + std::to_string(j.id) + " to queue");
  });
  std::int64_t id = job.id;
  {
    std::lock_guard lock(mu_);
    unassigned_.insert(id);
    live_.emplace(id, std::move(job));
  }
  if (onWork_) onWork_();
  return id;
}

int JobQueue::recover() {
  int requeued = 0;
  auto jobs = store_.loadUnfinished();
  std::lock_guard lock(mu_);
  for (auto& job : jobs) {
    if (job.state == JobState::Running || job.assigned) {
      job.state = JobState::Queued;
      job.assigned = false;
      job.step = "queued";
      job.vm.id = 0;
      job.appendTrace("Requeued job " + job.name + ":" + std::to_string(job.id) +
                      " after a service restart");
      store_.update(job);
      ++requeued;
    }
    unassigned_.insert(job.id);
    live_.emplace(job.id, std::move(job));
  }
  return requeued;
}

std::optional<TangoJob> JobQueue::takeNext(const std::function<bool(const TangoJob&)>& accept) {
  std::lock_guard lock(mu_);
  for (auto id : unassigned_) {
    auto& job = live_.at(id);
    if (!accept(job)) continue;
    TangoJob next = job;
    next.assigned = true;
    next.state = JobState::Running;
    next.times.assigned = nowSeconds();
    next.step = "assigned";
    store_.update(next);  // committed before any worker acts on it
    job = next;
    unassigned_.erase(id);
    return next;
  }
  return std::nullopt;
}

void JobQueue::update(const TangoJob& job) {
  store_.update(job);
  std::lock_guard lock(mu_);
  if (auto it = live_.find(job.id); it != live_.end()) it->second = job;
}

void JobQueue::unassign(TangoJob job) {
  job.assigned = false;
  job.state = JobState::Queued;
  job.step = "queued";
  store_.update(job);
  {
    std::lock_guard lock(mu_);
    unassigned_.insert(job.id);
    live_[job.id] = std::move(job);
  }
  if (onWork_) onWork_();
}

void JobQueue::makeDead(TangoJob job) {
  job.state = JobState::Finished;
  job.assigned = false;
  job.times.finished = nowSeconds();
  job.step = "finished";
  store_.update(job);
  std::lock_guard lock(mu_);
  live_.erase(job.id);
  unassigned_.erase(job.id);
}

std::optional<TangoJob> JobQueue::get(std::int64_t id) const {
  std::lock_guard lock(mu_);
  if (auto it = live_.find(id); it != live_.end()) return it->second;
  return std::nullopt;
}

std::vector<std::pair<TangoJob, std::optional<std::int64_t>>> JobQueue::liveJobs() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<TangoJob, std::optional<std::int64_t>>> out;
  out.reserve(live_.size());
  std::int64_t position = 0;
  for (const auto& [id, job] : live_) {
    std::optional<std::int64_t> pos;
    if (unassigned_.count(id)) pos = position++;
    out.emplace_back(job, pos);
  }
  return out;
}

std::size_t JobQueue::unassignedCount() const {
  std::lock_guard lock(mu_);
  return unassigned_.size();
}

std::size_t JobQueue::liveCount() const {
  std::lock_guard lock(mu_);
  return live_.size();
}

}  // namespace tango
