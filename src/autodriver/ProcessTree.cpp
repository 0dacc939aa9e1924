#include "autodriver/ProcessTree.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>

#include "autodriver/UniqueFd.hpp"

namespace tango::autodriver {
namespace {

struct DirCloser {
  void operator()(DIR* dir) const { closedir(dir); }
};

// Parent pid from /proc/<pid>/stat, or -1 if the process vanished. The comm
// field may contain spaces and parentheses, so parse after the LAST ')'.
pid_t read_parent(const char* pid_name) {
  const std::string path = std::string("/proc/") + pid_name + "/stat";
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return -1;
  char buf[1024];
  ssize_t n;
  do {
    n = read(fd.get(), buf, sizeof buf - 1);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* close_paren = std::strrchr(buf, ')');
  if (close_paren == nullptr) return -1;
  // ") S 1234 ..." : state, then ppid.
  const char* p = close_paren + 1;
  while (*p == ' ') ++p;
  if (*p == '\0') return -1;
  ++p;  // state character
  char* end = nullptr;
  const long ppid = std::strtol(p, &end, 10);
  if (end == p) return -1;
  return static_cast<pid_t>(ppid);
}

void sleep_ms(long ms) {
  struct timespec ts {
    ms / 1000, (ms % 1000) * 1000000L
  };
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

}  // namespace

void reap_exited_children(const ReapCallback& on_reap) {
  for (;;) {
    int status = 0;
    struct rusage usage {};
    const pid_t pid = wait4(-1, &status, WNOHANG, &usage);
    if (pid > 0) {
      if (on_reap) on_reap(pid, status, usage);
      continue;
    }
    if (pid < 0 && errno == EINTR) continue;
    return;  // 0: children remain but none exited; ECHILD: no children.
  }
}

std::vector<pid_t> find_descendants(pid_t ancestor) {
  std::unordered_map<pid_t, std::vector<pid_t>> children;
  std::unique_ptr<DIR, DirCloser> proc(opendir("/proc"));
  if (!proc) return {};
  while (const dirent* entry = readdir(proc.get())) {
    const char* name = entry->d_name;
    if (name[0] < '1' || name[0] > '9') continue;
    char* end = nullptr;
    const long pid = std::strtol(name, &end, 10);
    if (*end != '\0') continue;
    const pid_t parent = read_parent(name);
    if (parent > 0) children[parent].push_back(static_cast<pid_t>(pid));
  }
  // Breadth-first from the ancestor; a pid appears once in /proc, so the
  // parent links form a forest and this terminates.
  std::vector<pid_t> result;
  std::vector<pid_t> frontier{ancestor};
  while (!frontier.empty()) {
    const pid_t pid = frontier.back();
    frontier.pop_back();
    const auto it = children.find(pid);
    if (it == children.end()) continue;
    for (pid_t child : it->second) {
      if (child == ancestor) continue;
      result.push_back(child);
      frontier.push_back(child);
    }
  }
  return result;
}

bool kill_descendants(const ReapCallback& on_reap) {
  const pid_t self = getpid();
  // A fork bomb under RLIMIT_NPROC converges in a handful of rounds; the
  // bound only matters for processes that cannot die (D state).
  constexpr int kMaxRounds = 2000;
  for (int round = 0; round < kMaxRounds; ++round) {
    reap_exited_children(on_reap);
    // As a subreaper, every living descendant is a child of ours or below
    // one: no children means nothing left, without scanning /proc (the
    // common case of a job that left nothing behind).
    siginfo_t info{};
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 && errno == ECHILD) return true;
    const std::vector<pid_t> pids = find_descendants(self);
    if (pids.empty()) return true;
    // Stop everything first so that nothing in this snapshot can fork or
    // react while the others are being killed. For a scanned pid to name an
    // unrelated process by the time we signal it, it would have to be reaped
    // and the kernel's pid counter wrap around within this short window.
    for (pid_t pid : pids) kill(pid, SIGSTOP);
    for (pid_t pid : pids) kill(pid, SIGKILL);
    reap_exited_children(on_reap);
    // Give the kernel time to tear down killed processes before rescanning;
    // back off a little once the first quick rounds did not suffice.
    sleep_ms(round < 10 ? 1 : 10);
  }
  reap_exited_children(on_reap);
  return find_descendants(self).empty();
}

}  // namespace tango::autodriver
