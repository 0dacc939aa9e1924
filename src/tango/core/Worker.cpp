#include "tango/core/Worker.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <thread>
#include <type_traits>

#include "autodriver/Wire.hpp"
#include "tango/core/FailureCause.hpp"
#include "tango/core/OutputFile.hpp"

namespace tango {

namespace {

using std::chrono::seconds;
using namespace std::chrono_literals;

// Per-step status as Tango reports it after the last retry: 0 ok, -1 failed,
// "None" when the step was never reached.
struct StepStatus {
  std::optional<int> waitvm, copyin, runjob, copyout;
};
std::string show(const std::optional<int>& v) { return v ? std::to_string(*v) : "None"; }

// The final message of a run, as Tango words it.
std::string runMessage(int status, int timeout) {
  switch (status) {
    case 0:
      return "Success: Autodriver returned normally";
    case 1:
      return "Error: Autodriver usage error (status=1)";
    case 2:
      return "Error: Job timed out after " + std::to_string(timeout) + " seconds";
    case 3:
      return "Error: OS error while running job on VM";
    default:
      return "Error: Unknown autodriver error (status=" + std::to_string(status) + ")";
  }
}

// make's exit status from the autodriver's first line, when no usage report came.
std::optional<int> makeStatusFromOutput(const std::filesystem::path& raw) {
  std::ifstream in(raw, std::ios::binary);
  std::string line;
  std::getline(in, line);
  constexpr std::string_view prefix = autodriver::wire::kExitedLine;
  if (!line.starts_with(prefix)) return std::nullopt;
  int v = 0;
  auto rest = std::string_view(line).substr(prefix.size());
  if (std::from_chars(rest.data(), rest.data() + rest.size(), v).ec != std::errc())
    return std::nullopt;
  return v;
}

class JobRun {
 public:
  JobRun(WorkerContext& ctx, TangoJob& job, WorkerLease& lease)
      : ctx_(ctx), job_(job), lease_(lease) {}

  void run(Preallocator::Allocation alloc) {
    if (finishedBefore(alloc)) return;
    TangoMachine vm = alloc.vm;
    try {
      runOn(vm, alloc.warm);
    } catch (...) {
      // A store or filesystem failure (a full disk) ended the worker: the
      // VM it held goes, and its slot with it, or no job would get it again.
      if (!handedBack_) {
        destroy(vm);
        ctx_.preallocator.releaseVM(vm);
      }
      throw;
    }
  }

 private:
  void runOn(TangoMachine& vm, bool ready) {
    const std::string tag = job_.name + ":" + std::to_string(job_.id);
    // Per lease: a job taken again on this node beside its stalled first
    // run must not share the file.
    auto raw = ctx_.cfg.dataDir / "tmp" /
               ("job-" + std::to_string(job_.id) + "-" +
                std::to_string(std::hash<std::string>{}(lease_.lease.token)) + ".out");

    for (int attempt = 0;; ++attempt) {
      setVm(vm);
      trace("Dispatched job " + tag + " [try " + std::to_string(attempt) + "]");
      StepStatus st;
      std::string failure = attemptOnce(vm, ready, tag, raw, st);
      if (cancelled() && !lost()) {
        std::error_code ec;
        std::filesystem::remove(raw, ec);
        destroy(vm);
        finishCancelled(vm, "running");
        return;
      }
      if (lost()) {
        abandon(vm, raw);
        return;
      }
      if (failure.empty()) {
        finish(vm, raw);
        return;
      }
      // A system failure: the VM is suspect, never reuse it.
      spdlog::warn("job {} ({}): try {} failed: {}", job_.id, tag, attempt, failure);
      destroy(vm);
      if (ctx_.shuttingDown) return;  // left "running": retried at restart or when its lease lapses
      if (attempt >= ctx_.cfg.jobRetries) {
        failAfterRetries(vm, failure, st);
        return;
      }
      if (lost()) {
        handedBack_ = true;
        ctx_.preallocator.releaseVM(vm);
        abandon(vm, raw, /*destroyed=*/true);
        return;
      }
      ++ctx_.stats.jobRetries;
      ++job_.retries;
      trace("Retrying job " + tag + " on another VM: " + failure);
      handedBack_ = true;  // renewVM gives the old one back even if it then throws
      auto renewed = ctx_.preallocator.renewVM(vm, ownAccount());
      vm = renewed.vm;
      handedBack_ = false;
      ready = renewed.warm;
    }
  }

