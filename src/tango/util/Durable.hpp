#pragma once
// Making a write survive a power cut before it is acknowledged: the file's
// data (fsync) and the directory entry that names it (fsync of the
// directory), as POSIX requires for a rename or link to be durable.
#include <filesystem>
#include <string>

namespace tango {

// fsync(fd); empty on success, else "what: strerror".
std::string syncFd(int fd, const std::string& what);

// fsync of the directory `dir`; empty on success, else why not.
std::string syncDir(const std::filesystem::path& dir);

}  // namespace tango
