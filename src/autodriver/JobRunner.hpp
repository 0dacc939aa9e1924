#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "autodriver/Report.hpp"
#include "autodriver/Spawn.hpp"

namespace tango::autodriver {

struct JobSettings {
  SpawnRequest spawn;             // stdin_fd/output_fd are filled in by run_job
  std::int64_t timeout_secs = 0;  // 0 = no timeout
  std::size_t output_cap = 0;
  int partial_fd = -1;  // if >= 0, receives the head of the output live
  int frames_fd = -1;   // if >= 0, receives it too, as P frames (Frames.hpp)
};

struct JobResult {
  JobReport report;
  std::string output;      // the kept output, elided if over the cap
  bool all_killed = true;  // false if some descendant could not be killed
};

// Runs make in the current directory until it exits or the timeout hits,
// capturing its output, then kills every remaining descendant and reaps
// them. The caller must already be a child subreaper. Throws
// std::system_error if the job could not be started.
JobResult run_job(const JobSettings& settings);

}  // namespace tango::autodriver
