#include "tango/core/JobManager.hpp"

#include <spdlog/spdlog.h>

#include <map>
#include <set>

namespace tango {

JobManager::JobManager(const Config& cfg, const VmmsSet& vmms, JobQueue& queue,
                       Preallocator& preallocator, Stats& stats,
                       std::function<void(const TangoJob&)> onFinished)
    : cfg_(cfg),
      vmms_(vmms),
      queue_(queue),
      preallocator_(preallocator),
      stats_(stats),
      onFinished_(std::move(onFinished)) {}

JobManager::~JobManager() { stop(); }

void JobManager::start() {
  thread_ = std::thread([this] { loop(); });
  renewer_ = std::thread([this] { renewLoop(); });
}

void JobManager::renewLoop() {
  // Three renewals per lease time: one late renewal (a busy Redis, a slow
  // disk) does not lose a lease.
  const auto every = std::chrono::milliseconds(cfg_.leaseSecs * 1000 / 3);
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, every, [this] { return stop_; });
    if (stop_) break;
    std::vector<Lease> held;
    for (auto& [id, l] : leases_)
      if (!l.lost->load()) held.push_back(l.lease);
    lock.unlock();
    std::vector<Lease> lost;
    std::vector<std::int64_t> cancels;
    try {
      lost = queue_.renew(held);
      cancels = queue_.cancelsAsked(held);
    } catch (const std::exception& e) {
      // The store is unreachable: the leases run on; the jobs go on
      // running, and are given up only if the store says they were lost.
      spdlog::warn("cannot renew leases: {}", e.what());
    }
    lock.lock();
    for (auto id : cancels) cancelHeld(lock, id);
    for (const auto& gone : lost) {
      for (auto& [serial, l] : leases_) {
        if (l.lease.token != gone.token) continue;
        if (l.finishing->load()) break;  // released by the finish, not lost
        l.lost->store(true);
        // Stopping its VM ends a runJob at once; the worker then gives up.
        if (auto vm = vms_.find(serial); vm != vms_.end()) {
          TangoMachine m = vm->second;
          lock.unlock();
          spdlog::warn("job {}: lease lost; stopping its VM", gone.jobId);
          stopVm(m);
          lock.lock();
        }
        break;
      }
    }
  }
}

bool JobManager::cancel(std::int64_t id) {
  std::unique_lock lock(mu_);
  return cancelHeld(lock, id);
}

bool JobManager::cancelHeld(std::unique_lock<std::mutex>& lock, std::int64_t id) {
  for (auto& [serial, l] : leases_) {
    if (l.lease.jobId != id || l.lost->load() || l.finishing->load()) continue;
    if (l.cancelled->exchange(true)) return true;  // already on its way out
    spdlog::info("job {}: cancelled; stopping its VM", id);
    // Stopping its VM ends a runJob at once; the worker then finishes the
    // job as cancelled. A worker between steps sees the flag at its next.
    if (auto vm = vms_.find(serial); vm != vms_.end()) {
      TangoMachine m = vm->second;
      lock.unlock();
      stopVm(m);
      lock.lock();
    }
    return true;
  }
  return false;
}

void JobManager::stopVm(const TangoMachine& vm) {
  try {
    vmms_.of(vm).destroyVM(vm);
  } catch (const std::exception& e) {
    spdlog::warn("stopping VM {}: {}", vm.id, e.what());
  }
}

void JobManager::kick() {
  {
    std::lock_guard lock(mu_);
    kicked_ = true;
  }
  cv_.notify_all();
}

std::size_t JobManager::running() const {
  std::lock_guard lock(mu_);
  return workers_.size() - done_.size();
}

void JobManager::loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::seconds(1),
                 [this] { return stop_ || kicked_ || !done_.empty(); });
    if (stop_) break;
    kicked_ = false;
    reapFinished();
    lock.unlock();
    dispatch();
    lock.lock();
  }
}

