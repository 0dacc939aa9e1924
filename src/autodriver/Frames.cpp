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

std::string frame(char kind, std::string_view data) {
  std::string f = std::string(1, kind) + ' ' + std::to_string(data.size()) + '\n';
  f.append(data);
  return f;
}

bool write_frame(int fd, char kind, std::string_view data) {
  return write_all(fd, frame(kind, data));
}

}  // namespace tango::autodriver
