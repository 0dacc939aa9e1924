#include "tango/redis/RedisClient.hpp"

// hiredis 0.14 declares redisReaderCreate, freeReplyObject and the formatting
// functions in hiredis.h; read.h has only the parser's core.
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <string_view>
#include <utility>

#include "tango/util/Fd.hpp"
#include "tango/util/Sha256.hpp"
#include "tango/util/Socket.hpp"
#include "tango/util/TlsClient.hpp"

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
using ReaderPtr = std::unique_ptr<redisReader, ReaderFree>;
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;
using CommandPtr = std::unique_ptr<char, CommandFree>;

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

}  // namespace

struct RedisClient::Connection {
  explicit Connection(std::string addr) : address(std::move(addr)) {}

  std::string address;  // for messages
  Fd fd;
  std::unique_ptr<TlsSession> tls;  // null without TLS; declared after fd, so freed first
  ReaderPtr reader;                 // hiredis's parser, with whatever part of a reply has come

  [[noreturn]] void fail(const std::string& why) const {
    throw RedisUnavailable("Redis at " + address + " is unreachable: " + why);
  }

  void wait(short events, Clock::time_point deadline, const char* timedOut) const {
    if (!waitFor(fd.get(), events, deadline)) fail(timedOut);
  }

  // A TLS step, its failures told as ours: `timedOut` when the deadline
  // passed, else what we were `doing` and why.
  template <class Step>
  auto tlsStep(Step step, const char* timedOut, const std::string& doing) {
    try {
      return step();
    } catch (const TlsTimeout&) {
      fail(timedOut);
    } catch (const TlsError& e) {
      fail(doing + e.what());
    }
  }

  void startTls(std::shared_ptr<const TlsContext> context, const std::string& host,
                Clock::time_point deadline) {
    tlsStep(
        [&] {
          tls = std::make_unique<TlsSession>(std::move(context), fd.get());
          tls->handshake(host, deadline);
        },
        "TLS handshake timed out", "");
  }

  void writeAll(std::string_view data, Clock::time_point deadline) {
    if (tls) {
      const char* timedOut = "timed out sending a command";
      if (!tlsStep([&] { return tls->write(data, deadline); }, timedOut, "sending a command: "))
        fail("sending a command: " + tls->closeReason());
      return;
    }
    while (!data.empty()) {
      const ssize_t sent = ::send(fd.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (sent < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          wait(POLLOUT, deadline, "timed out sending a command");
        else if (errno != EINTR)
          fail("sending a command: " + errnoText(errno));
        continue;
      }
      data.remove_prefix(static_cast<std::size_t>(sent));
    }
  }

  // Some bytes (at least one) by `deadline`. Reads first and polls only when
  // nothing is there: TLS may hold decrypted bytes poll cannot see.
  std::size_t readSome(char* buf, std::size_t len, Clock::time_point deadline) {
    if (tls) {
      const std::size_t n = tlsStep([&] { return tls->read(buf, len, deadline); },
                                    "no reply within the timeout", "reading a reply: ");
      if (n == 0) fail("reading a reply: connection closed by server");
      return n;
    }
    for (;;) {
      const ssize_t n = ::recv(fd.get(), buf, len, 0);
      if (n > 0) return static_cast<std::size_t>(n);
      if (n == 0) fail("connection closed by server");
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        wait(POLLIN, deadline, "no reply within the timeout");
      else if (errno != EINTR)
        fail("reading a reply: " + errnoText(errno));
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
  bool hasUnreadBytes() const { return (tls && tls->pending() > 0) || reader->pos < reader->len; }

  // Whether an idle connection can still be used. Redis sends nothing
  // unasked (we do not do pub/sub), so anything readable means the server
  // closed it (restart, client timeout, CLIENT KILL), except with TLS, where
  // a session ticket may arrive after the handshake.
  bool idleAndAlive() {
    if (hasUnreadBytes()) return false;
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return true;
    if (tls) return tls->quiet();
    char c;
    const ssize_t n = ::recv(fd.get(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
};

RedisClient::RedisClient(RedisOptions options) : options_(std::move(options)) {
  if (!options_.tls) return;
  // Made once: loading the CA and key files per connect would cost a file
  // read and parse each time, and a missing file is a configuration error
  // best reported at startup.
  try {
    tls_ = std::make_shared<const TlsContext>(
        TlsFiles{options_.tlsCaFile, options_.tlsCertFile, options_.tlsKeyFile});
  } catch (const TlsError& e) {
    throw std::runtime_error(std::string("Redis TLS setup: ") + e.what());
  }
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

  Connected c = options_.unixSocket.empty() ? connectTcp(options_.host, options_.port, deadline)
                                            : connectUnix(options_.unixSocket, deadline);
  if (!c.fd) conn->fail(c.error);
  conn->fd = std::move(c.fd);

  if (tls_) conn->startTls(tls_, options_.host, deadline);
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
