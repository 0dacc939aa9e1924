#pragma once
// The HTTP/1.1 front door (Boost.Beast, hidden behind a pimpl so only
// HttpServer.cpp pays for Beast's headers). Async: an idle keep-alive
// connection costs a socket and a few hundred bytes, not a thread. Request
// handling is delegated to an HttpHandler (TangoREST); handlers that may
// block run on a small worker pool so they never stall the I/O threads.
#include <cstdint>
#include <memory>

#include "tango/config/Config.hpp"
#include "tango/rest/Http.hpp"

namespace tango {

class HttpServer {
 public:
  // Binds and listens on cfg.host:cfg.port at once (port 0 = ephemeral; see
  // port()). Throws (boost::system::system_error, a std::runtime_error) when
  // the address cannot be bound.
  // `handler` must outlive the server.
  HttpServer(const Config& cfg, HttpHandler& handler, unsigned ioThreads = 2,
             unsigned workerThreads = 4);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port.
  std::uint16_t port() const;
  // Serves until stop(); the calling thread is one of the I/O threads.
  void run();
  // Makes run() return. Callable from any thread, before or during run(), and
  // from a signal handler (it only writes one byte to a pipe).
  void stop() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tango
