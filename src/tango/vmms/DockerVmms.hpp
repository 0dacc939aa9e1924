#pragma once
// The `localDocker` VMMS: every VM is a container of the local Docker engine,
// driven through the Engine API over its unix socket (no docker CLI).
//
// A container (named <PREFIX>-<id>-<image>, labelled tango.prefix=<PREFIX>)
// has no network, and everything the grading user can write is a tmpfs.
// Its command is the project's autodriver waiting for its job on stdin
// (-S), started by initializeVM, so a warm pool's container and a cold one
// are the same. copyIn only reads the job's files; runJob attaches to the
// container, streams the job in (a tar: flags and files), reads the
// autodriver's framed stdout (-F: the output's head live, for
// getPartialOutput, then the result), then the container's exit code. No
// exec and no archive call on the job's path.
//
// When the image ships this very autodriver (tango-image labels it) and has
// a grading user, nothing is written into the container and its root is
// read-only. Other images (Tango's, any image with make) get the autodriver,
// and an `autograde` user if they lack one, by one archive PUT into the
// created container before it starts. Each container runs one job.
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
#include "tango/vmms/AutodriverRun.hpp"
#include "tango/vmms/Vmms.hpp"

namespace tango {

class DockerVmms : public Vmms {
 public:
  // Paths inside every container.
  static constexpr const char* kAutodriver = "/opt/tango/autodriver";  // when copied in
  // The grading user's home in Tango's images and in the user we add.
  static constexpr const char* kGradingHome = "/home/autograde";
  // Where tango-image's images (and Tango's) ship an autodriver.
  static constexpr const char* kImageAutodriver = "/usr/bin/autodriver";
  // Processes in a container besides the job's: init, the autodriver, two
  // spare. The pids limit is the job's process limit plus these. Nothing
  // else ever runs in a container while its job does (no exec): a job
  // holding every process it may have would make it fail.
  static constexpr int kVmmsProcesses = 4;
  // Label tango-image puts on its images: the SHA-256 of the autodriver it
  // installed at kImageAutodriver.
  static constexpr const char* kAutodriverLabel = "tango.autodriver.sha256";

  // `socketPath` defaults to $DOCKER_HOST (unix://...) or /var/run/docker.sock.
  explicit DockerVmms(const Config& cfg, std::string socketPath = "");
  // An engine elsewhere (distDocker: one DockerVmms per engine).
  DockerVmms(const Config& cfg, docker::Endpoint engine);

  std::string name() const override { return "localDocker"; }
  // The tmpfs mounts are sized when the container is made.
  bool diskSetAtCreation() const override { return true; }
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

  // <PREFIX>-<id>-<image> with characters Docker refuses in names replaced.
  std::string containerName(const TangoMachine& vm) const;
  // The engine stopped answering (distDocker): every run attached to it ends
  // now with an error, rather than at its hard timeout.
  void abandonRuns();
  docker::Engine& engine() { return engine_; }
  // Whether the container was created with a read-only root.
  bool readOnlyRoot(const TangoMachine& vm);

 private:
  using Entries = std::shared_ptr<const std::vector<docker::TarEntry>>;
  // What the service knows of one image (by id), learnt once.
  struct ImageFacts {
    std::string autodriver;  // the path a container runs it from
    Entries setup;           // what a container needs first; empty: nothing
    std::string home;        // the grading user's, under /home/: the job's tmpfs
  };
  // Per container, from initializeVM to destroyVM.
  struct Container {
    bool readOnly = false;
    std::vector<docker::TarEntry> input;  // the job's files, read by copyIn
    std::string output;                   // the run's result, for copyOut
    std::shared_ptr<LiveHead> live;       // from runJob on: the output's head
    bool running = false;
    bool destroyed = false;  // destroyVM came while the job ran
    int attachSocket = -1;   // while runJob is attached: abandonRuns shuts it down
    bool abandoned = false;  // abandonRuns came while the job ran
  };

  // DockerImages.cpp: what containers of `image` need, by image id.
  std::optional<ImageFacts> imageFacts(const std::string& image, std::string& error,
                                       std::chrono::milliseconds timeout);
  ImageFacts learnImage(const std::string& imageId, const std::string& image, bool shipsAutodriver,
                        std::chrono::milliseconds timeout);
  const std::string* autodriverBytes();
  const std::string& autodriverSha();

  // DockerRun.cpp: running a job, and what limits did to it.
  RunResult stream(const std::string& name, const RunSpec& spec, const TangoMachine& vm);
  std::string memoryNotice(const TangoMachine& vm, const RunSpec& spec);
  std::string pidsNotice(const RunSpec& spec);
  std::vector<std::string> autodriverFlags(const RunSpec& spec);
  std::int64_t outputCap(const RunSpec& spec) const;
  StepResult prepareRun(const std::string& name, const RunSpec& spec);
  bool pidsLimited();
  bool wasAbandoned(const std::string& name);

  Config cfg_;
  docker::Engine engine_;

  std::mutex mu_;
  std::optional<std::string> autodriver_;        // guarded by mu_
  std::optional<std::string> autodriverSha_;     // guarded by mu_
  std::optional<bool> pidsLimited_;              // guarded by mu_
  std::map<std::string, ImageFacts> facts_;      // image id -> facts; guarded by mu_
  std::map<std::string, Container> containers_;  // by container name; guarded by mu_
  // Names this node tried to create that another node's container holds:
  // destroying such a VM must leave that container alone. Guarded by mu_.
  std::set<std::string> foreign_;
  static constexpr std::chrono::seconds kImagesTtl{2};
  std::vector<std::string> images_;  // getImages' answer; guarded by mu_
  std::optional<std::chrono::steady_clock::time_point> imagesAt_;  // when; guarded by mu_
  std::mutex probeMu_;                                             // one probe container at a time
};

}  // namespace tango
