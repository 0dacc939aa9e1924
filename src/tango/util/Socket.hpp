#pragma once
// Stream sockets as RedisClient and the Docker attach connection use them:
// non-blocking from the start, every wait a poll() against a deadline, so a
// peer that accepts and then never answers cannot hang the caller.
#include <chrono>
#include <string>

#include "tango/util/Fd.hpp"

namespace tango {

using Deadline = std::chrono::steady_clock::time_point;

// Waits until `fd` is ready for `events` (POLLIN, POLLOUT) or `deadline`
// passes (false). Also true on POLLERR/POLLHUP: the next call on fd says what.
bool waitFor(int fd, short events, Deadline deadline);

// strerror, thread-safe.
std::string errnoText(int e);

// A connected non-blocking socket, or (fd empty) why not, for a message.
struct Connected {
  Fd fd;
  std::string error;
  bool timedOut = false;  // the deadline passed first
};

Connected connectUnix(const std::string& path, Deadline deadline);
// Each address of `host` in turn (no lookup for an IP address; a name's
// lookup is not bounded by the deadline). TCP_NODELAY and SO_KEEPALIVE set.
Connected connectTcp(const std::string& host, int port, Deadline deadline);

}  // namespace tango