  // One try on `vm`. Returns "" when the job ran (whatever make did), or the
  // system failure that warrants a retry.
  std::string attemptOnce(TangoMachine& vm, bool ready, const std::string& tag,
                          const std::filesystem::path& raw, StepStatus& st) {
    const auto& cfg = ctx_.cfg;
    const std::string inst = instanceName(cfg.prefix, vm);
    if (!ready) {
      // A VM made for this job can be sized for it (a VMMS that fixes the
      // disk at creation, like localDocker's tmpfs mounts, reads vm.disk).
      if (job_.limits.diskMb) vm.disk = job_.vm.disk = job_.limits.diskMb;
      if (ownAccount()) {  // ec2SSH: launched in the requester's account
        vm.accessKeyId = job_.accessKeyId;
        vm.accessKey = job_.accessKey;
      }
      step("initializeVM", job_.times.initializeVM);
      auto r = timed("initializeVM",
                     [&] { return vmms(vm).initializeVM(vm, seconds(cfg.initializeVmTimeout)); });
      if (!r.ok) {
        ctx_.stats.metrics.vmmsError("initializeVM");
        return "initializeVM failed: " + r.error;
      }
      trace("Assigned job " + tag + " new VM " + inst);
    } else {
      trace("Assigned job " + tag + " existing VM " + inst);
    }

    step("waitVM", job_.times.waitVM);
    if (stopped()) return kLost;
    auto w = timed("waitVM", [&] { return vmms(vm).waitVM(vm, seconds(cfg.waitVmTimeout)); });
    st.waitvm = w.ok ? 0 : -1;
    if (!w.ok) {
      ++ctx_.stats.waitvmTimeouts;
      ctx_.stats.metrics.vmmsError("waitVM");
      trace("VM " + inst + " not ready for job " + tag + ": " + w.error);
      return "waitVM failed: " + w.error;
    }

    step("copyIn", job_.times.copyIn);
    if (stopped()) return kLost;
    auto c = timed("copyIn",
                   [&] { return vmms(vm).copyIn(vm, job_.input, seconds(cfg.copyInTimeout)); });
    st.copyin = c.ok ? 0 : -1;
    trace("Input copied for job " + tag + " [status=" + show(st.copyin) + "]" +
          (c.ok ? "" : ": " + c.error));
    if (!c.ok) {
      ++ctx_.stats.copyinErrors;
      ctx_.stats.metrics.vmmsError("copyIn");
      return "copyIn failed: " + c.error;
    }

    step("runJob", job_.times.runJob);
    if (stopped()) return kLost;
    RunSpec spec;
    spec.timeoutSecs = job_.timeout;
    spec.maxOutputBytes = job_.maxOutputFileSize;
    spec.disableNetwork = job_.disableNetwork;
    // The job's own limits where it asked (checked against MAX_JOB_* at
    // addJob), the configured ones otherwise.
    const JobLimits& lim = job_.limits;
    constexpr std::int64_t kMB = 1024 * 1024;
    spec.ulimitProcs = lim.procs.value_or(cfg.vmUlimitUserProc);
    spec.ulimitFileSize = lim.fileSizeBytes.value_or(cfg.vmUlimitFileSize);
    spec.memoryLimitBytes = lim.memoryMb ? *lim.memoryMb * kMB : 0;
    spec.diskLimitBytes = lim.diskMb ? *lim.diskMb * kMB : 0;
    spec.cpuTimeSecs = lim.cpuSecs.value_or(0);
    // The autodriver enforces the job's timeout; this outer bound catches an
    // autodriver that cannot (a damaged VM).
    spec.hardTimeout = seconds(job_.timeout + 10);
    RunResult run = timed("runJob", [&] { return vmms(vm).runJob(vm, spec); });
    if (stopped()) return kLost;  // its VM was stopped for it
    st.runjob = run.status;
    trace("Job " + tag + " executed [status=" + std::to_string(run.status) + "]" +
          (run.error.empty() ? "" : ": " + run.error));
    if (run.status < 0) {
      ++ctx_.stats.runjobErrors;
      ctx_.stats.metrics.vmmsError("runJob");
      return "runJob failed: " + run.error;
    }
    runStatus_ = run.status;
    notice_ = run.notice;
    job_.usage = run.usage;
    if (const auto& u = run.usage) {
      // The autodriver's side-channel report, kept out of the output file.
      trace("Resources used by job " + tag + ": wall " + std::to_string(u->wallMs) + " ms, cpu " +
            std::to_string(u->userMs + u->sysMs) + " ms, peak memory " +
            std::to_string(u->maxRssKb) + " kB, " +
            (u->signal ? "killed by signal " + std::to_string(u->signal)
                       : "exit status " + std::to_string(u->exitStatus)));
    }
    if (run.status == 2) ++ctx_.stats.runjobTimeouts;

    step("copyOut", job_.times.copyOut);
    auto copyOut = [&] {
      return timed("copyOut",
                   [&] { return vmms(vm).copyOut(vm, raw, seconds(cfg.copyOutTimeout)); });
    };
    auto o = copyOut();
    // The output is in the VM: while the host's disk is full, keep the VM
    // and try again, rather than run the job again for the same end.
    for (auto pause = kSpacePause; !o.ok && diskFull(o.error) && !stopWaiting();
         pause = std::min(pause * 2, kSpacePauseMax)) {
      spdlog::warn("job {}: output not copied, the disk is full; trying again in {} ms", job_.id,
                   pause.count());
      std::this_thread::sleep_for(pause);
      o = copyOut();
    }
    st.copyout = o.ok ? 0 : -1;
    trace("Output copied for job " + tag + " [status=" + show(st.copyout) + "]" +
          (o.ok ? "" : ": " + o.error));
    if (!o.ok) {
      ++ctx_.stats.copyoutErrors;
      ctx_.stats.metrics.vmmsError("copyOut");
      return "copyOut failed: " + o.error;
    }
    return "";
  }

