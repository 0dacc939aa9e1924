#include "tango/vmms/DistDockerVmms.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace tango {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

DistDockerVmms::DistDockerVmms(const Config& cfg) : DistDockerVmms(cfg, dockerEngines(cfg)) {}

DistDockerVmms::DistDockerVmms(const Config& cfg, std::vector<DistEngine> engines) : cfg_(cfg) {
  for (auto& d : engines) {
    auto e = std::make_unique<Engine>();
    e->name = d.name;
    e->configuredCapacity = d.capacity;
    e->driver = std::move(d.driver);
    engines_.push_back(std::move(e));
  }
}

DistDockerVmms::~DistDockerVmms() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (health_.joinable()) health_.join();
}

std::string DistDockerVmms::preflight() {
  {
    // Once: the health thread keeps the engines' state from then on.
    std::lock_guard lock(mu_);
    if (started_) {
      for (auto& e : engines_)
        if (e->healthy) return {};
      return "no Docker engine of DOCKER_HOSTS answers";
    }
    started_ = true;
  }
  std::string problems;
  int up = 0;
  for (auto& e : engines_) {
    if (auto why = e->driver->probe(); !why.empty()) {
      std::lock_guard lock(mu_);
      e->problem = why;
      problems += (problems.empty() ? "" : "; ") + why;
      spdlog::warn("distDocker: engine {} is out of placement until it answers: {}", e->name, why);
      continue;
    }
    bringUp(*e);
    ++up;
  }
  health_ = std::thread([this] { healthLoop(); });
  if (up == 0) return "no Docker engine of DOCKER_HOSTS answers: " + problems;
  return {};
}

DistDockerVmms::Engine* DistDockerVmms::engineOfLocked(const TangoMachine& vm) {
  auto it = placed_.find(vm.id);
  return it == placed_.end() ? nullptr : it->second;
}

DistDockerVmms::Engine* DistDockerVmms::engineOf(const TangoMachine& vm) {
  std::lock_guard lock(mu_);
  return engineOfLocked(vm);
}

StepResult DistDockerVmms::notPlaced(const TangoMachine& vm) const {
  return StepResult::failure("VM " + std::to_string(vm.id) +
                             " is on no engine that answers (its engine went away)");
}

std::vector<DistDockerVmms::Engine*> DistDockerVmms::enginesWith(const std::string& image) {
  std::vector<Engine*> out;
  for (auto& e : engines_)
    if (e->healthy && e->images.count(image)) out.push_back(e.get());
  return out;
}

void DistDockerVmms::suspect(Engine& e) {
  {
    std::lock_guard lock(mu_);
    suspects_.insert(&e);
  }
  cv_.notify_all();
}

StepResult DistDockerVmms::initializeVM(const TangoMachine& vm, std::chrono::seconds timeout) {
  const std::string image = vm.image.empty() ? vm.name : vm.image;
  Engine* chosen = nullptr;
  {
    std::lock_guard lock(mu_);
    // The most free slots; among equals, the fewest containers for the
    // capacity, so that spares spread in proportion to it.
    for (Engine* e : enginesWith(image)) {
      const int free = e->capacity - e->held;
      if (!chosen) {
        chosen = e;
        continue;
      }
      const int bestFree = chosen->capacity - chosen->held;
      if (free > bestFree ||
          (free == bestFree && static_cast<long>(e->held) * chosen->capacity <
                                   static_cast<long>(chosen->held) * e->capacity))
        chosen = e;
    }
    if (chosen) {
      ++chosen->held;
      placed_[vm.id] = chosen;
    }
  }
  if (!chosen) return StepResult::failure("no Docker engine that answers holds image " + image);
  StepResult r = chosen->docker().initializeVM(vm, timeout);
  if (!r.ok) {
    // Still placed: the container may exist half made (created, not
    // started), and the caller's destroyVM must reach its engine.
    suspect(*chosen);
    r.error = chosen->name + ": " + r.error;
  }
  return r;
}

StepResult DistDockerVmms::waitVM(const TangoMachine& vm, std::chrono::seconds timeout) {
  Engine* e = engineOf(vm);
  return e ? e->docker().waitVM(vm, timeout) : notPlaced(vm);
}

StepResult DistDockerVmms::copyIn(const TangoMachine& vm, const std::vector<InputFile>& files,
                                  std::chrono::seconds timeout) {
  Engine* e = engineOf(vm);
  return e ? e->docker().copyIn(vm, files, timeout) : notPlaced(vm);
}

RunResult DistDockerVmms::runJob(const TangoMachine& vm, const RunSpec& spec) {
  Engine* e = nullptr;
  {
    std::unique_lock lock(mu_);
    e = engineOfLocked(vm);
    // A slot on its engine: never more jobs at once than its capacity.
    const auto deadline = Clock::now() + std::max<std::chrono::seconds>(spec.hardTimeout, 60s);
    cv_.wait_until(lock, deadline, [&] {
      e = engineOfLocked(vm);
      return stop_ || !e || e->running < e->capacity;
    });
    if (!e || stop_ || e->running >= e->capacity) {
      RunResult r;
      r.error = !e ? notPlaced(vm).error
                   : "engine " + e->name + " had no free slot until the job's time was up";
      return r;
    }
    ++e->running;
    ++e->jobsRun;
    e->maxRunning = std::max(e->maxRunning, e->running);
  }
  RunResult r = e->docker().runJob(vm, spec);
  {
    std::lock_guard lock(mu_);
    --e->running;
  }
  cv_.notify_all();
  if (r.status < 0) {
    suspect(*e);
    r.error = e->name + ": " + r.error;
  }
  return r;
}

