#include "tango/vmms/LocalSandbox.hpp"

#include <sys/stat.h>

namespace tango {
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kSmallTmpSize = 16LL * 1024 * 1024;  // /run, /home, hiding mounts

// `p` as a path inside an image rooted at `root`, if it lies inside it.
std::optional<std::string> insideRoot(const fs::path& p, const fs::path& root) {
  std::error_code ec;
  fs::path cp = fs::weakly_canonical(fs::absolute(p), ec);
  if (ec) return std::nullopt;
  fs::path cr = fs::weakly_canonical(root, ec);
  if (ec) return std::nullopt;
  fs::path rel = cp.lexically_relative(cr);
  if (rel.empty() || rel == "." || *rel.begin() == "..") return std::nullopt;
  return "/" + rel.string();
}

// Whether the job can walk from the image root down to the parent of `inside`
// (a path inside the root). Only then is hiding it needed, and only then can
// bwrap, as the job's uid, reach the place to mount over it.
bool reachableInside(const fs::path& root, const std::string& inside) {
  fs::path at = root;
  struct stat st {};
  if (::stat(at.c_str(), &st) != 0 || !(st.st_mode & S_IXOTH)) return false;
  fs::path parent = fs::path(inside).parent_path().relative_path();
  for (const auto& part : parent) {
    at /= part;
    if (::stat(at.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || !(st.st_mode & S_IXOTH))
      return false;
  }
  return true;
}

}  // namespace

std::optional<fs::path> firstUnsearchable(const fs::path& dir) {
  fs::path at = "/";
  struct stat st {};
  for (const auto& part : dir.relative_path()) {
    at /= part;
    if (::stat(at.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || !(st.st_mode & S_IXOTH)) return at;
  }
  return std::nullopt;
}

std::vector<std::string> autodriverJobFlags(const RunSpec& spec, const SandboxLimits& limits) {
  std::vector<std::string> a;
  if (spec.ulimitProcs > 0) a.insert(a.end(), {"-u", std::to_string(spec.ulimitProcs)});
  if (spec.ulimitFileSize > 0) a.insert(a.end(), {"-f", std::to_string(spec.ulimitFileSize)});
  if (spec.timeoutSecs > 0) a.insert(a.end(), {"-t", std::to_string(spec.timeoutSecs)});
  if (spec.maxOutputBytes > 0) a.insert(a.end(), {"-o", std::to_string(spec.maxOutputBytes)});
  if (limits.cpuSecs > 0) a.insert(a.end(), {"-c", std::to_string(limits.cpuSecs)});
  if (limits.memoryBytes > 0) a.insert(a.end(), {"-m", std::to_string(limits.memoryBytes)});
  return a;
}

std::vector<std::string> sandboxArgs(const SandboxPlan& plan) {
  const SandboxLimits& limits = plan.limits;
  // The user namespace is the service's (LocalUserns.hpp): bwrap joins it
  // as its uid 0 (the keeper), and the autodriver keeps the four
  // capabilities it needs to hand the job its files, drop to the job's uid
  // and kill what the job leaves. Nested user namespaces are off in it.
  std::vector<std::string> a{plan.bwrap.string(),
                             "--userns",
                             std::to_string(plan.usernsFd),
                             "--uid",
                             "0",
                             "--gid",
                             "0",
                             "--unshare-pid",
                             "--unshare-ipc",
                             "--unshare-uts",
                             "--unshare-cgroup-try"};
  // A network namespace of its own in every case; with the network on,
  // slirp4netns connects it to the outside before the job starts.
  a.push_back("--unshare-net");
  a.insert(a.end(), plan.networkArgs.begin(), plan.networkArgs.end());
  for (const char* cap : {"CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_KILL"})
    a.insert(a.end(), {"--cap-add", cap});
  a.insert(a.end(), {"--die-with-parent", "--new-session", "--hostname",
                     plan.hostname.substr(0, 63), "--ro-bind", plan.root.string(), "/"});
  // Scratch space is the job's (1777, as on any host); the rest of what
  // bwrap makes stays the keeper's and read-only to the job.
  auto tmpfs = [&](const std::string& where, std::int64_t size, const char* perms = "0755") {
    a.insert(a.end(), {"--perms", perms, "--size", std::to_string(size), "--tmpfs", where});
  };
  // bwrap's /dev is a tmpfs the job owns, of no size limit: /dev/shm gets a
  // tmpfs of the disk limit, and /dev itself turns read-only (its device
  // nodes and /dev/pts are mounts of their own and keep working).
  a.insert(a.end(), {"--dev", "/dev"});
  tmpfs("/dev/shm", limits.diskBytes, "1777");
  a.insert(a.end(), {"--remount-ro", "/dev", "--proc", "/proc"});
  const std::vector<std::string> scratch{"/tmp", "/var/tmp", "/run", "/home"};
  for (const auto& s : scratch) {
    if (s == "/var/tmp" && !fs::is_directory(plan.root / "var/tmp")) continue;
    const bool scratchSpace = s == "/tmp" || s == "/var/tmp";
    tmpfs(s, scratchSpace ? limits.diskBytes : kSmallTmpSize, scratchSpace ? "1777" : "0755");
  }
  // The service's own state (state DB, other VMs, courselabs with every
  // student's files) must be invisible, not merely unreadable. A path the
  // job cannot reach at all (below a directory without o+x) needs nothing.
  // A path inside one already hidden is skipped: mounting over it would
  // leave its mount point visible inside the empty tmpfs.
  std::vector<std::string> hidden = scratch;
  for (const fs::path& hide : plan.hidden) {
    auto inside = insideRoot(hide, plan.root);
    if (!inside || !reachableInside(plan.root, *inside)) continue;
    bool covered = false;
    for (const auto& s : hidden)
      if (*inside == s || inside->starts_with(s + "/")) covered = true;
    if (covered) continue;
    tmpfs(*inside, kSmallTmpSize);
    hidden.push_back(*inside);
  }
  // The job's home is a tmpfs of the disk limit, filled by the autodriver
  // from the read-only inputs (-I) and then handed to the job's uid (-J):
  // what the job writes never reaches the host disk, and all of it is gone
  // when the sandbox ends.
  tmpfs("/home/autograde", limits.diskBytes);
  if (plan.oomEvents)
    a.insert(a.end(), {"--ro-bind", plan.oomEvents->string(), "/run/tango/oom_events"});
  // Only over a plain file: a symlink (to systemd-resolved's stub) would
  // lead bwrap to mount wherever it points inside the image.
  struct stat rs {};
  if (plan.resolvConf && ::lstat((plan.root / "etc/resolv.conf").c_str(), &rs) == 0 &&
      S_ISREG(rs.st_mode))
    a.insert(a.end(), {"--ro-bind", plan.resolvConf->string(), "/etc/resolv.conf"});
  if (plan.seccompFd >= 0) a.insert(a.end(), {"--seccomp", std::to_string(plan.seccompFd)});
  a.insert(a.end(), {"--ro-bind",
                     (plan.vmDir / "job").string(),
                     "/run/tango-in",
                     "--bind",
                     (plan.vmDir / "run").string(),
                     "/run/tango-out",
                     "--ro-bind",
                     plan.autodriver.string(),
                     "/run/tango/autodriver",
                     "--chdir",
                     "/home/autograde",
                     "--clearenv",
                     "--setenv",
                     "HOME",
                     "/home/autograde",
                     "--setenv",
                     "PATH",
                     "/usr/local/bin:/usr/bin:/bin",
                     "--setenv",
                     "USER",
                     "autograde",
                     "--setenv",
                     "LANG",
                     "C.UTF-8",
                     "--",
                     "/run/tango/autodriver"});
  if (plan.stdinJob) {
    a.push_back("-S");
  } else {
    auto job = autodriverJobFlags(plan.spec, limits);
    a.insert(a.end(), job.begin(), job.end());
  }
  if (plan.oomEvents) a.insert(a.end(), {"-M", "/run/tango/oom_events"});
  a.insert(a.end(), {"-J", std::to_string(plan.jobUid), "-I", "/run/tango-in", "-P",
                     "/run/tango-out/partial", "-R", "/home/autograde"});
  return a;
}

}  // namespace tango
