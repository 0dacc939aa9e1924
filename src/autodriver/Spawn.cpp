#include "autodriver/Spawn.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "autodriver/GradingUser.hpp"
#include "autodriver/OsError.hpp"
#include "autodriver/UniqueFd.hpp"

namespace tango::autodriver {
namespace {

// What a failing child sends back through the close-on-exec error pipe.
struct ChildFailure {
  int err;
  char step[60];
};

// The child runs between fork and exec: only plain system calls here, no
// allocation and no exceptions.
[[noreturn]] void fail_child(int error_fd, const char* step) {
  ChildFailure failure{};
  failure.err = errno;
  std::strncpy(failure.step, step, sizeof failure.step - 1);
  [[maybe_unused]] const ssize_t ignored = write(error_fd, &failure, sizeof failure);
  _exit(127);
}

// Lowers both soft and hard limit so the job cannot raise it back. Without
// CAP_SYS_RESOURCE (any uid but the host's root, uid 0 of a user namespace
// too) the hard limit can only go down, so clamp to it.
bool set_limit(int resource, std::int64_t value) {
  struct rlimit current {};
  if (getrlimit(resource, &current) != 0) return false;
  const rlim_t wanted = static_cast<rlim_t>(value);
  const struct rlimit limit { wanted, wanted };
  if (setrlimit(resource, &limit) == 0) return true;
  if (errno != EPERM || current.rlim_max == RLIM_INFINITY || wanted <= current.rlim_max)
    return false;
  const struct rlimit clamped { current.rlim_max, current.rlim_max };
  return setrlimit(resource, &clamped) == 0;
}

void close_fds_from(unsigned first) {
  if (close_range(first, ~0U, 0) == 0) return;
  // Kernels before 5.9 lack close_range; close the descriptor range by hand.
  struct rlimit nofile {};
  rlim_t max = 65536;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < max) max = nofile.rlim_cur;
  for (rlim_t fd = first; fd < max; ++fd) close(static_cast<int>(fd));
}

[[noreturn]] void run_child(const SpawnRequest& request, int error_fd) {
  if (setsid() < 0) fail_child(error_fd, "setsid");

  // Start make with the signal state a login shell would have, not ours
  // (we ignore SIGPIPE, and our own launcher may have ignored others).
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);

  if (request.nproc && !set_limit(RLIMIT_NPROC, *request.nproc)) {
    fail_child(error_fd, "setrlimit(RLIMIT_NPROC)");
  }
  if (request.fsize && !set_limit(RLIMIT_FSIZE, *request.fsize)) {
    fail_child(error_fd, "setrlimit(RLIMIT_FSIZE)");
  }
  // The job, not the autodriver or the sandbox around it, is what the OOM
  // killer should pick when the VM's memory runs out. Raising one's own score
  // needs no privilege; where /proc is missing the default stays.
  if (const int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC); oom >= 0) {
    [[maybe_unused]] const ssize_t ignored = write(oom, "1000", 4);
    close(oom);
  }
  // Likewise for the CPU: the job's processes share the VM or container (and
  // its CPU quota) with us, and a fork bomb's hundreds of runnable processes
  // would otherwise leave us too little of it to notice the timeout and kill
  // them in time. At the lowest priority they still get every cycle we do not
  // want; the job cannot raise it back without CAP_SYS_NICE.
  if (setpriority(PRIO_PROCESS, 0, 19) != 0) fail_child(error_fd, "setpriority");
  if (request.cpu && !set_limit(RLIMIT_CPU, *request.cpu)) {
    fail_child(error_fd, "setrlimit(RLIMIT_CPU)");
  }
  if (request.as && !set_limit(RLIMIT_AS, *request.as))
    fail_child(error_fd, "setrlimit(RLIMIT_AS)");
  if (!set_limit(RLIMIT_CORE, 0)) fail_child(error_fd, "setrlimit(RLIMIT_CORE)");

  if (dup2(request.stdin_fd, STDIN_FILENO) < 0 || dup2(request.output_fd, STDOUT_FILENO) < 0 ||
      dup2(request.output_fd, STDERR_FILENO) < 0) {
    fail_child(error_fd, "dup2");
  }
  // Keep the error pipe at fd 3 (still close-on-exec) and close the rest.
  if (error_fd != 3) {
    if (dup3(error_fd, 3, O_CLOEXEC) < 0) fail_child(error_fd, "dup3");
    error_fd = 3;
  }
  close_fds_from(4);

  if (request.uid) {
    if (const char* step = drop_privileges(*request.uid, request.gid)) fail_child(error_fd, step);
  }

  char make[] = "make";
  char* const argv[] = {make, nullptr};
  execvp(make, argv);
  fail_child(error_fd, "exec make");
}

}  // namespace

pid_t spawn_make(const SpawnRequest& request) {
  int error_pipe[2];
  if (pipe2(error_pipe, O_CLOEXEC) != 0) throw_errno("pipe");
  UniqueFd error_read(error_pipe[0]);
  UniqueFd error_write(error_pipe[1]);

  const pid_t pid = fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) run_child(request, error_write.get());

  // exec closes the child's copy of the write end: EOF means success.
  error_write.reset();
  ChildFailure failure{};
  ssize_t n;
  do {
    n = read(error_read.get(), &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return pid;

  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof failure)) throw_errno("reading child setup status", EIO);
  failure.step[sizeof failure.step - 1] = '\0';
  throw_errno(std::string("job setup failed: ") + failure.step, failure.err);
}

}  // namespace tango::autodriver
