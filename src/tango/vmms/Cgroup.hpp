#pragma once
// Per-sandbox control groups, on cgroup v1, v2 and hybrid hosts.
//
// The service, as root, creates one group per VM below its own cgroup, sets
// the limits, and the sandbox's first process joins the group(s) before it
// drops privileges (SpawnOptions::joinCgroupFds), so no process of the job
// ever runs outside them. Group files are root's: the job cannot raise its
// limits or leave.
//
//   v1 (and hybrid, whose v2 tree holds no controller we use): one group per
//      controller, <mount>/<controller>/<own group>/tango/<name>, for the
//      memory (memory + swap), pids and cpu (CFS quota) controllers.
//   v2: one group <mount>/<own group>/tango/<name> with memory.max,
//      memory.swap.max = 0, pids.max and cpu.max. cgroup v2 lets a group hand
//      controllers to its children only while it has no processes of its own,
//      so when enabling them in the service's group fails (EBUSY), the
//      service's processes move into a leaf <own group>/supervisor first:
//      the layout systemd documents for a unit with Delegate=yes.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tango/util/Fd.hpp"

namespace tango {

enum class CgroupMode { None, V1, Hybrid, V2 };
const char* cgroupModeName(CgroupMode mode);

struct CgroupLimits {
  std::int64_t memoryBytes = 0;  // 0 = no memory limit
  std::int64_t pids = 0;         // 0 = no pids limit
  int cores = 0;                 // CPU time per period in cores; 0 = no CPU limit
};

// Where the groups live; the defaults are this host's. Tests point it at a
// directory tree shaped like cgroupfs.
struct CgroupHost {
  std::filesystem::path mountRoot = "/sys/fs/cgroup";
  std::optional<CgroupMode> mode;  // detected from mountRoot's filesystem when unset
  std::string procSelfCgroup;      // /proc/self/cgroup's text; read when empty
  bool root = false;               // only root can create groups and move the sandbox in
  // The v2 controllers to enable; a test on a hybrid host, whose v2 tree has
  // none of these, proves the delegation with the one it has (hugetlb).
  std::vector<std::string> v2Controllers{"memory", "pids", "cpu"};
  static CgroupHost thisHost();
};

class SandboxCgroups {
 public:
  // The parents of the VMs' groups ("<own group>/tango"), created if missing.
  // Controllers that are missing or not writable are left out (and say so
  // in the log); the sandbox then falls back to rlimits.
  explicit SandboxCgroups(const CgroupHost& host = CgroupHost::thisHost());

  CgroupMode mode() const { return mode_; }
  bool hasMemory() const { return memory_ >= 0; }
  bool hasPids() const { return pids_ >= 0; }
  bool hasCpu() const { return cpu_ >= 0; }
  // One line for the start-up log: the mode and the limits it gives.
  std::string describe() const;

  // Creates (or reuses) the groups `name` and sets their limits.
  // Empty on success, else what failed.
  std::string prepare(const std::string& name, const CgroupLimits& limits) const;

  // Write-only fds of the groups' cgroup.procs, for SpawnOptions::joinCgroupFds.
  std::vector<Fd> openProcs(const std::string& name, std::string& error) const;

  // The memory group's file with the "oom_kill N" counter (v1
  // memory.oom_control, v2 memory.events), if there is a memory group.
  std::optional<std::filesystem::path> oomEventsFile(const std::string& name) const;

  // Removes the groups; they must be empty (their processes killed) first.
  // With `wait`, retries briefly while the kernel finishes tearing down the
  // last processes. Empty on success (or if there was nothing), else what failed.
  std::string remove(const std::string& name, bool wait = true) const;

  // Every group name this process created under its bases.
  std::vector<std::string> list() const;

  // The directory holding the VMs' groups of each hierarchy (for tests).
  std::vector<std::filesystem::path> bases() const;

 private:
  // One hierarchy's parent of the VM groups, and which limits it carries.
  struct Base {
    std::filesystem::path dir;
    bool v2 = false;
    bool memory = false;
    bool pids = false;
    bool cpu = false;
  };
  void setUpV1(const CgroupHost& host);
  void setUpV2(const CgroupHost& host);
  std::string limit(const Base& base, const std::filesystem::path& group,
                    const CgroupLimits& limits) const;
  void index();

  CgroupMode mode_ = CgroupMode::None;
  std::vector<Base> bases_;
  int memory_ = -1;  // indices into bases_
  int pids_ = -1;
  int cpu_ = -1;
};

}  // namespace tango
