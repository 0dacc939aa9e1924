// distDocker: which engines answer (see DistDockerVmms.hpp, "Health").
#include <spdlog/spdlog.h>

#include <algorithm>

#include "tango/vmms/DistDockerVmms.hpp"

namespace tango {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {
// Periodic pings that must fail in a row before an engine leaves
// placement; a failed job call and a failed ping together are enough.
constexpr int kFailuresToGo = 2;
// Each 512 MB of an engine's memory is one job's, when DOCKER_MEMORY_LIMIT
// does not say how much a job may take.
constexpr std::int64_t kDefaultJobMemory = 512LL << 20;
}  // namespace

int DistDockerVmms::deriveCapacity(Engine& e) {
  if (e.configuredCapacity > 0) return e.configuredCapacity;
  try {
    const auto info = e.driver->systemInfo();
    const std::int64_t perJob = cfg_.dockerMemoryLimit && *cfg_.dockerMemoryLimit > 0
                                    ? static_cast<std::int64_t>(*cfg_.dockerMemoryLimit) << 20
                                    : kDefaultJobMemory;
    const auto byMemory =
        static_cast<int>(std::min<std::int64_t>(info.memoryBytes / perJob, 100000));
    // One job per CPU unless memory allows fewer.
    return std::max(1, std::min(info.cpus > 0 ? info.cpus : 1, std::max(byMemory, 1)));
  } catch (const std::exception& x) {
    spdlog::warn("distDocker: cannot ask {} for its CPUs and memory ({}); capacity 1", e.name,
                 x.what());
    return 1;
  }
}

void DistDockerVmms::bringUp(Engine& e) {
  const int capacity = deriveCapacity(e);
  // Whatever this node left there (before a crash, or while the engine was
  // away: those VMs were forgotten when it went) goes before any new job.
  int removed = 0;
  for (const auto& vm : e.docker().getVMs()) {
    if (vm.node != cfg_.nodeId) continue;
    if (e.docker().destroyVM(vm).ok) ++removed;
  }
  auto images = e.docker().getImages();
  {
    std::lock_guard lock(mu_);
    e.capacity = capacity;
    e.images = std::set<std::string>(images.begin(), images.end());
    e.healthy = true;
    e.failures = 0;
    e.problem.clear();
  }
  spdlog::info("distDocker: engine {} takes jobs (capacity {}, {} images{})", e.name, capacity,
               images.size(),
               removed ? ", " + std::to_string(removed) + " leftover containers removed" : "");
  cv_.notify_all();
}

void DistDockerVmms::markDown(Engine& e, const std::string& why) {
  if (e.healthy)
    spdlog::warn("distDocker: engine {} does not answer ({}); its jobs go to the other engines",
                 e.name, why);
  e.healthy = false;
  e.problem = why;
  e.held = 0;
  for (auto it = placed_.begin(); it != placed_.end();)
    it = it->second == &e ? placed_.erase(it) : std::next(it);
  cv_.notify_all();  // runs waiting for a slot there give up
}

void DistDockerVmms::healthLoop() {
  const auto every = std::chrono::seconds(std::max(cfg_.dockerPingSecs, 1));
  auto next = Clock::now() + every;
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_until(lock, next, [this] { return stop_ || !suspects_.empty(); });
    if (stop_) break;
    const bool periodic = Clock::now() >= next;
    std::set<Engine*> suspects = std::exchange(suspects_, {});
    if (periodic) next = Clock::now() + every;
    std::vector<Engine*> check;
    for (auto& e : engines_)
      if (periodic || suspects.count(e.get())) check.push_back(e.get());
    lock.unlock();
    for (Engine* e : check) {
      const std::string why = e->driver->probe();
      bool healthy = false, wentDown = false;
      {
        std::lock_guard guard(mu_);
        ++e->probes;
        healthy = e->healthy;
        if (!why.empty()) {
          ++e->failures;
          if (!healthy) {
            e->problem = why;
          } else if (e->failures >= kFailuresToGo || suspects.count(e)) {
            markDown(*e, why);
            wentDown = true;
          }
        } else {
          e->failures = 0;
        }
      }
      cv_.notify_all();  // a safeDestroyVM may wait for this verdict
      // A frozen engine never closes its jobs' connections: they end now and
      // are retried elsewhere, not at their hard timeout.
      if (wentDown) e->driver->abandonRuns();
      if (!why.empty()) continue;
      if (!healthy) {
        bringUp(*e);
        continue;
      }
      // New images (loaded by tango-image push, say) count from the next ping.
      auto images = e->docker().getImages();
      std::lock_guard guard(mu_);
      if (!images.empty() || e->images.empty())
        e->images = std::set<std::string>(images.begin(), images.end());
    }
    lock.lock();
  }
}

}  // namespace tango
