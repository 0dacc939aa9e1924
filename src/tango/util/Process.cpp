#include "tango/util/Process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <system_error>

#include "tango/util/Lines.hpp"

namespace tango {
namespace {

#ifndef CLOSE_RANGE_CLOEXEC
constexpr unsigned kCloseRangeCloexec = 1U << 2;
#else
constexpr unsigned kCloseRangeCloexec = CLOSE_RANGE_CLOEXEC;
#endif

// What the child reports through the exec-error pipe when it cannot exec.
struct ChildFailure {
  int step;
  int err;
};
enum ChildStep : int {
  kStepIo = 1,
  kStepCredentials,
  kStepVerify,
  kStepDeathSignal,
  kStepExec,
  kStepCgroup
};

const char* stepText(int step) {
  switch (step) {
    case kStepIo:
      return "setting up stdio";
    case kStepCredentials:
      return "dropping credentials";
    case kStepVerify:
      return "verifying dropped credentials";
    case kStepDeathSignal:
      return "setting the parent-death signal";
    case kStepExec:
      return "exec";
    case kStepCgroup:
      return "joining its cgroups";
  }
  return "child setup";
}

// Raw syscalls: after fork() in a multi-threaded parent only async-signal-safe
// calls are allowed, and glibc's set*id wrappers broadcast to threads that no
// longer exist in the child.
bool dropCredentials(uid_t uid, gid_t gid) noexcept {
  if (syscall(SYS_setgroups, 0, nullptr) != 0) return false;
  if (syscall(SYS_setresgid, gid, gid, gid) != 0) return false;
  if (syscall(SYS_setresuid, uid, uid, uid) != 0) return false;
  return true;
}

bool credentialsVerified(uid_t uid, gid_t gid) noexcept {
  uid_t r = 0, e = 0, s = 0;
  gid_t gr = 0, ge = 0, gs = 0;
  if (syscall(SYS_getresuid, &r, &e, &s) != 0 || r != uid || e != uid || s != uid) return false;
  if (syscall(SYS_getresgid, &gr, &ge, &gs) != 0 || gr != gid || ge != gid || gs != gid)
    return false;
  // If root could be regained, the drop did not happen.
  if (uid != 0 && syscall(SYS_setresuid, 0, 0, 0) == 0) return false;
  return true;
}

[[noreturn]] void childFail(int errPipe, int step) noexcept {
  ChildFailure f{step, errno};
  ssize_t ignored = ::write(errPipe, &f, sizeof f);
  (void)ignored;
  _exit(127);
}

void resetSignals() noexcept {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  // Ignored signals (SIGPIPE in servers) would otherwise stay ignored across exec.
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    sigaction(sig, &dfl, nullptr);
  }
}

int msUntil(SteadyClock::time_point deadline) {
  if (deadline == SteadyClock::time_point::max()) return -1;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
  if (left <= 0) return 0;
  return left > 60'000 ? 60'000 : static_cast<int>(left);
}

}  // namespace

void makePipe(Fd& readEnd, Fd& writeEnd) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw std::system_error(errno, std::generic_category(), "pipe2");
  readEnd.reset(fds[0]);
  writeEnd.reset(fds[1]);
}

