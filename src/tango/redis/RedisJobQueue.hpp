#pragma once
// The JobQueue that several nodes share, in Redis. Jobs are JSON documents
// (the SQLite store's format, JobJson.hpp); which jobs are queued, leased,
// live and finished is kept in sorted sets, and every transition is one
// Lua script (RedisScripts.hpp), so a job is claimed by one node only and
// written only by its lease's holder. Ids come from INCR: unique across
// nodes, never reused.
//
// Key layout, under REDIS_PREFIX (<p>):
//   <p>ids, <p>vmids         counters (job ids; VM ids + 999, reserved in blocks)
//   <p>finishedby            hash: id -> the token that finished it
//   <p>clock                 Redis time of the last renewal or take (kClock)
//   <p>job:<id>              the job's document
//   <p>queued, <p>live       sorted sets of ids (score = id: FIFO)
//   <p>leased                sorted set: id -> lease expiry (ms, Redis time)
//   <p>owners                hash: id -> lease token (<node>/<instance>/<n>)
//   <p>dead                  sorted set: id -> finish time (ms)
//   <p>cancel                hash: live id -> 1, a cancel asked for (cleared at its finish)
//   <p>cb:<node>             set: finished jobs whose callback <node> sends
//   <p>managers, <p>wake:<node>  who to wake, and each one's wake-up list
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "tango/core/JobQueue.hpp"
#include "tango/redis/RedisClient.hpp"
#include "tango/store/JobStore.hpp"

namespace tango {

class RedisJobQueue final : public JobQueue {
 public:
  // `wakeable`: this node runs a manager, to be woken when jobs are queued.
  RedisJobQueue(RedisOptions options, std::string prefix, std::string node,
                std::chrono::milliseconds leaseTime, LabDirOf labDirOf, bool wakeable);
  ~RedisJobQueue() override;

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
  std::int64_t countFinished() override;
  std::vector<TangoJob> pendingCallbacks() override;
  bool ownsCallback(std::int64_t id) override;
  void callbackDone(std::int64_t id, const std::string& result, const std::string& detail,
                    double when) override;
  std::int64_t nextVmId() override;

  // Redis commands this queue sent (for the benchmark's commands per job).
  std::int64_t commandsSent() const { return commands_.load(); }

 private:
  RedisReply eval(const std::string& script, std::vector<std::string> args);
  std::optional<TangoJob> parse(const RedisReply& doc) const;
  std::vector<TangoJob> load(const std::vector<std::string>& ids);
  std::string key(const std::string& k) const { return prefix_ + k; }
  // Claims queued job `id`; nullopt when another node was first.
  std::optional<TakenJob> takeId(std::int64_t id);
  // The queued jobs in start order (StartOrder.hpp), from the queued and
  // leased sets; their documents come from the caches below.
  std::vector<TangoJob> queuedInStartOrder();
  void wakeLoop();

  RedisClient redis_;
  const std::string prefix_, node_, instance_;
  const std::chrono::milliseconds leaseTime_;
  LabDirOf labDirOf_;
  std::atomic<std::uint64_t> takes_{0};
  static constexpr std::int64_t kVmIdBlock = 16;
  std::mutex vmIdsMu_;
  std::int64_t vmIdNext_ = 0, vmIdEnd_ = 0;  // this node's reserved VM ids
  std::atomic<std::int64_t> commands_{0};
  // Candidates' documents, by id: what `accept` and the start order read
  // (image, limits, key, courselab, priority) never changes while a job is
  // live, so each is fetched once; a running job keeps only what its share
  // needs.
  std::mutex cacheMu_;
  std::map<std::int64_t, TangoJob> candidates_;
  std::map<std::int64_t, TangoJob> runningShares_;
  // Live jobs per key id (MAX_LIVE_JOBS_PER_KEY), counted from the live set
  // at most once a second, plus what this node added since: an addJob does
  // not load every live job. Jobs that finished meanwhile still count until
  // the next count, so the cap errs on the safe side.
  std::mutex countsMu_;
  std::map<std::string, std::size_t> liveCounts_;
  std::chrono::steady_clock::time_point countedAt_{};

  std::unique_ptr<RedisClient> waker_;  // its own connection: BLPOP blocks it
  std::atomic<bool> stop_{false};
  std::thread wakeThread_;
};

}  // namespace tango
