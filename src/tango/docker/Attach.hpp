#pragma once
// A container's stdin, stdout and stderr over one hijacked connection: the
// Engine API's attach endpoint answers "101 UPGRADED" (the exchange is
// written and parsed with Boost.Beast, over a non-blocking socket waited on
// with poll() against a deadline) and the connection then carries raw bytes
// both ways (stdin in; stdout and stderr out, multiplexed as in
// StreamDemux). The engine is a unix socket, or TCP with TLS and a client
// certificate (Endpoint.hpp). This is how the service hands a waiting
// autodriver its job (autodriver -S) without an exec or an archive call.
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "tango/docker/Endpoint.hpp"
#include "tango/util/Fd.hpp"

namespace tango {
class TlsSession;
}

namespace tango::docker {

class Attachment {
 public:
  using Sink = std::function<void(std::string_view)>;
  using Deadline = std::chrono::steady_clock::time_point;

  // POST /v<apiVersion>/containers/<name>/attach?stream=1&stdin=1&stdout=1&stderr=1
  // with "Upgrade: tcp". Throws EngineError for an HTTP error (404: no such
  // container), DockerError when the engine cannot be reached or refuses
  // the TLS session (the message names it: engine.describe()), DockerTimeout.
  static Attachment open(const Endpoint& engine, const std::string& apiVersion,
                         const std::string& container, std::chrono::milliseconds timeout);
  ~Attachment();
  Attachment(Attachment&&) noexcept;
  Attachment& operator=(Attachment&&) noexcept;

  // Writes all of `bytes` to the container's stdin. False when the container
  // closed it first (its process exited early: drain() then tells why).
  bool write(std::string_view bytes, Deadline deadline);
  // Ends stdin: with StdinOnce the engine closes the container's stdin.
  // Over TLS this is close_notify (the engine reads the end of our stream);
  // the output still comes.
  void closeStdin();
  // Reads stdout and stderr until the container closes them (it exited).
  // Throws DockerTimeout at the deadline.
  void drain(const Sink& out, const Sink& err, Deadline deadline);
  // The connection's socket: shutdown(2) of it from another thread ends a
  // write or drain at once (an engine that stopped answering).
  int socket() const { return fd_.get(); }

 private:
  Attachment(Fd fd, std::string engine);
  // The socket, and over TCP the TLS session, handshake done.
  static Attachment connect(const Endpoint& engine, Deadline deadline,
                            const std::string& unreachable);
  // All of `bytes`; false when the engine closed the connection first.
  // Throws DockerTimeout, DockerError; their messages start with `doing`.
  bool send(std::string_view bytes, Deadline deadline, const std::string& doing);
  // Some bytes (at least one), or 0 once the engine ended the stream. Reads
  // before it waits: a TLS session may hold bytes that poll() cannot see.
  // Throws as send().
  std::size_t readSome(char* buf, std::size_t len, Deadline deadline, const std::string& doing);

  Fd fd_;
  std::unique_ptr<TlsSession> tls_;  // for a TCP engine; declared after fd_, so freed first
  std::string early_;                // stream bytes that arrived with the response header
  std::string engine_;               // engine.describe(), for messages
};

}  // namespace tango::docker
