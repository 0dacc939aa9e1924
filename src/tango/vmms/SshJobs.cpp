#include "tango/vmms/SshJobs.hpp"

#include <algorithm>
#include <fstream>

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
                          const std::string& gradingUser, const RunSpec& spec) {
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
  }
  const std::chrono::seconds hard = hardTimeoutOf(spec);
  AutodriverFrames frames = framesFor(outputCap(spec), live);
  StderrTail stderrTail;
  const std::string& err = stderrTail.text;
  // `~user/job`: the grading user's home, expanded by the remote shell; the
  // autodriver makes the directory and removes it when the job ends.
  const std::string command = asRoot(session, std::string(kAutodriver) + " -S -F -R -U " +
                                                  gradingUser + " ~" + gradingUser + "/job");
  ssh::CommandResult run;
  try {
    run = session.run(
        command, jobStream(flags(spec), std::move(files)), Clock::now() + hard,
        [&frames](std::string_view c) { frames.feed(c); },
        [&stderrTail](std::string_view c) { stderrTail(c); });
  } catch (const std::exception& e) {
    run.error = e.what();
  }
  if (run.timedOut)
    result.error = "the run exceeded the hard timeout of " + std::to_string(hard.count()) + " s";
  else if (!run.error.empty())
    result.error = run.error;
  else if (run.exitCode == 1 && err.starts_with("sudo:"))
    result.error = "sudo on " + session.target().shown() + " refused: " + stderrExcerpt(err);
  else
    result = runResultOf(run.exitCode, frames, err);
  std::lock_guard lock(mu_);
  auto it = records_.find(vm);
  if (it == records_.end() || it->second.forgotten) {
    result = RunResult{};
    result.error = "the VM was destroyed while the job ran";
    records_.erase(vm);
    return result;
  }
  it->second.running = false;
  if (result.status >= 0) it->second.output = frames.takeOutput();
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

void SshJobs::forget(const std::string& vm) {
  std::lock_guard lock(mu_);
  auto it = records_.find(vm);
  if (it == records_.end()) return;
  if (it->second.running)
    it->second.forgotten = true;  // its runJob drops the record
  else
    records_.erase(it);
}

StepResult SshJobs::reset(ssh::Session& session, const std::string& gradingUser,
                          std::chrono::seconds timeout) {
  std::string out;
  auto sink = [&out](std::string_view c) {
    if (out.size() < 4096) out.append(c.substr(0, std::min<std::size_t>(c.size(), 4096)));
  };
  auto r = session.run(asRoot(session, "/bin/sh -s -- " + gradingUser), kResetScript,
                       Clock::now() + timeout, sink, sink);
  // A reset that runs out of time (a job left a million files) is the
  // slot's failure; one ssh could not run is the machine's ("ssh to ...").
  if (r.timedOut)
    return StepResult::failure("reset of " + session.target().shown() + " took longer than " +
                               std::to_string(timeout.count()) + " s");
  if (!r.error.empty()) return StepResult::failure("reset: " + r.error);
  if (r.exitCode != 0 || out.find("tango-reset-ok") == std::string::npos)
    return StepResult::failure("reset of " + session.target().shown() + " failed (" +
                               std::to_string(r.exitCode) + "): " + stderrExcerpt(out));
  return StepResult::success();
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
