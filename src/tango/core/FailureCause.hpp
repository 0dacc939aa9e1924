#pragma once
// The one plain sentence an instructor reads in the output file of a job
// that could not be completed ("the sandbox could not start", "the Docker
// engine is unreachable"...), made from the worker's failure text. The
// output file reaches students, so it carries the category only: the
// failure text itself (host paths, which hold the API key in a courselab
// directory's name) goes to the log, with the job id.
#include <string>

namespace tango {

// `failure` is the Worker's text: "<step> failed: <the VMMS's error>".
std::string failureCause(const std::string& failure, const std::string& image);

}  // namespace tango
