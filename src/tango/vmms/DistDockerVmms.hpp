#pragma once
// The `distDocker` VMMS: containers on several Docker engines (DOCKER_HOSTS),
// each driven exactly as localDocker drives its one engine (one DockerVmms
// per engine, through the Engine API), so every localDocker guarantee holds
// on every engine.
//
// Placement. Each engine has a capacity: jobs at once (configured, or from
// its CPUs and memory). A new container goes to the engine, among those
// that answer and hold the job's image, with the most free slots (capacity
// minus the containers it holds, spares included), so a pool's spares spread
// in proportion to capacity. A job takes the warm container on the engine
// with the most free run slots (preference()), and its run waits for a slot
// there: no engine ever runs more jobs at once than its capacity.
//
// Health (DistDockerHealth.cpp). Every engine is pinged each
// DOCKER_PING_SECS, and at once after a call to it failed. One that does not
// answer leaves placement: its VMs are forgotten (their jobs fail their step
// and are retried elsewhere, counted in JOB_RETRIES; their pools' spares are
// made again elsewhere). When it answers again, the containers of this node
// it still holds are removed before it takes jobs again.
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tango/config/Config.hpp"
#include "tango/vmms/EngineDriver.hpp"

namespace tango {

class DistDockerVmms : public Vmms {
 public:
  // The engines of DOCKER_HOSTS.
  explicit DistDockerVmms(const Config& cfg);
  // Engines given (the placement benchmark's modelled ones).
  DistDockerVmms(const Config& cfg, std::vector<DistEngine> engines);
  ~DistDockerVmms() override;

  std::string name() const override { return "distDocker"; }
  bool diskSetAtCreation() const override { return true; }
  // Reaches every engine, learns capacities, starts the health checks;
  // refuses only when no engine answers.
  std::string preflight() override;
  StepResult initializeVM(const TangoMachine& vm, std::chrono::seconds timeout) override;
  StepResult waitVM(const TangoMachine& vm, std::chrono::seconds timeout) override;
  StepResult copyIn(const TangoMachine& vm, const std::vector<InputFile>& files,
                    std::chrono::seconds timeout) override;
  RunResult runJob(const TangoMachine& vm, const RunSpec& spec) override;
  StepResult copyOut(const TangoMachine& vm, const std::filesystem::path& dest,
                     std::chrono::seconds timeout) override;
  StepResult destroyVM(const TangoMachine& vm) override;
  StepResult safeDestroyVM(const TangoMachine& vm) override;
  std::vector<TangoMachine> getVMs() override;
  std::vector<std::string> getImages() override;
  std::optional<std::string> getPartialOutput(const TangoMachine& vm) override;
  StepResult buildImage(const std::string& imageName,
                        const std::filesystem::path& tarball) override;

  int jobsAtOnce(const std::string& image) override;
  int preference(const TangoMachine& vm) override;
  std::string hostOf(const TangoMachine& vm) override;
  std::vector<HostStatus> hosts() override;

 private:
  struct Engine {
    std::string name;  // its DOCKER_HOSTS URL
    int configuredCapacity = 0;
    std::unique_ptr<EngineDriver> driver;  // probe(): the health thread (and preflight) only
    Vmms& docker() { return driver->vmms(); }
    // Guarded by mu_:
    int capacity = 1;
    bool healthy = false;
    int failures = 0;          // pings failed in a row
    std::uint64_t probes = 0;  // verdicts so far (safeDestroyVM waits for the next)
    std::string problem;
    int held = 0;     // containers placed here and not destroyed
    int running = 0;  // jobs in runJob here
    int maxRunning = 0;
    std::int64_t jobsRun = 0;
    // Its images, as of the last ping (asked there, never under a caller's
    // lock: the Preallocator asks jobsAtOnce holding its own).
    std::set<std::string> images;
  };

  // The engine `vm` was placed on, or nullptr (never placed, or its engine
  // went away since). mu_ held.
  Engine* engineOf(const TangoMachine& vm);
  Engine* engineOfLocked(const TangoMachine& vm);
  // Engines that answer and hold `image`. mu_ held.
  std::vector<Engine*> enginesWith(const std::string& image);
  StepResult notPlaced(const TangoMachine& vm) const;
  // Takes `vm` off its engine's books; its engine, if it had one.
  Engine* forget(const TangoMachine& vm);
  // A call to `e` failed: ask it now rather than at the next ping, so the
  // job's retry goes elsewhere.
  void suspect(Engine& e);

  // DistDockerHealth.cpp
  void healthLoop();
  void markDown(Engine& e, const std::string& why);  // mu_ held
  // The engine answers (again): its leftovers go, then it takes jobs.
  void bringUp(Engine& e);
  int deriveCapacity(Engine& e);

  Config cfg_;
  std::vector<std::unique_ptr<Engine>> engines_;

  std::mutex mu_;
  std::condition_variable cv_;              // slots freed, engines changed, stop
  std::map<std::int64_t, Engine*> placed_;  // VM id -> its engine
  bool stop_ = false;
  bool started_ = false;
  std::set<Engine*> suspects_;  // to probe now
  std::thread health_;
};

}  // namespace tango
