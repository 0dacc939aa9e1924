#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace tango::autodriver {

// Output cap used when -o is absent or 0: Tango's historical default.
inline constexpr std::int64_t kDefaultOutputCap = 1024000;

struct Options {
  std::optional<std::int64_t> nproc;            // -u: RLIMIT_NPROC of the job
  std::optional<std::int64_t> fsize;            // -f: RLIMIT_FSIZE in bytes
  std::int64_t timeout_secs = 0;                // -t: 0 = no timeout
  std::int64_t output_cap = kDefaultOutputCap;  // -o: bytes of output kept
  std::string user = "autograde";               // -U: name or numeric uid
  // -J: run the job as this uid (and gid) in DIR itself, which is handed to
  // it, whatever /etc/passwd says: for a sandbox that starts us as uid 0 of
  // its own user namespace (the local VMMS) and maps the job's uid there.
  std::optional<std::int64_t> job_uid;
  std::optional<std::string> partial_file;   // -P: live copy of the output head
  bool report_usage = false;                 // -R: TANGO_USAGE line on stderr
  std::optional<std::int64_t> cpu_secs;      // -c: RLIMIT_CPU of each job process
  std::optional<std::int64_t> memory_bytes;  // -m: memory limit (RLIMIT_AS unless -M)
  // -M: a cgroup file with an "oom_kill N" line (v1 memory.oom_control, v2
  // memory.events). The cgroup enforces -m then; we only read it to tell the
  // student that the job ran out of memory.
  std::optional<std::string> oom_events;
  // -I: copy the regular files of this directory into DIR first, so DIR can
  // be a size-limited tmpfs while the inputs stay read-only on the host.
  std::optional<std::string> input_dir;
  // -S: the job arrives on stdin as a tar stream (see StdinJob.hpp): its
  // files, written into DIR (created), and further flags. A container
  // started before its job is known waits for it this way, and nothing has
  // to be copied into its filesystem.
  bool stdin_job = false;
  // -F: stdout carries frames (Frames.hpp): the output's head live, then
  // the result. For a service that reads the partial output from stdout.
  bool framed = false;
  // -E (repeatable): cgroup event files whose counters are read before and
  // after the job: "max" of a pids file (pids.events), "oom_kill" of any
  // other (memory.events, memory.oom_control); their growth goes into the usage report (-R), so the
  // service can say which limit ended the job after the container is gone.
  std::vector<std::string> event_files;
  std::string dir;  // the job directory
};

struct UsageError {
  std::string message;
};

// Parses argv strictly: every numeric value must be a whole decimal number in
// range, and exactly one DIR must be given. Flags may be written "-t 5" or
// "-t5" and may appear before or after DIR; "--" ends the flags.
std::variant<Options, UsageError> parse_options(int argc, const char* const* argv);

// One-paragraph synopsis printed after a usage error.
const char* usage_text();

}  // namespace tango::autodriver
