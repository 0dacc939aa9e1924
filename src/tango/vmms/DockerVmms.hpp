#pragma once
// The `localDocker` VMMS: every VM is a container of the local Docker engine,
// driven through the Engine API over its unix socket (no docker CLI).
//
// A container (named <PREFIX>-<id>-<image>, labelled tango.prefix=<PREFIX>)
// is created with a keepalive as its command and no network, and started by
// initializeVM. waitVM works out what the container needs before a job: the
// project's static autodriver and an `autograde` user when the image has
// none (read once per image), so any image with `make` runs jobs. warmUp
// sends that to a pool's container before its job is known; otherwise copyIn
// sends it with the job's files, as one archive PUT. runJob is one exec of
// the autodriver as root (it drops to the grading user), copyOut writes the
// exec's stdout kept in memory (already capped). Each container runs one job.
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "tango/config/Config.hpp"
#include "tango/docker/Engine.hpp"
#include "tango/docker/Tar.hpp"
#include "tango/vmms/Vmms.hpp"

namespace tango {

class DockerVmms : public Vmms {
 public:
  // Paths inside every container.
  static constexpr const char* kAutodriver = "/opt/tango/autodriver";
  static constexpr const char* kJobDir = "/opt/tango/job";
  static constexpr const char* kPartial = "/opt/tango/partial";
  // Where Tango's images ship their own autodriver (used when AUTODRIVER is unset).
  static constexpr const char* kImageAutodriver = "/usr/bin/autodriver";

  // `socketPath` defaults to $DOCKER_HOST (unix://...) or /var/run/docker.sock.
  explicit DockerVmms(const Config& cfg, std::string socketPath = "");

  std::string name() const override { return "localDocker"; }
  StepResult initializeVM(const TangoMachine& vm, std::chrono::seconds timeout) override;
  StepResult waitVM(const TangoMachine& vm, std::chrono::seconds timeout) override;
  StepResult warmUp(const TangoMachine& vm, std::chrono::seconds timeout) override;
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

  // <PREFIX>-<id>-<image> with characters Docker refuses in names replaced.
  std::string containerName(const TangoMachine& vm) const;
  docker::Engine& engine() { return engine_; }

 private:
  using Entries = std::shared_ptr<const std::vector<docker::TarEntry>>;
  struct ImageSetup {
    Entries entries;  // null on failure
    std::string error;
  };
  // What a container of `imageId` needs before a job: the autodriver, and a
  // grading user when the image has none. Read from `container` the first
  // time, then cached by image id.
  ImageSetup setupFor(const std::string& container, const std::string& imageId,
                      std::chrono::milliseconds timeout);
  // A clear sentence when the container's cgroup counted a memory or pids
  // limit hit during the run; empty otherwise.
  std::string limitNotice(const std::string& container, const TangoMachine& vm,
                          const RunSpec& spec);
  // Whether the engine sets pids limits (asked once).
  bool pidsLimited();
  // The autodriver binary, read once (it is the same for every container).
  const std::string* autodriverBytes();

  Config cfg_;
  docker::Engine engine_;

  std::mutex mu_;
  std::optional<std::string> autodriver_;  // guarded by mu_
  std::optional<bool> pidsLimited_;        // guarded by mu_
  struct ContainerSetup {
    Entries entries;  // sent by warmUp (pools) or with the job by copyIn; then null
    std::vector<std::string> networks;  // as created ("none")
  };
  static constexpr std::chrono::seconds kImagesTtl{2};
  std::map<std::string, Entries> setupByImage_;   // image id -> entries; guarded by mu_
  std::map<std::string, ContainerSetup> setups_;  // containers waitVM saw ready; guarded by mu_
  std::vector<std::string> images_;               // getImages' answer; guarded by mu_
  std::optional<std::chrono::steady_clock::time_point> imagesAt_;  // when; guarded by mu_
  std::map<std::string, std::string> outputs_;       // container -> stdout; guarded by mu_
  std::map<std::string, std::int64_t> runningCaps_;  // container -> output cap; guarded by mu_
  std::set<std::string> destroyedWhileRunning_;      // guarded by mu_
};

}  // namespace tango
