#pragma once
// The job path shared by the SSH backends (ec2SSH, tashiSSH): a job runs on
// a machine reached over SSH exactly as in a localDocker container. copyIn
// reads the job's files; runJob sends them, with the autodriver's flags, as
// a tar into one `autodriver -S -F` run over the machine's master
// connection (one channel, no scp round trips), and reads its framed
// stdout: the output's head live (getPartialOutput), then the result,
// kept for copyOut.
//
// On the machine (the EC2 guide's AMI, or tango-image's images): the
// autodriver at /usr/bin/autodriver, a grading user whose home is where
// jobs run, and for a login user other than root, passwordless sudo. The
// autodriver runs as root and drops to the grading user; every process it
// leaves is killed when the job ends.
//
// resetVM makes a used machine as good as fresh for the next job: every
// process of the grading user killed at once, everything it owns in its
// home, /tmp, /var/tmp and /dev/shm removed, its crontab dropped, and then
// checked: a machine that fails the check is not reused. A machine that is
// reused resets in the job's own command, right after the autodriver: the
// run's result is read as soon as the autodriver's exit is reported, and the
// reset goes on while the service writes the output (resetAfterJob reads
// its end), instead of costing a second channel and sudo on the next job's
// path.
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "tango/config/Config.hpp"
#include "tango/docker/Tar.hpp"
#include "tango/ssh/SshSession.hpp"
#include "tango/vmms/AutodriverRun.hpp"
#include "tango/vmms/Vmms.hpp"

namespace tango {

class SshJobs {
 public:
  static constexpr const char* kAutodriver = "/usr/bin/autodriver";
  static constexpr const char* kGradingUser = "autograde";

  explicit SshJobs(const Config& cfg) : cfg_(cfg) {}

  // `vm` is the VM's instance name throughout.
  StepResult copyIn(const std::string& vm, const std::vector<InputFile>& files);
  // `resetAfter`: the command goes on to reset the machine (see above).
  RunResult runJob(const std::string& vm, ssh::Session& session, const std::string& gradingUser,
                   const RunSpec& spec, bool resetAfter);
  StepResult copyOut(const std::string& vm, const std::filesystem::path& dest);
  std::optional<std::string> partialOutput(const std::string& vm);
  // The VM is gone: a job running on it ends (its runJob fails). Returns
  // the reset its last run began, if that is still under way: a machine
  // that stays (tashiSSH) must see it end before anything else runs there.
  std::optional<Process> forget(const std::string& vm);

  // The reset begun by the VM's last run, read to its end; reset() when
  // that run began none (it failed, or timed out).
  StepResult resetAfterJob(const std::string& vm, ssh::Session& session,
                           const std::string& gradingUser, std::chrono::seconds timeout);
  static StepResult reset(ssh::Session& session, const std::string& gradingUser,
                          std::chrono::seconds timeout);
  // `ssh ... true`: the machine answers and logs us in.
  static StepResult probe(ssh::Session& session, std::chrono::seconds timeout);
  // probe() unless the master connection is up: a VM back from its reset
  // (which ran over that connection) or from a warmer's probe needs no
  // round trip before its job; if it went away since, runJob fails and the
  // job is retried like any other.
  static StepResult ready(ssh::Session& session, std::chrono::seconds timeout);
  // The remote command line that runs `command` as root.
  static std::string asRoot(const ssh::Session& session, const std::string& command);

 private:
  struct Record {
    std::vector<docker::TarEntry> input;
    std::string output;
    std::shared_ptr<LiveHead> live;
    bool running = false;
    bool forgotten = false;
    // The last run's command, still resetting the machine, and what the
    // reset said so far; or, once it ended, its outcome.
    std::optional<Process> resetting;
    std::string resetSaid;
    std::optional<StepResult> resetDone;
  };
  std::vector<std::string> flags(const RunSpec& spec) const;
  std::int64_t outputCap(const RunSpec& spec) const;

  const Config& cfg_;
  std::mutex mu_;
  std::map<std::string, Record> records_;  // guarded by mu_
};

}  // namespace tango
