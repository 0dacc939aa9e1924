#include "tango/core/LocalJobQueue.hpp"

#include <spdlog/spdlog.h>

namespace tango {

void endForUnknownKey(TangoJob& job) {
  job.state = JobState::Finished;
  job.assigned = false;
  job.step = "finished";
  job.outcome = JobOutcome::InternalError;
  job.callbackPending = false;
  job.times.finished = nowSeconds();
  job.appendTrace("Error: the API key that submitted this job is no longer configured");
}

namespace {
// A job that was running goes back to its place in the queue, on a fresh VM.
void backToQueue(TangoJob& job, const std::string& why) {
  job.state = JobState::Queued;
  job.assigned = false;
  job.step = "queued";
  job.vm.id = 0;
  job.appendTrace("Requeued job " + job.name + ":" + std::to_string(job.id) + why);
}
}  // namespace

LocalJobQueue::LocalJobQueue(std::unique_ptr<JobStore> store, std::chrono::milliseconds leaseTime)
    : store_(std::move(store)), leaseTime_(leaseTime) {}

std::int64_t LocalJobQueue::add(TangoJob job) {
  job.state = JobState::Queued;
  job.assigned = false;
  job.times.queued = nowSeconds();
  job.step = "queued";
  // The store assigns the id; the trace line that names it is part of the
  // same commit, so a job is never visible without it.
  store_->insert(job, [](TangoJob& j) {
    j.appendTrace("Added job " + j.name + ":" + std::to_string(j.id) + " to queue");
  });
  std::int64_t id = job.id;
  {
    std::lock_guard lock(mu_);
    unassigned_.insert(id);
    live_.emplace(id, std::move(job));
  }
  wake();
  return id;
}

int LocalJobQueue::recover() {
  int requeued = 0;
  auto jobs = store_->loadUnfinished();
  std::lock_guard lock(mu_);
  for (auto& job : jobs) {
    if (job.labDir.empty()) {
      spdlog::warn("job {}: its API key ({}) is no longer configured; not run", job.id, job.keyId);
      endForUnknownKey(job);
      store_->update(job);
      continue;
    }
    if (job.state == JobState::Running || job.assigned) {
      backToQueue(job, " after a service restart");
      store_->update(job);
      ++requeued;
    }
    unassigned_.insert(job.id);
    live_.emplace(job.id, std::move(job));
  }
  return requeued;
}

bool LocalJobQueue::requeueLapsed() {
  const auto now = Clock::now();
  bool any = false;
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.expires > now) {
      ++it;
      continue;
    }
    auto job = live_.find(it->first);
    it = leases_.erase(it);
    if (job == live_.end()) continue;
    TangoJob& j = job->second;
    backToQueue(j, ": its worker stopped renewing its lease");
    unassigned_.insert(j.id);
    spdlog::warn("job {}: lease lapsed; back in the queue", j.id);
    any = true;
    // Queued again here whatever the store says: a store that cannot write
    // now (a full disk) gets the state with the job's next write, and a
    // restart requeues a job it still has as running.
    try {
      store_->update(j);
    } catch (const std::exception& e) {
      spdlog::warn("job {}: requeue not recorded: {}", j.id, e.what());
    }
  }
  return any;
}

std::vector<std::int64_t> LocalJobQueue::queuedInStartOrder() const {
  std::vector<const TangoJob*> queued, running;
  std::vector<std::int64_t> ids;
  queued.reserve(unassigned_.size());
  for (auto id : unassigned_) {
    queued.push_back(&live_.at(id));
    ids.push_back(id);
  }
  for (const auto& [id, job] : live_)
    if (!unassigned_.count(id)) running.push_back(&job);
  std::vector<std::int64_t> out;
  out.reserve(ids.size());
  for (auto i : startOrder(queued, running, policy_)) out.push_back(ids[i]);
  return out;
}

TakenJob LocalJobQueue::assign(std::int64_t id) {
  auto& job = live_.at(id);
  TangoJob next = job;
  next.assigned = true;
  next.state = JobState::Running;
  next.times.assigned = nowSeconds();
  next.step = "assigned";
  store_->update(next);  // committed before any worker acts on it
  job = next;
  unassigned_.erase(id);
  Lease lease{id, "local/" + std::to_string(++takes_)};
  leases_[id] = {lease.token, Clock::now() + leaseTime_};
  return TakenJob{std::move(next), std::move(lease)};
}

std::optional<TakenJob> LocalJobQueue::take(const std::function<bool(const TangoJob&)>& accept,
                                            const std::function<void(const TangoJob&)>&) {
  std::lock_guard lock(mu_);
  requeueLapsed();
  for (auto id : queuedInStartOrder())
    if (accept(live_.at(id))) return assign(id);  // one node: nobody else can claim it first
  return std::nullopt;
}

std::optional<TakenJob> LocalJobQueue::claim(std::int64_t id) {
  std::lock_guard lock(mu_);
  if (!unassigned_.count(id)) return std::nullopt;
  return assign(id);
}

void LocalJobQueue::requestCancel(std::int64_t id) {
  std::lock_guard lock(mu_);
  if (live_.count(id)) cancelAsked_.insert(id);
}

std::vector<std::int64_t> LocalJobQueue::cancelsAsked(const std::vector<Lease>& leases) {
  std::lock_guard lock(mu_);
  std::vector<std::int64_t> out;
  for (const auto& l : leases)
    if (cancelAsked_.count(l.jobId)) out.push_back(l.jobId);
  return out;
}

