#include "tango/docker/Attach.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "tango/docker/Engine.hpp"
#include "tango/docker/StreamDemux.hpp"

namespace tango::docker {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

namespace {

// Milliseconds left until `deadline` for poll(); 0 once it has passed.
int msLeft(Attachment::Deadline deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(std::min<long long>(left.count(), 1 << 30));
}

// Waits for `events` on `fd`; false when the deadline passed first.
bool waitFor(int fd, short events, Attachment::Deadline deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, msLeft(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) throw DockerError(std::string("poll: ") + std::strerror(errno));
  }
}

}  // namespace

Attachment Attachment::open(const std::string& socketPath, const std::string& apiVersion,
                            const std::string& container, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::string what = "attach to " + container;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socketPath.size() >= sizeof addr.sun_path)
    throw DockerError(what + ": socket path too long: " + socketPath);
  std::memcpy(addr.sun_path, socketPath.data(), socketPath.size());
  // Non-blocking throughout: every step below waits with poll() against the
  // deadline, so an engine that accepts and never answers cannot hang us.
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) throw DockerError(what + ": socket: " + std::strerror(errno));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EAGAIN && errno != EINPROGRESS)
      throw DockerError(what + ": cannot reach the Docker engine at " + socketPath + ": " +
                        std::strerror(errno));
    if (!waitFor(fd.get(), POLLOUT, deadline)) throw DockerTimeout(what + ": connect timed out");
  }

  http::request<http::empty_body> req{http::verb::post,
                                      "/v" + apiVersion + "/containers/" + urlEncode(container) +
                                          "/attach?stream=1&stdin=1&stdout=1&stderr=1",
                                      11};
  req.set(http::field::host, "docker");
  req.set(http::field::connection, "Upgrade");
  req.set(http::field::upgrade, "tcp");
  std::ostringstream text;
  text << req;
  Attachment att(std::move(fd), "");
  if (!att.write(text.str(), deadline)) throw DockerError(what + ": the engine hung up");

  // The answer's header, parsed by Beast as it arrives; what follows it is
  // already the container's stream.
  http::response_parser<http::empty_body> parser;
  std::string buf;
  char chunk[4096];
  while (!parser.is_header_done()) {
    if (!waitFor(att.fd_.get(), POLLIN, deadline))
      throw DockerTimeout(what + ": no answer in time");
    const ssize_t n = ::recv(att.fd_.get(), chunk, sizeof chunk, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) throw DockerError(what + ": the engine closed the connection");
    buf.append(chunk, static_cast<std::size_t>(n));
    boost::system::error_code ec;
    const std::size_t used = parser.put(asio::buffer(buf), ec);
    if (ec && ec != http::error::need_more) throw DockerError(what + ": " + ec.message());
    buf.erase(0, used);
  }
  const auto status = parser.get().result_int();
  // 101 with the upgrade; engines that ignore it answer 200 and stream anyway.
  if (status != 101 && status != 200)
    throw EngineError(status,
                      "POST /containers/" + container + "/attach: HTTP " + std::to_string(status));
  att.early_ = std::move(buf);
  return att;
}

bool Attachment::write(std::string_view bytes, Deadline deadline) {
  while (!bytes.empty()) {
    if (!waitFor(fd_.get(), POLLOUT, deadline))
      throw DockerTimeout("writing the job to the container timed out");
    const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == EPIPE || errno == ECONNRESET) return false;
      throw DockerError(std::string("writing the job to the container: ") + std::strerror(errno));
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void Attachment::closeStdin() { ::shutdown(fd_.get(), SHUT_WR); }

void Attachment::drain(const Sink& out, const Sink& err, Deadline deadline) {
  StreamDemux demux(out, err);
  if (!early_.empty()) demux.feed(std::exchange(early_, std::string()));
  char buf[64 * 1024];
  for (;;) {
    if (!waitFor(fd_.get(), POLLIN, deadline))
      throw DockerTimeout("the container's output did not end in time");
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == ECONNRESET) return;
      throw DockerError(std::string("reading the container's output: ") + std::strerror(errno));
    }
    demux.feed(std::string_view(buf, static_cast<std::size_t>(n)));
  }
}

}  // namespace tango::docker
