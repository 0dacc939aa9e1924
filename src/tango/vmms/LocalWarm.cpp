// The `local` VMMS's warm sandbox. A trivial job used to spend most of its
// time waiting while the kernel made the sandbox's namespaces and mounts.
// Now the sandbox is made with its VM (initializeVM, so a pool's warmer pays
// for it before the job arrives), its autodriver waiting on stdin (-S), as
// localDocker's warm containers do. The job's files reach it as they reach
// a cold run (copyIn into the VM's job/, mounted read-only in the sandbox);
// the handover sends only the job's own flags (its limits), after its
// cgroup limits are set. A job costs the handover, make and the output.
//
// A sandbox's network and tmpfs sizes are fixed when it is made: it is made
// as the default job wants it (no network, the configured disk size), and a
// job that wants otherwise runs cold, once the warm sandbox is gone.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <system_error>

#include "tango/util/Spawner.hpp"
#include "tango/vmms/AutodriverRun.hpp"
#include "tango/vmms/LocalFiles.hpp"
#include "tango/vmms/LocalVmms.hpp"

namespace tango {

void LocalVmms::startWarm(const TangoMachine& vm, const std::string& inst, uid_t uid) {
  if (!cfg_.local.warmSandboxes || bwrap_.empty()) return;  // runJob says why
  if (!lastJobFitWarm_) return;                             // it would most likely be killed unused
  const RunSpec defaults;  // the network off, the configured limits
  const SandboxLimits limits = limitsFor(defaults);
  const std::string group = cgroupName(inst, uid);
  auto noWarm = [&](const std::string& why) {
    spdlog::warn("local VMMS: no warm sandbox for {} (its job runs cold): {}", inst, why);
  };
  CgroupLimits cgLimits;  // the job's own are set at the handover
  cgLimits.memoryBytes = limits.memoryBytes;
  cgLimits.cores = vm.cores.value_or(0);
  if (auto err = cgroups_.prepare(group, cgLimits); !err.empty()) return noWarm(err);
  SpawnFds fds;
  if (auto err = openSpawnFds(group, uid, fds); !err.empty()) return noWarm(err);
  // A socket, not a pipe, for the autodriver's stdin: the handover's send
  // (MSG_NOSIGNAL) gets EPIPE, never SIGPIPE, if the sandbox has died.
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return noWarm(local::errnoText("socketpair"));
  Fd ours(sv[0]), theirs(sv[1]);

  SandboxPlan plan = planFor(inst, *imageRoot(vm), uid, defaults, limits);
  plan.stdinJob = true;
  SpawnOptions opts = spawnOptions(plan, fds);
  opts.stdinFd = theirs.get();
  WarmSandbox warm;
  try {
    warm.process.emplace(spawner_->spawn(opts));
  } catch (const std::system_error& e) {
    return noWarm(std::string("cannot start the sandbox: ") + e.what());
  }
  warm.job = std::move(ours);
  warm.diskBytes = limits.diskBytes;
  std::lock_guard lock(mu_);
  warm_[inst] = std::move(warm);
}

std::optional<Process> LocalVmms::handOver(const std::string& inst, uid_t uid, const RunSpec& spec,
                                           const SandboxLimits& limits) {
  WarmSandbox warm;
  {
    std::lock_guard lock(mu_);
    auto it = warm_.find(inst);
    if (it == warm_.end()) return std::nullopt;
    warm = std::move(it->second);
    warm_.erase(it);
  }
  const bool fits = fitsWarm(spec, limits) && limits.diskBytes == warm.diskBytes;
  if (fits && !warm.process->waitExit(SteadyClock::now())) {
    const std::string stream = jobStream(autodriverJobFlags(spec, limits), {});
    const ssize_t n =
        ::send(warm.job.get(), stream.data(), stream.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(stream.size())) return std::move(warm.process);
    spdlog::warn("local VMMS: the warm sandbox of {} did not take its job; running it cold", inst);
  } else if (fits) {
    spdlog::warn("local VMMS: the warm sandbox of {} had ended; running its job cold", inst);
  }
  // Gone before the cold run starts under the same uids.
  warm.process.reset();
  killSandboxProcesses(uid);
  return std::nullopt;
}

bool LocalVmms::fitsWarm(const RunSpec& spec, const SandboxLimits& limits) const {
  // Fixed when the sandbox is made: its network (none) and its tmpfs sizes.
  return spec.disableNetwork && limits.diskBytes == limitsFor(RunSpec{}).diskBytes;
}

void LocalVmms::dropWarm(const std::string& inst) {
  std::optional<Process> process;
  {
    std::lock_guard lock(mu_);
    auto it = warm_.find(inst);
    if (it == warm_.end()) return;
    process = std::move(it->second.process);
    warm_.erase(it);
  }
  // ~Process kills bwrap and reaps it; --die-with-parent takes the sandbox.
}

}  // namespace tango