bool LocalJobQueue::holds(const Lease& lease) const {
  auto it = leases_.find(lease.jobId);
  return it != leases_.end() && it->second.token == lease.token &&
         it->second.expires > Clock::now();
}

std::vector<Lease> LocalJobQueue::renew(const std::vector<Lease>& leases) {
  std::vector<Lease> lost;
  bool requeued = false;
  {
    std::lock_guard lock(mu_);
    for (const auto& l : leases) {
      if (holds(l))
        leases_[l.jobId].expires = Clock::now() + leaseTime_;
      else
        lost.push_back(l);
    }
    requeued = requeueLapsed();
  }
  if (requeued) wake();
  return lost;
}

bool LocalJobQueue::update(const Lease& lease, const TangoJob& job) {
  std::lock_guard lock(mu_);
  if (!holds(lease)) return false;
  store_->update(job);
  live_[job.id] = job;
  return true;
}

bool LocalJobQueue::unassign(const Lease& lease, TangoJob job) {
  {
    std::lock_guard lock(mu_);
    if (!holds(lease)) return false;
    job.assigned = false;
    job.state = JobState::Queued;
    job.step = "queued";
    store_->update(job);  // if this throws, nothing changed: the lease lapses instead
    leases_.erase(job.id);
    unassigned_.insert(job.id);
    live_[job.id] = std::move(job);
  }
  wake();
  return true;
}

bool LocalJobQueue::finish(const Lease& lease, TangoJob job) {
  std::lock_guard lock(mu_);
  if (!holds(lease)) return false;
  job.state = JobState::Finished;
  job.assigned = false;
  job.times.finished = nowSeconds();
  job.step = "finished";
  // If this throws (a full disk), nothing changed: the worker holds the
  // lease and tries again.
  store_->update(job);
  leases_.erase(job.id);
  unassigned_.erase(job.id);
  cancelAsked_.erase(job.id);
  remember(job);
  live_.erase(job.id);
  return true;
}

void LocalJobQueue::remember(const TangoJob& job) {
  std::lock_guard lock(listedMu_);
  if (listedLimit_ == 0) return;  // nothing listed yet: the first listing loads
  listed_[job.id] = listedOf(job);
  while (listed_.size() > listedLimit_) listed_.erase(listed_.begin());
}

std::vector<JobQueue::FinishedJson> LocalJobQueue::finishedJson(int limit) {
  if (limit <= 0) return {};
  std::lock_guard lock(listedMu_);
  if (static_cast<std::size_t>(limit) > listedLimit_) {
    // Once (and again only if a larger limit is asked): finishes wait
    // meanwhile, so none falls between the load and the cache.
    listed_.clear();
    for (const auto& job : finished(limit)) listed_[job.id] = listedOf(job);
    listedLimit_ = static_cast<std::size_t>(limit);
  }
  std::vector<FinishedJson> out;
  const std::size_t skip = listed_.size() > static_cast<std::size_t>(limit)
                               ? listed_.size() - static_cast<std::size_t>(limit)
                               : 0;
  out.reserve(listed_.size() - skip);
  std::size_t i = 0;
  for (const auto& [id, f] : listed_)
    if (i++ >= skip) out.push_back(f);
  return out;
}

std::optional<TangoJob> LocalJobQueue::get(std::int64_t id) {
  {
    std::lock_guard lock(mu_);
    if (auto it = live_.find(id); it != live_.end()) return it->second;
  }
  return store_->load(id);
}

std::vector<std::pair<TangoJob, std::optional<std::int64_t>>> LocalJobQueue::liveJobs() {
  std::lock_guard lock(mu_);
  std::map<std::int64_t, std::int64_t> position;
  std::int64_t n = 0;
  for (auto id : queuedInStartOrder()) position[id] = n++;
  std::vector<std::pair<TangoJob, std::optional<std::int64_t>>> out;
  out.reserve(live_.size());
  for (const auto& [id, job] : live_) {
    std::optional<std::int64_t> pos;
    if (auto p = position.find(id); p != position.end()) pos = p->second;
    out.emplace_back(job, pos);
  }
  return out;
}

std::size_t LocalJobQueue::unassignedCount() {
  std::lock_guard lock(mu_);
  return unassigned_.size();
}

std::size_t LocalJobQueue::liveCount() {
  std::lock_guard lock(mu_);
  return live_.size();
}

std::size_t LocalJobQueue::liveCountOf(const std::string& keyId) {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (const auto& [id, job] : live_) n += job.keyId == keyId;
  return n;
}

std::vector<TangoJob> LocalJobQueue::finished(int limit) { return store_->loadFinished(limit); }
std::int64_t LocalJobQueue::countFinished() { return store_->countFinished(); }
std::vector<TangoJob> LocalJobQueue::pendingCallbacks() { return store_->loadPendingCallbacks(); }
std::int64_t LocalJobQueue::nextVmId() { return store_->nextVmId(); }

void LocalJobQueue::callbackDone(std::int64_t id, const std::string& result,
                                 const std::string& detail, double when) {
  std::lock_guard lock(mu_);
  auto job = store_->load(id);
  if (!job) return;
  job->callbackPending = false;
  job->callbackResult = result;
  job->callbackDetail = detail;
  job->callbackTime = when;
  store_->update(*job);
  std::lock_guard listed(listedMu_);
  if (auto it = listed_.find(id); it != listed_.end()) it->second = listedOf(*job);
}

}  // namespace tango
