#include "tango/core/JobManager.hpp"

#include <spdlog/spdlog.h>

#include <map>
#include <set>

namespace tango {

JobManager::JobManager(const Config& cfg, Vmms& vmms, JobQueue& queue, Preallocator& preallocator,
                       Stats& stats, std::function<void(const TangoJob&)> onFinished)
    : cfg_(cfg),
      vmms_(vmms),
      queue_(queue),
      preallocator_(preallocator),
      stats_(stats),
      onFinished_(std::move(onFinished)) {}

JobManager::~JobManager() { stop(); }

void JobManager::start() {
  thread_ = std::thread([this] { loop(); });
}

void JobManager::kick() {
  {
    std::lock_guard lock(mu_);
    kicked_ = true;
  }
  cv_.notify_one();
}

std::size_t JobManager::running() const {
  std::lock_guard lock(mu_);
  return workers_.size() - done_.size();
}

void JobManager::loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait(lock, [this] { return stop_ || kicked_ || !done_.empty(); });
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
    std::map<std::string, std::size_t> waiting;  // queued jobs of full pools, by image
    auto job = queue_.takeNext([&](const TangoJob& j) {
      // A VMMS that sizes a VM's disk when it makes it cannot give a warm
      // one to a job asking for another size: that job gets a VM of its own.
      // Nor to a job with its own EC2 keys: its VM runs in its account.
      const bool fresh =
          (vmms_.diskSetAtCreation() && j.limits.diskMb && *j.limits.diskMb != cfg_.vmDiskLimit) ||
          (j.accessKeyId && j.accessKey);
      // Jobs that pool VMs could serve ask the pool to grow (demand).
      const bool poolable = !(j.accessKeyId && j.accessKey);
      if (full.count({j.vm.name, fresh})) {
        if (poolable) ++waiting[j.vm.name];
        return false;
      }
      alloc = preallocator_.allocVM(j.vm.name, fresh);
      if (!alloc) {
        full.insert({j.vm.name, fresh});
        if (poolable) ++waiting[j.vm.name];
      }
      return alloc.has_value();
    });
    if (!job) {
      for (const auto& [image, n] : waiting) preallocator_.demand(image, n);
      return;
    }

    std::unique_lock lock(mu_);
    if (stop_) {
      lock.unlock();
      preallocator_.releaseVM(alloc->vm);
      queue_.unassign(*job);
      return;
    }
    WorkerContext ctx{cfg_,
                      vmms_,
                      queue_,
                      preallocator_,
                      stats_,
                      onFinished_,
                      shuttingDown_,
                      [this](std::int64_t id, const TangoMachine& vm) {
                        std::lock_guard l(mu_);
                        vms_[id] = vm;
                      }};
    const std::int64_t id = job->id;
    workers_.emplace(id, std::thread([this, ctx = std::move(ctx), job = std::move(*job),
                                      alloc = std::move(*alloc)]() mutable {
                       const std::int64_t jobId = job.id;
                       runWorker(std::move(ctx), std::move(job), std::move(alloc));
                       {
                         std::lock_guard l(mu_);
                         vms_.erase(jobId);
                         done_.push_back(jobId);
                       }
                       cv_.notify_one();
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
  // Destroying a running job's VM makes its runJob return at once; the worker
  // then sees shuttingDown_ and leaves the job for the next start.
  for (auto& vm : held) vmms_.destroyVM(vm);
  std::map<std::int64_t, std::thread> workers;
  {
    std::lock_guard lock(mu_);
    workers.swap(workers_);
    done_.clear();
  }
  for (auto& [id, t] : workers) t.join();
}

}  // namespace tango
