#pragma once
// The autodriver's side channel: with -R it prints one line
// `TANGO_USAGE {json}` on stderr. Shared by every VMMS that runs it
// (LocalVmms, DockerVmms).
#include <optional>
#include <string>
#include <string_view>

#include "tango/model/Job.hpp"

namespace tango {

// The last TANGO_USAGE line's report, if any line parses.
std::optional<ResourceUsage> parseUsageLine(std::string_view stderrText);
// stderr without usage lines, joined with "; " and cut at 1 KiB, for traces.
std::string stderrExcerpt(std::string_view text);

}  // namespace tango
