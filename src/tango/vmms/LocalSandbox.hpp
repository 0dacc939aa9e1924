#pragma once
// The bubblewrap command line of one `local` run.
//
// bwrap runs as the VM's keeper uid (LocalUserns.hpp), unprivileged on the
// host, and resolves every path it mounts as that uid (it realpath()s even a "--bind-fd", as of
// 0.8), so whatever the sandbox mounts from the host must be reachable by a uid that owns nothing:
// the VMs' directories and the autodriver live in SANDBOX_DIR, which the
// service makes for that (see LocalVmms.hpp), never below DATA_DIR, which is
// private to the service and may lie in a home directory nobody else can
// search.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tango/vmms/Vmms.hpp"

namespace tango {

// The limits of one run: the spec's overrides, else the configured defaults.
struct SandboxLimits {
  std::int64_t memoryBytes = 0;
  std::int64_t diskBytes = 0;
  int cpuSecs = 0;
};

struct SandboxPlan {
  std::filesystem::path bwrap;
  std::string hostname;
  std::filesystem::path root;                      // the image's root, mounted read-only as "/"
  std::filesystem::path vmDir;                     // its job/ (inputs) and run/ (partial output)
  std::filesystem::path autodriver;                // bound read-only at /run/tango/autodriver
  std::optional<std::filesystem::path> oomEvents;  // the memory cgroup's OOM counter
  int seccompFd = -1;                              // the filter (Seccomp.hpp), or none
  int usernsFd = -1;                               // the run's user namespace (LocalUserns.hpp)
  uid_t jobUid = 0;                                // the job's uid there (the VM's uid)
  // Host paths the job must not see (the data directory, the courselabs,
  // the other VMs): each is covered by an empty tmpfs when the job could
  // reach it at all.
  std::vector<std::filesystem::path> hidden;
  // With the network on (LocalNetwork.hpp): bwrap's --info-fd/--block-fd
  // flags, and the resolv.conf that names slirp4netns's DNS forwarder.
  std::vector<std::string> networkArgs;
  std::optional<std::filesystem::path> resolvConf;
  RunSpec spec;
  SandboxLimits limits;
  // A warm sandbox (LocalWarm.cpp): made before its job is known, its
  // autodriver waits on stdin (-S) for the job's flags; the spec's are not
  // on the command line then.
  bool stdinJob = false;
};

// bwrap's argv, ending with the autodriver's.
std::vector<std::string> sandboxArgs(const SandboxPlan& plan);

// The autodriver's flags that are the job's own limits: on the command line
// of a cold run, in the job stream of a warm one.
std::vector<std::string> autodriverJobFlags(const RunSpec& spec, const SandboxLimits& limits);

// The first directory on the way from "/" to `dir` (itself included) that a
// uid owning nothing cannot search (no o+x), or nullopt when there is none.
std::optional<std::filesystem::path> firstUnsearchable(const std::filesystem::path& dir);

}  // namespace tango