Process Process::spawn(const SpawnOptions& options) {
  if (options.argv.empty() || options.argv[0].empty() || options.argv[0][0] != '/')
    throw std::system_error(EINVAL, std::generic_category(),
                            "spawn needs an absolute program path");

  // Everything the child touches is prepared before fork: the child must not allocate.
  std::vector<char*> argv;
  for (const auto& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  Fd devNull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devNull) throw std::system_error(errno, std::generic_category(), "open /dev/null");
  Fd outR, outW, errR, errW, failR, failW;
  makePipe(outR, outW);
  makePipe(errR, errW);
  makePipe(failR, failW);

  const pid_t parent = ::getpid();
  const bool dropCreds = options.credentials.has_value();
  const uid_t uid = dropCreds ? options.credentials->first : 0;
  const gid_t gid = dropCreds ? options.credentials->second : 0;
  const bool killWithParent = options.killWithParent;
  const std::vector<int>& cgroupFds = options.joinCgroupFds;
  const int stdinFd = options.stdinFd >= 0 ? options.stdinFd : devNull.get();
  const std::vector<int>& inheritFds = options.inheritFds;
  const int outFd = options.discardOutput ? devNull.get() : outW.get();
  const int errFd = options.discardOutput ? devNull.get() : errW.get();

  pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid == 0) {
    const int fail = failW.get();
    // "0" is the writing process itself, in cgroup v1 and v2 alike.
    for (int fd : cgroupFds)
      if (::write(fd, "0", 1) != 1) childFail(fail, kStepCgroup);
    resetSignals();
    if (::dup2(stdinFd, 0) < 0 || ::dup2(outFd, 1) < 0 || ::dup2(errFd, 2) < 0)
      childFail(fail, kStepIo);
    // Nothing else of the service (sockets, database, other jobs' pipes) may
    // leak into the child; the failure pipe is close-on-exec already.
    if (syscall(SYS_close_range, 3U, ~0U, kCloseRangeCloexec) != 0) {
      for (int fd = 3; fd < 4096; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    for (int fd : inheritFds)
      if (fd < 3 || ::fcntl(fd, F_SETFD, 0) != 0) childFail(fail, kStepIo);
    // Own process group: a terminal's ^C to the service does not reach it.
    ::setpgid(0, 0);
    // The service's own umask (077) is not the job's: what a job creates
    // gets the modes it would anywhere else.
    ::umask(022);
    if (dropCreds) {
      if (!dropCredentials(uid, gid)) childFail(fail, kStepCredentials);
      if (!credentialsVerified(uid, gid)) childFail(fail, kStepVerify);
    }
    // Set after the credential change, which would clear it.
    if (killWithParent) {
      if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) childFail(fail, kStepDeathSignal);
      if (::getppid() != parent) _exit(127);
    }
    ::execve(argv[0], argv.data(), envp.data());
    childFail(fail, kStepExec);
  }

  Process p;
  p.pid_ = pid;
  outW.reset();
  errW.reset();
  failW.reset();
  // A pidfd lets waits block in poll() with a timeout; without one (old
  // kernels) the waits fall back to short sleeps.
  p.pidfd_.reset(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));

  ChildFailure failure{};
  ssize_t n;
  do {
    n = ::read(failR.get(), &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof failure)) {
    p.reap();
    throw std::system_error(
        failure.err, std::generic_category(),
        std::string("child failed ") + stepText(failure.step) + " for " + options.argv[0]);
  }
  ::fcntl(outR.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(errR.get(), F_SETFL, O_NONBLOCK);
  p.out_ = std::move(outR);
  p.err_ = std::move(errR);
  return p;
}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      exited_(other.exited_),
      reaped_(other.reaped_),
      status_(other.status_),
      pidfd_(std::move(other.pidfd_)),
      out_(std::move(other.out_)),
      err_(std::move(other.err_)) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    reset();
    pid_ = std::exchange(other.pid_, -1);
    exited_ = other.exited_;
    reaped_ = other.reaped_;
    status_ = other.status_;
    pidfd_ = std::move(other.pidfd_);
    out_ = std::move(other.out_);
    err_ = std::move(other.err_);
  }
  return *this;
}

Process::~Process() { reset(); }

void Process::reset() noexcept {
  if (pid_ > 0 && !reaped_) {
    signal(SIGKILL);
    reap();
  }
  pid_ = -1;
  out_.reset();
  err_.reset();
  pidfd_.reset();
}

void Process::signal(int sig) noexcept {
  if (pid_ <= 0 || reaped_) return;
  if (pidfd_) {
    if (syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) == 0 || errno != ENOSYS)
      return;
  }
  ::kill(pid_, sig);
}

bool Process::pollExited() noexcept {
  if (exited_ || reaped_) return true;
  siginfo_t info{};
  // WNOWAIT: leave the zombie in place so the pid cannot be reused before reap().
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
      info.si_pid == pid_)
    exited_ = true;
  return exited_;
}

