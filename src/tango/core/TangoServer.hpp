#pragma once
// TangoServer (tango.py's TangoServer): wires the parts it is given (the
// job queue, the VMMSs by name, the view of the other nodes) to the parts it
// makes (Preallocator, JobManager, callback sender), and implements
// JobService for the REST layer. tangod assembles the parts from the config
// (core/ServiceParts.hpp); tests hand in their own.
#include <atomic>
#include <memory>
#include <stdexcept>
#include <thread>

#include "tango/callback/CallbackSender.hpp"
#include "tango/config/Config.hpp"
#include "tango/core/BuiltImages.hpp"
#include "tango/core/Cluster.hpp"
#include "tango/core/JobManager.hpp"
#include "tango/core/JobQueue.hpp"
#include "tango/core/JobService.hpp"
#include "tango/core/Preallocator.hpp"
#include "tango/core/QueueView.hpp"
#include "tango/core/Stats.hpp"
#include "tango/status/StatusHistory.hpp"
#include "tango/vmms/VmmsSet.hpp"

namespace tango {

// The service cannot run jobs on this host as configured (the VMMS's
// preflight said why); restarting will not help until someone acts.
struct CannotStart : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What a node is assembled from.
struct ServiceParts {
  std::unique_ptr<JobQueue> queue;
  VmmsSet vmms;
  std::unique_ptr<Cluster> cluster;
};

class TangoServer final : public JobService {
 public:
  TangoServer(const Config& cfg, ServiceParts parts);
  ~TangoServer() override;

  // Joins the cluster; a manager then cleans up its own leftover VMs (never
  // another node's), requeues the jobs it held, resends its pending
  // callbacks, warms WARM_IMAGES and starts dispatching.
  void start();
  void stop();

  AddJobResult addJob(const std::string& key, const std::string& courselab,
                      const std::filesystem::path& courselabDir,
                      const boost::json::value& body) override;
  boost::json::array jobs(bool dead, const std::optional<std::string>& owner) override;
  std::optional<std::string> partialOutput(std::int64_t jobId,
                                           const std::optional<std::string>& owner) override;
  boost::json::object info() override;
  bool infoIsQuick() override;
  std::string deadJobsJson(const std::optional<std::string>& owner) override;
  PoolsResult pools(const std::optional<std::string>& image) override;
  SimpleResult prealloc(const std::string& image, int num,
                        const boost::json::object& body) override;
  SimpleResult build(const std::string& imageName, const std::filesystem::path& tarball) override;
  CancelResult cancel(std::int64_t jobId, const std::optional<std::string>& owner) override;
  CancelResult cancelQueued(const std::string& owner, const std::string& courselab) override;
  std::optional<boost::json::object> queueSpot(const std::string& owner,
                                               const std::string& courselab,
                                               const std::string& outputFile) override;
  std::string metricsText() override;
  boost::json::object statusData() override;
  void watchOutputs(std::function<void(const std::string&)> onOutput) override;

  Stats& stats() { return stats_; }
  JobQueue& queue() { return *queue_; }

 private:
  void startManager();
  void cleanUpAfter(const Cluster::DeadNode& dead);
  void janitorLoop();
  void historyLoop();  // a sample for the status page's charts every 10 s
  void sendCallback(const TangoJob& job);
  void announceOutput(const TangoJob& job);
  // Claims queued job `id` and finishes it as cancelled; false when it was
  // not queued (any more).
  bool cancelIfQueued(std::int64_t id);
  void callbackDone(std::int64_t jobId, bool delivered, const std::string& detail);
  std::optional<std::string> localPartialOutput(std::int64_t jobId);
  boost::json::object localStats();
  std::vector<std::pair<std::string, std::set<std::string>>> imagesByVmms();
  std::map<std::string, PoolState> mergedPools();

  const Config& cfg_;
  Stats stats_;
  std::unique_ptr<JobQueue> queue_;
  VmmsSet vmms_;
  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<Preallocator> preallocator_;
  std::unique_ptr<CallbackSender> callbacks_;
  std::unique_ptr<JobManager> manager_;
  BuiltImages built_;
  std::unique_ptr<QueueView> queueView_;
  std::atomic<bool> stopped_{false};  // for work done outside the manager (cancels)
  std::mutex janitorMu_;
  std::mutex outputWatchMu_;
  std::function<void(const std::string&)> outputWatch_;  // guarded by outputWatchMu_
  std::condition_variable janitorCv_;
  bool stopping_ = false;
  std::atomic<bool> managing_{false};  // the manager has started
  std::thread janitor_;
  std::thread history_;
  status::StatusHistory samples_;
};

}  // namespace tango
