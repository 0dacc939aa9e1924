#include "tango/util/TlsClient.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <utility>

namespace tango {
namespace {

struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct BioMethodFree {
  void operator()(BIO_METHOD* m) const { BIO_meth_free(m); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using BioMethodPtr = std::unique_ptr<BIO_METHOD, BioMethodFree>;

// The first error on this thread's OpenSSL queue, and the queue emptied, so a
// stale entry never explains a later failure.
std::string opensslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// Whether the error about to be reported is an alert the server sent about
// our certificate.
bool certificateAlertQueued() {
  const unsigned long e = ERR_peek_error();
  if (ERR_GET_LIB(e) != ERR_LIB_SSL) return false;
  switch (ERR_GET_REASON(e)) {
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      return true;
    default:
      return false;
  }
}

bool isIpAddress(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// The socket as our BIO sees it, and what its last read or write found (for
// messages: OpenSSL reports both as SSL_ERROR_SYSCALL).
struct SocketState {
  int fd = -1;
  bool eof = false;
  int error = 0;
};

// A BIO over our nonblocking socket. OpenSSL's own socket BIO writes with
// write(2), which raises SIGPIPE when the server has gone; this one uses
// send(MSG_NOSIGNAL), so a client does not depend on the process ignoring
// SIGPIPE.
int bioWrite(BIO* bio, const char* data, std::size_t len, std::size_t* written) {
  auto* s = static_cast<SocketState*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  for (;;) {
    const ssize_t n = ::send(s->fd, data, len, MSG_NOSIGNAL);
    if (n >= 0) {
      *written = static_cast<std::size_t>(n);
      return 1;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      BIO_set_retry_write(bio);
    else
      s->error = errno;
    return 0;
  }
}

int bioRead(BIO* bio, char* data, std::size_t len, std::size_t* readBytes) {
  auto* s = static_cast<SocketState*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  for (;;) {
    const ssize_t n = ::recv(s->fd, data, len, 0);
    if (n > 0) {
      *readBytes = static_cast<std::size_t>(n);
      return 1;
    }
    if (n == 0) {
      s->eof = true;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      BIO_set_retry_read(bio);
    else
      s->error = errno;
    return 0;
  }
}

long bioCtrl(BIO* bio, int cmd, long, void*) {
  // OpenSSL flushes after each handshake flight and asks for EOF to tell a
  // truncated stream from a retry; nothing else applies to a plain socket.
  if (cmd == BIO_CTRL_FLUSH) return 1;
  if (cmd == BIO_CTRL_EOF) return static_cast<SocketState*>(BIO_get_data(bio))->eof ? 1 : 0;
  return 0;
}

}  // namespace

struct TlsContext::State {
  SslCtxPtr ctx;
  BioMethodPtr bioMethod;
};

TlsContext::TlsContext(const TlsFiles& files) : state_(std::make_unique<State>()) {
  auto setupError = [](const std::string& what) { return TlsError(what + ": " + opensslError()); };
  state_->ctx.reset(SSL_CTX_new(TLS_client_method()));
  SSL_CTX* ctx = state_->ctx.get();
  if (!ctx) throw setupError("cannot create a TLS context");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  // Partial writes let write() advance through a large request as the
  // socket takes it, like send(2) does.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
  if (!files.caFile.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, files.caFile.c_str(), nullptr) != 1)
      throw setupError("cannot load CA file " + files.caFile);
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    throw setupError("cannot load the system's CA certificates");
  }
  if (!files.certFile.empty() &&
      SSL_CTX_use_certificate_chain_file(ctx, files.certFile.c_str()) != 1)
    throw setupError("cannot load certificate " + files.certFile);
  if (!files.keyFile.empty() &&
      (SSL_CTX_use_PrivateKey_file(ctx, files.keyFile.c_str(), SSL_FILETYPE_PEM) != 1 ||
       SSL_CTX_check_private_key(ctx) != 1))
    throw setupError("cannot use key " + files.keyFile);

  state_->bioMethod.reset(BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tango socket"));
  BIO_METHOD* m = state_->bioMethod.get();
  if (!m || BIO_meth_set_write_ex(m, bioWrite) != 1 || BIO_meth_set_read_ex(m, bioRead) != 1 ||
      BIO_meth_set_ctrl(m, bioCtrl) != 1)
    throw setupError("cannot create a BIO method");
}

TlsContext::~TlsContext() = default;

struct TlsSession::State {
  std::shared_ptr<const TlsContext> context;  // the BIO method outlives our BIO
  SocketState sock;
  SslPtr ssl;  // declared after sock, so freed first
  bool shutdownPending = false;
  std::string closeReason;

  // Why an SSL_* call returned `rc`, after `doing`.
  TlsError failure(int rc, const std::string& doing = "") const {
    const int err = SSL_get_error(ssl.get(), rc);
    const long verify = SSL_get_verify_result(ssl.get());
    if (verify != X509_V_OK) {
      ERR_clear_error();
      return TlsError(doing +
                      "server certificate rejected: " + X509_verify_cert_error_string(verify));
    }
    if (err == SSL_ERROR_SSL) {
      const bool refused = certificateAlertQueued();
      return TlsError(doing + "TLS: " + opensslError(), refused);
    }
    if (err == SSL_ERROR_ZERO_RETURN || sock.eof)
      return TlsError(doing + "connection closed by server");
    if (sock.error != 0) return TlsError(doing + errnoText(sock.error));
    return TlsError(doing + "TLS error " + std::to_string(err));
  }

  // Waits for what OpenSSL needs after `rc` (a renegotiation or a TLS 1.3
  // key update can make a write read, and a read write). False when it needs
  // nothing: `rc` was a failure.
  bool await(int rc, Deadline deadline, const char* timedOut) const {
    const int err = SSL_get_error(ssl.get(), rc);
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) return false;
    if (!waitFor(sock.fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline))
      throw TlsTimeout(timedOut);
    return true;
  }

  // Sends close_notify, or keeps it for later when the socket cannot take it
  // now. Other failures are left for the next read to tell.
  bool sendCloseNotify() {
    ERR_clear_error();
    const int rc = SSL_shutdown(ssl.get());
    shutdownPending = rc < 0 && SSL_get_error(ssl.get(), rc) == SSL_ERROR_WANT_WRITE;
    ERR_clear_error();
    return !shutdownPending;
  }
};

TlsSession::TlsSession(std::shared_ptr<const TlsContext> context, int fd)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.context = std::move(context);
  s.sock.fd = fd;
  s.ssl.reset(SSL_new(s.context->state_->ctx.get()));
  if (!s.ssl) throw TlsError("cannot create a TLS session: " + opensslError());
  BIO* bio = BIO_new(s.context->state_->bioMethod.get());
  if (!bio) throw TlsError("cannot create a TLS session: " + opensslError());
  BIO_set_data(bio, &s.sock);
  BIO_set_init(bio, 1);
  SSL_set_bio(s.ssl.get(), bio, bio);  // the session owns the BIO from here
}

TlsSession::~TlsSession() = default;

void TlsSession::handshake(const std::string& host, Deadline deadline) {
  SSL* ssl = state_->ssl.get();
  // Being signed by the CA is not enough: the certificate must name the
  // host we meant.
  if (isIpAddress(host)) {
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) != 1)
      throw TlsError("bad IP address for TLS: " + opensslError());
  } else if (SSL_set_tlsext_host_name(ssl, host.c_str()) != 1 ||
             SSL_set1_host(ssl, host.c_str()) != 1) {
    throw TlsError("bad host name for TLS: " + opensslError());
  }
  for (;;) {
    ERR_clear_error();
    const int rc = SSL_connect(ssl);
    if (rc == 1) return;
    if (!state_->await(rc, deadline, "TLS handshake timed out"))
      throw state_->failure(rc, "TLS handshake failed: ");
  }
}

bool TlsSession::write(std::string_view bytes, Deadline deadline) {
  State& s = *state_;
  while (!bytes.empty()) {
    ERR_clear_error();
    std::size_t n = 0;
    const int rc = SSL_write_ex(s.ssl.get(), bytes.data(), bytes.size(), &n);
    if (rc == 1) {
      bytes.remove_prefix(n);
      continue;
    }
    if (s.await(rc, deadline, "timed out")) continue;
    const int err = SSL_get_error(s.ssl.get(), rc);
    const bool gone = err == SSL_ERROR_ZERO_RETURN ||
                      (err == SSL_ERROR_SYSCALL &&
                       (s.sock.eof || s.sock.error == EPIPE || s.sock.error == ECONNRESET));
    if (!gone) throw s.failure(rc);
    s.closeReason = s.failure(rc).what();
    return false;
  }
  return true;
}

std::size_t TlsSession::read(char* buf, std::size_t len, Deadline deadline) {
  State& s = *state_;
  for (;;) {
    if (s.shutdownPending && !s.sendCloseNotify()) {
      if (!waitFor(s.sock.fd, POLLOUT, deadline)) throw TlsTimeout("timed out");
      continue;
    }
    ERR_clear_error();
    std::size_t n = 0;
    const int rc = SSL_read_ex(s.ssl.get(), buf, len, &n);
    if (rc == 1) return n;
    if (s.await(rc, deadline, "timed out")) continue;
    const int err = SSL_get_error(s.ssl.get(), rc);
    if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && s.sock.eof)) return 0;
    throw s.failure(rc);
  }
}

std::size_t TlsSession::pending() const {
  return static_cast<std::size_t>(SSL_pending(state_->ssl.get()));
}

bool TlsSession::quiet() {
  ERR_clear_error();
  char c;
  std::size_t n = 0;
  const int rc = SSL_peek_ex(state_->ssl.get(), &c, 1, &n);
  const bool quiet = rc != 1 && SSL_get_error(state_->ssl.get(), rc) == SSL_ERROR_WANT_READ;
  ERR_clear_error();
  return quiet;
}

void TlsSession::shutdownWrite() { state_->sendCloseNotify(); }

const std::string& TlsSession::closeReason() const { return state_->closeReason; }

}  // namespace tango
