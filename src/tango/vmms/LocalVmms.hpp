#pragma once
// The `local` VMMS: every VM is a directory on this host and every job runs in
// a fresh bubblewrap sandbox (own user, PID, IPC, UTS, cgroup and network
// namespaces) under a host uid of its own, running the same autodriver as the
// other VMMSes. No Docker needed, so it is the embedded default.
//
// Each VM has two host uids, one slot of each range: the VM's uid
// (UID_BASE + slot), which the job runs as, and its keeper uid (UID_BASE +
// SLOTS + slot), which bwrap and the autodriver run as, so the job cannot
// touch them (LocalUserns.hpp). Both are locked host-wide while in use.
//
// The VMs live in SANDBOX_DIR (Config::vmsDir(), root's, 0711), outside
// DATA_DIR: bwrap runs as the VM's uid and must reach what it mounts, while
// DATA_DIR is private and may lie in a home nobody else can search. It also
// holds a copy of the autodriver (root's, 0755).
// Layout of one VM, <SANDBOX_DIR>/<PREFIX>-<id>-<image>/ (root, 0711):
//   uid      root-only: the host uid/gid of the VM (survives a restart)
//   job/     the keeper's, 0700: the job's input files, mounted read-only at
//            /run/tango-in and copied by the autodriver into /home/autograde,
//            a tmpfs of VM_DISK_LIMIT handed to the job's uid: the job never
//            writes to the host disk
//   run/     root, 0711: holds only `partial` (the keeper's, 0600), the
//            autodriver's partial output, mounted as /run/tango-out; the job
//            can neither write it nor add files
//   output   root-only: the autodriver's stdout of the last run
// Per VM, cgroups <own cgroup>/tango/<instance>.<uid> (v1: memory, pids and
// cpu controllers; v2: one group; see Cgroup.hpp), removed with the VM.
// Split by job: LocalSetup.cpp (start-up, preflight), LocalVmms.cpp (the
// VM's life), LocalRun.cpp (one run), LocalWarm.cpp (the sandbox made
// ahead of its job), LocalSandbox.cpp (bwrap's arguments),
// LocalUserns.cpp (the run's two-uid user namespace), LocalNetwork.cpp,
// Seccomp.cpp (the filter), TreeRemoval.cpp (removing a job's files).
#include <sys/types.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "tango/config/Config.hpp"
#include "tango/util/Fd.hpp"
#include "tango/util/Process.hpp"
#include "tango/vmms/Cgroup.hpp"
#include "tango/vmms/LocalSandbox.hpp"
#include "tango/vmms/Vmms.hpp"

namespace tango {

class Spawner;

class LocalVmms : public Vmms {
 public:
  // Creates SANDBOX_DIR, copies the autodriver in, and reserves the uids of
  // VMs already on disk. What fails here, preflight() reports.
  explicit LocalVmms(const Config& cfg);
  ~LocalVmms() override;
  LocalVmms(const LocalVmms&) = delete;
  LocalVmms& operator=(const LocalVmms&) = delete;

  std::string name() const override { return "local"; }
  // Root, bwrap, an autodriver the job's uid may run, image roots it may
  // read, then one empty job in a real sandbox per image.
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

  // The VM's directory and host uid (for operators and tests).
  std::filesystem::path vmDir(const TangoMachine& vm) const;
  std::optional<uid_t> vmUid(const TangoMachine& vm) const;

 private:
  static Fd lockUid(uid_t uid);
  // Whether this service holds the locks of VM uid `uid` and of its keeper
  // (taking them if free).
  bool holdUid(uid_t uid);
  // The host-wide locks of VM uid `vmUid` and of its keeper, or none when
  // either is taken.
  std::optional<std::pair<Fd, Fd>> lockSlotUids(uid_t vmUid) const;
  // The uid bwrap and the autodriver of VM uid `vmUid` run as.
  uid_t keeperUid(uid_t vmUid) const { return vmUid + cfg_.local.slots; }
  struct Running {
    Process* process = nullptr;
    std::int64_t outputCap = 0;
    bool killedByDestroy = false;
  };

