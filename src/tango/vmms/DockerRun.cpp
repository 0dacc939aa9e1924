// localDocker: running a job in its container (see DockerVmms.hpp), and
// saying which limit ended it.
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>

#include "tango/vmms/AutodriverFrames.hpp"
#include "tango/vmms/DockerVmms.hpp"
#include "tango/vmms/UsageLine.hpp"

namespace tango {

using namespace std::chrono_literals;
using docker::TarEntry;
using Clock = std::chrono::steady_clock;

bool DockerVmms::pidsLimited() {
  {
    std::lock_guard lock(mu_);
    if (pidsLimited_) return *pidsLimited_;
  }
  // Asked without mu_: every other job's calls go on while the engine answers.
  bool supported = false;
  try {
    supported = engine_.supportsPidsLimit();
  } catch (const docker::DockerError& e) {
    spdlog::warn("cannot ask the engine about pids limits: {}", e.what());
    return false;  // ask again next time; meanwhile -u holds
  }
  std::lock_guard lock(mu_);
  if (!pidsLimited_ && !supported)
    spdlog::warn(
        "the Docker engine cannot limit processes per container: falling back to "
        "RLIMIT_NPROC, which all containers' grading users share");
  pidsLimited_ = supported;
  return supported;
}

// The autodriver is always told its cap, so the result's bound here is its.
std::int64_t DockerVmms::outputCap(const RunSpec& spec) const {
  return spec.maxOutputBytes > 0 ? spec.maxOutputBytes : cfg_.maxOutputFileSize;
}

std::vector<std::string> DockerVmms::autodriverFlags(const RunSpec& spec) {
  std::vector<std::string> f;
  // RLIMIT_NPROC counts every process of a host uid, and the grading user
  // of every container is the same host uid: one job's fork bomb would make
  // the fork of every other job fail. The container's pids limit is the
  // job's own; -u only where the engine cannot set one.
  if (spec.ulimitProcs > 0 && !pidsLimited())
    f.insert(f.end(), {"-u", std::to_string(spec.ulimitProcs)});
  if (spec.ulimitFileSize > 0) f.insert(f.end(), {"-f", std::to_string(spec.ulimitFileSize)});
  if (spec.timeoutSecs > 0) f.insert(f.end(), {"-t", std::to_string(spec.timeoutSecs)});
  f.insert(f.end(), {"-o", std::to_string(outputCap(spec))});
  const int cpuSecs = spec.cpuTimeSecs > 0 ? spec.cpuTimeSecs : cfg_.vmCpuTimeLimit;
  if (cpuSecs > 0) f.insert(f.end(), {"-c", std::to_string(cpuSecs)});
  return f;
}

StepResult DockerVmms::prepareRun(const std::string& name, const RunSpec& spec) {
  try {
    // Containers start with NetworkMode "none" (loopback only); a job asking
    // for the network gets the default bridge.
    if (!spec.disableNetwork) {
      engine_.disconnectNetwork("none", name);
      engine_.connectNetwork("bridge", name);
    }
  } catch (const docker::DockerError& e) {
    return StepResult::failure(std::string("cannot set up the job's network: ") + e.what());
  }
  try {
    // A job's own memory and process limits replace the container's (a
    // pool's containers were made before their jobs were known).
    const std::int64_t pids = spec.ulimitProcs > 0 && spec.ulimitProcs != cfg_.vmUlimitUserProc
                                  ? std::max(spec.ulimitProcs, 1) + kVmmsProcesses
                                  : 0;
    engine_.updateContainer(name, spec.memoryLimitBytes, pids);
  } catch (const docker::DockerError& e) {
    return StepResult::failure(std::string("cannot apply the job's limits: ") + e.what());
  }
  return StepResult::success();
}

RunResult DockerVmms::runJob(const TangoMachine& vm, const RunSpec& spec) {
  const std::string name = containerName(vm);
  {
    std::lock_guard lock(mu_);
    auto it = containers_.find(name);
    if (it == containers_.end() || it->second.running) {
      RunResult r;
      r.error = it == containers_.end() ? "container " + name + " was not prepared"
                                        : "a job is already running in " + name;
      return r;
    }
    it->second.running = true;
    it->second.live = std::make_shared<LiveHead>();
    it->second.output.clear();
  }
  RunResult r;
  try {
    if (auto p = prepareRun(name, spec); !p.ok)
      r.error = p.error;
    else
      r = stream(name, spec, vm);
  } catch (const std::exception& e) {
    // Whatever went wrong, the container's record below is settled.
    r = RunResult{};
    r.error = e.what();
  }
  std::lock_guard lock(mu_);
  auto it = containers_.find(name);
  if (it == containers_.end() || it->second.destroyed) {
    r.status = -1;
    r.error = "the VM was destroyed while the job ran";
    containers_.erase(name);
  } else {
    it->second.running = false;
  }
  return r;
}

RunResult DockerVmms::stream(const std::string& name, const RunSpec& spec, const TangoMachine& vm) {
  RunResult result;
  std::vector<TarEntry> files;
  std::shared_ptr<LiveHead> live;
  {
    std::lock_guard lock(mu_);
    auto it = containers_.find(name);
    if (it == containers_.end()) {
      result.error = "the VM was destroyed before the job ran";
      return result;
    }
    files = std::exchange(it->second.input, {});
    live = it->second.live;
  }
  const std::chrono::seconds hard = hardTimeoutOf(spec);
  // The job as the waiting autodriver reads it (StdinJob.hpp).
  const std::string tar = jobStream(autodriverFlags(spec), std::move(files));
  // The autodriver's stdout: the output's head as it grows (the partial
  // output), then the result.
  AutodriverFrames frames = framesFor(outputCap(spec), live);
  StderrTail stderrTail;
  const std::string& err = stderrTail.text;
  const auto errSink = [&stderrTail](std::string_view c) { stderrTail(c); };
  int code = -1;
  try {
    auto att = engine_.attach(name, 30s);
    // While attached, abandonRuns can cut the connection (never once `att`
    // is gone: the guard, declared after it, forgets the socket first).
    struct Attached {
      DockerVmms& self;
      const std::string& name;
      Attached(DockerVmms& s, const std::string& n, int socket) : self(s), name(n) { set(socket); }
      ~Attached() { set(-1); }
      void set(int socket) {
        std::lock_guard lock(self.mu_);
        if (auto it = self.containers_.find(name); it != self.containers_.end())
          it->second.attachSocket = socket;
      }
    } attached{*this, name, att.socket()};
    // Handing the job over has its own bound (COPYIN_TIMEOUT); the run's
    // starts once the autodriver has it. A write cut short means the
    // autodriver exited before reading it all: its stderr and exit code,
    // read next, say why.
    const auto copyIn = std::chrono::seconds(std::max(cfg_.copyInTimeout, 1));
    if (att.write(tar, Clock::now() + copyIn)) att.closeStdin();
    att.drain([&frames](std::string_view c) { frames.feed(c); }, errSink, Clock::now() + hard);
    if (wasAbandoned(name)) {
      result.error = "the engine stopped answering; the run was abandoned";
      return result;
    }
    code = engine_.waitContainer(name, 30s);
  } catch (const docker::DockerTimeout&) {
    if (wasAbandoned(name)) {
      result.error = "the engine stopped answering; the run was abandoned";
      return result;
    }
    try {
      engine_.killContainer(name);
    } catch (const docker::DockerError&) {
    }
    result.error = "the run exceeded the hard timeout of " + std::to_string(hard.count()) +
                   " s; container killed";
    return result;
  } catch (const docker::DockerError& e) {
    result.error = wasAbandoned(name) ? "the engine stopped answering; the run was abandoned"
                                      : std::string(e.what());
    return result;
  }
  if (code < 0 || code > 3) {
    auto st = engine_.inspectContainer(name);
    if (st && st->oomKilled) {
      result.usage = parseUsageLine(err);
      result.notice = memoryNotice(vm, spec);
      result.error = "the container was killed by the memory limit";
      return result;
    }
  }
  result = runResultOf(code, frames, err);
  if (result.status < 0) return result;
  // A job ended by a cgroup limit looks like any failing make: say why,
  // from the counters the autodriver read (-E).
  if (result.usage && result.usage->oomKills > 0)
    result.notice = memoryNotice(vm, spec);
  else if (result.usage && result.usage->pidsMax > 0)
    result.notice = pidsNotice(spec);
  std::lock_guard lock(mu_);
  if (auto it = containers_.find(name); it != containers_.end())
    it->second.output = frames.takeOutput();
  return result;
}

void DockerVmms::abandonRuns() {
  std::lock_guard lock(mu_);
  // A run still attaching (no socket yet) is abandoned too: its attach to
  // the silent engine ends at its own bound, and the run then says why.
  for (auto& [name, c] : containers_) {
    if (!c.running) continue;
    c.abandoned = true;
    if (c.attachSocket >= 0) ::shutdown(c.attachSocket, SHUT_RDWR);
  }
}

bool DockerVmms::wasAbandoned(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = containers_.find(name);
  return it != containers_.end() && it->second.abandoned;
}

std::string DockerVmms::memoryNotice(const TangoMachine& vm, const RunSpec& spec) {
  auto limit = spec.memoryLimitBytes > 0
                   ? std::optional<int>(static_cast<int>(spec.memoryLimitBytes >> 20))
               : vm.memory ? vm.memory
                           : cfg_.dockerMemoryLimit;
  return "Error: the job was killed for exceeding the memory limit" +
         (limit ? " of " + std::to_string(*limit) + " MB" : std::string());
}

std::string DockerVmms::pidsNotice(const RunSpec& spec) {
  return "Error: the job hit the limit on the number of processes (" +
         std::to_string(spec.ulimitProcs > 0 ? spec.ulimitProcs : cfg_.vmUlimitUserProc) + ")";
}

}  // namespace tango
