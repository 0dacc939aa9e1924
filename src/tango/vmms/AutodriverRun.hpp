#pragma once
// What every VMMS that streams a job into a waiting `autodriver -S -F`
// shares (localDocker through the engine's attach, the SSH backends through
// an SSH channel): the job's stream, the live head of its output, the
// bounded stderr, and what the autodriver's exit says.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tango/docker/Tar.hpp"
#include "tango/vmms/AutodriverFrames.hpp"
#include "tango/vmms/Vmms.hpp"

namespace tango {

// Extra result bytes allowed beyond the job's cap: the autodriver's status
// lines and the elision marker. The autodriver caps; this bounds a broken one.
inline constexpr std::int64_t kAutodriverOutputSlack = 64 * 1024;

// The job's files as the autodriver's stream holds them (job/NAME), each
// read whole if at most `maxBytes`; nullopt and `error` naming the file else.
std::optional<std::vector<docker::TarEntry>> jobFiles(const std::vector<InputFile>& files,
                                                      std::int64_t maxBytes, std::string& error);
// The stream (StdinJob.hpp): the flags, NUL-ended, then the files.
std::string jobStream(const std::vector<std::string>& flags, std::vector<docker::TarEntry> files);
// The VMMS's outer bound on a run (the autodriver enforces the job's own).
std::chrono::seconds hardTimeoutOf(const RunSpec& spec);

// The head of a running job's output, as the run reads it, behind its own
// lock so that getPartialOutput never waits on the VMMS's.
struct LiveHead {
  std::mutex mu;
  std::string head;  // guarded by mu
  void append(std::string_view s) {
    std::lock_guard lock(mu);
    head.append(s);
  }
  std::string get() {
    std::lock_guard lock(mu);
    return head;
  }
};

// The autodriver's framed stdout for a job whose output is capped at `cap`
// bytes, its head going to `live` as it arrives.
AutodriverFrames framesFor(std::int64_t cap, const std::shared_ptr<LiveHead>& live);
// copyOut: the run's result, kept by runJob, written to `dest` on the host.
StepResult writeOutput(const std::filesystem::path& dest, const std::string& out);

// The autodriver's stderr, kept up to 64 KiB (it ends with the usage line).
struct StderrTail {
  std::string text;
  void operator()(std::string_view c);
};

// The run's result from the autodriver's exit `code` (0..3 are its own),
// its frames and stderr.
RunResult runResultOf(int code, const AutodriverFrames& frames, const std::string& err);

}  // namespace tango
