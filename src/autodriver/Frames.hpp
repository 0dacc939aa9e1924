#pragma once
// Writing to an fd, whole, and the framed stdout of -F.
//
// With -F the autodriver's stdout is a sequence of frames, each a header
// line "<kind> <decimal length>\n" and that many bytes:
//   P  the next bytes of the output's head, as the job produces them;
//   O  once, at the end: the whole result (status lines and kept output).
// A service that reads stdout through one connection (a container's attach
// stream) shows the P bytes as the job's partial output while it runs,
// without starting a process beside the job: a job holding all the
// processes it may have would make that process fail.
#include <string>
#include <string_view>

#include "autodriver/Wire.hpp"

namespace tango::autodriver {

using wire::kFrameOutput;
using wire::kFramePartial;

// Writes all of `data`, retrying short writes and EINTR. False on error.
bool write_all(int fd, std::string_view data);

// One frame of `kind`: its header line and `data`.
std::string frame(char kind, std::string_view data);

// Writes one frame of `kind`. False on error.
bool write_frame(int fd, char kind, std::string_view data);

}  // namespace tango::autodriver
