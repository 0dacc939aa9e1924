#include "tango/vmms/SshJobs.hpp"

#include <algorithm>
#include <fstream>

#include "tango/util/RandomHex.hpp"
#include "tango/util/ReadFile.hpp"
#include "tango/vmms/AutodriverFrames.hpp"
#include "tango/vmms/UsageLine.hpp"

namespace tango {

using namespace std::chrono_literals;
using docker::TarEntry;
using Clock = std::chrono::steady_clock;

namespace {

// Run as root with the grading user as $1. Every process of the user dies
// in one kill(-1) made as that user (a fork bomb cannot outrun it), then
// what it owns in the places it can write goes; the last lines check it.
constexpr const char* kResetScript = R"SH(set -u
u=$1
IFS=: read -r _ _ uid gid _ home _ <<EOF
$(getent passwd "$u")
EOF
[ -n "${uid:-}" ] || { echo "no user $u"; exit 3; }
[ "$uid" -ne 0 ] || { echo "refusing to reset root"; exit 3; }
case "$home" in /home/*/*|*..*) echo "home of $u is '$home', not /home/<name>"; exit 3;; /home/?*) ;; *) echo "home of $u is '$home', not below /home"; exit 3;; esac
# A process counts by its real uid (/proc/PID/status): a non-dumpable one
# has a /proc directory owned by root. Few processes: this runs after every
# job, on the next job's path.
alive() { awk -v u="$uid" '$1 == "Uid:" && $2 == u { f = 1; exit } END { exit !f }' /proc/[0-9]*/status 2>/dev/null; }
kill_all() { setpriv --reuid="$uid" --regid="$gid" --clear-groups /bin/sh -c 'kill -9 -1' 2>/dev/null; }
# cron and at first, so nothing of the user starts while it is killed.
[ -e "/var/spool/cron/crontabs/$u" ] && crontab -r -u "$u" 2>/dev/null
[ -d /var/spool/cron/atjobs ] && find /var/spool/cron/atjobs -mindepth 1 -user "$uid" -delete
kill_all
n=0
while alive; do
  [ $n -lt 20 ] || { echo "processes of $u survive"; exit 4; }
  kill_all
  n=$((n + 1))
  sleep 0.1
done
set --
for d in /tmp /var/tmp /dev/shm; do [ -d "$d" ] && set -- "$@" "$d"; done
# find -delete fails when something cannot be removed: that is the check.
find "$home" -mindepth 1 -delete || { echo "left behind in $home"; exit 5; }
[ $# -eq 0 ] || find "$@" -mindepth 1 -user "$uid" -delete || { echo "left behind in $*"; exit 5; }
alive && { echo "processes of $u survive"; exit 4; }
echo tango-reset-ok
)SH";

// A job's command on a machine that is reused: the autodriver, its exit
// status reported on stderr after a line tagged for this run, then the
// reset, whose words also go to stderr ($1: the grading user, $2: the job's
// directory, $3: the tag).
std::string runThenResetScript() {
  return std::string(SshJobs::kAutodriver) + R"SH( -S -F -R -U "$1" "$2"
s=$?
exec 1>&2
echo "tango-exit-$3 $s"
)SH" + kResetScript;
}

std::string shellQuoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

constexpr std::size_t kResetSaidCap = 4096;

// The wrapper's stderr, split at its "tango-exit-<tag> <status>" line: what
// comes before is the autodriver's, what follows the reset's. The tag is
// new for every run and the job never holds this stderr, so the line
// cannot be forged.
class ExitLine {
 public:
  explicit ExitLine(const std::string& tag) : prefix_("tango-exit-" + tag + " ") {}

  void feed(std::string_view c, StderrTail& before) {
    if (status) {
      keepAfter(c);
      return;
    }
    line_.append(c);
    std::size_t start = 0;
    for (std::size_t nl; !status && (nl = line_.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      std::string_view line(line_.data() + start, nl - start);
      if (auto at = line.find(prefix_); at != std::string_view::npos) {
        before(line.substr(0, at));
        status = parseStatus(line.substr(at + prefix_.size()));
        keepAfter(std::string_view(line_).substr(nl + 1));
        line_.clear();
        return;
      }
      before(std::string_view(line_).substr(start, nl + 1 - start));
    }
    line_.erase(0, start);
    // A line this long is not the tag's: pass it on.
    if (line_.size() > 4096) {
      before(line_);
      line_.clear();
    }
  }
  // What is left of an unfinished last line once the stream ended.
  void flush(StderrTail& before) {
    if (!status) before(line_);
    line_.clear();
  }

  std::optional<int> status;
  std::string after;  // the reset's words, bounded

 private:
  static int parseStatus(std::string_view s) {
    int v = 0;
    if (s.empty() || s.size() > 3) return -1;
    for (char c : s) {
      if (c < '0' || c > '9') return -1;
      v = v * 10 + (c - '0');
    }
    return v;
  }
  void keepAfter(std::string_view c) {
    if (after.size() < kResetSaidCap)
      after.append(c.substr(0, std::min(c.size(), kResetSaidCap - after.size())));
  }

  std::string prefix_;
  std::string line_;
};

// What a reset's command said about the machine.
StepResult resetOutcome(const ssh::Session& session, const ssh::CommandResult& r,
                        const std::string& said, std::chrono::seconds timeout) {
  // A reset that runs out of time (a job left a million files) is the
  // slot's failure; one ssh could not run is the machine's ("ssh to ...").
  if (r.timedOut)
    return StepResult::failure("reset of " + session.target().shown() + " took longer than " +
                               std::to_string(timeout.count()) + " s");
  if (!r.error.empty()) return StepResult::failure("reset: " + r.error);
  if (r.exitCode != 0 || said.find("tango-reset-ok") == std::string::npos)
    return StepResult::failure("reset of " + session.target().shown() + " failed (" +
                               std::to_string(r.exitCode) + "): " + stderrExcerpt(said));
  return StepResult::success();
}

}  // namespace

