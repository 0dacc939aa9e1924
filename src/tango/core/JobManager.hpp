#pragma once
// Tango's JobManager: takes the next unassigned job as soon as one is queued
// and a VM is free (woken by events; a pass each second besides catches
// jobs whose lease lapsed on another node), and starts a Worker thread for
// it. A second thread renews the leases of the jobs it runs; a job whose
// lease is lost has its VM stopped, and its worker gives it up.
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "tango/core/Worker.hpp"

namespace tango {

class JobManager {
 public:
  JobManager(const Config& cfg, const VmmsSet& vmms, JobQueue& queue, Preallocator& preallocator,
             Stats& stats, std::function<void(const TangoJob&)> onFinished);
  ~JobManager();
  // Called when a job's output file is in place; set before start().
  void setOnPublished(std::function<void(const TangoJob&)> f) { onPublished_ = std::move(f); }
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  void start();
  // Stops dispatching, stops running jobs' VMs and joins every thread. Jobs
  // that were running stay "running" in the store and are retried on restart.
  void stop();
  // Something changed (job queued, VM freed): look for work.
  void kick();
  // Stops job `id` if this node runs it: its VM is destroyed and its worker
  // finishes it as cancelled. Returns whether it ran here. (A job running
  // on another node learns of its cancel at its next lease renewal.)
  bool cancel(std::int64_t id);
  std::size_t running() const;

 private:
  void loop();
  void dispatch();
  void reapFinished();  // mu_ held
  void renewLoop();
  void stopVm(const TangoMachine& vm);  // ends a running job's runJob at once
  bool cancelHeld(std::unique_lock<std::mutex>& lock, std::int64_t id);  // mu_ held

  const Config& cfg_;
  const VmmsSet& vmms_;
  JobQueue& queue_;
  Preallocator& preallocator_;
  Stats& stats_;
  std::function<void(const TangoJob&)> onFinished_;
  std::function<void(const TangoJob&)> onPublished_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool kicked_ = false;
  bool stop_ = false;
  std::atomic<bool> shuttingDown_{false};
  // By worker serial, not job id: a job whose lease lapsed here may run
  // again on this node while its first worker winds down.
  std::uint64_t serial_ = 0;
  std::map<std::uint64_t, std::thread> workers_;
  std::map<std::uint64_t, TangoMachine> vms_;    // the VM each worker holds
  std::map<std::uint64_t, WorkerLease> leases_;  // each worker's lease
  std::vector<std::uint64_t> done_;              // workers to join
  std::thread thread_;
  std::thread renewer_;
};

}  // namespace tango
