#include "tango/docker/Attach.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <cstring>

#include "tango/docker/Engine.hpp"
#include "tango/docker/StreamDemux.hpp"

namespace tango::docker {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
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
  const std::string target = "/v" + apiVersion + "/containers/" + urlEncode(container) +
                             "/attach?stream=1&stdin=1&stdout=1&stderr=1";
  asio::io_context io;
  asio::local::stream_protocol::socket sock(io);
  boost::system::error_code ec;
  sock.connect(asio::local::stream_protocol::endpoint(socketPath), ec);
  if (ec)
    throw DockerError("attach to " + container + ": cannot reach the Docker engine at " +
                      socketPath + ": " + ec.message());
  // The request and its answer are small: bound them with socket timeouts.
  const long long ms = std::max<long long>(timeout.count(), 1);
  timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
  ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  http::request<http::empty_body> req{http::verb::post, target, 11};
  req.set(http::field::host, "docker");
  req.set(http::field::connection, "Upgrade");
  req.set(http::field::upgrade, "tcp");
  http::write(sock, req, ec);
  beast::flat_buffer buf;
  http::response_parser<http::empty_body> parser;
  if (!ec) http::read_header(sock, buf, parser, ec);
  if (ec) {
    const bool timedOut = ec == asio::error::would_block || ec == asio::error::try_again ||
                          ec == asio::error::timed_out;
    const std::string what = "attach to " + container + ": " + ec.message();
    if (timedOut) throw DockerTimeout(what);
    throw DockerError(what);
  }
  const auto status = parser.get().result_int();
  // 101 with the upgrade; engines that ignore it answer 200 and stream anyway.
  if (status != 101 && status != 200) {
    throw EngineError(status,
                      "POST /containers/" + container + "/attach: HTTP " + std::to_string(status));
  }
  std::string early(static_cast<const char*>(buf.data().data()), buf.data().size());
  return Attachment(Fd(sock.release()), std::move(early));
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