  void finish(const TangoMachine& vm, const std::filesystem::path& raw) {
    const std::string msg = runMessage(runStatus_, job_.timeout);
    std::string header =
        autograderLine("Received job " + job_.name + ":" + std::to_string(job_.id)) +
        autograderLine(msg) + (notice_.empty() ? "" : autograderLine(notice_)) +
        autograderLine("Here is the output from the autograder:\n---");
    std::optional<PreparedOutput> out;
    out.emplace(prepareOutputFile(job_.outputFile, header, raw));
    waitForSpace(vm, out, [&] { return prepareOutputFile(job_.outputFile, header, raw); });
    const std::string err = out->error();
    if (runStatus_ == 2) {
      job_.outcome = JobOutcome::Timeout;
    } else if (runStatus_ != 0) {
      job_.outcome = JobOutcome::InternalError;
    } else {
      auto makeStatus =
          job_.usage ? std::optional<int>(job_.usage->exitStatus) : makeStatusFromOutput(raw);
      job_.outcome = makeStatus.value_or(0) == 0 ? JobOutcome::Success : JobOutcome::MakeFailed;
    }
    std::error_code ec;
    std::filesystem::remove(raw, ec);
    // The last trace entry is the outcome Autolab shows: without an output
    // file, that is the error, not the run's message.
    job_.appendTrace(msg);
    if (!err.empty()) {
      job_.outcome = JobOutcome::InternalError;
      spdlog::error("job {} ({}:{}): {}", job_.id, job_.name, job_.id, err);
      job_.appendTrace("Error: " + err);
    }
    complete(vm, handedBack_, &*out);
  }