  std::optional<std::string> checkedInstance(const TangoMachine& vm) const;
  std::optional<std::filesystem::path> imageRoot(const TangoMachine& vm) const;
  std::optional<uid_t> readUid(const std::filesystem::path& dir) const;
  SandboxLimits limitsFor(const RunSpec& spec) const;
  // The sandbox of a run in VM `inst` (its seccomp and userns fds to fill in).
  SandboxPlan planFor(const std::string& inst, const std::filesystem::path& root, uid_t uid,
                      const RunSpec& spec, const SandboxLimits& limits) const;
  // What a sandbox's spawn needs open until it returns: the VM's
  // cgroup.procs files, the seccomp filter, the run's user namespace.
  struct SpawnFds {
    std::vector<Fd> cgroupProcs;
    Fd seccomp, userns;
  };
  // Opens them for VM uid `uid` in cgroup `group`; empty, else what failed.
  std::string openSpawnFds(const std::string& group, uid_t uid, SpawnFds& fds) const;
  // bwrap's spawn for `plan` (its fds from `fds`): as the keeper, joining the VM's cgroups.
  SpawnOptions spawnOptions(SandboxPlan plan, const SpawnFds& fds) const;
  // Whether a run of `spec` fits a sandbox made ahead of it (LocalWarm.cpp).
  bool fitsWarm(const RunSpec& spec, const SandboxLimits& limits) const;
  static RunResult interpretExit(int waitStatus, bool writeFailed, const std::string& errText,
                                 RunResult result);
  std::string makeSandboxDir(const std::filesystem::path& dir);
  std::string installAutodriver();
  void removeLegacyVms();
  static std::string cgroupName(const std::string& instance, uid_t uid) {
    return instance + "." + std::to_string(uid);
  }
  // Kills every process of `uid` and waits (bounded) until none is left.
  bool killUidProcesses(uid_t uid) const;
  // The same for VM uid `vmUid` and its keeper.
  bool killSandboxProcesses(uid_t vmUid) const {
    const bool keeperGone = killUidProcesses(keeperUid(vmUid));
    return killUidProcesses(vmUid) && keeperGone;
  }

  // A sandbox started with its VM, before its job is known (LocalWarm.cpp):
  // its autodriver waits on `job`, its stdin, for the job's flags.
  struct WarmSandbox {
    std::optional<Process> process;
    Fd job;
    std::int64_t diskBytes = 0;  // its tmpfs sizes, fixed when it was made
  };
  // Starts VM `inst`'s warm sandbox (run as uid `uid`'s keeper); on failure
  // the VM's job runs cold, as before.
  void startWarm(const TangoMachine& vm, const std::string& inst, uid_t uid);
  // Hands VM `inst`'s warm sandbox its job, if it has one that fits `spec`
  // (no network, the same disk size) and is alive: the running sandbox, or
  // none (a misfit is killed first, so the cold run is alone in the VM).
  std::optional<Process> handOver(const std::string& inst, uid_t uid, const RunSpec& spec,
                                  const SandboxLimits& limits);
  // Kills VM `inst`'s warm sandbox, if any (destroyVM).
  void dropWarm(const std::string& inst);

  Config cfg_;
  std::filesystem::path vmsDir_;
  std::filesystem::path sandboxAutodriver_;  // the copy the sandboxes run
  std::string setupError_;                   // what the constructor could not do
  std::filesystem::path bwrap_;
  std::filesystem::path slirp4netns_;  // empty: jobs that ask for the network fail
  SandboxCgroups cgroups_;

  mutable std::mutex mu_;
  std::set<std::uint32_t> usedSlots_;                    // guarded by mu_
  std::map<std::uint32_t, std::pair<Fd, Fd>> uidLocks_;  // slot -> its uids' locks (mu_)
  std::uint32_t nextSlot_ = 0;               // guarded by mu_; rotates so freed uids rest
  std::map<std::string, Running> running_;   // instance -> run in progress; guarded by mu_
  std::map<std::string, WarmSandbox> warm_;  // instance -> its warm sandbox; guarded by mu_
  // Warm sandboxes outlive the thread that makes them (a pool's warmer):
  // they are spawned from one long-lived thread (PR_SET_PDEATHSIG).
  std::unique_ptr<Spawner> spawner_;
  // Whether the last job fitted a warm sandbox: while jobs do not (a lab
  // whose jobs all ask for the network), none is made only to be killed.
  std::atomic<bool> lastJobFitWarm_{true};
};

}  // namespace tango
