#include "tango/vmms/LocalUserns.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <system_error>

#include "tango/util/Process.hpp"

namespace tango {
namespace {

constexpr int kStepTimeoutMs = 5000;

// The helper's side. Raw syscalls only: after fork() in a multi-threaded
// parent, nothing that may take a lock or allocate. Each step answers one
// byte on `toParent`; a byte from `fromParent` lets it go on.
[[noreturn]] void helper(uid_t keeper, int toParent, int fromParent, pid_t parent) {
  // Only our two pipe ends stay: a copy of another run's pipes (forked by
  // another thread at the same moment) would keep that run's helper from
  // ever seeing its parent go.
  const unsigned lo = static_cast<unsigned>(std::min(toParent, fromParent));
  const unsigned hi = static_cast<unsigned>(std::max(toParent, fromParent));
  ::syscall(SYS_close_range, 3U, lo - 1, 0U);
  ::syscall(SYS_close_range, lo + 1, hi - 1, 0U);
  ::syscall(SYS_close_range, hi + 1, ~0U, 0U);
  auto say = [&](char c) { [[maybe_unused]] auto n = ::write(toParent, &c, 1); };
  const gid_t g = keeper;
  if (::syscall(SYS_setgroups, 0, nullptr) != 0 || ::syscall(SYS_setresgid, g, g, g) != 0 ||
      ::syscall(SYS_setresuid, keeper, keeper, keeper) != 0 || ::unshare(CLONE_NEWUSER) != 0) {
    say('e');
    ::_exit(1);
  }
  // After the uid change, which clears it; gone with the service.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(1);
  say('u');
  char c = 0;
  if (::read(fromParent, &c, 1) != 1) ::_exit(1);  // the maps are written
  const int fd = ::open("/proc/sys/user/max_user_namespaces", O_WRONLY | O_CLOEXEC);
  const bool limited = fd >= 0 && ::write(fd, "0\n", 2) == 2;
  say(limited ? 'l' : 'e');
  // Stay until the parent holds the namespace open; then it lets us go.
  [[maybe_unused]] auto n = ::read(fromParent, &c, 1);
  ::_exit(0);
}

// Waits for the helper's next byte; '\0' when it died or took too long.
char nextByte(int fd, int pidfd) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {pidfd, POLLIN, 0}};
  for (;;) {
    const int n = ::poll(fds, pidfd >= 0 ? 2 : 1, kStepTimeoutMs);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || !(fds[0].revents & (POLLIN | POLLHUP))) return '\0';
    char c = 0;
    return ::read(fd, &c, 1) == 1 ? c : '\0';
  }
}

std::string writeMap(pid_t pid, const char* file, const std::string& map) {
  const std::string path = "/proc/" + std::to_string(pid) + "/" + file;
  Fd f(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  // One write: the kernel takes a map whole, once.
  if (!f || ::write(f.get(), map.data(), map.size()) != static_cast<ssize_t>(map.size()))
    return std::string("cannot write ") + file + ": " + std::strerror(errno);
  return {};
}

}  // namespace

Fd makeSandboxUserns(uid_t keeper, uid_t job, std::string& error) {
  Fd toParentRead, toParentWrite, fromParentRead, fromParentWrite;
  try {
    makePipe(toParentRead, toParentWrite);
    makePipe(fromParentRead, fromParentWrite);
  } catch (const std::system_error& e) {
    error = std::string("cannot make the sandbox's user namespace: ") + e.what();
    return {};
  }
  // Everything the helper needs is made before fork.
  const std::string map = "0 " + std::to_string(keeper) + " 1\n" + std::to_string(job) + " " +
                          std::to_string(job) + " 1\n";
  const pid_t self = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    error = std::string("cannot make the sandbox's user namespace: fork: ") + std::strerror(errno);
    return {};
  }
  if (pid == 0) helper(keeper, toParentWrite.get(), fromParentRead.get(), self);
  toParentWrite.reset();
  fromParentRead.reset();
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));

  Fd ns;
  auto step = [&]() -> std::string {
    switch (nextByte(toParentRead.get(), pidfd.get())) {
      case 'u':
        break;
      case 'e':
        return "the helper could not unshare a user namespace as uid " + std::to_string(keeper);
      default:
        return "the helper did not answer";
    }
    if (auto err = writeMap(pid, "uid_map", map); !err.empty()) return err;
    // setgroups stays allowed: the autodriver clears the job's groups.
    if (auto err = writeMap(pid, "gid_map", map); !err.empty()) return err;
    if (::write(fromParentWrite.get(), "m", 1) != 1) return "the helper did not answer";
    if (nextByte(toParentRead.get(), pidfd.get()) != 'l')
      return "cannot forbid nested user namespaces (user.max_user_namespaces)";
    ns = Fd(::open(("/proc/" + std::to_string(pid) + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) return std::string("cannot open the namespace: ") + std::strerror(errno);
    return {};
  };
  const std::string err = step();
  if (!err.empty()) ::kill(pid, SIGKILL);
  [[maybe_unused]] auto n = ::write(fromParentWrite.get(), "x", 1);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!err.empty()) {
    error = "cannot make the sandbox's user namespace: " + err;
    return {};
  }
  return ns;
}

}  // namespace tango
