#include "autodriver/Frames.hpp"

#include <unistd.h>

#include <cerrno>
#include <string>

namespace tango::autodriver {

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool write_frame(int fd, char kind, std::string_view data) {
  const std::string header = std::string(1, kind) + ' ' + std::to_string(data.size()) + '\n';
  return write_all(fd, header) && write_all(fd, data);
}

}  // namespace tango::autodriver
