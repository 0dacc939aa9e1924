#include "tango/vmms/DockerVmms.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "tango/docker/Tar.hpp"
#include "tango/util/ReadFile.hpp"
#include "tango/vmms/DockerLabels.hpp"

namespace tango {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using docker::TarEntry;
using Clock = std::chrono::steady_clock;

namespace {

// What the autodriver needs as root in the container: hand the job directory
// to the grading user (CHOWN, FOWNER, DAC_OVERRIDE), become that user
// (SETUID, SETGID) and kill what the job left behind (KILL). Nothing else.
const std::vector<std::string> kCaps = {"CHOWN",  "SETUID",       "SETGID",
                                        "FOWNER", "DAC_OVERRIDE", "KILL"};
// The container's own cgroup counters, v2 and v1 (only some exist).
const std::vector<std::string> kEventFiles = {
    "/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control",
    "/sys/fs/cgroup/pids.events", "/sys/fs/cgroup/pids/pids.events"};

std::string socketFromEnv() {
  const char* h = std::getenv("DOCKER_HOST");
  if (h && std::string_view(h).starts_with("unix://")) return std::string(h + 7);
  return "/var/run/docker.sock";
}

std::chrono::milliseconds ms(std::chrono::seconds s) {
  return s.count() > 0 ? std::chrono::milliseconds(s) : std::chrono::milliseconds(60s);
}

}  // namespace

DockerVmms::DockerVmms(const Config& cfg, std::string socketPath)
    : cfg_(cfg), engine_(socketPath.empty() ? socketFromEnv() : std::move(socketPath)) {}

DockerVmms::DockerVmms(const Config& cfg, docker::Endpoint engine)
    : cfg_(cfg), engine_(std::move(engine)) {}

std::string DockerVmms::containerName(const TangoMachine& vm) const {
  std::string n = instanceName(cfg_.prefix, vm);
  for (char& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') c = '_';
  return n;
}

StepResult DockerVmms::initializeVM(const TangoMachine& vm, std::chrono::seconds timeout) {
  const std::string image = vm.image.empty() ? vm.name : vm.image;
  std::optional<ImageFacts> facts;
  std::string error;
  try {
    facts = imageFacts(image, error, ms(timeout));
  } catch (const docker::DockerError& e) {
    return StepResult::failure(e.what());
  }
  if (!facts) return StepResult::failure(error);

  Container c;
  // Nothing needs writing into the image's files: its root can be read-only.
  c.readOnly = facts->setup->empty();

  docker::ContainerSpec spec;
  spec.name = containerName(vm);
  spec.image = image;
  spec.labels = {{kPrefixLabel, cfg_.prefix},
                 {kIdLabel, std::to_string(vm.id)},
                 {kImageLabel, vm.name},
                 {kNodeLabel, vm.node.empty() ? cfg_.nodeId : vm.node}};
  // The autodriver waits for its job on stdin; the rest of its flags come
  // with the job.
  spec.entrypoint = {facts->autodriver};
  spec.cmd = {"-S", "-F", "-R"};
  for (const auto& f : kEventFiles) spec.cmd.insert(spec.cmd.end(), {"-E", f});
  spec.cmd.push_back(facts->home + "/job");  // created by the autodriver
  spec.openStdin = true;
  // What the job finds in its environment, whatever the image sets.
  spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"};
  spec.readonlyRootfs = c.readOnly;
  if (auto cores = vm.cores ? vm.cores : cfg_.dockerCoresLimit; cores && *cores > 0)
    spec.nanoCpus = static_cast<std::int64_t>(*cores) * 1'000'000'000;
  if (auto mem = vm.memory ? vm.memory : cfg_.dockerMemoryLimit; mem && *mem > 0)
    spec.memoryBytes = static_cast<std::int64_t>(*mem) * 1024 * 1024;
  spec.pidsLimit = std::max(cfg_.vmUlimitUserProc, 1) + kVmmsProcesses;
  spec.capAdd = kCaps;
  // Every place the grading user can write is a tmpfs of VM_DISK_LIMIT (the
  // pool's `disk` if set): its home (where the job runs), /tmp, /var/tmp,
  // /dev/shm. Nothing it writes reaches the host disk, and with a memory
  // limit its files count against it too. Docker mounts tmpfs noexec unless
  // told: jobs run what they compile.
  const std::int64_t diskMb = vm.disk && *vm.disk > 0 ? *vm.disk : cfg_.vmDiskLimit;
  const std::string size = "size=" + std::to_string(diskMb) + "m";
  spec.tmpfs = {{"/tmp", "rw,exec,nosuid,nodev," + size + ",mode=1777"},
                {"/var/tmp", "rw,exec,nosuid,nodev," + size + ",mode=1777"},
                {"/run/lock", "rw,nosuid,nodev,noexec,size=1m,mode=1777"},
                {facts->home, "rw,exec,nosuid,nodev," + size + ",mode=1777"}};
  spec.shmBytes = diskMb * 1024 * 1024;
  // No network until a job asks for one: most jobs run without, and a
  // container without a network endpoint starts and goes faster.
  spec.networkNone = true;
  try {
    try {
      engine_.createContainer(spec, ms(timeout));
    } catch (const docker::EngineError& e) {
      if (e.status != 409) throw;
      // A leftover of the same name (a crash between create and record):
      // replace it, if it is this node's. Another node's container of the
      // same name is never touched: nodes sharing an engine need unique VM
      // ids (one Redis) or their own PREFIX.
      for (const auto& c : engine_.listByLabel(kPrefixLabel, cfg_.prefix)) {
        auto node = c.labels.find(kNodeLabel);
        if (c.name == spec.name && node != c.labels.end() && node->second != cfg_.nodeId) {
          std::lock_guard lock(mu_);
          foreign_.insert(spec.name);  // so that destroying this VM leaves it alone
          return StepResult::failure("container " + spec.name + " belongs to node " + node->second +
                                     ": nodes sharing a Docker engine need one Redis or their own "
                                     "PREFIX");
        }
      }
      engine_.removeContainer(spec.name);
      engine_.createContainer(spec, ms(timeout));
    }
    // Before start, so the autodriver is there when PID 1 runs it.
    if (!facts->setup->empty())
      engine_.putArchive(spec.name, "/", docker::makeTar(*facts->setup), ms(timeout));
    engine_.startContainer(spec.name, ms(timeout));
  } catch (const docker::DockerError& e) {
    return StepResult::failure(e.what());
  }
  std::lock_guard lock(mu_);
  containers_[spec.name] = std::move(c);
  return StepResult::success();
}

bool DockerVmms::readOnlyRoot(const TangoMachine& vm) {
  std::lock_guard lock(mu_);
  auto it = containers_.find(containerName(vm));
  return it != containers_.end() && it->second.readOnly;
}

StepResult DockerVmms::waitVM(const TangoMachine& vm, std::chrono::seconds timeout) {
  const std::string name = containerName(vm);
  const auto deadline = Clock::now() + timeout;
  {
    std::lock_guard lock(mu_);
    if (!containers_.count(name))
      return StepResult::failure("container " + name + " was not made by this service");
  }
  try {
    while (true) {
      auto st = engine_.inspectContainer(name);
      if (!st) return StepResult::failure("container " + name + " does not exist");
      if (st->running) return StepResult::success();
      if (st->status == "exited" || st->status == "dead")
        return StepResult::failure("container " + name + " exited with " +
                                   std::to_string(st->exitCode) + " before its job");
      if (Clock::now() >= deadline)
        return StepResult::failure("container " + name + " is not running");
      std::this_thread::sleep_for(50ms);
    }
  } catch (const docker::DockerError& e) {
    return StepResult::failure(e.what());
  }
}

StepResult DockerVmms::copyIn(const TangoMachine& vm, const std::vector<InputFile>& files,
                              std::chrono::seconds) {
  // The files go with the job into the autodriver's stdin (runJob).
  std::string error;
  auto entries = jobFiles(files, cfg_.maxInputFileSize, error);
  if (!entries) return StepResult::failure(error);
  const std::string name = containerName(vm);
  std::lock_guard lock(mu_);
  auto it = containers_.find(name);
  if (it == containers_.end())
    return StepResult::failure("container " + name + " was not prepared");
  it->second.input = std::move(*entries);
  return StepResult::success();
}

StepResult DockerVmms::copyOut(const TangoMachine& vm, const fs::path& dest, std::chrono::seconds) {
  std::string out;
  {
    std::lock_guard lock(mu_);
    auto it = containers_.find(containerName(vm));
    if (it == containers_.end()) return StepResult::failure("no output recorded for this VM");
    out = std::exchange(it->second.output, std::string());
  }
  return writeOutput(dest, out);
}

StepResult DockerVmms::destroyVM(const TangoMachine& vm) {
  const std::string name = containerName(vm);
  {
    std::lock_guard lock(mu_);
    if (foreign_.erase(name)) return StepResult::success();  // never made: another node's name
  }
  {
    // A running job's runJob sees `destroyed` and drops the container's record.
    std::lock_guard lock(mu_);
    if (auto it = containers_.find(name); it != containers_.end()) {
      if (it->second.running)
        it->second.destroyed = true;
      else
        containers_.erase(it);
    }
  }
  try {
    if (!engine_.removeContainer(name)) return StepResult::failure("cannot remove " + name);
  } catch (const docker::DockerError& e) {
    return StepResult::failure(e.what());
  }
  return StepResult::success();
}

StepResult DockerVmms::safeDestroyVM(const TangoMachine& vm) {
  const std::string name = containerName(vm);
  {
    std::lock_guard lock(mu_);
    if (foreign_.erase(name)) return StepResult::success();
  }
  const auto deadline = Clock::now() + 30s;
  StepResult last = destroyVM(vm);
  while (Clock::now() < deadline) {
    try {
      if (!engine_.inspectContainer(name)) return StepResult::success();
      last = destroyVM(vm);
    } catch (const docker::DockerError& e) {
      last = StepResult::failure(e.what());
    }
    std::this_thread::sleep_for(200ms);
  }
  spdlog::warn("container {} is still there: {}", name, last.error);
  return StepResult::failure("container " + name + " is still there: " + last.error);
}

std::vector<TangoMachine> DockerVmms::getVMs() {
  std::vector<TangoMachine> vms;
  try {
    for (const auto& c : engine_.listByLabel(kPrefixLabel, cfg_.prefix)) {
      TangoMachine vm;
      auto id = c.labels.find(kIdLabel);
      auto image = c.labels.find(kImageLabel);
      if (id == c.labels.end() || image == c.labels.end()) continue;
      std::int64_t v = 0;
      if (std::from_chars(id->second.data(), id->second.data() + id->second.size(), v).ec !=
          std::errc())
        continue;
      vm.id = v;
      vm.name = vm.image = image->second;
      vm.vmms = name();
      if (auto node = c.labels.find(kNodeLabel); node != c.labels.end()) vm.node = node->second;
      vms.push_back(std::move(vm));
    }
  } catch (const docker::DockerError& e) {
    spdlog::warn("cannot list containers: {}", e.what());
  }
  return vms;
}

std::vector<std::string> DockerVmms::getImages() {
  // Every addJob checks its image: answer from a list at most a moment old
  // rather than asking the engine each time (a build through us refreshes it).
  {
    std::lock_guard lock(mu_);
    if (imagesAt_ && Clock::now() - *imagesAt_ < kImagesTtl) return images_;
  }
  std::set<std::string> names;
  try {
    for (auto tag : engine_.imageTags()) {
      // Tango names images without the default tag.
      if (tag.ends_with(":latest")) tag.resize(tag.size() - 7);
      names.insert(std::move(tag));
    }
  } catch (const docker::DockerError& e) {
    spdlog::warn("cannot list images: {}", e.what());
    return {};
  }
  std::lock_guard lock(mu_);
  images_.assign(names.begin(), names.end());
  imagesAt_ = Clock::now();
  return images_;
}

std::optional<std::string> DockerVmms::getPartialOutput(const TangoMachine& vm) {
  // What runJob has read of the output's head so far (AutodriverFrames).
  std::shared_ptr<LiveHead> live;
  {
    std::lock_guard lock(mu_);
    auto it = containers_.find(containerName(vm));
    if (it == containers_.end() || !it->second.running || !it->second.live) return std::nullopt;
    live = it->second.live;
  }
  return live->get();
}

StepResult DockerVmms::buildImage(const std::string& imageName, const fs::path& tarball) {
  try {
    const std::string loaded = engine_.loadImage(tarball, 600s);
    engine_.tagImage(loaded, imageName, "latest");
    std::lock_guard lock(mu_);
    imagesAt_.reset();
  } catch (const docker::DockerError& e) {
    spdlog::warn("image build for {} failed: {}", imageName, e.what());
    // Tango's words first: clients match on them.
    return StepResult::failure(std::string("Image build failed: ") + e.what());
  }
  return StepResult::success();
}

}  // namespace tango