  // Cancelled (JobQueue::requestCancel, JobManager::cancel): the VM, if any,
  // is gone; the output file and the trace's last entry say so, and the
  // callback goes as for any finished job.
 public:
  void finishCancelled(const TangoMachine& vm, const char* when) {
    const std::string msg = std::string("Error: Job cancelled while ") + when;
    const std::string header =
        autograderLine("Received job " + job_.name + ":" + std::to_string(job_.id)) +
        autograderLine(msg);
    std::optional<PreparedOutput> out;
    out.emplace(prepareOutputFile(job_.outputFile, header, std::nullopt));
    waitForSpace(vm, out, [&] { return prepareOutputFile(job_.outputFile, header, std::nullopt); });
    if (!out->error().empty()) job_.appendTrace("Error: " + out->error());
    job_.outcome = JobOutcome::Cancelled;
    job_.appendTrace(msg);
    complete(vm, /*destroyed=*/true, &*out);
  }
  // A queued job holds no VM.
  void noVm() { handedBack_ = true; }
  bool recorded() const { return recorded_; }

 private:
  void failAfterRetries(const TangoMachine& vm, const std::string& failure, const StepStatus& st) {
    const int tries = ctx_.cfg.jobRetries + 1;
    std::string header =
        autograderLine("Received job " + job_.name + ":" + std::to_string(job_.id)) +
        autograderLine("Internal error: Unable to complete job after " + std::to_string(tries) +
                       " tries. Please resubmit") +
        autograderLine("Job status: waitVM=" + show(st.waitvm) + " copyIn=" + show(st.copyin) +
                       " runJob=" + show(st.runjob) + " copyOut=" + show(st.copyout)) +
        // The category only: the failure's own text may name host paths.
        autograderLine("Cause: " + failureCause(failure, job_.vm.name) +
                       " (details in the service's log under job " + std::to_string(job_.id) + ")");
    spdlog::error("job {} ({}:{}): could not be completed after {} tries: {}", job_.id, job_.name,
                  job_.id, tries, failure);
    std::optional<PreparedOutput> out;
    out.emplace(prepareOutputFile(job_.outputFile, header, std::nullopt));
    waitForSpace(vm, out, [&] { return prepareOutputFile(job_.outputFile, header, std::nullopt); });
    if (!out->error().empty()) job_.appendTrace("Error: " + out->error());
    job_.outcome = JobOutcome::InternalError;
    job_.appendTrace("Error: job failed after " + std::to_string(tries) + " tries: " + failure);
    complete(vm, /*destroyed=*/true, &*out);
  }

  // A run before a crash published the job's whole output but could not
  // record the finish: the job is done, and running it again would grade
  // it twice. It finishes now, with its callback (which had not been sent:
  // it follows the record).
  bool finishedBefore(const Preallocator::Allocation& alloc) {
    const auto published = publishedOutcome(job_.outputFile, job_.name, job_.id);
    if (!published) return false;
    ctx_.preallocator.cancel(alloc);
    handedBack_ = true;
    job_.outcome = published->outcome;
    job_.callbackPending = job_.notifyURL.has_value();
    job_.appendTrace("Job " + job_.name + ":" + std::to_string(job_.id) +
                     " not run again: its output was complete before the service stopped");
    job_.appendTrace(published->message);
    if (ctx_.shuttingDown || !commitFinish()) return true;  // left to whoever holds it
    spdlog::info("job {}: finished before the service stopped; not run again", job_.id);
    ++ctx_.stats.jobsFinished;
    ctx_.stats.metrics.finished(toString(job_.outcome), nowSeconds() - job_.times.queued);
    if (ctx_.onFinished) ctx_.onFinished(job_);
    return true;
  }

  // While the output file cannot be written for want of space, the job
  // waits (its VM destroyed and its slot free: the output is in hand) and
  // tries again, so that space coming back ends it with its output rather
  // than finished without one.
  template <class Prepare>
  void waitForSpace(const TangoMachine& vm, std::optional<PreparedOutput>& out, Prepare prepare) {
    for (auto pause = kSpacePause; diskFull(out->error()) && !stopWaiting();
         pause = std::min(pause * 2, kSpacePauseMax)) {
      if (!handedBack_) {
        destroy(vm);
        handedBack_ = true;
        ctx_.preallocator.releaseVM(vm);
      }
      spdlog::warn("job {}: output file not written, the disk is full; trying again in {} ms",
                   job_.id, pause.count());
      std::this_thread::sleep_for(pause);
      out.reset();  // its temporary goes before the next is made
      out.emplace(prepare());
    }
  }

