#pragma once
// A small synchronous Redis client. hiredis only formats commands and parses
// replies; the socket is ours. hiredis 0.14 has no TLS (hiredis_ssl came with
// 1.0) and its timeouts are per system call (SO_RCVTIMEO); with our own
// transport, plain TCP, unix sockets and TLS share one code path, and the
// connect and each command are bounded by one deadline each.
//
// Failure model: any I/O error or timeout closes the connection and throws
// RedisUnavailable; the next call reconnects. Closing is what guarantees that
// a late reply can never be taken for the answer to a later request. Nothing
// is retried after a command was sent, since it may already have run.
// Pub/sub and MONITOR are not supported (replies nobody asked for close the
// connection).
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "tango/util/Unavailable.hpp"

namespace tango {

class TlsContext;

struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string unixSocket;  // when set, used instead of host:port
  // AUTH after each connect. The username is optional (Redis 6 ACL users).
  std::string username, password;
  // TLS: the server's certificate is verified against tlsCaFile (the system's
  // store when empty) and must name `host` (as an IP address when host is one).
  // A client certificate is sent when tlsCertFile/tlsKeyFile are set.
  bool tls = false;
  std::string tlsCaFile, tlsCertFile, tlsKeyFile;
  // Bounds the connect (with AUTH) and, separately, each command.
  std::chrono::milliseconds timeout{2000};
};

struct RedisReply {
  enum class Type { Nil, Status, Error, Integer, String, Array };
  Type type = Type::Nil;
  std::int64_t integer = 0;          // Integer
  std::string str;                   // String, Status, Error
  std::vector<RedisReply> elements;  // Array

  bool isNil() const { return type == Type::Nil; }
  bool isError() const { return type == Type::Error; }
  bool isStatus() const { return type == Type::Status; }
  bool isOk() const { return type == Type::Status && str == "OK"; }
  bool isInteger() const { return type == Type::Integer; }
  bool isString() const { return type == Type::String; }
  bool isArray() const { return type == Type::Array; }
};

// Cannot connect, I/O failed or timed out. The message starts with
// "Redis at <address> is unreachable: ". Retrying later may succeed.
struct RedisUnavailable : ServiceUnavailable {
  using ServiceUnavailable::ServiceUnavailable;
};

// Redis answered with an error where the caller asked for a checked call, or
// rejected AUTH. Retrying the same thing will not help.
struct RedisError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class RedisClient {
 public:
  // Does not connect: the first command does, so a service can start while
  // Redis is down. Throws std::runtime_error only when the TLS files cannot be
  // loaded (a configuration error no retry would fix).
  explicit RedisClient(RedisOptions options);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // One command, e.g. {"SET", key, value}; arguments are binary-safe. An error
  // reply comes back as Type::Error. The timeout overload is for blocking
  // commands (BLPOP ...): give it more than the command's own block time.
  RedisReply command(const std::vector<std::string>& args);
  RedisReply command(const std::vector<std::string>& args, std::chrono::milliseconds timeout);
  // As command(), but an error reply throws RedisError.
  RedisReply checkedCommand(const std::vector<std::string>& args);
  // All commands in one round trip; one reply per command, in order.
  std::vector<RedisReply> pipeline(const std::vector<std::vector<std::string>>& commands);
  // Runs a Lua script by content: EVALSHA with the SHA1 computed here, and
  // EVAL once when the server answers NOSCRIPT (after a restart or SCRIPT
  // FLUSH), which also caches it again.
  RedisReply eval(const std::string& script, const std::vector<std::string>& keys,
                  const std::vector<std::string>& args);

  // "host:port" or the socket path, for messages. Never the password.
  std::string address() const;

 private:
  struct Connection;  // one socket (+ TLS session) and its reply parser

  std::vector<RedisReply> roundTrip(const std::string& request, std::size_t replies,
                                    std::chrono::milliseconds timeout);
  std::unique_ptr<Connection> connect();

  const RedisOptions options_;
  // Commands on one connection are serialised: callers may share a client
  // between threads (a blocking command holds it, so give those their own).
  std::mutex mutex_;
  std::shared_ptr<const TlsContext> tls_;  // made once; null without TLS
  std::unique_ptr<Connection> conn_;
};

}  // namespace tango