Process::IoResult Process::communicate(const Sink& onStdout, const Sink& onStderr,
                                       SteadyClock::time_point deadline,
                                       std::chrono::milliseconds afterExit,
                                       const std::function<bool()>& stop) {
  std::array<char, 65536> buf;
  SteadyClock::time_point exitSeen{};
  bool exitKnown = pollExited();
  if (exitKnown) exitSeen = SteadyClock::now();
  for (;;) {
    if (!out_ && !err_ && exitKnown) return IoResult::Done;
    auto now = SteadyClock::now();
    if (exitKnown && now - exitSeen >= afterExit) {
      // Descendants that outlive the child keep the pipes open; stop reading them.
      out_.reset();
      err_.reset();
      return IoResult::Done;
    }
    if (now >= deadline) return IoResult::Deadline;

    std::array<pollfd, 3> fds{};
    nfds_t n = 0;
    int outIdx = -1, errIdx = -1, pidIdx = -1;
    if (out_) {
      outIdx = static_cast<int>(n);
      fds[n++] = {out_.get(), POLLIN, 0};
    }
    if (err_) {
      errIdx = static_cast<int>(n);
      fds[n++] = {err_.get(), POLLIN, 0};
    }
    if (!exitKnown && pidfd_) {
      pidIdx = static_cast<int>(n);
      fds[n++] = {pidfd_.get(), POLLIN, 0};
    }
    int timeout = msUntil(deadline);
    if (exitKnown) {
      auto left =
          std::chrono::ceil<std::chrono::milliseconds>(afterExit - (now - exitSeen)).count();
      if (timeout < 0 || left < timeout) timeout = static_cast<int>(left);
    } else if (!pidfd_ && (timeout < 0 || timeout > 50)) {
      timeout = 50;  // no pidfd: notice the exit by polling waitid
    }
    int r = ::poll(fds.data(), n, timeout);
    if (r < 0 && errno != EINTR) return IoResult::Deadline;

    auto drainPipe = [&](Fd& fd, const Sink& sink) {
      for (;;) {
        ssize_t got = ::read(fd.get(), buf.data(), buf.size());
        if (got > 0) {
          if (sink) sink(std::string_view(buf.data(), static_cast<std::size_t>(got)));
          if (static_cast<std::size_t>(got) < buf.size()) return;
          continue;
        }
        if (got < 0 && errno == EINTR) continue;
        if (got < 0 && errno == EAGAIN) return;
        fd.reset();  // EOF or error
        return;
      }
    };
    if (r > 0) {
      if (outIdx >= 0 && fds[outIdx].revents) drainPipe(out_, onStdout);
      if (errIdx >= 0 && fds[errIdx].revents) drainPipe(err_, onStderr);
      (void)pidIdx;
      if (stop && stop()) return IoResult::Stopped;
    }
    if (!exitKnown && pollExited()) {
      exitKnown = true;
      exitSeen = SteadyClock::now();
    }
  }
}

bool Process::waitExit(SteadyClock::time_point deadline) {
  while (!pollExited()) {
    if (SteadyClock::now() >= deadline) return false;
    if (pidfd_) {
      pollfd pfd{pidfd_.get(), POLLIN, 0};
      ::poll(&pfd, 1, msUntil(deadline));
    } else {
      ::usleep(20'000);
    }
  }
  return true;
}

int Process::reap() {
  if (reaped_ || pid_ <= 0) return status_;
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0) {
    if (errno != EINTR) break;
  }
  reaped_ = true;
  exited_ = true;
  status_ = st;
  return st;
}

std::vector<pid_t> processesOfUid(uid_t uid, bool includeZombies) {
  std::vector<pid_t> pids;
  DIR* dir = ::opendir("/proc");
  if (!dir) return pids;
  const std::string uidText = std::to_string(uid);
  while (dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    Fd fd(
        ::openat(::dirfd(dir), (std::string(e->d_name) + "/status").c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) continue;  // exited meanwhile
    std::array<char, 8192> buf;
    ssize_t n = ::read(fd.get(), buf.data(), buf.size() - 1);
    if (n <= 0) continue;
    std::string_view status(buf.data(), static_cast<std::size_t>(n));
    bool zombie = false, match = false;
    forEachLine(status, [&](std::string_view line) {
      if (line.starts_with("State:")) {
        zombie =
            line.find('Z') != std::string_view::npos || line.find('X') != std::string_view::npos;
      } else if (line.starts_with("Uid:")) {
        // "Uid:\treal\teffective\tsaved\tfs"
        std::size_t p = 4;
        while (p < line.size()) {
          while (p < line.size() && (line[p] == '\t' || line[p] == ' ')) ++p;
          std::size_t q = p;
          while (q < line.size() && line[q] != '\t' && line[q] != ' ') ++q;
          if (q > p && line.substr(p, q - p) == uidText) match = true;
          p = q;
        }
      }
      return true;
    });
    if (match && (includeZombies || !zombie)) pids.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(dir);
  return pids;
}

void killAllOfUid(uid_t uid, gid_t gid) {
  // kill(-1) as root would take down the whole machine: never for uid 0.
  if (uid == 0) return;
  pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid == 0) {
    if (!dropCredentials(uid, gid) || !credentialsVerified(uid, gid)) _exit(1);
    uid_t r = 0, e = 0, s = 0;
    if (syscall(SYS_getresuid, &r, &e, &s) != 0 || r == 0 || e == 0 || s == 0) _exit(1);
    ::kill(-1, SIGKILL);
    _exit(0);
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace tango