  bool stopWaiting() const { return ctx_.shuttingDown || lost(); }

  static bool diskFull(const std::string& error) {
    return error.find(std::strerror(ENOSPC)) != std::string::npos ||
           error.find(std::strerror(EDQUOT)) != std::string::npos;
  }

  // The job is no longer this node's (its lease lapsed): whoever holds it
  // now writes its output and sends its callback; this worker only frees
  // what it held.
  void abandon(const TangoMachine& vm, const std::filesystem::path& raw, bool destroyed = false) {
    spdlog::warn("job {}: lease lost; left to the node that holds it now", job_.id);
    ++ctx_.stats.leasesLost;
    std::error_code ec;
    std::filesystem::remove(raw, ec);
    if (!destroyed) {
      destroy(vm);
      handedBack_ = true;
      ctx_.preallocator.releaseVM(vm);
    }
  }

  // Makes the output visible, then commits the job as finished (fenced by
  // its lease). In this order a crash in between leaves a live job that
  // runs again, never a finished one without its output; a node whose lease
  // lapsed cannot replace the output already there (PreparedOutput).
  void complete(const TangoMachine& vm, bool destroyed, PreparedOutput* out) {
    if (ctx_.shuttingDown) return;
    job_.callbackPending = job_.notifyURL.has_value();
    // A destroyed VM's slot is free now, not once the finish is recorded
    // (which waits while the store cannot write: a full disk).
    if (destroyed && !handedBack_) {
      handedBack_ = true;
      ctx_.preallocator.releaseVM(vm);
    }
    if (out && !lost()) {
      if (job_.notifyURL) {
        if (auto err = out->keepCopy(callbackCopyPath(job_.outputFile, job_.id)); !err.empty())
          spdlog::warn("job {}: {}; the callback sends the output file", job_.id, err);
      }
      if (auto err = out->publish(); !err.empty())
        spdlog::error("job {} ({}:{}): {}", job_.id, job_.name, job_.id, err);
      else if (ctx_.onPublished)
        ctx_.onPublished(job_);
    }
    if (lost() || !commitFinish()) {
      lease_.lost->store(true);
      abandon(vm, {}, destroyed || handedBack_);
      return;
    }
    recorded_ = true;
    spdlog::info("job {}: finished on node {} ({})", job_.id, ctx_.cfg.nodeId,
                 toString(job_.outcome));
    ++ctx_.stats.jobsFinished;
    ctx_.stats.metrics.finished(toString(job_.outcome), nowSeconds() - job_.times.queued);
    if (ctx_.onFinished) ctx_.onFinished(job_);
    // After the output is in place (so this does not delay the poll): a VM
    // that is reused goes back to its pool once it is reset; any other runs
    // exactly one job, and the pool refills.
    // A VM of the job's own account never joins the service's pool.
    if (!destroyed && vmms(vm).reusesVms() && !ownAccount()) {
      auto r = timed("resetVM", [&] { return vmms(vm).resetVM(vm); });
      if (r.ok) {
        handedBack_ = true;
        ctx_.preallocator.returnVM(vm);
        return;
      }
      ctx_.stats.metrics.vmmsError("resetVM");
      spdlog::warn("job {}: VM {} not reused: {}", job_.id, instanceName(ctx_.cfg.prefix, vm),
                   r.error);
    }
    if (handedBack_) return;
    if (!destroyed) destroy(vm);
    handedBack_ = true;
    ctx_.preallocator.releaseVM(vm);
  }

  static void failWith(StepResult& r, std::string why) { r = StepResult::failure(std::move(why)); }
  static void failWith(RunResult& r, std::string why) {
    r = RunResult{};
    r.error = std::move(why);
  }

