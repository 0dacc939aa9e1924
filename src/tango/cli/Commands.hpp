#pragma once
// Runs one tango-cli action against the service and returns the exit status
// (0 ok, 1 the server refused or a job failed, 2 a flag is missing, 3 unreachable).
#include <iosfwd>

#include "tango/cli/Options.hpp"

namespace tango::cli {

enum Exit : int { kOk = 0, kRefused = 1, kUsage = 2, kUnreachable = 3 };

int runAction(const Options& o, std::ostream& out, std::ostream& err);

}  // namespace tango::cli
