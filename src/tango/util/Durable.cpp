#include "tango/util/Durable.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tango/util/Fd.hpp"

namespace tango {

std::string syncFd(int fd, const std::string& what) {
  while (::fsync(fd) != 0) {
    if (errno == EINTR) continue;
    return what + ": " + std::strerror(errno);
  }
  return {};
}

std::string syncDir(const std::filesystem::path& dir) {
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d) return "open " + dir.string() + ": " + std::strerror(errno);
  return syncFd(d.get(), "fsync " + dir.string());
}

}  // namespace tango