StepResult DistDockerVmms::copyOut(const TangoMachine& vm, const fs::path& dest,
                                   std::chrono::seconds timeout) {
  Engine* e = engineOf(vm);
  return e ? e->docker().copyOut(vm, dest, timeout) : notPlaced(vm);
}

DistDockerVmms::Engine* DistDockerVmms::forget(const TangoMachine& vm) {
  std::lock_guard lock(mu_);
  Engine* e = engineOfLocked(vm);
  if (e) {
    placed_.erase(vm.id);
    --e->held;
  }
  return e;
}

// Never placed, or its engine went away: what it holds of ours there is
// removed when it answers again (bringUp).
StepResult DistDockerVmms::destroyVM(const TangoMachine& vm) {
  Engine* e = forget(vm);
  return e ? e->docker().destroyVM(vm) : StepResult::success();
}

StepResult DistDockerVmms::safeDestroyVM(const TangoMachine& vm) {
  Engine* e = forget(vm);
  if (!e) return StepResult::success();
  // A forced remove that succeeds leaves nothing (DockerVmms::destroyVM).
  StepResult r = e->docker().destroyVM(vm);
  if (r.ok) return r;
  // Failed: ask the engine now. One that went away has its leftovers
  // removed when it answers again (bringUp), so nobody waits for it here;
  // one that answers is tried on, as localDocker does.
  {
    std::unique_lock lock(mu_);
    const auto asked = e->probes;
    suspects_.insert(e);
    cv_.notify_all();
    cv_.wait_for(lock, 10s, [&] { return stop_ || !e->healthy || e->probes > asked; });
    if (!e->healthy) return StepResult::success();
  }
  return e->docker().safeDestroyVM(vm);
}

std::vector<TangoMachine> DistDockerVmms::getVMs() {
  std::vector<TangoMachine> all;
  for (auto& e : engines_) {
    {
      std::lock_guard lock(mu_);
      if (!e->healthy) continue;
    }
    auto vms = e->docker().getVMs();
    std::lock_guard lock(mu_);
    for (auto& vm : vms) {
      vm.vmms = name();
      vm.host = e->name;
      // Known from now on, so destroying it reaches the right engine.
      if (placed_.emplace(vm.id, e.get()).second) ++e->held;
      all.push_back(std::move(vm));
    }
  }
  return all;
}

std::vector<std::string> DistDockerVmms::getImages() {
  std::set<std::string> names;
  std::lock_guard lock(mu_);
  for (auto& e : engines_)
    if (e->healthy) names.insert(e->images.begin(), e->images.end());
  return {names.begin(), names.end()};
}

std::optional<std::string> DistDockerVmms::getPartialOutput(const TangoMachine& vm) {
  Engine* e = engineOf(vm);
  return e ? e->docker().getPartialOutput(vm) : std::nullopt;
}

StepResult DistDockerVmms::buildImage(const std::string& imageName, const fs::path& tarball) {
  std::string loaded, failed;
  for (auto& e : engines_) {
    bool healthy = false;
    {
      std::lock_guard lock(mu_);
      healthy = e->healthy;
    }
    StepResult r = healthy ? e->docker().buildImage(imageName, tarball)
                           : StepResult::failure("the engine does not answer");
    if (r.ok) {
      loaded += (loaded.empty() ? "" : ", ") + e->name;
      std::lock_guard lock(mu_);
      e->images.insert(imageName);
    } else {
      failed += (failed.empty() ? "" : "; ") + e->name + ": " + r.error;
    }
  }
  if (failed.empty()) return StepResult::success();
  // Tango's words first: clients match on them.
  return StepResult::failure("Image build failed on " + failed +
                             (loaded.empty() ? "" : " (loaded on " + loaded + ")"));
}

int DistDockerVmms::jobsAtOnce(const std::string& image) {
  int total = 0;
  std::lock_guard lock(mu_);
  for (Engine* e : enginesWith(image)) total += e->capacity;
  return total;
}

int DistDockerVmms::preference(const TangoMachine& vm) {
  std::lock_guard lock(mu_);
  Engine* e = engineOfLocked(vm);
  if (!e || !e->healthy) return -1;
  return std::max(e->capacity - e->running, 0);
}

std::string DistDockerVmms::hostOf(const TangoMachine& vm) {
  std::lock_guard lock(mu_);
  Engine* e = engineOfLocked(vm);
  return e ? e->name : std::string();
}

std::vector<HostStatus> DistDockerVmms::hosts() {
  std::vector<HostStatus> out;
  std::lock_guard lock(mu_);
  for (auto& e : engines_)
    out.push_back({e->name, e->healthy, e->capacity, e->running, e->held, e->maxRunning, e->jobsRun,
                   e->problem});
  return out;
}

}  // namespace tango
