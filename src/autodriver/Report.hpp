#pragma once

#include <cstdint>
#include <string>

namespace tango::autodriver {

// How the job ended and what it cost; filled in by the run loop.
struct JobReport {
  bool timed_out = false;
  std::int64_t timeout_secs = 0;
  int exit_status = 0;       // make's exit code, or 128 + signal if it was killed
  int signal = 0;            // signal that killed make, 0 if it exited
  std::int64_t wall_ms = 0;  // from starting make until the whole job was killed
  std::int64_t user_ms = 0;
  std::int64_t sys_ms = 0;
  std::int64_t max_rss_kb = 0;     // peak RSS of the largest job process
  std::uint64_t output_bytes = 0;  // everything the job wrote, kept or not
  // Growth of the cgroup counters given with -E during the job; reported
  // only when there were such files.
  bool cgroup_counted = false;
  std::int64_t oom_kills = 0;  // "oom_kill" of memory.events / memory.oom_control
  std::int64_t pids_max = 0;   // "max" of pids.events: forks refused by the pids limit
};

// Converts a wait() status to (exit_status, signal) the way a shell reports it.
void record_wait_status(JobReport& report, int wait_status);

// First line of stdout, newline included. Autolab and Tango match on these
// exact words.
std::string status_line(const JobReport& report);

// The -R line for stderr, newline included:
// TANGO_USAGE {"wall_ms":N,...,"output_bytes":N}
std::string usage_line(const JobReport& report);

}  // namespace tango::autodriver
