#include "tango/docker/Attach.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <sstream>

#include "tango/docker/Engine.hpp"
#include "tango/docker/StreamDemux.hpp"
#include "tango/util/Socket.hpp"
#include "tango/util/TlsClient.hpp"

namespace tango::docker {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

namespace {

// A TLS step, its failures told as the engine's: what we were `doing`, then
// why (saying so when the engine refused our certificate).
template <class Step>
auto tlsStep(Step step, const std::string& doing) {
  try {
    return step();
  } catch (const TlsTimeout& e) {
    throw DockerTimeout(doing + e.what());
  } catch (const TlsError& e) {
    throw DockerError(doing + (e.certificateRefused ? "it refused our client certificate: " : "") +
                      e.what());
  }
}

}  // namespace

Attachment::Attachment(Fd fd, std::string engine)
    : fd_(std::move(fd)), engine_(std::move(engine)) {}
Attachment::~Attachment() = default;
Attachment::Attachment(Attachment&&) noexcept = default;
Attachment& Attachment::operator=(Attachment&&) noexcept = default;

Attachment Attachment::connect(const Endpoint& engine, Deadline deadline,
                               const std::string& unreachable) {
  Connected c = engine.tcp() ? connectTcp(engine.host, engine.port, deadline)
                             : connectUnix(engine.socketPath, deadline);
  if (c.timedOut) throw DockerTimeout(unreachable + c.error);
  if (!c.fd) throw DockerError(unreachable + c.error);
  Attachment att(std::move(c.fd), engine.describe());
  if (!engine.tcp()) return att;
  // The context is made per attach (one per job): reading three small
  // files costs little next to starting a container.
  tlsStep(
      [&] {
        auto context = std::make_shared<const TlsContext>(
            TlsFiles{engine.tlsCaFile, engine.tlsCertFile, engine.tlsKeyFile});
        att.tls_ = std::make_unique<TlsSession>(std::move(context), att.fd_.get());
        att.tls_->handshake(engine.host, deadline);
      },
      unreachable);
  return att;
}

Attachment Attachment::open(const Endpoint& engine, const std::string& apiVersion,
                            const std::string& container, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::string unreachable =
      "attach to " + container + ": cannot reach the Docker engine at " + engine.describe() + ": ";
  // Non-blocking throughout: every step below waits with poll() against the
  // deadline, so an engine that accepts and never answers cannot hang us.
  Attachment att = connect(engine, deadline, unreachable);

  http::request<http::empty_body> req{http::verb::post,
                                      "/v" + apiVersion + "/containers/" + urlEncode(container) +
                                          "/attach?stream=1&stdin=1&stdout=1&stderr=1",
                                      11};
  req.set(http::field::host, "docker");
  req.set(http::field::connection, "Upgrade");
  req.set(http::field::upgrade, "tcp");
  std::ostringstream text;
  text << req;
  // When the engine hangs up instead of reading, what it sent before says
  // why (TLS 1.3: the alert refusing our certificate comes after our
  // handshake is done), so the answer is read either way.
  att.send(text.str(), deadline, unreachable);

  // The answer's header, parsed by Beast as it arrives; what follows it is
  // already the container's stream.
  http::response_parser<http::empty_body> parser;
  std::string buf;
  char chunk[4096];
  while (!parser.is_header_done()) {
    const std::size_t n = att.readSome(chunk, sizeof chunk, deadline, unreachable);
    if (n == 0) throw DockerError(unreachable + "it closed the connection");
    buf.append(chunk, n);
    boost::system::error_code ec;
    const std::size_t used = parser.put(asio::buffer(buf), ec);
    if (ec && ec != http::error::need_more) throw DockerError(unreachable + ec.message());
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

bool Attachment::send(std::string_view bytes, Deadline deadline, const std::string& doing) {
  if (tls_) return tlsStep([&] { return tls_->write(bytes, deadline); }, doing);
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
    } else if (errno == EPIPE || errno == ECONNRESET) {
      return false;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!waitFor(fd_.get(), POLLOUT, deadline)) throw DockerTimeout(doing + "timed out");
    } else if (errno != EINTR) {
      throw DockerError(doing + errnoText(errno));
    }
  }
  return true;
}

std::size_t Attachment::readSome(char* buf, std::size_t len, Deadline deadline,
                                 const std::string& doing) {
  if (tls_) return tlsStep([&] { return tls_->read(buf, len, deadline); }, doing);
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), buf, len, MSG_DONTWAIT);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == ECONNRESET) return 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!waitFor(fd_.get(), POLLIN, deadline)) throw DockerTimeout(doing + "timed out");
    } else if (errno != EINTR) {
      throw DockerError(doing + errnoText(errno));
    }
  }
}

bool Attachment::write(std::string_view bytes, Deadline deadline) {
  return send(bytes, deadline, "writing the job to the container at " + engine_ + ": ");
}

void Attachment::closeStdin() {
  if (tls_)
    tls_->shutdownWrite();
  else
    ::shutdown(fd_.get(), SHUT_WR);
}

void Attachment::drain(const Sink& out, const Sink& err, Deadline deadline) {
  StreamDemux demux(out, err);
  if (!early_.empty()) demux.feed(std::exchange(early_, std::string()));
  char buf[64 * 1024];
  const std::string doing = "reading the container's output from " + engine_ + ": ";
  while (const std::size_t n = readSome(buf, sizeof buf, deadline, doing))
    demux.feed(std::string_view(buf, n));
}

}  // namespace tango::docker
