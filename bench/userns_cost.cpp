// What the local VMMS's two-uid user namespace (vmms/LocalUserns.cpp) costs a
// run: makeSandboxUserns N times, one after another, beside its floor, the
// bare kernel work it wraps (fork, unshare(CLONE_NEWUSER) in the child, the
// two maps written by the parent, the namespace opened), timed the same way.
// Prints medians and p99 in microseconds. Run as root.
//   userns_cost [N=500] [KEEPER_UID=390001] [JOB_UID=390000]
#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tango/vmms/LocalUserns.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// The floor: the same kernel steps with nothing around them (no pipes'
// handshake, no uid change, no sysctl), the child waiting on one pipe.
bool bareUserns(uid_t keeper, uid_t job) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return false;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[1]);  // so that the parent's close ends the read
    if (::unshare(CLONE_NEWUSER) != 0) ::_exit(1);
    char c;
    [[maybe_unused]] auto n = ::read(p[0], &c, 1);
    ::_exit(0);
  }
  ::close(p[0]);
  bool ok = true;
  // The child must have unshared before its maps can be written: retry.
  const std::string map = "0 " + std::to_string(keeper) + " 1\n" + std::to_string(job) + " " +
                          std::to_string(job) + " 1\n";
  for (const char* f : {"uid_map", "gid_map"}) {
    const std::string path = "/proc/" + std::to_string(pid) + "/" + f;
    for (;;) {
      const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
      const bool written =
          fd >= 0 && ::write(fd, map.data(), map.size()) == static_cast<ssize_t>(map.size());
      if (fd >= 0) ::close(fd);
      if (written) break;
      if (errno != EPERM && errno != EINVAL) {
        ok = false;
        break;
      }
    }
  }
  const int ns =
      ::open(("/proc/" + std::to_string(pid) + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC);
  ok = ok && ns >= 0;
  if (ns >= 0) ::close(ns);
  ::close(p[1]);
  ::waitpid(pid, nullptr, 0);
  return ok;
}

void report(const char* what, std::vector<double> t) {
  std::sort(t.begin(), t.end());
  std::printf("%s: n=%zu median=%.0f us p99=%.0f us\n", what, t.size(), t[t.size() / 2],
              t[std::min(t.size() - 1, t.size() * 99 / 100)]);
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 500;
  const uid_t keeper = argc > 2 ? static_cast<uid_t>(std::atol(argv[2])) : 390001;
  const uid_t job = argc > 3 ? static_cast<uid_t>(std::atol(argv[3])) : 390000;
  std::vector<double> ours, floor;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    std::string error;
    tango::Fd ns = tango::makeSandboxUserns(keeper, job, error);
    ours.push_back(micros(Clock::now() - t0));
    if (!ns) {
      std::fprintf(stderr, "makeSandboxUserns: %s\n", error.c_str());
      return 1;
    }
    t0 = Clock::now();
    if (!bareUserns(keeper, job)) {
      std::fprintf(stderr, "the floor failed\n");
      return 1;
    }
    floor.push_back(micros(Clock::now() - t0));
  }
  report("makeSandboxUserns", ours);
  report("floor (fork, unshare, maps, open)", floor);
  std::sort(ours.begin(), ours.end());
  std::sort(floor.begin(), floor.end());
  std::printf("ratio of medians: %.2f\n", ours[ours.size() / 2] / floor[floor.size() / 2]);
  return 0;
}
