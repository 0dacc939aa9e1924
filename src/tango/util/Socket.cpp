#include "tango/util/Socket.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <system_error>

namespace tango {
namespace {

using Clock = std::chrono::steady_clock;

struct AddrInfoFree {
  void operator()(addrinfo* a) const { freeaddrinfo(a); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoFree>;

// Connects a fresh socket to one address by `deadline`.
Connected connectOne(int family, const sockaddr* addr, socklen_t len, Deadline deadline) {
  Connected c;
  c.fd.reset(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!c.fd) {
    c.error = "socket: " + errnoText(errno);
    return c;
  }
  // EINTR: the connect goes on in the background, as with EINPROGRESS.
  // (EAGAIN, a unix listener's full backlog, is a failure: nothing goes on.)
  if (::connect(c.fd.get(), addr, len) != 0 && errno != EINPROGRESS && errno != EINTR) {
    c.error = "connect: " + errnoText(errno);
  } else if (!waitFor(c.fd.get(), POLLOUT, deadline)) {
    c.error = "connect timed out";
    c.timedOut = true;
  } else {
    int err = 0;
    socklen_t errLen = sizeof err;
    if (::getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &errLen) != 0) err = errno;
    if (err != 0) c.error = "connect: " + errnoText(err);
  }
  if (!c.error.empty()) c.fd.reset();
  return c;
}

}  // namespace

bool waitFor(int fd, short events, Deadline deadline) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, INT_MAX)));
    if (rc > 0) return true;  // also on POLLERR/POLLHUP: the next call says what
    if (rc < 0 && errno != EINTR) return true;
  }
}

std::string errnoText(int e) { return std::system_category().message(e); }

Connected connectUnix(const std::string& path, Deadline deadline) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) return {Fd(), "socket path too long"};
  std::memcpy(sa.sun_path, path.data(), path.size());
  return connectOne(AF_UNIX, reinterpret_cast<const sockaddr*>(&sa), sizeof sa, deadline);
}

Connected connectTcp(const std::string& host, int port, Deadline deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  const AddrInfoPtr list(found);
  if (rc != 0)
    return {Fd(), "cannot resolve " + host + ": " +
                      (rc == EAI_SYSTEM ? errnoText(errno) : std::string(gai_strerror(rc)))};
  Connected c{Fd(), "no address"};
  for (const addrinfo* a = list.get(); a != nullptr; a = a->ai_next) {
    c = connectOne(a->ai_family, a->ai_addr, a->ai_addrlen, deadline);
    if (c.fd) break;
  }
  if (!c.fd) return c;
  // Requests are small writes answered at once: Nagle would hold a write's
  // tail until the previous segment is acknowledged. Keepalive lets the
  // kernel notice a peer that vanished while we were idle.
  const int on = 1;
  ::setsockopt(c.fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  ::setsockopt(c.fd.get(), SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  return c;
}

}  // namespace tango