std::string SshJobs::asRoot(const ssh::Session& session, const std::string& command) {
  return session.target().user == "root" ? command : "sudo -n " + command;
}

std::int64_t SshJobs::outputCap(const RunSpec& spec) const {
  return spec.maxOutputBytes > 0 ? spec.maxOutputBytes : cfg_.maxOutputFileSize;
}

std::vector<std::string> SshJobs::flags(const RunSpec& spec) const {
  std::vector<std::string> f;
  if (spec.ulimitProcs > 0) f.insert(f.end(), {"-u", std::to_string(spec.ulimitProcs)});
  if (spec.ulimitFileSize > 0) f.insert(f.end(), {"-f", std::to_string(spec.ulimitFileSize)});
  if (spec.timeoutSecs > 0) f.insert(f.end(), {"-t", std::to_string(spec.timeoutSecs)});
  f.insert(f.end(), {"-o", std::to_string(outputCap(spec))});
  const int cpuSecs = spec.cpuTimeSecs > 0 ? spec.cpuTimeSecs : cfg_.vmCpuTimeLimit;
  if (cpuSecs > 0) f.insert(f.end(), {"-c", std::to_string(cpuSecs)});
  // The machine is the job's: only a job's own memory limit (RLIMIT_AS, the
  // machine has no cgroup of ours) narrows it.
  if (spec.memoryLimitBytes > 0) f.insert(f.end(), {"-m", std::to_string(spec.memoryLimitBytes)});
  return f;
}

StepResult SshJobs::copyIn(const std::string& vm, const std::vector<InputFile>& files) {
  std::string error;
  auto entries = jobFiles(files, cfg_.maxInputFileSize, error);
  if (!entries) return StepResult::failure(error);
  std::lock_guard lock(mu_);
  Record& r = records_[vm];
  if (r.running) return StepResult::failure("a job is already running on " + vm);
  r.forgotten = false;
  r.input = std::move(*entries);
  // A reused VM: the previous job's output is not this one's partial output.
  r.live.reset();
  r.output.clear();
  return StepResult::success();
}

RunResult SshJobs::runJob(const std::string& vm, ssh::Session& session,
                          const std::string& gradingUser, const RunSpec& spec, bool resetAfter) {
  RunResult result;
  std::vector<TarEntry> files;
  std::shared_ptr<LiveHead> live;
  {
    std::lock_guard lock(mu_);
    auto it = records_.find(vm);
    if (it == records_.end() || it->second.running) {
      result.error = it == records_.end() ? "no job was copied in for " + vm
                                          : "a job is already running on " + vm;
      return result;
    }
    files = std::exchange(it->second.input, {});
    it->second.running = true;
    it->second.output.clear();
    it->second.live = live = std::make_shared<LiveHead>();
    it->second.resetting.reset();
    it->second.resetDone.reset();
  }
  const std::chrono::seconds hard = hardTimeoutOf(spec);
  AutodriverFrames frames = framesFor(outputCap(spec), live);
  StderrTail stderrTail;
  const std::string& err = stderrTail.text;
  // `~user/job`: the grading user's home, expanded by the remote shell; the
  // autodriver makes the directory and removes it when the job ends.
  const std::string jobDir = "~" + gradingUser + "/job";
  const std::string tag = randomHex();
  ExitLine exitLine(tag);
  const std::string command =
      resetAfter ? asRoot(session, "/bin/sh -c " + shellQuoted(runThenResetScript()) +
                                       " tango-job " + gradingUser + " " + jobDir + " " + tag)
                 : asRoot(session,
                          std::string(kAutodriver) + " -S -F -R -U " + gradingUser + " " + jobDir);
  ssh::CommandResult run;
  std::optional<Process> resetting;
  try {
    run = session.run(
        command, jobStream(flags(spec), std::move(files)), Clock::now() + hard,
        [&frames](std::string_view c) { frames.feed(c); },
        [&](std::string_view c) {
          if (resetAfter)
            exitLine.feed(c, stderrTail);
          else
            stderrTail(c);
        },
        // The autodriver is done and its result read: the reset runs on.
        [&] { return exitLine.status && (frames.complete() || frames.error()); }, resetting);
  } catch (const std::exception& e) {
    run.error = e.what();
  }
  exitLine.flush(stderrTail);
  // With the reset after it, the autodriver's status is on its line; the
  // command's own is the reset's.
  const int code = exitLine.status ? *exitLine.status : run.exitCode;
  if (run.timedOut)
    result.error = "the run exceeded the hard timeout of " + std::to_string(hard.count()) + " s";
  else if (!run.error.empty())
    result.error = run.error;
  else if (!exitLine.status && run.exitCode == 1 && err.starts_with("sudo:"))
    result.error = "sudo on " + session.target().shown() + " refused: " + stderrExcerpt(err);
  else
    result = runResultOf(code, frames, err);
  std::unique_lock lock(mu_);
  auto it = records_.find(vm);
  if (it == records_.end() || it->second.forgotten) {
    records_.erase(vm);
    lock.unlock();
    // Its reset ends here, not beside whatever runs on the machine next.
    if (run.stopped) session.finish(*resetting, Clock::now() + hard, nullptr, nullptr);
    result = RunResult{};
    result.error = "the VM was destroyed while the job ran";
    return result;
  }
  Record& r = it->second;
  r.running = false;
  if (result.status >= 0) r.output = frames.takeOutput();
  if (exitLine.status) {
    r.resetSaid = std::move(exitLine.after);
    if (run.stopped)
      r.resetting = std::move(resetting);
    else
      r.resetDone = resetOutcome(session, run, r.resetSaid, hard);
  }
  return result;
}

