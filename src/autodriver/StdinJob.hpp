#pragma once
// -S: the job arrives on stdin. A container that is started before its job
// is known (a warm pool's, or a cold one started while the job's files are
// read) has its autodriver block here; the service then streams the job in
// through the engine's attach endpoint. Nothing is copied into the
// container's filesystem, so its root can be read-only.
//
// The stream is a tar (ustar or pax) holding, in any order:
//   args        further flags, each ended by a NUL byte (at most 64 KiB)
//   job/NAME    a file of the job: NAME is one path component
//   job/        (optional) the directory entry
// Anything else (links, devices, nested names, "..") is refused.
#include <string>
#include <variant>
#include <vector>

namespace tango::autodriver {

struct StdinJobError {
  std::string message;
};

// Reads the stream from `fd` to its end, creates `dir` (mode 0700; or takes
// it when it is an empty directory of ours, as a sandbox's tmpfs is) and
// writes the job's files there (mode from the tar, at most 0755, never
// through a link). Returns the further flags, or why the stream was refused
// (a stream without `args` is no job); OS failures throw std::system_error.
std::variant<std::vector<std::string>, StdinJobError> read_stdin_job(int fd,
                                                                     const std::string& dir);

}  // namespace tango::autodriver
