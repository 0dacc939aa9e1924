#include "autodriver/Report.hpp"

#include <sys/wait.h>

namespace tango::autodriver {

void record_wait_status(JobReport& report, int wait_status) {
  if (WIFSIGNALED(wait_status)) {
    report.signal = WTERMSIG(wait_status);
    report.exit_status = 128 + report.signal;
  } else {
    report.signal = 0;
    report.exit_status = WEXITSTATUS(wait_status);
  }
}

std::string status_line(const JobReport& report) {
  if (report.timed_out) {
    return "Autodriver: Job timed out after " + std::to_string(report.timeout_secs) + " seconds\n";
  }
  return "Autodriver: Job exited with status " + std::to_string(report.exit_status) + "\n";
}

std::string usage_line(const JobReport& report) {
  return "TANGO_USAGE {\"wall_ms\":" + std::to_string(report.wall_ms) +
         ",\"user_ms\":" + std::to_string(report.user_ms) +
         ",\"sys_ms\":" + std::to_string(report.sys_ms) +
         ",\"max_rss_kb\":" + std::to_string(report.max_rss_kb) +
         ",\"exit_status\":" + std::to_string(report.exit_status) +
         ",\"signal\":" + std::to_string(report.signal) +
         ",\"timed_out\":" + (report.timed_out ? "true" : "false") +
         ",\"output_bytes\":" + std::to_string(report.output_bytes) +
         (report.cgroup_counted ? ",\"oom_kills\":" + std::to_string(report.oom_kills) +
                                      ",\"pids_max\":" + std::to_string(report.pids_max)
                                : std::string()) +
         "}\n";
}

}  // namespace tango::autodriver
