#pragma once
// One machine reached through OpenSSH's `ssh` (see docs/architecture.md,
// "SSH backends" for why OpenSSH rather than libssh).
//
// A session keeps one master connection (ControlMaster) that every command
// to the machine shares: a job's run costs one channel on an open
// connection, not a TCP handshake and a key exchange. The master is the
// service's child, spawned from a thread that lives as long as the service
// (util/Spawner.hpp), so it dies with the service.
//
// Host keys are never taken on trust for good, as Tango's
// `StrictHostKeyChecking no` does: each session has its own known-hosts
// file, filled on first contact (accept-new) and checked on every later
// connection; the VM's owner removes it with the VM.
#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "tango/ssh/SshTarget.hpp"
#include "tango/util/Process.hpp"
#include "tango/util/Spawner.hpp"

namespace tango::ssh {

using Clock = std::chrono::steady_clock;

struct CommandResult {
  int exitCode = -1;      // the remote command's; 255: ssh itself failed
  bool timedOut = false;  // the deadline passed; the local ssh was killed
  bool stopped = false;   // run()'s `until` held first: the command runs on
  std::string error;      // why ssh could not run, if it could not
};

class Session {
 public:
  using Sink = std::function<void(std::string_view)>;

  // `knownHosts`: this machine's known-hosts file. `controlPath`: the master's
  // socket (short: a unix socket path has at most 107 bytes).
  Session(Target target, std::filesystem::path knownHosts, std::filesystem::path controlPath,
          Spawner& spawner);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const Target& target() const { return target_; }

  // Opens the master connection unless it is up. "" when it is, else why
  // not (refused, no route, host key changed, key refused...).
  std::string connect(Clock::time_point deadline);
  // Runs `command` (a remote shell command line) over the master, with
  // `input` on its stdin, its output to the sinks, until it ends or the
  // deadline passes.
  CommandResult run(const std::string& command, std::string_view input, Clock::time_point deadline,
                    const Sink& out, const Sink& err);
  // As run(), but the reading stops as soon as `until` holds after a read:
  // the command then runs on in `rest` (stopped), for finish() to read to
  // its end. What a job's run leaves to do on the machine (its reset) so
  // overlaps with what the service does with the result.
  CommandResult run(const std::string& command, std::string_view input, Clock::time_point deadline,
                    const Sink& out, const Sink& err, const std::function<bool()>& until,
                    std::optional<Process>& rest);
  // Reads a stopped command to its end, as run() would have.
  CommandResult finish(Process& command, Clock::time_point deadline, const Sink& out,
                       const Sink& err);
  // Has the master forward `local` (a unix socket it creates here) to
  // `remote` (a unix socket on the machine), as `ssh -L local:remote`
  // would. "" when it does, else why not.
  std::string forwardSocket(const std::filesystem::path& local, const std::string& remote,
                            Clock::time_point deadline);
  // Whether the master connection is up now.
  bool isUp();
  // Closes the master connection (a later command opens a new one).
  void close();
  // close() and remove the known-hosts file: the machine is gone.
  void forget();

 private:
  std::vector<std::string> baseArgs() const;
  CommandResult collect(Process& p, Clock::time_point deadline, const Sink& out, const Sink& err,
                        const std::function<bool()>& until);
  bool masterUp();  // mu_ held

  Target target_;
  std::filesystem::path knownHosts_;
  std::filesystem::path controlPath_;
  Spawner& spawner_;
  std::mutex mu_;
  std::optional<Process> master_;  // guarded by mu_
};

// The sessions' sockets: /run/tango-ssh/<tag> (root) or $TMPDIR, made 0700.
std::filesystem::path controlDir(const std::string& tag);

}  // namespace tango::ssh
