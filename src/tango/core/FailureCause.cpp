#include "tango/core/FailureCause.hpp"

#include <array>
#include <string_view>
#include <utility>

namespace tango {

namespace {

bool has(std::string_view text, std::string_view what) {
  return text.find(what) != std::string_view::npos;
}

template <std::size_t N>
bool hasAny(std::string_view text, const std::array<std::string_view, N>& words) {
  for (auto w : words)
    if (has(text, w)) return true;
  return false;
}

}  // namespace

std::string failureCause(const std::string& failure, const std::string& image) {
  // Causes first (whatever step met them), then the step as a last resort.
  // The texts are strerror's and libcurl's, and the VMMSs' own words.
  static constexpr std::array<std::string_view, 3> kDiskFull{
      "No space left on device", "Disk quota exceeded", "database or disk is full"};
  static constexpr std::array<std::string_view, 3> kCannotConnect{
      "Couldn't connect to server", "Could not connect to server", "Connection refused"};
  static constexpr std::array<std::string_view, 3> kImageMissing{"no image ", "No such image",
                                                                 "unknown image "};
  static constexpr std::array<std::string_view, 5> kSandbox{
      "cannot start the sandbox", "sandbox setup failed", "bwrap", "cannot set up the VM's cgroups",
      "autodriver not found"};
  if (hasAny(failure, kDiskFull)) return "the grading host is out of disk space";
  if (has(failure, "Docker engine") && hasAny(failure, kCannotConnect))
    return "the Docker engine is unreachable";
  if (hasAny(failure, kImageMissing))
    return "the image " + image + " is missing on the grading host";
  if (hasAny(failure, kSandbox)) return "the sandbox could not start";
  if (has(failure, "hard timeout") || has(failure, "destroyed while the job ran"))
    return "the VM was stopped before the job could finish";

  static constexpr std::array<std::pair<std::string_view, std::string_view>, 5> kSteps{{
      {"initializeVM", "the VM could not be created"},
      {"waitVM", "the VM did not become ready"},
      {"copyIn", "the job's files could not be copied into the VM"},
      {"runJob", "the VM could not run the job"},
      {"copyOut", "the job's output could not be copied out of the VM"},
  }};
  const bool timedOut = has(failure, "timed out");
  for (const auto& [step, sentence] : kSteps)
    if (failure.starts_with(std::string(step) + " failed"))
      return std::string(sentence) + (timedOut ? " in time" : "");
  return "an internal error of the grading service";
}

}  // namespace tango
