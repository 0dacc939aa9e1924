#pragma once
// The autodriver's wire format, one definition for both ends: the autodriver
// writes it (src/autodriver) and every VMMS reads it (src/tango/vmms,
// src/tango/core). Autolab and Tango match the status lines word for word.
#include <string_view>

namespace tango::autodriver::wire {

// stdout with -F: frames "<kind> <decimal length>\n" and that many bytes.
inline constexpr char kFramePartial = 'P';  // the next bytes of the output's head, while it runs
inline constexpr char kFrameOutput = 'O';   // once, at the end: the whole result

// The result's first line: one of these, then the number and "\n"
// ("... status 2", "... after 20 seconds").
inline constexpr std::string_view kExitedLine = "Autodriver: Job exited with status ";
inline constexpr std::string_view kTimedOutLine = "Autodriver: Job timed out after ";
inline constexpr std::string_view kTimedOutUnit = " seconds";
// After the first line when the memory cgroup killed a process of the job:
// this, the limit in MB, and " MB)\n".
inline constexpr std::string_view kOomLine = "Autodriver: Job killed: out of memory (limit ";

// stderr with -R: one line, this tag and a JSON object of these keys.
inline constexpr std::string_view kUsageTag = "TANGO_USAGE ";
namespace usage {
inline constexpr const char* kWallMs = "wall_ms";
inline constexpr const char* kUserMs = "user_ms";
inline constexpr const char* kSysMs = "sys_ms";
inline constexpr const char* kMaxRssKb = "max_rss_kb";
inline constexpr const char* kExitStatus = "exit_status";
inline constexpr const char* kSignal = "signal";
inline constexpr const char* kTimedOut = "timed_out";
inline constexpr const char* kOutputBytes = "output_bytes";
inline constexpr const char* kOomKills = "oom_kills";  // only with cgroup counters (-E, -M)
inline constexpr const char* kPidsMax = "pids_max";
}  // namespace usage

}  // namespace tango::autodriver::wire