StepResult SshJobs::copyOut(const std::string& vm, const std::filesystem::path& dest) {
  std::string out;
  {
    std::lock_guard lock(mu_);
    auto it = records_.find(vm);
    if (it == records_.end()) return StepResult::failure("no output recorded for " + vm);
    out = std::exchange(it->second.output, std::string());
  }
  return writeOutput(dest, out);
}

std::optional<std::string> SshJobs::partialOutput(const std::string& vm) {
  std::shared_ptr<LiveHead> live;
  {
    std::lock_guard lock(mu_);
    auto it = records_.find(vm);
    if (it == records_.end() || !it->second.live) return std::nullopt;
    live = it->second.live;
  }
  return live->get();
}

std::optional<Process> SshJobs::forget(const std::string& vm) {
  std::lock_guard lock(mu_);
  auto it = records_.find(vm);
  if (it == records_.end()) return std::nullopt;
  if (it->second.running) {
    it->second.forgotten = true;  // its runJob drops the record
    return std::nullopt;
  }
  auto resetting = std::move(it->second.resetting);
  records_.erase(it);
  return resetting;
}

StepResult SshJobs::resetAfterJob(const std::string& vm, ssh::Session& session,
                                  const std::string& gradingUser, std::chrono::seconds timeout) {
  std::optional<Process> resetting;
  std::string said;
  {
    std::lock_guard lock(mu_);
    auto it = records_.find(vm);
    if (it != records_.end() && !it->second.running) {
      Record& r = it->second;
      if (auto done = std::exchange(r.resetDone, std::nullopt)) return *done;
      resetting = std::exchange(r.resetting, std::nullopt);
      said = std::exchange(r.resetSaid, {});
    }
  }
  if (!resetting) return reset(session, gradingUser, timeout);
  auto sink = [&said](std::string_view c) {
    if (said.size() < kResetSaidCap)
      said.append(c.substr(0, std::min(c.size(), kResetSaidCap - said.size())));
  };
  auto r = session.finish(*resetting, Clock::now() + timeout, sink, sink);
  return resetOutcome(session, r, said, timeout);
}

StepResult SshJobs::reset(ssh::Session& session, const std::string& gradingUser,
                          std::chrono::seconds timeout) {
  std::string out;
  auto sink = [&out](std::string_view c) {
    if (out.size() < kResetSaidCap)
      out.append(c.substr(0, std::min(c.size(), kResetSaidCap - out.size())));
  };
  auto r = session.run(asRoot(session, "/bin/sh -s -- " + gradingUser), kResetScript,
                       Clock::now() + timeout, sink, sink);
  return resetOutcome(session, r, out, timeout);
}

StepResult SshJobs::ready(ssh::Session& session, std::chrono::seconds timeout) {
  if (session.isUp()) return StepResult::success();
  return probe(session, timeout);
}

StepResult SshJobs::probe(ssh::Session& session, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  if (auto e = session.connect(deadline); !e.empty()) return StepResult::failure(e);
  auto r = session.run("true", {}, deadline, nullptr, nullptr);
  if (!r.error.empty()) return StepResult::failure(r.error);
  if (r.exitCode != 0)
    return StepResult::failure("`true` exited with " + std::to_string(r.exitCode) + " on " +
                               session.target().shown());
  return StepResult::success();
}

}  // namespace tango