  // Runs one VMMS call and records its duration for /metrics. A VMMS that
  // throws failed that step, like one that says so.
  template <class Call>
  std::invoke_result_t<Call&> timed(std::string_view step, Call&& call) {
    const auto t0 = std::chrono::steady_clock::now();
    std::invoke_result_t<Call&> result;
    try {
      result = call();
    } catch (const std::exception& e) {
      failWith(result, std::string(step) + " threw: " + e.what());
    }
    ctx_.stats.metrics.observeStep(
        step, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return result;
  }

  void destroy(const TangoMachine& vm) {
    auto r = timed("destroyVM", [&] { return vmms(vm).safeDestroyVM(vm); });
    if (!r.ok) ctx_.stats.metrics.vmmsError("destroyVM");
  }

  void setVm(const TangoMachine& vm) {
    job_.vm.id = vm.id;
    job_.vm.vmms = vm.vmms;
    job_.vm.cores = vm.cores;
    job_.vm.memory = vm.memory;
    job_.vm.node = vm.node;
    if (ctx_.onVm) ctx_.onVm(job_.id, vm);
  }

  void step(const char* name, double& when) {
    job_.step = name;
    when = nowSeconds();
    commit();
  }

  // Committed with the next step (each trace line is followed by one, or
  // by the finish): one store write per step rather than per line, which
  // halves a job's Redis commands (docs/benchmarks.md, "Several nodes").
  void trace(const std::string& msg) {
    job_.appendTrace(msg);
    spdlog::debug("job {}: {}", job_.id, msg);
  }

  // A refused write means the lease is gone: stop at the next step.
  // A store that cannot be reached (Redis down) only loses this progress
  // note: the job runs on, and the next write or the finish carries it.
  void commit() {
    if (lost()) return;
    try {
      if (!ctx_.queue.update(lease_.lease, job_)) lease_.lost->store(true);
    } catch (const std::exception& e) {
      spdlog::warn("job {}: progress not recorded: {}", job_.id, e.what());
    }
  }

  // The finish must reach the store: while it cannot (Redis down), wait and
  // try again, holding the output. Returns whether the job is this node's.
  bool commitFinish() {
    lease_.finishing->store(true);
    for (auto pause = std::chrono::milliseconds(200);; pause = std::min(pause * 2, 5000ms)) {
      try {
        return ctx_.queue.finish(lease_.lease, job_);
      } catch (const std::exception& e) {
        if (ctx_.shuttingDown || lost()) return false;
        spdlog::warn("job {}: finished, but cannot record it yet: {}", job_.id, e.what());
      }
      std::this_thread::sleep_for(pause);
    }
  }

  bool lost() const { return lease_.lost->load(); }
  bool cancelled() const { return lease_.cancelled->load(); }
  bool stopped() const { return lost() || cancelled(); }
  Vmms& vmms(const TangoMachine& vm) const { return ctx_.vmms.of(vm); }
  bool ownAccount() const { return job_.accessKeyId && job_.accessKey; }

  static constexpr const char* kLost = "the job's lease was lost";
  static constexpr std::chrono::milliseconds kSpacePause{500};
  static constexpr std::chrono::milliseconds kSpacePauseMax{10000};

  WorkerContext& ctx_;
  TangoJob& job_;
  WorkerLease& lease_;
  int runStatus_ = -1;
  bool handedBack_ = false;  // the current VM went back to the preallocator
  bool recorded_ = false;    // the finish was committed
  std::string notice_;       // the VMMS's word on a limit that ended the run
};

}  // namespace

bool finishCancelled(WorkerContext& ctx, TangoJob& job, WorkerLease& lease) {
  JobRun run(ctx, job, lease);
  run.noVm();
  run.finishCancelled(TangoMachine{}, "queued");
  return run.recorded();
}

void runWorker(WorkerContext ctx, TangoJob job, WorkerLease lease, Preallocator::Allocation alloc) {
  try {
    JobRun(ctx, job, lease).run(std::move(alloc));
  } catch (const std::exception& e) {
    // A store or filesystem failure: the job stays live in the store, its
    // lease lapses (the manager stops renewing it once this worker is gone)
    // and it runs again, here or on another node; say so loudly.
    spdlog::error("worker for job {} failed: {}", job.id, e.what());
  }
}

}  // namespace tango
