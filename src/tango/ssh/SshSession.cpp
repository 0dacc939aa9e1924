#include "tango/ssh/SshSession.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <thread>

#include "tango/util/Fd.hpp"
#include "tango/util/Sha256.hpp"

namespace tango::ssh {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr const char* kSsh = "/usr/bin/ssh";
constexpr std::size_t kErrCap = 4096;

// The last lines of ssh's stderr, for an error message.
std::string excerpt(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\r', ' ');
  if (s.size() > 300) s = "..." + s.substr(s.size() - 300);
  return s;
}

Process::Sink capped(std::string& into) {
  return [&into](std::string_view c) {
    if (into.size() < kErrCap) into.append(c.substr(0, std::min(c.size(), kErrCap - into.size())));
  };
}

// stdin for ssh: the bytes in an anonymous file, so a child that stops
// reading never blocks the service.
Fd inputFile(std::string_view input) {
  Fd fd(::memfd_create("tango-ssh-input", MFD_CLOEXEC));
  if (!fd) throw std::system_error(errno, std::generic_category(), "memfd_create");
  std::size_t done = 0;
  while (done < input.size()) {
    const ssize_t n = ::write(fd.get(), input.data() + done, input.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::system_error(errno, std::generic_category(), "write ssh input");
    done += static_cast<std::size_t>(n);
  }
  if (::lseek(fd.get(), 0, SEEK_SET) != 0)
    throw std::system_error(errno, std::generic_category(), "lseek ssh input");
  return fd;
}

}  // namespace

fs::path controlDir(const std::string& tag) {
  fs::path base = ::geteuid() == 0 ? fs::path("/run/tango-ssh") : fs::temp_directory_path();
  fs::path dir = base / ("tango-" + sha256Hex(tag).substr(0, 12));
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
  return dir;
}

Session::Session(Target target, fs::path knownHosts, fs::path controlPath, Spawner& spawner)
    : target_(std::move(target)),
      knownHosts_(std::move(knownHosts)),
      controlPath_(std::move(controlPath)),
      spawner_(spawner) {}

Session::~Session() { close(); }

std::vector<std::string> Session::baseArgs() const {
  return {kSsh,
          "-F",
          "/dev/null",  // no user or system config changes what runs
          "-T",
          "-o",
          "BatchMode=yes",
          "-o",
          "IdentitiesOnly=yes",
          "-o",
          "IdentityAgent=none",
          "-o",
          "IdentityFile=" + target_.keyFile.string(),
          "-o",
          "UserKnownHostsFile=" + knownHosts_.string(),
          "-o",
          "GlobalKnownHostsFile=/dev/null",
          "-o",
          "StrictHostKeyChecking=accept-new",
          "-o",
          "ControlPath=" + controlPath_.string(),
          "-o",
          "ConnectTimeout=10",
          "-o",
          "ServerAliveInterval=5",
          "-o",
          "ServerAliveCountMax=3",
          "-o",
          "LogLevel=ERROR",
          "-p",
          std::to_string(target_.port),
          "-l",
          target_.user,
          target_.address};
}

bool Session::masterUp() {
  if (!master_) return false;
  if (master_->waitExit(Clock::now())) {
    master_.reset();
    return false;
  }
  return fs::exists(controlPath_);
}

bool Session::isUp() {
  std::lock_guard lock(mu_);
  return masterUp();
}

std::string Session::connect(Clock::time_point deadline) {
  std::lock_guard lock(mu_);
  if (masterUp()) return "";
  std::error_code ec;
  fs::remove(controlPath_, ec);  // a dead master's socket
  fs::create_directories(knownHosts_.parent_path(), ec);
  auto argv = baseArgs();
  // The destination must stay last: the options go before it.
  argv.insert(argv.end() - 1, {"-N", "-o", "ControlMaster=yes", "-o", "ControlPersist=no"});
  SpawnOptions opt;
  opt.argv = std::move(argv);
  opt.env = {"PATH=/usr/bin:/bin", "LANG=C"};
  try {
    master_.emplace(spawner_.spawn(opt));
  } catch (const std::exception& e) {
    return std::string("cannot start ssh: ") + e.what();
  }
  // The socket appears once the master is logged in.
  while (Clock::now() < deadline) {
    if (fs::exists(controlPath_)) return "";
    if (master_->waitExit(Clock::now() + 20ms)) {
      std::string err;
      master_->communicate([](std::string_view) {}, capped(err), Clock::now() + 200ms, 100ms);
      master_.reset();
      return "ssh to " + target_.shown() + " failed" + (err.empty() ? "" : ": " + excerpt(err));
    }
  }
  master_.reset();  // killed and reaped
  return "ssh to " + target_.shown() + " did not log in in time";
}

CommandResult Session::run(const std::string& command, std::string_view input,
                           Clock::time_point deadline, const Sink& out, const Sink& err) {
  std::optional<Process> rest;
  return run(command, input, deadline, out, err, {}, rest);
}

CommandResult Session::run(const std::string& command, std::string_view input,
                           Clock::time_point deadline, const Sink& out, const Sink& err,
                           const std::function<bool()>& until, std::optional<Process>& rest) {
  auto argv = baseArgs();
  argv.insert(argv.end() - 1, {"-o", "ControlMaster=no"});
  argv.push_back("--");
  argv.push_back(command);
  SpawnOptions opt;
  opt.argv = std::move(argv);
  opt.env = {"PATH=/usr/bin:/bin", "LANG=C"};
  try {
    Fd in;
    if (!input.empty()) {
      in = inputFile(input);
      opt.stdinFd = in.get();
    }
    Process p = Process::spawn(opt);
    in.reset();
    CommandResult r = collect(p, deadline, out, err, until);
    if (r.stopped) rest.emplace(std::move(p));
    return r;  // else ~Process kills and reaps an ssh that timed out
  } catch (const std::exception& e) {
    CommandResult r;
    r.error = std::string("cannot run ssh: ") + e.what();
    return r;
  }
}

CommandResult Session::finish(Process& command, Clock::time_point deadline, const Sink& out,
                              const Sink& err) {
  try {
    return collect(command, deadline, out, err, {});
  } catch (const std::exception& e) {
    CommandResult r;
    r.error = std::string("cannot read ssh: ") + e.what();
    return r;
  }
}

CommandResult Session::collect(Process& p, Clock::time_point deadline, const Sink& out,
                               const Sink& err, const std::function<bool()>& until) {
  CommandResult r;
  std::string sshErr;
  const auto tee = [&](std::string_view c) {
    capped(sshErr)(c);
    if (err) err(c);
  };
  switch (p.communicate(out ? out : Sink([](std::string_view) {}), tee, deadline,
                        std::chrono::seconds(1), until)) {
    case Process::IoResult::Deadline:
      r.timedOut = true;
      r.error = "no answer from " + target_.shown() + " in time";
      p.signal(SIGKILL);
      return r;
    case Process::IoResult::Stopped:
      r.stopped = true;
      return r;
    case Process::IoResult::Done:
      break;
  }
  const int status = p.reap();
  r.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (r.exitCode == 255)
    r.error =
        "ssh to " + target_.shown() + " failed" + (sshErr.empty() ? "" : ": " + excerpt(sshErr));
  return r;
}

std::string Session::forwardSocket(const fs::path& local, const std::string& remote,
                                   Clock::time_point deadline) {
  std::error_code ec;
  fs::remove(local, ec);  // a socket left by an earlier master
  auto argv = baseArgs();
  argv.insert(argv.end() - 1, {"-O", "forward", "-L", local.string() + ":" + remote});
  SpawnOptions opt;
  opt.argv = std::move(argv);
  opt.env = {"PATH=/usr/bin:/bin", "LANG=C"};
  std::string err;
  try {
    Process p = Process::spawn(opt);
    if (p.communicate([](std::string_view) {}, capped(err), deadline) ==
        Process::IoResult::Deadline)
      return "forwarding " + remote + " from " + target_.shown() + " timed out";
    const int st = p.reap();
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      return "cannot forward " + remote + " from " + target_.shown() +
             (err.empty() ? "" : ": " + excerpt(err));
  } catch (const std::exception& e) {
    return std::string("cannot run ssh: ") + e.what();
  }
  return "";
}

void Session::close() {
  std::lock_guard lock(mu_);
  master_.reset();  // SIGKILL: the connection ends with it
  std::error_code ec;
  fs::remove(controlPath_, ec);
}

void Session::forget() {
  close();
  std::error_code ec;
  fs::remove(knownHosts_, ec);
}

}  // namespace tango::ssh
