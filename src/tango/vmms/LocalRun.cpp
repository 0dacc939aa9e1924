// One job's run in a `local` VM: its output files, its cgroups, the
// bubblewrap sandbox with the autodriver inside, and what its end means.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <system_error>

#include "tango/util/Process.hpp"
#include "tango/vmms/LocalFiles.hpp"
#include "tango/vmms/LocalNetwork.hpp"
#include "tango/vmms/LocalUserns.hpp"
#include "tango/vmms/LocalVmms.hpp"
#include "tango/vmms/Seccomp.hpp"
#include "tango/vmms/UsageLine.hpp"

namespace tango {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using local::errnoText;
using local::openDir;

namespace {

constexpr std::int64_t kOutputSlack = 64 * 1024;  // beyond the autodriver's own cap
constexpr std::size_t kStderrCap = 64 * 1024;
// The sandbox's own processes besides the job's: bwrap, its PID 1, the autodriver.
constexpr std::int64_t kSandboxPids = 16;

// The run's output file (the autodriver's stdout, root's) and an empty
// partial-output file the autodriver (the keeper uid) may write, and the job
// may not: a previous run's partial output must not show up as this run's,
// and no uid of the sandbox can create files in run/. Empty on success,
// else what failed.
std::string prepareRunFiles(int vmDirFd, uid_t keeper, Fd& output) {
  output =
      Fd(::openat(vmDirFd, "output", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!output) return errnoText("create output file");
  Fd run = openDir(vmDirFd, "run");
  if (!run) return errnoText("open run directory");
  ::unlinkat(run.get(), "partial", 0);
  Fd partial(
      ::openat(run.get(), "partial", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!partial || ::fchown(partial.get(), keeper, keeper) != 0)
    return errnoText("create the partial output file");
  return {};
}

// What the sandbox's streams bring: stdout into the output file, up to a
// cap (the autodriver caps it already; this is the backstop if it is
// replaced or broken, so the host disk is never at a job's mercy), and the
// head of stderr, which ends with the usage line.
struct RunStreams {
  int output;
  std::int64_t cap;
  std::int64_t written = 0;
  bool writeFailed = false;
  std::string errText;

  void onStdout(std::string_view chunk) {
    if (written >= cap || writeFailed) return;
    auto n = std::min<std::int64_t>(static_cast<std::int64_t>(chunk.size()), cap - written);
    if (!writeAll(output, chunk.substr(0, static_cast<std::size_t>(n)))) writeFailed = true;
    written += n;
  }
  void onStderr(std::string_view chunk) {
    if (errText.size() < kStderrCap)
      errText.append(chunk.substr(0, std::min(chunk.size(), kStderrCap - errText.size())));
  }
};

// The sandbox's /etc/resolv.conf with the network on (root's, 0644, in
// the VM's directory, which the sandbox's uid can reach).
std::string writeResolvConf(int vmDirFd) {
  Fd f(::openat(vmDirFd, "resolv.conf", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                0644));
  if (!f || ::fchmod(f.get(), 0644) != 0 || !writeAll(f.get(), kSandboxResolvConf))
    return errnoText("write the sandbox's resolv.conf");
  return {};
}

std::chrono::seconds hardTimeoutOf(const RunSpec& spec) {
  if (spec.hardTimeout > 0s) return spec.hardTimeout;
  if (spec.timeoutSecs > 0) return std::chrono::seconds(spec.timeoutSecs) + 30s;
  return 0s;
}

}  // namespace

SandboxPlan LocalVmms::planFor(const std::string& inst, const fs::path& root, uid_t uid,
                               const RunSpec& spec, const SandboxLimits& limits) const {
  return SandboxPlan{.bwrap = bwrap_,
                     .hostname = inst,
                     .root = root,
                     .vmDir = vmsDir_ / inst,
                     .autodriver = sandboxAutodriver_,
                     .oomEvents = cgroups_.oomEventsFile(cgroupName(inst, uid)),
                     .seccompFd = -1,
                     .usernsFd = -1,
                     .jobUid = uid,
                     .hidden = {cfg_.dataDir, cfg_.courselabsDir(), vmsDir_},
                     .networkArgs = {},
                     .resolvConf = std::nullopt,
                     .spec = spec,
                     .limits = limits};
}

std::string LocalVmms::openSpawnFds(const std::string& group, uid_t uid, SpawnFds& fds) const {
  std::string error;
  fds.cgroupProcs = cgroups_.openProcs(group, error);
  if (!error.empty()) return "cannot set up the VM's cgroups: " + error;
  fds.seccomp = seccompFilterFd(error);
  if (!fds.seccomp) return error;
  fds.userns = makeSandboxUserns(keeperUid(uid), uid, error);
  if (!fds.userns) return error;
  return {};
}

SpawnOptions LocalVmms::spawnOptions(SandboxPlan plan, const SpawnFds& fds) const {
  // bwrap runs as the VM's keeper, inside the VM's cgroups from its start.
  plan.seccompFd = fds.seccomp.get();
  plan.usernsFd = fds.userns.get();
  const uid_t keeper = keeperUid(plan.jobUid);
  SpawnOptions opts;
  opts.argv = sandboxArgs(plan);
  opts.env = {"PATH=/usr/bin:/bin"};
  opts.credentials = std::make_pair(keeper, static_cast<gid_t>(keeper));
  for (const Fd& fd : fds.cgroupProcs) opts.joinCgroupFds.push_back(fd.get());
  opts.inheritFds = {plan.seccompFd, plan.usernsFd};
  return opts;
}

SandboxLimits LocalVmms::limitsFor(const RunSpec& spec) const {
  constexpr std::int64_t kMB = 1024 * 1024;
  SandboxLimits l;
  l.memoryBytes = spec.memoryLimitBytes > 0 ? spec.memoryLimitBytes : cfg_.vmMemoryLimit * kMB;
  l.diskBytes = spec.diskLimitBytes > 0 ? spec.diskLimitBytes : cfg_.vmDiskLimit * kMB;
  l.cpuSecs = spec.cpuTimeSecs > 0 ? spec.cpuTimeSecs : cfg_.vmCpuTimeLimit;
  return l;
}

RunResult LocalVmms::runJob(const TangoMachine& vm, const RunSpec& spec) {
  RunResult result;
  auto fail = [&](std::string why) {
    result.status = -1;
    result.error = std::move(why);
    return result;
  };
  auto inst = checkedInstance(vm);
  if (!inst) return fail("invalid VM name or id");
  const fs::path dir = vmsDir_ / *inst;
  auto uid = readUid(dir);
  if (!uid) return fail("VM " + *inst + " does not exist");
  auto root = imageRoot(vm);
  if (!root) return fail("unknown image " + vm.name);
  if (bwrap_.empty()) return fail("bwrap is not installed");
  struct stat adSt {};
  if (::stat(sandboxAutodriver_.c_str(), &adSt) != 0 || !S_ISREG(adSt.st_mode))
    return fail("autodriver not found at '" + sandboxAutodriver_.string() + "'");

  Fd d = openDir(AT_FDCWD, dir.c_str());
  if (!d) return fail(errnoText("open " + dir.string()));
  Fd output;
  const uid_t keeper = keeperUid(*uid);
  if (auto err = prepareRunFiles(d.get(), keeper, output); !err.empty()) return fail(err);

  const SandboxLimits limits = limitsFor(spec);
  const std::string group = cgroupName(*inst, *uid);
  CgroupLimits cgLimits;
  cgLimits.memoryBytes = limits.memoryBytes;
  cgLimits.pids = spec.ulimitProcs > 0 ? spec.ulimitProcs + kSandboxPids : 0;
  cgLimits.cores = vm.cores.value_or(0);
  if (auto err = cgroups_.prepare(group, cgLimits); !err.empty())
    return fail("cannot set up the VM's cgroups: " + err);

  // The VM's warm sandbox takes the job if it fits (LocalWarm.cpp); else a
  // sandbox is made for it now.
  lastJobFitWarm_ = fitsWarm(spec, limits);
  std::optional<Process> proc = handOver(*inst, *uid, spec, limits);
  std::optional<SandboxNetwork> network;
  SpawnFds fds;  // a cold spawn's, open until it returns
  SpawnOptions opts;
  if (!proc) {
    if (auto err = openSpawnFds(group, *uid, fds); !err.empty()) return fail(err);
    SandboxPlan plan = planFor(*inst, *root, *uid, spec, limits);
    if (!spec.disableNetwork) {
      try {
        network.emplace();
      } catch (const std::system_error& e) {
        return fail(std::string("cannot set up the job's network: ") + e.what());
      }
      if (auto err = writeResolvConf(d.get()); !err.empty()) return fail(err);
      plan.networkArgs = network->bwrapArgs();
      plan.resolvConf = dir / "resolv.conf";
    }
    opts = spawnOptions(plan, fds);
    if (network)
      for (int fd : network->childFds()) opts.inheritFds.push_back(fd);
  }
  {
    std::lock_guard lock(mu_);
    if (running_.count(*inst)) return fail("a job is already running in VM " + *inst);
    if (!proc) {
      try {
        proc.emplace(Process::spawn(opts));
      } catch (const std::system_error& e) {
        return fail(std::string("cannot start the sandbox: ") + e.what());
      }
    }
    running_[*inst] = Running{&*proc, spec.maxOutputBytes, false};
  }
  // Unregisters before `proc` is reaped or destroyed, so destroyVM never
  // signals a pid that could have been reused.
  struct Unregister {
    LocalVmms* self;
    const std::string& inst;
    bool done = false;
    bool killedByDestroy = false;
    void now() {
      if (done) return;
      std::lock_guard lock(self->mu_);
      if (auto it = self->running_.find(inst); it != self->running_.end()) {
        killedByDestroy = it->second.killedByDestroy;
        self->running_.erase(it);
      }
      done = true;
    }
    ~Unregister() { now(); }
  } unregister{this, *inst};

  if (network) {
    if (auto err = network->connect(slirp4netns_, SteadyClock::now() + 10s); !err.empty()) {
      // bwrap's own words, when it ended before reporting (a mount it
      // could not make, say), say more than ours.
      proc->signal(SIGKILL);
      std::string bwrapErr;
      proc->communicate([](std::string_view) {},
                        [&](std::string_view c) { bwrapErr.append(c.substr(0, 4096)); },
                        SteadyClock::now() + 2s, 200ms);
      unregister.now();
      proc->reap();
      network->stop();
      killSandboxProcesses(*uid);
      const std::string said = stderrExcerpt(bwrapErr);
      return fail(said.empty() ? err : err + ": " + said);
    }
  }

  RunStreams streams{output.get(), std::max<std::int64_t>(spec.maxOutputBytes, 0) + kOutputSlack};
  auto onStdout = [&](std::string_view c) { streams.onStdout(c); };
  auto onStderr = [&](std::string_view c) { streams.onStderr(c); };
  const std::chrono::seconds hard = hardTimeoutOf(spec);
  const auto deadline = hard > 0s ? SteadyClock::now() + hard : SteadyClock::time_point::max();
  bool hardKilled = false;
  if (proc->communicate(onStdout, onStderr, deadline) == Process::IoResult::Deadline) {
    // Killing bwrap kills the sandbox's PID 1 (--die-with-parent), and with it
    // every process in the sandbox's PID namespace.
    hardKilled = true;
    proc->signal(SIGKILL);
    proc->waitExit(SteadyClock::now() + 10s);
    proc->communicate(onStdout, onStderr, SteadyClock::now() + 2s, 500ms);
  }
  unregister.now();
  const int st = proc->reap();
  if (network) network->stop();
  // The kernel tears a PID namespace down asynchronously: wait until the
  // uid's processes are gone, so the run never returns with some still dying.
  if (hardKilled && !killSandboxProcesses(*uid))
    spdlog::warn("local VMMS: processes of uid {} or {} outlived the hard timeout kill", *uid,
                 keeper);
  result.usage = parseUsageLine(streams.errText);

  if (unregister.killedByDestroy) return fail("the VM was destroyed while the job ran");
  if (hardKilled)
    return fail("the run exceeded the hard timeout of " + std::to_string(hard.count()) +
                " s; sandbox killed");
  return interpretExit(st, streams.writeFailed, streams.errText, result);
}

// The sandbox's wait status, as a run's result.
RunResult LocalVmms::interpretExit(int st, bool writeFailed, const std::string& errText,
                                   RunResult result) {
  auto fail = [&](std::string why) {
    result.status = -1;
    result.error = std::move(why);
    return result;
  };
  if (WIFSIGNALED(st)) return fail("the sandbox died from signal " + std::to_string(WTERMSIG(st)));
  if (!WIFEXITED(st)) return fail("the sandbox ended abnormally");
  if (writeFailed) return fail("cannot write the output file");
  const int code = WEXITSTATUS(st);
  // bwrap reports its own setup failures with exit status 1 and a "bwrap:"
  // message; the autodriver never prints that.
  if (errText.starts_with("bwrap: ") || errText.find("\nbwrap: ") != std::string::npos)
    return fail("sandbox setup failed: " + stderrExcerpt(errText));
  result.status = code;
  if (code != 0 && code != 2)
    result.error = "autodriver exited with status " + std::to_string(code) +
                   (errText.empty() ? "" : ": " + stderrExcerpt(errText));
  return result;
}

}  // namespace tango
