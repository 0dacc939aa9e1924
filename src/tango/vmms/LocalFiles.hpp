#pragma once
// File operations on descriptors that the `local` VMMS's parts share. Every
// path below a VM's directory is opened relative to a directory fd with
// O_NOFOLLOW: the job owns some of those directories and may plant links.
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>

#include "tango/util/Fd.hpp"
#include "tango/util/Process.hpp"

namespace tango::local {

// "what: strerror(err)".
std::string errnoText(const std::string& what, int err = errno);

// now + timeout, or never for a timeout <= 0.
SteadyClock::time_point deadlineAfter(std::chrono::seconds timeout);

// A directory below atFd, never through a symlink.
Fd openDir(int atFd, const char* path);

// Copies in -> out. Empty on success, else what failed.
std::string copyData(int in, int out, SteadyClock::time_point deadline);

// Reads at most `cap` bytes of a small file opened by the caller.
std::string readCapped(int fd, std::int64_t cap);

}  // namespace tango::local
