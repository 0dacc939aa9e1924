#pragma once
// Per-sandbox control groups (cgroup v1: memory and pids controllers). The
// service, as root, creates one group per VM below its own cgroup in each
// controller, sets the limits, and the sandbox's first process joins the
// groups before it drops privileges (SpawnOptions::joinCgroupFds), so no
// process of the job ever runs outside them. Group files are root-owned:
// the job cannot raise its limits or leave.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tango/util/Fd.hpp"

namespace tango {

struct CgroupLimits {
  std::int64_t memoryBytes = 0;  // 0 = no memory limit
  std::int64_t pids = 0;         // 0 = no pids limit
};

class CgroupV1 {
 public:
  // The controllers' parent directories for this process ("<mount>/<own
  // cgroup>/tango"), created if missing. Controllers that are not mounted or
  // not writable (not root, read-only /sys) are left out.
  CgroupV1();

  bool hasMemory() const { return !memoryBase_.empty(); }
  bool hasPids() const { return !pidsBase_.empty(); }

  // Creates (or reuses) the groups `name` and sets their limits.
  // Empty on success, else what failed.
  std::string prepare(const std::string& name, const CgroupLimits& limits) const;

  // Write-only fds of the groups' cgroup.procs, for SpawnOptions::joinCgroupFds.
  std::vector<Fd> openProcs(const std::string& name, std::string& error) const;

  // The memory group's file with the "oom_kill N" counter, if any.
  std::optional<std::filesystem::path> oomEventsFile(const std::string& name) const;

  // Removes the groups; they must be empty (their processes killed) first.
  // With `wait`, retries briefly while the kernel finishes tearing down the
  // last processes. Empty on success (or if there was nothing), else what failed.
  std::string remove(const std::string& name, bool wait = true) const;

  // Every group name this process created under its bases (for tests).
  std::vector<std::string> list() const;

 private:
  std::filesystem::path memoryBase_;
  std::filesystem::path pidsBase_;
};

}  // namespace tango
