#pragma once
// The one-node JobQueue: live jobs in memory (by id) over the durable
// JobStore (SQLite). Every mutation is committed to the store before it
// becomes visible here. Leases live in memory: a restart ends them all
// (recover), and one that lapses while the process runs (a worker that
// stopped renewing) puts its job back like Redis's would.
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "tango/core/JobQueue.hpp"
#include "tango/store/JobStore.hpp"

namespace tango {

class LocalJobQueue final : public JobQueue {
 public:
  LocalJobQueue(std::unique_ptr<JobStore> store, std::chrono::milliseconds leaseTime);

  std::int64_t add(TangoJob job) override;
  int recover() override;
  std::optional<TakenJob> take(const std::function<bool(const TangoJob&)>& accept,
                               const std::function<void(const TangoJob&)>& undo) override;
  std::optional<TakenJob> claim(std::int64_t id) override;
  void requestCancel(std::int64_t id) override;
  std::vector<std::int64_t> cancelsAsked(const std::vector<Lease>& leases) override;
  std::vector<Lease> renew(const std::vector<Lease>& leases) override;
  bool update(const Lease& lease, const TangoJob& job) override;
  bool unassign(const Lease& lease, TangoJob job) override;
  bool finish(const Lease& lease, TangoJob job) override;

  std::optional<TangoJob> get(std::int64_t id) override;
  std::vector<std::pair<TangoJob, std::optional<std::int64_t>>> liveJobs() override;
  std::size_t unassignedCount() override;
  std::size_t liveCount() override;
  std::size_t liveCountOf(const std::string& keyId) override;
  std::vector<TangoJob> finished(int limit) override;
  std::vector<FinishedJson> finishedJson(int limit) override;
  bool countsInMemory() const override { return true; }
  std::int64_t countFinished() override;
  std::vector<TangoJob> pendingCallbacks() override;
  void callbackDone(std::int64_t id, const std::string& result, const std::string& detail,
                    double when) override;
  std::int64_t nextVmId() override;

 private:
  using Clock = std::chrono::steady_clock;
  struct Held {
    std::string token;
    Clock::time_point expires;
  };
  bool holds(const Lease& lease) const;                  // mu_ held
  bool requeueLapsed();                                  // mu_ held; true if any went back
  std::vector<std::int64_t> queuedInStartOrder() const;  // mu_ held
  TakenJob assign(std::int64_t id);                      // mu_ held; `id` is queued
  void remember(const TangoJob& finished);               // mu_ held

  std::unique_ptr<JobStore> store_;
  const std::chrono::milliseconds leaseTime_;
  std::mutex mu_;
  std::map<std::int64_t, TangoJob> live_;  // ordered by id = FIFO
  std::set<std::int64_t> unassigned_;
  std::map<std::int64_t, Held> leases_;
  std::set<std::int64_t> cancelAsked_;  // live jobs to stop wherever they run
  std::uint64_t takes_ = 0;
  // The most recent finished jobs' Tango JSON by id, kept from the first
  // listing on (at most the largest limit asked), so a listing copies text
  // instead of parsing and re-serialising a thousand documents. In memory
  // only: the elements hold absolute paths, which name the API key.
  std::mutex listedMu_;  // after mu_ when both are held
  std::map<std::int64_t, FinishedJson> listed_;
  std::size_t listedLimit_ = 0;
};

}  // namespace tango
