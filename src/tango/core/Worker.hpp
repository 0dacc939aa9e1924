#pragma once
// Tango's Worker: walks one job through the VMMS calls (initializeVM, waitVM,
// copyIn, runJob, copyOut, destroy), each bounded by its configured timeout;
// retries system failures on a fresh VM up to JOB_RETRIES; records Tango's
// trace; writes the output file; hands the job to the dead list.
#include <atomic>
#include <functional>
#include <memory>

#include "tango/config/Config.hpp"
#include "tango/core/JobQueue.hpp"
#include "tango/core/Preallocator.hpp"
#include "tango/core/Stats.hpp"
#include "tango/vmms/VmmsSet.hpp"

namespace tango {

struct WorkerContext {
  const Config& cfg;
  const VmmsSet& vmms;
  JobQueue& queue;
  Preallocator& preallocator;
  Stats& stats;
  std::function<void(const TangoJob&)> onFinished;  // e.g. deliver the callback
  const std::atomic<bool>& shuttingDown;
  // Tells the manager which VM the worker holds now (so shutdown can stop it).
  std::function<void(std::int64_t jobId, const TangoMachine&)> onVm;
  // The job's output file is in place (before the finish is recorded):
  // polls waiting for it answer now.
  std::function<void(const TangoJob&)> onPublished = {};
};

// The job's lease, and whether it was lost (the manager could not renew
// it): then the job is another node's, and this worker only cleans up.
struct WorkerLease {
  Lease lease;
  std::shared_ptr<std::atomic<bool>> lost = std::make_shared<std::atomic<bool>>(false);
  // Set just before the worker records the finish, which releases the
  // lease: a renewal that raced with it then reports the lease gone, and
  // that must not stop the VM (a reused one is being reset for its pool).
  // The finish itself tells the worker whether the lease was still its own.
  std::shared_ptr<std::atomic<bool>> finishing = std::make_shared<std::atomic<bool>>(false);
  // Set when the job is cancelled while it runs: its VM is stopped, and the
  // worker finishes it as cancelled (its output says so, its callback goes).
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);
};

void runWorker(WorkerContext ctx, TangoJob job, WorkerLease lease, Preallocator::Allocation alloc);

// A queued job claimed (JobQueue::claim) to be cancelled: its output file
// says so, it is recorded finished, and its callback goes. `ctx.onVm` is
// not used. Returns whether the finish was recorded.
bool finishCancelled(WorkerContext& ctx, TangoJob& job, WorkerLease& lease);

}  // namespace tango
