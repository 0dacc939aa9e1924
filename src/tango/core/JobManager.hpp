#pragma once
// Tango's JobManager: takes the next unassigned job as soon as one is queued
// and a VM is free (woken by events, never by a polling sleep), and starts a
// Worker thread for it.
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
  JobManager(const Config& cfg, Vmms& vmms, JobQueue& queue, Preallocator& preallocator,
             Stats& stats, std::function<void(const TangoJob&)> onFinished);
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  void start();
  // Stops dispatching, stops running jobs' VMs and joins every thread. Jobs
  // that were running stay "running" in the store and are retried on restart.
  void stop();
  // Something changed (job queued, VM freed): look for work.
  void kick();
  std::size_t running() const;

 private:
  void loop();
  void dispatch();
  void reapFinished();  // mu_ held

  const Config& cfg_;
  Vmms& vmms_;
  JobQueue& queue_;
  Preallocator& preallocator_;
  Stats& stats_;
  std::function<void(const TangoJob&)> onFinished_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool kicked_ = false;
  bool stop_ = false;
  std::atomic<bool> shuttingDown_{false};
  std::map<std::int64_t, std::thread> workers_;  // job id -> thread
  std::map<std::int64_t, TangoMachine> vms_;     // job id -> the VM it holds
  std::vector<std::int64_t> done_;               // workers to join
  std::thread thread_;
};

}  // namespace tango
