#pragma once
// The TLS client of RedisClient and of the Docker attach connection
// (OpenSSL), over a socket of ours: non-blocking, every wait a poll()
// against the caller's deadline, and a BIO that never raises SIGPIPE. One
// implementation of the handshake, the retry loops around SSL_read and
// SSL_write, and the messages that say why a session failed.
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "tango/util/Socket.hpp"

namespace tango {

// A TLS step failed. The message is a whole reason ("server certificate
// rejected: ...", "TLS: <OpenSSL's error>", an errno's text) for the caller
// to put after what it was doing.
struct TlsError : std::runtime_error {
  explicit TlsError(const std::string& why, bool refused = false)
      : std::runtime_error(why), certificateRefused(refused) {}
  // The server ended the session with an alert about our certificate (none,
  // unknown CA, expired...). With TLS 1.3 this comes at the first read after
  // the handshake, since the client finishes its handshake first.
  bool certificateRefused;
};
// The deadline passed first.
struct TlsTimeout : TlsError {
  using TlsError::TlsError;
};

struct TlsFiles {
  std::string caFile;             // verifies the server; the system's CAs when empty
  std::string certFile, keyFile;  // our client certificate, when set
};

// The settings sessions share: CA, client certificate, TLS 1.2 or later,
// the server verified. Loading the files costs a read and a parse, so a
// client makes this once and shares it.
class TlsContext {
 public:
  // Throws TlsError ("cannot load CA file <path>: <OpenSSL's error>") when
  // a file cannot be loaded.
  explicit TlsContext(const TlsFiles& files);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

 private:
  friend class TlsSession;
  struct State;
  std::unique_ptr<State> state_;
};

// One client session over a connected non-blocking socket, which the caller
// keeps open (and does not read or write itself) while the session lives.
class TlsSession {
 public:
  // Throws TlsError when OpenSSL cannot make a session.
  TlsSession(std::shared_ptr<const TlsContext> context, int fd);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // The server's certificate must chain to the CA and name `host`: an IP
  // address is matched against the IP SANs, a name against the DNS names
  // (and sent as SNI). Throws TlsError ("TLS handshake failed: ..."),
  // TlsTimeout ("TLS handshake timed out").
  void handshake(const std::string& host, Deadline deadline);
  // Sends all of `bytes`. False when the server closed the connection first
  // (closeReason() says how). Throws TlsError, TlsTimeout.
  bool write(std::string_view bytes, Deadline deadline);
  // At least one byte into `buf`, or 0 once the server ended the stream
  // with close_notify. Throws TlsError (a socket closed without
  // close_notify: the stream may be cut short), TlsTimeout.
  std::size_t read(char* buf, std::size_t len, Deadline deadline);
  // Decrypted bytes held here, which poll() on the socket cannot see: read
  // them before waiting for more.
  std::size_t pending() const;
  // Whether a read now would find nothing at all: no byte, no end, no
  // error. Records that carry no data (TLS 1.3 session tickets) are
  // consumed on the way.
  bool quiet();
  // Sends close_notify: the server reads the end of our stream while ours
  // goes on (TLS's shutdown(SHUT_WR)). Does not wait: what the socket cannot
  // take now, the next read() sends.
  void shutdownWrite();
  // How the server closed the connection when write() returned false.
  const std::string& closeReason() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace tango
