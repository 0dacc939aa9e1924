#pragma once
// A container's stdin, stdout and stderr over one hijacked connection: the
// Engine API's attach endpoint answers "101 UPGRADED" (the exchange is
// written and parsed with Boost.Beast, over a non-blocking socket waited on
// with poll() against a deadline) and the socket then
// carries raw bytes both ways (stdin in; stdout and stderr out, multiplexed
// as in StreamDemux). This is how the service hands a waiting autodriver its
// job (autodriver -S) without an exec or an archive call.
#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "tango/util/Fd.hpp"

namespace tango::docker {

class Attachment {
 public:
  using Sink = std::function<void(std::string_view)>;
  using Deadline = std::chrono::steady_clock::time_point;

  // POST /v<apiVersion>/containers/<name>/attach?stream=1&stdin=1&stdout=1&stderr=1
  // with "Upgrade: tcp". Throws EngineError for an HTTP error (404: no such
  // container), DockerError when the engine cannot be reached, DockerTimeout.
  static Attachment open(const std::string& socketPath, const std::string& apiVersion,
                         const std::string& container, std::chrono::milliseconds timeout);

  // Writes all of `bytes` to the container's stdin. False when the container
  // closed it first (its process exited early: drain() then tells why).
  bool write(std::string_view bytes, Deadline deadline);
  // Ends stdin: with StdinOnce the engine closes the container's stdin.
  void closeStdin();
  // Reads stdout and stderr until the container closes them (it exited).
  // Throws DockerTimeout at the deadline.
  void drain(const Sink& out, const Sink& err, Deadline deadline);

 private:
  Attachment(Fd fd, std::string early) : fd_(std::move(fd)), early_(std::move(early)) {}
  Fd fd_;
  std::string early_;  // stream bytes that arrived with the response header
};

}  // namespace tango::docker
