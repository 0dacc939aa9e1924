#pragma once
// Tango's output file: "Autograder [<ctime>]: <message>" header lines, then
// the autodriver's output verbatim. Autolab parses the file's LAST line as the
// score, so nothing is ever written after the job's own output. The file is
// assembled under a temporary name and renamed into place, so a poll never
// sees half of it.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tango/model/Job.hpp"

namespace tango {

std::string autograderLine(const std::string& message);

// An output file written in full under a temporary name beside `dest`, not
// yet visible. The worker publishes it, then commits the job: a crash
// between the two leaves the job to run again, never finished without its
// output. Publishing never replaces the output of another run of the same
// job (a node that lost its lease comes second). Dropped unpublished, the
// temporary is removed.
class PreparedOutput {
 public:
  PreparedOutput(std::filesystem::path dest, std::filesystem::path tmp, std::string error,
                 std::string ours = {})
      : dest_(std::move(dest)),
        tmp_(std::move(tmp)),
        error_(std::move(error)),
        ours_(std::move(ours)) {}
  ~PreparedOutput();
  PreparedOutput(PreparedOutput&& o) noexcept;
  PreparedOutput& operator=(PreparedOutput&&) = delete;
  PreparedOutput(const PreparedOutput&) = delete;

  // A second name for the unpublished file at `at` (a hard link, so no
  // copy), replacing what is there. Returns an error text or "".
  std::string keepCopy(const std::filesystem::path& at) const;
  // Why the file could not be written ("" when it was).
  const std::string& error() const { return error_; }
  // Moves it into place, unless another run of the same job's output is
  // there already (then that one stands). Returns an error text or "".
  std::string publish();

 private:
  std::filesystem::path dest_, tmp_;
  std::string error_;
  std::string ours_;  // "Received job <name>:<id>", from the header
};

// Where a job's callback finds its output as it was when the job finished
// (a hidden file beside the output: same filesystem, same courselab).
std::filesystem::path callbackCopyPath(const std::filesystem::path& dest, std::int64_t jobId);

// Writes `header` (already formatted lines) followed by the content of
// `body` (if any) for `dest`.
PreparedOutput prepareOutputFile(const std::filesystem::path& dest, const std::string& header,
                                 const std::optional<std::filesystem::path>& body);
// The outcome of job `name`:`id` when `dest` holds its output already: a
// run before a crash (or on a node that lost the job) published it whole
// (outputs are published only complete) but could not record the finish.
// nullopt when `dest` is missing or another job's.
struct PublishedOutcome {
  JobOutcome outcome = JobOutcome::None;
  std::string message;  // the header's second line: the trace's last entry
};
std::optional<PublishedOutcome> publishedOutcome(const std::filesystem::path& dest,
                                                 const std::string& name, std::int64_t id);

// prepareOutputFile, then publish. Returns an error text or "" on success.
std::string writeOutputFile(const std::filesystem::path& dest, const std::string& header,
                            const std::optional<std::filesystem::path>& body);

}  // namespace tango
