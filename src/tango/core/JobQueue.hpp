#pragma once
// Tango's JobQueue, as an interface: the live jobs (queued or running) and
// the finished ones, over a durable store. Two implementations: the SQLite
// store of one node (LocalJobQueue) and the Redis store that several nodes
// share (RedisJobQueue).
//
// A manager `take`s a job with a lease and renews it while a worker runs the
// job. Every write about a running job names its lease and is refused once
// the lease is lost: a node that stalled past its lease (its job went back
// to the queue and maybe to another node) can no longer change that job, so
// its output and callback never follow the other node's.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tango/core/StartOrder.hpp"
#include "tango/model/Job.hpp"

namespace tango {

// The right to work on one running job. `token` is unique per take.
struct Lease {
  std::int64_t jobId = 0;
  std::string token;
};

struct TakenJob {
  TangoJob job;
  Lease lease;
};

class JobQueue {
 public:
  virtual ~JobQueue() = default;

  // Commits a new job (with the trace line "Added job <name>:<id> to queue")
  // and wakes the managers. Returns its id: unique, never reused.
  virtual std::int64_t add(TangoJob job) = 0;
  // At a node's start-up: the jobs this node held when it stopped go back
  // to the queue. Returns how many.
  virtual int recover() = 0;

  // Claims the first queued job that `accept` takes, in start order
  // (StartOrder.hpp: priority, fair share, then FIFO; `accept` sees the
  // candidates in that order and may reserve a VM for the one it takes). If
  // another node claims that job first, `undo` is called with it and the
  // search goes on. The job comes back marked assigned, with its lease.
  virtual std::optional<TakenJob> take(const std::function<bool(const TangoJob&)>& accept,
                                       const std::function<void(const TangoJob&)>& undo) = 0;
  // Claims queued job `id` itself (to cancel it), with a lease; nullopt
  // when it is not queued (running, finished or unknown).
  virtual std::optional<TakenJob> claim(std::int64_t id) = 0;
  // Asks whichever node runs job `id` to stop it; the request stands until
  // the job finishes (a job that goes back to the queue meanwhile is
  // stopped wherever it runs next).
  virtual void requestCancel(std::int64_t id) = 0;
  // Of the jobs these leases hold, those whose cancel was asked for.
  virtual std::vector<std::int64_t> cancelsAsked(const std::vector<Lease>& leases) = 0;
  // Extends the leases; returns those that were lost.
  virtual std::vector<Lease> renew(const std::vector<Lease>& leases) = 0;
  // Fenced writes: each returns false, and changes nothing, when the lease
  // is lost.
  virtual bool update(const Lease& lease, const TangoJob& job) = 0;
  // Back to its place in the queue (a retry on this node failed to start).
  virtual bool unassign(const Lease& lease, TangoJob job) = 0;
  // Committed as finished; its callback (if any) becomes this node's to send.
  virtual bool finish(const Lease& lease, TangoJob job) = 0;

  virtual std::optional<TangoJob> get(std::int64_t id) = 0;
  // Live jobs in FIFO order, each with its queue position (queued ones
  // only; 0 starts next, in start order).
  virtual std::vector<std::pair<TangoJob, std::optional<std::int64_t>>> liveJobs() = 0;
  virtual std::size_t unassignedCount() = 0;
  virtual std::size_t liveCount() = 0;
  // Live jobs of one API key (by keyId), for MAX_LIVE_JOBS_PER_KEY.
  virtual std::size_t liveCountOf(const std::string& keyId) {
    std::size_t n = 0;
    for (const auto& [job, pos] : liveJobs()) n += job.keyId == keyId;
    return n;
  }
  // The `limit` most recently finished jobs, oldest first.
  virtual std::vector<TangoJob> finished(int limit) = 0;
  // The same jobs as Tango's /jobs elements, already serialised, with the
  // key id each belongs to: what /jobs/<key>/1/ copies out. This default
  // builds them on each call; LocalJobQueue keeps them.
  struct FinishedJson {
    std::string keyId;
    std::shared_ptr<const std::string> json;
  };
  virtual std::vector<FinishedJson> finishedJson(int limit);
  static FinishedJson listedOf(const TangoJob& job);  // one job's element
  // unassignedCount() and liveCount() are memory reads (no network, no disk).
  virtual bool countsInMemory() const { return false; }
  virtual std::int64_t countFinished() = 0;

  // Finished jobs whose callback this node must (re)send: its own, and
  // those of nodes that died before sending theirs.
  virtual std::vector<TangoJob> pendingCallbacks() = 0;
  // Whether this node still has job `id`'s callback to send (another node
  // takes over the callbacks of a node it finds dead).
  virtual bool ownsCallback(std::int64_t id) {
    (void)id;
    return true;
  }
  // Records how a callback went (the job is finished; no lease).
  virtual void callbackDone(std::int64_t id, const std::string& result, const std::string& detail,
                            double when) = 0;

  // Next VM id (Tango's start at 1000), never reused.
  virtual std::int64_t nextVmId() = 0;

  // Called whenever work may be available (job added or put back).
  void setOnWork(std::function<void()> onWork) { onWork_ = std::move(onWork); }
  // Weights and priority bounds; set before the managers start.
  virtual void setSharePolicy(SharePolicy policy) { policy_ = std::move(policy); }

 protected:
  SharePolicy policy_;

  void wake() {
    if (onWork_) onWork_();
  }

 private:
  std::function<void()> onWork_;
};

// A job whose API key is no longer configured cannot find its courselab
// (its directory is named after the key): it ends with this reason instead
// of failing every try against paths that lead nowhere.
void endForUnknownKey(TangoJob& job);

}  // namespace tango
