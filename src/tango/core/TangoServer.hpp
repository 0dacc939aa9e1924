#pragma once
// TangoServer (tango.py's TangoServer): owns the parts and wires them:
// JobStore -> JobQueue -> JobManager -> Worker -> VMMS, the Preallocator's
// pools and the callback sender. It implements JobService for the REST layer.
#include <memory>
#include <stdexcept>

#include "tango/callback/CallbackSender.hpp"
#include "tango/config/Config.hpp"
#include "tango/core/JobManager.hpp"
#include "tango/core/JobQueue.hpp"
#include "tango/core/JobService.hpp"
#include "tango/core/Preallocator.hpp"
#include "tango/core/Stats.hpp"
#include "tango/store/JobStore.hpp"
#include "tango/vmms/Vmms.hpp"

namespace tango {

// The service cannot run jobs on this host as configured (the VMMS's
// preflight said why); restarting will not help until someone acts.
struct CannotStart : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class TangoServer final : public JobService {
 public:
  // Opens the store and the VMMS; throws on failure (the service cannot start).
  explicit TangoServer(const Config& cfg);
  ~TangoServer() override;

  // Recovery after a restart, then starts dispatching: leftover VMs of this
  // PREFIX are destroyed, unfinished jobs requeued, pending callbacks resent,
  // pools warmed.
  void start();
  void stop();

  AddJobResult addJob(const std::string& key, const std::string& courselab,
                      const std::filesystem::path& courselabDir,
                      const boost::json::value& body) override;
  boost::json::array jobs(bool dead) override;
  std::optional<std::string> partialOutput(std::int64_t jobId) override;
  boost::json::object info() override;
  PoolsResult pools(const std::optional<std::string>& image) override;
  SimpleResult prealloc(const std::string& image, int num,
                        const boost::json::object& body) override;
  SimpleResult build(const std::string& imageName, const std::filesystem::path& tarball) override;
  std::string metricsText() override;
  boost::json::object statusData() override;

  Stats& stats() { return stats_; }
  JobQueue& queue() { return *queue_; }

 private:
  // Ends unfinished jobs whose API key is no longer configured.
  void dropJobsOfUnknownKeys();
  void sendCallback(const TangoJob& job);
  void callbackDone(std::int64_t jobId, bool delivered, const std::string& detail);
  std::set<std::string> images();

  const Config& cfg_;
  Stats stats_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Vmms> vmms_;
  std::unique_ptr<JobQueue> queue_;
  std::unique_ptr<Preallocator> preallocator_;
  std::unique_ptr<CallbackSender> callbacks_;
  std::unique_ptr<JobManager> manager_;
  std::mutex callbackMu_;  // serialises updates of finished jobs' callback state
};

}  // namespace tango
