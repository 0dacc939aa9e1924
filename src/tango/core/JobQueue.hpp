#pragma once
// Tango's JobQueue: the live jobs (queued or running, in memory, FIFO by id)
// over the durable JobStore. Finished ("dead") jobs live only in the store.
// Every mutation is committed to the store before it becomes visible here.
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

#include "tango/model/Job.hpp"
#include "tango/store/JobStore.hpp"

namespace tango {

class JobQueue {
 public:
  explicit JobQueue(JobStore& store);

  // Commits a new job ("Added job <name>:<id> to queue") and wakes the manager.
  std::int64_t add(TangoJob job);
  // Re-loads unfinished jobs after a restart: running ones go back to the
  // queue (retried on a fresh VM). Returns how many were requeued from running.
  int recover();

  // The oldest unassigned job for which `accept` returns true, marked assigned
  // (committed). `accept` sees each candidate in FIFO order.
  std::optional<TangoJob> takeNext(const std::function<bool(const TangoJob&)>& accept);
  // Commits a change of a live job (trace, step, VM...) and updates the copy here.
  void update(const TangoJob& job);
  // Puts an assigned job back at its place in the queue (a retry).
  void unassign(TangoJob job);
  // Commits a finished job and removes it from the live list.
  void makeDead(TangoJob job);

  std::optional<TangoJob> get(std::int64_t id) const;
  // Live jobs in FIFO order with their queue position (unassigned only).
  std::vector<std::pair<TangoJob, std::optional<std::int64_t>>> liveJobs() const;
  std::size_t unassignedCount() const;
  std::size_t liveCount() const;

  // Called whenever work may be available (job added or unassigned).
  void setOnWork(std::function<void()> onWork) { onWork_ = std::move(onWork); }

 private:
  JobStore& store_;
  mutable std::mutex mu_;
  std::map<std::int64_t, TangoJob> live_;  // ordered by id = FIFO
  std::set<std::int64_t> unassigned_;
  std::function<void()> onWork_;
};

}  // namespace tango
