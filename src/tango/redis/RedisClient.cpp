#include "tango/redis/RedisClient.hpp"

// hiredis 0.14 declares redisReaderCreate, freeReplyObject and the formatting
// functions in hiredis.h; read.h has only the parser's core.
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string_view>
#include <system_error>
#include <utility>

#include "tango/util/Fd.hpp"
#include "tango/util/Sha256.hpp"

namespace tango {
namespace {

using Clock = std::chrono::steady_clock;

struct ReaderFree {
  void operator()(redisReader* r) const { redisReaderFree(r); }
};
struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
struct CommandFree {
  void operator()(char* c) const { redisFreeCommand(c); }
};
struct AddrInfoFree {
  void operator()(addrinfo* a) const { freeaddrinfo(a); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct BioMethodFree {
  void operator()(BIO_METHOD* m) const { BIO_meth_free(m); }
};
using ReaderPtr = std::unique_ptr<redisReader, ReaderFree>;
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;
using CommandPtr = std::unique_ptr<char, CommandFree>;
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using BioMethodPtr = std::unique_ptr<BIO_METHOD, BioMethodFree>;

std::string errnoText(int e) { return std::system_category().message(e); }

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

// Waits until `fd` is ready for `events` or `deadline` passes (false).
bool waitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, INT_MAX)));
    if (rc > 0) return true;  // also on POLLERR/POLLHUP: the next call says what
    if (rc < 0 && errno != EINTR) return true;
  }
}

// Connects a fresh nonblocking socket to one address by `deadline`: "" on
// success, else why not.
std::string connectOne(Fd& fd, int family, const sockaddr* addr, socklen_t len,
                       Clock::time_point deadline) {
  fd.reset(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return "socket: " + errnoText(errno);
  // EINTR: the connect goes on in the background, as with EINPROGRESS.
  if (::connect(fd.get(), addr, len) != 0 && errno != EINPROGRESS && errno != EINTR)
    return "connect: " + errnoText(errno);
  if (!waitFor(fd.get(), POLLOUT, deadline)) return "connect timed out";
  int err = 0;
  socklen_t errLen = sizeof err;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &errLen) != 0) err = errno;
  return err == 0 ? "" : "connect: " + errnoText(err);
}

