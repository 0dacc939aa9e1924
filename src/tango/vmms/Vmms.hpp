#pragma once
// The VMMS interface: Tango's calls, each bounded by a timeout. A VMMS knows
// nothing about HTTP, courselabs or the job queue; only the Worker walks these
// calls for a job. Every call is safe to call from several worker threads.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tango/model/Job.hpp"

namespace tango {

// Outcome of one VMMS call. `error` says what went wrong for the trace.
struct StepResult {
  bool ok = true;
  std::string error;
  static StepResult success() { return {}; }
  static StepResult failure(std::string why) { return {false, std::move(why)}; }
};

// Limits for one run, from the job and config (Tango's VM_ULIMIT_* names).
struct RunSpec {
  int timeoutSecs = 0;              // the job's timeout, enforced by the autodriver
  std::int64_t maxOutputBytes = 0;  // output cap (-o)
  bool disableNetwork = true;
  int ulimitProcs = 100;                // VM_ULIMIT_USER_PROC (-u)
  std::int64_t ulimitFileSize = 0;      // VM_ULIMIT_FILE_SIZE in bytes (-f)
  std::chrono::seconds hardTimeout{0};  // the VMMS kills the run after this (timeout + grace)
  // Per-job overrides; 0 = the VMMS's configured default
  // (VM_MEMORY_LIMIT, VM_DISK_LIMIT, VM_CPU_TIME_LIMIT).
  std::int64_t memoryLimitBytes = 0;
  std::int64_t diskLimitBytes = 0;
  int cpuTimeSecs = 0;
};

struct RunResult {
  // The autodriver's exit code: 0 normal, 1 usage, 2 timeout, 3 OS error;
  // -1 when the run could not be started or was killed from outside.
  int status = -1;
  std::string error;
  std::optional<ResourceUsage> usage;  // parsed from the autodriver's side channel
  // A sentence for the output header when a VM limit ended the job (memory,
  // processes), so the student reads why rather than a bare make failure.
  std::string notice;
};

// One host a VMMS spreads its VMs over (distDocker's engines), for /info.
struct HostStatus {
  std::string name;  // as configured (an engine URL)
  bool healthy = false;
  int capacity = 0;    // jobs at once
  int running = 0;     // jobs running now
  int held = 0;        // containers it holds now (running and spare)
  int maxRunning = 0;  // the most jobs it ran at once
  std::int64_t jobsRun = 0;
  std::string problem;  // why it is out of placement, if it is
};

class Vmms {
 public:
  virtual ~Vmms() = default;
  virtual std::string name() const = 0;  // "local", "localDocker", ...
  // Whether a VM's disk is sized when it is made (from vm.disk) rather than
  // per run (RunSpec::diskLimitBytes): then a job asking for its own disk
  // size is given a VM made for it, never a warm one.
  virtual bool diskSetAtCreation() const { return false; }
  // Called once at start-up, before any job: whether jobs can run at all.
  // A non-empty answer says what is wrong and how to fix it, and the service
  // refuses to start rather than accept jobs that would all fail.
  virtual std::string preflight() { return {}; }
  // Whether a VM runs another job once resetVM made it as good as new
  // (REUSE_VMS on the SSH backends; tashiSSH always). Otherwise every VM
  // is destroyed after its one job.
  virtual bool reusesVms() const { return false; }
  virtual StepResult resetVM(const TangoMachine& vm) {
    (void)vm;
    return StepResult::failure("this VMMS does not reuse VMs");
  }

  // Create the VM (vm.id is already set; its instance name is PREFIX-id-name).
  virtual StepResult initializeVM(const TangoMachine& vm, std::chrono::seconds timeout) = 0;
  // Block until the VM can run a job, or fail after `timeout`.
  virtual StepResult waitVM(const TangoMachine& vm, std::chrono::seconds timeout) = 0;
  // Copy the job's input files (absolute, already validated host paths) into
  // the VM's job directory under their destFile names.
  virtual StepResult copyIn(const TangoMachine& vm, const std::vector<InputFile>& files,
                            std::chrono::seconds timeout) = 0;
  // Run the autodriver on the job directory. Blocks until it finishes.
  virtual RunResult runJob(const TangoMachine& vm, const RunSpec& spec) = 0;
  // Copy the autodriver's output (its stdout, already capped) to `dest` on the host.
  virtual StepResult copyOut(const TangoMachine& vm, const std::filesystem::path& dest,
                             std::chrono::seconds timeout) = 0;
  virtual StepResult destroyVM(const TangoMachine& vm) = 0;
  // Destroy and make sure it is gone.
  virtual StepResult safeDestroyVM(const TangoMachine& vm) = 0;
  // Every VM this service owns (by instance-name prefix), so a restart can clean up.
  virtual std::vector<TangoMachine> getVMs() = 0;
  virtual std::vector<std::string> getImages() = 0;
  // Output so far of the job running in `vm`; nullopt when there is none.
  virtual std::optional<std::string> getPartialOutput(const TangoMachine& vm) = 0;
  // For VMMSs that spread VMs over several hosts (distDocker). Jobs of
  // `image` that may run at once across them; 0: the pool's size decides.
  virtual int jobsAtOnce(const std::string& image) {
    (void)image;
    return 0;
  }
  // Which warm VM a job should take: the highest; below 0, the VM is lost
  // (its host went away) and is dropped from its pool.
  virtual int preference(const TangoMachine& vm) {
    (void)vm;
    return 0;
  }
  // The host `vm` is on ("" for a VMMS with one host), and all hosts.
  virtual std::string hostOf(const TangoMachine& vm) {
    (void)vm;
    return {};
  }
  virtual std::vector<HostStatus> hosts() { return {}; }

  // Load an image tarball (`docker save` format) as <imageName>:latest.
  virtual StepResult buildImage(const std::string& imageName,
                                const std::filesystem::path& tarball) {
    (void)imageName;
    (void)tarball;
    return StepResult::failure("this VMMS cannot build images");
  }
};

}  // namespace tango
