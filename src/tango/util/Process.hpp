#pragma once
// A child process owned like a resource: spawned with pipes on stdout/stderr,
// optionally under another uid/gid, killed and reaped when the owner goes away.
// Waiting is done through a pidfd so a timeout never needs a polling sleep and
// a pid is never signalled after it was reaped (no pid-reuse races).
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tango/util/Fd.hpp"

namespace tango {

using SteadyClock = std::chrono::steady_clock;

struct SpawnOptions {
  // argv[0] must be an absolute path: no PATH search happens in the child.
  std::vector<std::string> argv;
  // The complete environment of the child ("NAME=value").
  std::vector<std::string> env;
  // Drop to this uid/gid (and no supplementary groups) before exec. The drop is
  // verified: the child refuses to exec if it could regain root.
  std::optional<std::pair<uid_t, gid_t>> credentials;
  // SIGKILL the child when the spawning thread dies, so a crashed service
  // leaves no orphan behind.
  bool killWithParent = true;
  // Open (write-only) cgroup.procs files the child joins before anything
  // else, while still root: every process of the child is then inside the
  // cgroups from its first instruction, with no window to fork out of them.
  // Not owned; they must stay open until spawn returns.
  std::vector<int> joinCgroupFds;
  // The child's stdin, duplicated (not owned; open until spawn returns);
  // -1 = /dev/null.
  int stdinFd = -1;
  // Fds (3 and up) the child keeps at their numbers across exec, as bwrap's
  // --seccomp FD expects; every other fd is closed. Not owned.
  std::vector<int> inheritFds;
  // stdout and stderr on /dev/null instead of pipes: for a helper that runs
  // beside a job (slirp4netns) and whose streams nobody reads meanwhile.
  bool discardOutput = false;
};

// A pipe, both ends close-on-exec. Throws std::system_error.
void makePipe(Fd& readEnd, Fd& writeEnd);

class Process {
 public:
  using Sink = std::function<void(std::string_view)>;
  enum class IoResult { Done, Deadline, Stopped };

  // Starts the child with stdin on /dev/null (or stdinFd) and stdout/stderr on pipes.
  // Throws std::system_error when fork, a credential change or exec fails.
  static Process spawn(const SpawnOptions& options);

  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  // Kills (SIGKILL) and reaps a child that was not reaped yet.
  ~Process();

  pid_t pid() const noexcept { return pid_; }

  // Sends `sig` unless the child was already reaped.
  void signal(int sig) noexcept;

  // Feeds the child's stdout and stderr to the sinks until the child has
  // exited and both pipes reached EOF, or `deadline` passed. After the child
  // exits, pipes still held open by its descendants are read for at most
  // `afterExit` and then closed. With `stop`: Stopped as soon as it holds
  // after a read, the child left running; a later call reads on.
  IoResult communicate(const Sink& onStdout, const Sink& onStderr, SteadyClock::time_point deadline,
                       std::chrono::milliseconds afterExit = std::chrono::seconds(1),
                       const std::function<bool()>& stop = {});

  // True once the child has exited (it is not reaped), false at the deadline.
  bool waitExit(SteadyClock::time_point deadline);

  // Blocks until the child exits and reaps it; returns the wait status.
  int reap();

 private:
  Process() = default;
  bool pollExited() noexcept;
  void reset() noexcept;

  pid_t pid_ = -1;
  bool exited_ = false;
  bool reaped_ = false;
  int status_ = 0;
  Fd pidfd_;
  Fd out_;
  Fd err_;
};

// Pids of the processes whose real, effective or saved uid is `uid`, read
// from /proc. Zombies are left out unless `includeZombies`.
std::vector<pid_t> processesOfUid(uid_t uid, bool includeZombies = false);

// SIGKILLs every process of `uid` in one atomic sweep: a helper drops to `uid`
// and calls kill(-1, SIGKILL), which the kernel delivers to all of them while
// holding the task list lock, so a fork bomb cannot outrun it.
void killAllOfUid(uid_t uid, gid_t gid);

}  // namespace tango