bool isIpAddress(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string formatCommand(const std::vector<std::string>& args) {
  if (args.empty()) throw std::invalid_argument("a Redis command needs at least its name");
  // hiredis 0.14 returns the length as an int: refuse what it cannot count
  // (each argument adds at most 25 bytes of "$<len>\r\n...\r\n").
  std::size_t bound = 25;
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto& a : args) {
    bound += a.size() + 25;
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  if (bound > INT_MAX) throw std::invalid_argument("Redis command larger than 2 GB");
  char* out = nullptr;
  const int len =
      redisFormatCommandArgv(&out, static_cast<int>(args.size()), argv.data(), lens.data());
  const CommandPtr owned(out);
  if (len < 0 || out == nullptr) throw std::bad_alloc();
  return std::string(out, static_cast<std::size_t>(len));
}

RedisReply convert(const redisReply& r) {
  RedisReply out;
  switch (r.type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::String;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::Status;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::Error;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::Integer;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::Array;
      out.elements.reserve(r.elements);
      // No deep recursion: the 0.14 reader refuses nesting deeper than 7.
      for (std::size_t i = 0; i < r.elements; ++i) out.elements.push_back(convert(*r.element[i]));
      break;
    default:  // REDIS_REPLY_NIL (also a nil array, *-1)
      break;
  }
  return out;
}

// The socket as our TLS BIO sees it, and what its last read or write found
// (for messages: OpenSSL reports both as SSL_ERROR_SYSCALL).
struct SocketState {
  int fd = -1;
  bool eof = false;
  int error = 0;
};

// A BIO over our nonblocking socket. OpenSSL's own socket BIO writes with
// write(2), which raises SIGPIPE when the server has gone; this one uses
// send(MSG_NOSIGNAL) like the plain path, so the client does not depend on
// the process ignoring SIGPIPE.
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

struct RedisClient::TlsContext {
  SslCtxPtr ctx;
  BioMethodPtr bioMethod;
};

struct RedisClient::Connection {
  explicit Connection(std::string addr) : address(std::move(addr)) {}

  std::string address;  // for messages
  Fd fd;
  SocketState sock;  // fd as the TLS BIO sees it
  SslPtr ssl;        // null without TLS; declared after fd and sock, so freed first
  ReaderPtr reader;  // hiredis's parser, with whatever part of a reply has come

  [[noreturn]] void fail(const std::string& why) const {
    throw RedisUnavailable("Redis at " + address + " is unreachable: " + why);
  }

  void wait(short events, Clock::time_point deadline, const char* timedOut) const {
    if (!waitFor(fd.get(), events, deadline)) fail(timedOut);
  }

  // Why an SSL_* call returned `rc`, for a message.
  std::string tlsFailure(int rc) const {
    const int err = SSL_get_error(ssl.get(), rc);
    const long verify = SSL_get_verify_result(ssl.get());
    if (verify != X509_V_OK) {
      ERR_clear_error();
      return std::string("server certificate rejected: ") + X509_verify_cert_error_string(verify);
    }
    if (err == SSL_ERROR_SSL) return "TLS: " + opensslError();
    if (err == SSL_ERROR_ZERO_RETURN || sock.eof) return "connection closed by server";
    if (sock.error != 0) return errnoText(sock.error);
    return "TLS error " + std::to_string(err);
  }

  void startTls(const TlsContext& tls, const std::string& host, Clock::time_point deadline) {
    ssl.reset(SSL_new(tls.ctx.get()));
    if (!ssl) fail("cannot create a TLS session: " + opensslError());
    BIO* bio = BIO_new(tls.bioMethod.get());
    if (!bio) fail("cannot create a TLS session: " + opensslError());
    sock.fd = fd.get();
    BIO_set_data(bio, &sock);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl.get(), bio, bio);  // the session owns the BIO from here
    // The certificate must name the host we meant; being signed by the CA is
    // not enough. An IP address is matched against the IP SANs, a name
    // against the DNS names (and sent as SNI).
    if (isIpAddress(host)) {
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), host.c_str()) != 1)
        fail("bad IP address for TLS: " + opensslError());
    } else if (SSL_set_tlsext_host_name(ssl.get(), host.c_str()) != 1 ||
               SSL_set1_host(ssl.get(), host.c_str()) != 1) {
      fail("bad host name for TLS: " + opensslError());
    }
    for (;;) {
      ERR_clear_error();
      const int rc = SSL_connect(ssl.get());
      if (rc == 1) return;
      const int err = SSL_get_error(ssl.get(), rc);
      if (err == SSL_ERROR_WANT_READ)
        wait(POLLIN, deadline, "TLS handshake timed out");
      else if (err == SSL_ERROR_WANT_WRITE)
        wait(POLLOUT, deadline, "TLS handshake timed out");
      else
        fail("TLS handshake failed: " + tlsFailure(rc));
    }
  }

  void writeAll(std::string_view data, Clock::time_point deadline) {
    while (!data.empty()) {
      std::size_t n = 0;
      if (ssl) {
        ERR_clear_error();
        const int rc = SSL_write_ex(ssl.get(), data.data(), data.size(), &n);
        if (rc != 1) {
          const int err = SSL_get_error(ssl.get(), rc);
          if (err == SSL_ERROR_WANT_WRITE)
            wait(POLLOUT, deadline, "timed out sending a command");
          else if (err == SSL_ERROR_WANT_READ)  // a renegotiation, or a TLS 1.3 key update
            wait(POLLIN, deadline, "timed out sending a command");
          else
            fail("sending a command: " + tlsFailure(rc));
          continue;
        }
      } else {
        const ssize_t sent = ::send(fd.get(), data.data(), data.size(), MSG_NOSIGNAL);
        if (sent < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK)
            wait(POLLOUT, deadline, "timed out sending a command");
          else if (errno != EINTR)
            fail("sending a command: " + errnoText(errno));
          continue;
        }
        n = static_cast<std::size_t>(sent);
      }
      data.remove_prefix(n);
    }
  }

  // Some bytes (at least one) by `deadline`. Reads first and polls only when
  // nothing is there: TLS may hold decrypted bytes poll cannot see.
  std::size_t readSome(char* buf, std::size_t len, Clock::time_point deadline) {
    for (;;) {
      if (ssl) {
        ERR_clear_error();
        std::size_t n = 0;
        const int rc = SSL_read_ex(ssl.get(), buf, len, &n);
        if (rc == 1) return n;
        const int err = SSL_get_error(ssl.get(), rc);
        if (err == SSL_ERROR_WANT_READ)
          wait(POLLIN, deadline, "no reply within the timeout");
        else if (err == SSL_ERROR_WANT_WRITE)
          wait(POLLOUT, deadline, "no reply within the timeout");
        else
          fail("reading a reply: " + tlsFailure(rc));
      } else {
        const ssize_t n = ::recv(fd.get(), buf, len, 0);
        if (n > 0) return static_cast<std::size_t>(n);
        if (n == 0) fail("connection closed by server");
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          wait(POLLIN, deadline, "no reply within the timeout");
        else if (errno != EINTR)
          fail("reading a reply: " + errnoText(errno));
      }
    }
  }

  RedisReply readReply(Clock::time_point deadline) {
    for (;;) {
      void* raw = nullptr;
      // Not REDIS_OK only for a protocol error; a reply not complete yet is
      // REDIS_OK with no reply.
      if (redisReaderGetReply(reader.get(), &raw) != REDIS_OK)
        fail(std::string("protocol error: ") + reader->errstr);
      if (raw != nullptr) {
        const ReplyPtr reply(static_cast<redisReply*>(raw));
        return convert(*reply);
      }
      char buf[16 * 1024];
      const std::size_t n = readSome(buf, sizeof buf, deadline);
      if (redisReaderFeed(reader.get(), buf, n) != REDIS_OK)
        fail(std::string("protocol error: ") + reader->errstr);
    }
  }

  // Bytes received beyond the replies asked for, already in the TLS session
  // or hiredis's buffer (the 0.14 reader keeps its cursor in pos, its data
  // length in len).
  bool hasUnreadBytes() const {
    return (ssl && SSL_pending(ssl.get()) > 0) || reader->pos < reader->len;
  }

  // Whether an idle connection can still be used. Redis sends nothing
  // unasked (we do not do pub/sub), so anything readable means the server
  // closed it (restart, client timeout, CLIENT KILL), except with TLS, where
  // a session ticket may arrive after the handshake.
  bool idleAndAlive() {
    if (hasUnreadBytes()) return false;
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return true;
    char c;
    if (!ssl) {
      const ssize_t n = ::recv(fd.get(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    ERR_clear_error();
    std::size_t n = 0;
    const int rc = SSL_peek_ex(ssl.get(), &c, 1, &n);
    const bool alive = rc != 1 && SSL_get_error(ssl.get(), rc) == SSL_ERROR_WANT_READ;
    ERR_clear_error();
    return alive;
  }
};

RedisClient::RedisClient(RedisOptions options) : options_(std::move(options)) {
  if (!options_.tls) return;
  // Made once: loading the CA and key files per connect would cost a file
  // read and parse each time, and a missing file is a configuration error
  // best reported at startup.
  auto setupError = [](const std::string& what) {
    return std::runtime_error("Redis TLS setup: " + what + ": " + opensslError());
  };
  tls_ = std::make_unique<TlsContext>();
  tls_->ctx.reset(SSL_CTX_new(TLS_client_method()));
  SSL_CTX* ctx = tls_->ctx.get();
  if (!ctx) throw setupError("cannot create a TLS context");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  // Partial writes let writeAll advance through a large pipeline as the
  // socket takes it, like send(2) does.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
  if (!options_.tlsCaFile.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, options_.tlsCaFile.c_str(), nullptr) != 1)
      throw setupError("cannot load CA file " + options_.tlsCaFile);
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    throw setupError("cannot load the system's CA certificates");
  }
  if (!options_.tlsCertFile.empty() &&
      SSL_CTX_use_certificate_chain_file(ctx, options_.tlsCertFile.c_str()) != 1)
    throw setupError("cannot load certificate " + options_.tlsCertFile);
  if (!options_.tlsKeyFile.empty() &&
      (SSL_CTX_use_PrivateKey_file(ctx, options_.tlsKeyFile.c_str(), SSL_FILETYPE_PEM) != 1 ||
       SSL_CTX_check_private_key(ctx) != 1))
    throw setupError("cannot use key " + options_.tlsKeyFile);

  tls_->bioMethod.reset(
      BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tango redis socket"));
  BIO_METHOD* m = tls_->bioMethod.get();
  if (!m || BIO_meth_set_write_ex(m, bioWrite) != 1 || BIO_meth_set_read_ex(m, bioRead) != 1 ||
      BIO_meth_set_ctrl(m, bioCtrl) != 1)
    throw setupError("cannot create a BIO method");
}

RedisClient::~RedisClient() = default;

std::string RedisClient::address() const {
  if (!options_.unixSocket.empty()) return options_.unixSocket;
  const bool ipv6 = options_.host.find(':') != std::string::npos;
  return (ipv6 ? "[" + options_.host + "]" : options_.host) + ":" + std::to_string(options_.port);
}

std::unique_ptr<RedisClient::Connection> RedisClient::connect() {
  const auto deadline = Clock::now() + options_.timeout;
  auto conn = std::make_unique<Connection>(address());

  if (!options_.unixSocket.empty()) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (options_.unixSocket.size() >= sizeof sa.sun_path) conn->fail("socket path too long");
    std::memcpy(sa.sun_path, options_.unixSocket.data(), options_.unixSocket.size());
    const std::string why =
        connectOne(conn->fd, AF_UNIX, reinterpret_cast<const sockaddr*>(&sa), sizeof sa, deadline);
    if (!why.empty()) conn->fail(why);
  } else {
    // getaddrinfo cannot be bounded by the deadline; with an IP address (the
    // usual configuration) it does no lookup at all.
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const int rc =
        ::getaddrinfo(options_.host.c_str(), std::to_string(options_.port).c_str(), &hints, &found);
    const AddrInfoPtr list(found);
    if (rc != 0)
      conn->fail("cannot resolve " + options_.host + ": " +
                 (rc == EAI_SYSTEM ? errnoText(errno) : std::string(gai_strerror(rc))));
    std::string why = "no address";
    for (const addrinfo* a = list.get(); a != nullptr; a = a->ai_next) {
      why = connectOne(conn->fd, a->ai_family, a->ai_addr, a->ai_addrlen, deadline);
      if (why.empty()) break;
    }
    if (!why.empty()) conn->fail(why);
    // Commands are small writes answered at once: Nagle would hold a
    // pipeline's tail until the previous segment is acknowledged. Keepalive
    // lets the kernel notice a peer that vanished while we were idle.
    const int on = 1;
    ::setsockopt(conn->fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    ::setsockopt(conn->fd.get(), SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  }

  if (tls_) conn->startTls(*tls_, options_.host, deadline);
  // One parser per connection: after an error, hiredis's reader keeps its
  // error and its half-read state, so it is never reused.
  conn->reader.reset(redisReaderCreate());
  if (!conn->reader) throw std::bad_alloc();

  if (!options_.password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!options_.username.empty()) auth.push_back(options_.username);
    auth.push_back(options_.password);
    conn->writeAll(formatCommand(auth), deadline);
    const RedisReply reply = conn->readReply(deadline);
    // The server's message (WRONGPASS ...) never repeats the password.
    if (reply.isError()) throw RedisError("Redis at " + address() + " rejected AUTH: " + reply.str);
  }
  return conn;
}

std::vector<RedisReply> RedisClient::roundTrip(const std::string& request, std::size_t replies,
                                               std::chrono::milliseconds timeout) {
  const std::lock_guard lock(mutex_);
  // An idle connection the server has closed since (a restart, say) is
  // replaced before anything is sent, which is safe: no part of this request
  // has gone out, so nothing can run twice.
  if (conn_ && !conn_->idleAndAlive()) conn_.reset();
  if (!conn_) conn_ = connect();
  const auto deadline = Clock::now() + timeout;
  try {
    conn_->writeAll(request, deadline);
    std::vector<RedisReply> out;
    out.reserve(replies);
    while (out.size() < replies) out.push_back(conn_->readReply(deadline));
    // More than we asked for (a SUBSCRIBE sent through command(), say): the
    // next reply would be the wrong one, so this connection is done.
    if (conn_->hasUnreadBytes()) conn_.reset();
    return out;
  } catch (...) {
    // Replies may still be on their way; only a new connection guarantees
    // they are never read as the answer to a later request.
    conn_.reset();
    throw;
  }
}

RedisReply RedisClient::command(const std::vector<std::string>& args) {
  return command(args, options_.timeout);
}

RedisReply RedisClient::command(const std::vector<std::string>& args,
                                std::chrono::milliseconds timeout) {
  return std::move(roundTrip(formatCommand(args), 1, timeout).front());
}

RedisReply RedisClient::checkedCommand(const std::vector<std::string>& args) {
  RedisReply reply = command(args);
  if (reply.isError())
    throw RedisError("Redis at " + address() + ": " + args[0] + ": " + reply.str);
  return reply;
}

std::vector<RedisReply> RedisClient::pipeline(
    const std::vector<std::vector<std::string>>& commands) {
  if (commands.empty()) return {};
  // Written whole, then read: Redis keeps reading while its replies queue up
  // (normal clients have no output buffer limit by default), so this cannot
  // deadlock on full socket buffers.
  std::string request;
  for (const auto& c : commands) request += formatCommand(c);
  return roundTrip(request, commands.size(), options_.timeout);
}

RedisReply RedisClient::eval(const std::string& script, const std::vector<std::string>& keys,
                             const std::vector<std::string>& args) {
  std::vector<std::string> cmd{"EVALSHA", sha1Hex(script), std::to_string(keys.size())};
  cmd.insert(cmd.end(), keys.begin(), keys.end());
  cmd.insert(cmd.end(), args.begin(), args.end());
  RedisReply reply = command(cmd);
  // Not cached (a restart, SCRIPT FLUSH): EVAL runs it and caches it again.
  if (reply.isError() && reply.str.starts_with("NOSCRIPT")) {
    cmd[0] = "EVAL";
    cmd[1] = script;
    reply = command(cmd);
  }
  return reply;
}

}  // namespace tango