void JobManager::dispatch() {
  for (;;) {
    if (cfg_.maxConcurrentJobs > 0 && running() >= static_cast<std::size_t>(cfg_.maxConcurrentJobs))
      return;
    std::optional<Preallocator::Allocation> alloc;
    // FIFO, but a job whose pool is full does not hold up jobs of other
    // images; a full pool is asked once per pass, not once per queued job.
    std::set<std::pair<std::string, bool>> full;
    std::map<std::string, std::size_t> waiting;  // queued jobs of full pools, by pool
    auto accept = [&](const TangoJob& j) {
      // A VMMS this node does not serve: another node's job.
      if (!j.vm.vmms.empty() && !vmms_.find(j.vm.vmms)) return false;
      // A VMMS that sizes a VM's disk when it makes it cannot give a warm
      // one to a job asking for another size: that job gets a VM of its own.
      // Nor to a job with its own EC2 keys: its VM runs in its account.
      const bool fresh = (vmms_.of(j.vm).diskSetAtCreation() && j.limits.diskMb &&
                          *j.limits.diskMb != cfg_.vmDiskLimit) ||
                         (j.accessKeyId && j.accessKey);
      // Jobs that pool VMs could serve ask the pool to grow (demand).
      const bool poolable = !(j.accessKeyId && j.accessKey);
      const std::string key = preallocator_.poolKey(j.vm);
      if (full.count({key, fresh})) {
        if (poolable) ++waiting[key];
        return false;
      }
      alloc = preallocator_.allocVM(j.vm, fresh);
      if (!alloc) {
        full.insert({key, fresh});
        if (poolable) ++waiting[key];
      }
      return alloc.has_value();
    };
    // Another node claimed it first: the VM stays in its pool.
    auto undo = [&](const TangoJob&) {
      if (alloc) preallocator_.cancel(*alloc);
      alloc.reset();
    };
    std::optional<TakenJob> taken;
    try {
      taken = queue_.take(accept, undo);
    } catch (const std::exception& e) {
      spdlog::warn("cannot take a job: {}", e.what());
      undo(TangoJob{});
      return;
    }
    if (!taken) {
      for (const auto& [key, n] : waiting) preallocator_.demand(key, n);
      return;
    }
    auto job = std::move(taken->job);
    WorkerLease lease{std::move(taken->lease)};
    if (job.times.queued > 0) stats_.metrics.waited(job.times.assigned - job.times.queued);

    std::unique_lock lock(mu_);
    if (stop_) {
      lock.unlock();
      preallocator_.cancel(*alloc);  // a warm VM back to its pool, destroyed with it
      try {
        queue_.unassign(lease.lease, job);
      } catch (const std::exception& e) {  // its lease lapses instead
        spdlog::warn("job {}: not put back at shutdown: {}", job.id, e.what());
      }
      return;
    }
    const std::uint64_t serial = ++serial_;
    leases_.emplace(serial, lease);
    WorkerContext ctx{cfg_,
                      vmms_,
                      queue_,
                      preallocator_,
                      stats_,
                      onFinished_,
                      shuttingDown_,
                      [this, serial](std::int64_t, const TangoMachine& vm) {
                        std::lock_guard l(mu_);
                        vms_[serial] = vm;
                      }};
    ctx.onPublished = onPublished_;
    workers_.emplace(
        serial, std::thread([this, serial, ctx = std::move(ctx), job = std::move(job),
                             lease = std::move(lease), alloc = std::move(*alloc)]() mutable {
          runWorker(std::move(ctx), std::move(job), std::move(lease), std::move(alloc));
          {
            std::lock_guard l(mu_);
            vms_.erase(serial);
            leases_.erase(serial);
            done_.push_back(serial);
          }
          cv_.notify_all();
        }));
  }
}

void JobManager::reapFinished() {
  for (auto id : done_) {
    auto it = workers_.find(id);
    if (it == workers_.end()) continue;
    it->second.join();
    workers_.erase(it);
  }
  done_.clear();
}

void JobManager::stop() {
  std::vector<TangoMachine> held;
  {
    std::lock_guard lock(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
    shuttingDown_ = true;
    for (auto& [id, vm] : vms_) held.push_back(vm);
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (renewer_.joinable()) renewer_.join();
  // Destroying a running job's VM makes its runJob return at once; the worker
  // then sees shuttingDown_ and leaves the job for the next start.
  for (auto& vm : held) stopVm(vm);
  std::map<std::uint64_t, std::thread> workers;
  {
    std::lock_guard lock(mu_);
    workers.swap(workers_);
    done_.clear();
  }
  for (auto& [id, t] : workers) t.join();
}

}  // namespace tango
