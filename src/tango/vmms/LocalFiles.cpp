#include "tango/vmms/LocalFiles.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstring>

namespace tango::local {
using namespace std::chrono_literals;

std::string errnoText(const std::string& what, int err) { return what + ": " + std::strerror(err); }

SteadyClock::time_point deadlineAfter(std::chrono::seconds timeout) {
  if (timeout <= 0s) return SteadyClock::time_point::max();
  return SteadyClock::now() + timeout;
}

Fd openDir(int atFd, const char* path) {
  return Fd(::openat(atFd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

std::string copyData(int in, int out, SteadyClock::time_point deadline) {
  std::array<char, 65536> buf;
  for (;;) {
    if (SteadyClock::now() >= deadline) return "timed out";
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoText("read");
    }
    if (n == 0) return {};
    if (!writeAll(out, std::string_view(buf.data(), static_cast<std::size_t>(n))))
      return errnoText("write");
  }
}

std::string readCapped(int fd, std::int64_t cap) {
  std::string data;
  std::array<char, 65536> buf;
  while (static_cast<std::int64_t>(data.size()) < cap) {
    auto want = std::min<std::int64_t>(static_cast<std::int64_t>(buf.size()),
                                       cap - static_cast<std::int64_t>(data.size()));
    ssize_t n = ::read(fd, buf.data(), static_cast<std::size_t>(want));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buf.data(), static_cast<std::size_t>(n));
  }
  return data;
}

}  // namespace tango::local
