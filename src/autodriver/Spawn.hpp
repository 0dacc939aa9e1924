#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace tango::autodriver {

struct SpawnRequest {
  std::optional<std::int64_t> nproc;  // RLIMIT_NPROC, if set
  std::optional<std::int64_t> fsize;  // RLIMIT_FSIZE, if set
  std::optional<std::int64_t> cpu;    // RLIMIT_CPU (seconds), if set
  std::optional<std::int64_t> as;     // RLIMIT_AS (bytes), if set
  std::optional<uid_t> uid;           // drop to uid/gid (root mode only)
  gid_t gid = 0;
  int stdin_fd = -1;   // becomes the job's stdin (/dev/null)
  int output_fd = -1;  // becomes the job's stdout AND stderr (pipe write end)
};

// Forks and execs `make` (searched in PATH) in the current directory, in its
// own session, with the limits applied, credentials dropped and every other
// fd closed. Returns make's pid once exec has succeeded. If anything in the
// child fails before exec, the child is reaped and std::system_error thrown.
pid_t spawn_make(const SpawnRequest& request);

}  // namespace tango::autodriver
