#include "autodriver/Report.hpp"

#include <sys/wait.h>

#include "autodriver/Wire.hpp"

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
    return std::string(wire::kTimedOutLine) + std::to_string(report.timeout_secs) +
           std::string(wire::kTimedOutUnit) + "\n";
  }
  return std::string(wire::kExitedLine) + std::to_string(report.exit_status) + "\n";
}

std::string usage_line(const JobReport& report) {
  namespace k = wire::usage;
  std::string line(wire::kUsageTag);
  char sep = '{';
  auto add = [&](const char* key, const std::string& value) {
    line += sep;
    line += '"';
    line += key;
    line += "\":";
    line += value;
    sep = ',';
  };
  add(k::kWallMs, std::to_string(report.wall_ms));
  add(k::kUserMs, std::to_string(report.user_ms));
  add(k::kSysMs, std::to_string(report.sys_ms));
  add(k::kMaxRssKb, std::to_string(report.max_rss_kb));
  add(k::kExitStatus, std::to_string(report.exit_status));
  add(k::kSignal, std::to_string(report.signal));
  add(k::kTimedOut, report.timed_out ? "true" : "false");
  add(k::kOutputBytes, std::to_string(report.output_bytes));
  if (report.cgroup_counted) {
    add(k::kOomKills, std::to_string(report.oom_kills));
    add(k::kPidsMax, std::to_string(report.pids_max));
  }
  return line + "}\n";
}

}  // namespace tango::autodriver
