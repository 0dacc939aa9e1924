// RedisClient against a real redis-server (tests/redis/RedisServer.hpp):
// replies of every type, pipelines, scripts, AUTH, TLS, and what happens when
// the server hangs, dies, restarts or is not there yet.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "RedisServer.hpp"
#include "TestCerts.hpp"
#include "tango/redis/RedisClient.hpp"

namespace tango {
namespace {

using namespace std::chrono_literals;
using test::RedisServer;
using test::RedisServerOptions;
using test::TestCerts;
using Clock = std::chrono::steady_clock;

// What `call` threw, as RedisUnavailable or RedisError; "" (and a failure)
// when it did not throw.
std::string failureOf(const std::function<void()>& call) {
  try {
    call();
  } catch (const RedisUnavailable& e) {
    return e.what();
  } catch (const RedisError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no RedisUnavailable or RedisError";
  return "";
}

std::chrono::milliseconds since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
}

std::int64_t clientId(RedisClient& c) { return c.command({"CLIENT", "ID"}).integer; }

TEST(RedisClient, SetGetRoundTripIsBinarySafe) {
  RedisServer server;
  RedisClient c(server.clientOptions());
  std::string value("a\0b\r\nc\r\n$3\r\n", 13);
  for (int i = 0; i < 256; ++i) value += static_cast<char>(i);
  const std::string key("key\0with\r\nnul", 13);

  ASSERT_TRUE(c.command({"SET", key, value}).isOk());
  const RedisReply got = c.command({"GET", key});
  ASSERT_TRUE(got.isString());
  EXPECT_EQ(got.str, value);
  EXPECT_EQ(c.command({"STRLEN", key}).integer, static_cast<std::int64_t>(value.size()));
  // An empty value is a string, not nil.
  ASSERT_TRUE(c.command({"SET", "empty", ""}).isOk());
  const RedisReply empty = c.command({"GET", "empty"});
  EXPECT_TRUE(empty.isString());
  EXPECT_EQ(empty.str, "");
}

TEST(RedisClient, MissingKeyIsNil) {
  RedisServer server;
  RedisClient c(server.clientOptions());
  const RedisReply r = c.command({"GET", "no-such-key"});
  EXPECT_TRUE(r.isNil());
  EXPECT_FALSE(r.isString());
}

TEST(RedisClient, IntegerReplies) {
  RedisServer server;
  RedisClient c(server.clientOptions());
  const RedisReply r = c.command({"INCRBY", "n", "5"});
  ASSERT_TRUE(r.isInteger());
  EXPECT_EQ(r.integer, 5);
  EXPECT_EQ(c.command({"DECRBY", "n", "7"}).integer, -2);
  EXPECT_EQ(c.command({"INCRBY", "big", "9000000000000"}).integer, 9000000000000);
}

TEST(RedisClient, ArrayReplies) {
  RedisServer server;
  RedisClient c(server.clientOptions());
  EXPECT_EQ(c.command({"RPUSH", "list", "a", "b", "c"}).integer, 3);
  const RedisReply r = c.command({"LRANGE", "list", "0", "-1"});
  ASSERT_TRUE(r.isArray());
  ASSERT_EQ(r.elements.size(), 3u);
  EXPECT_EQ(r.elements[0].str, "a");
  EXPECT_EQ(r.elements[1].str, "b");
  EXPECT_EQ(r.elements[2].str, "c");
  EXPECT_TRUE(r.elements[2].isString());

  const RedisReply none = c.command({"LRANGE", "no-list", "0", "-1"});
  EXPECT_TRUE(none.isArray());
  EXPECT_TRUE(none.elements.empty());

  // Nested, with a nil inside: HGET of a missing field within MGET-like shapes.
  ASSERT_TRUE(c.command({"SET", "x", "1"}).isOk());
  const RedisReply mget = c.command({"MGET", "x", "missing"});
  ASSERT_EQ(mget.elements.size(), 2u);
  EXPECT_EQ(mget.elements[0].str, "1");
  EXPECT_TRUE(mget.elements[1].isNil());
}

TEST(RedisClient, ErrorReplyIsReturnedAndTheConnectionStays) {
  RedisServer server;
  RedisClient c(server.clientOptions());
  ASSERT_TRUE(c.command({"SET", "s", "abc"}).isOk());
  const std::int64_t id = clientId(c);

  const RedisReply r = c.command({"INCR", "s"});
  ASSERT_TRUE(r.isError());
  EXPECT_EQ(r.str.rfind("ERR", 0), 0u) << r.str;
  EXPECT_TRUE(c.command({"NO-SUCH-COMMAND"}).isError());

  EXPECT_THROW(c.checkedCommand({"INCR", "s"}), RedisError);
  EXPECT_EQ(c.checkedCommand({"GET", "s"}).str, "abc");
  // An error reply is an answer, not a failure: same connection all along.
  EXPECT_EQ(clientId(c), id);
}

TEST(RedisClient, PipelineOfAThousandIncrs) {
  RedisServer server;
  RedisClient c(server.clientOptions());
  const std::vector<std::vector<std::string>> cmds(1000, {"INCR", "counter"});
  const std::vector<RedisReply> replies = c.pipeline(cmds);
  ASSERT_EQ(replies.size(), 1000u);
  for (std::size_t i = 0; i < replies.size(); ++i) {
    ASSERT_TRUE(replies[i].isInteger());
    ASSERT_EQ(replies[i].integer, static_cast<std::int64_t>(i + 1));
  }
  EXPECT_EQ(c.command({"GET", "counter"}).str, "1000");
  EXPECT_TRUE(c.pipeline({}).empty());

  // Mixed replies, an error among them, come back in order.
  const auto mixed = c.pipeline({{"SET", "k", "v"}, {"INCR", "k"}, {"GET", "k"}, {"GET", "nope"}});
  ASSERT_EQ(mixed.size(), 4u);
  EXPECT_TRUE(mixed[0].isOk());
  EXPECT_TRUE(mixed[1].isError());
  EXPECT_EQ(mixed[2].str, "v");
  EXPECT_TRUE(mixed[3].isNil());
}

TEST(RedisClient, EvalRunsBySha1AndFallsBackToEvalOnNoscript) {
  RedisServer server;
  RedisClient c(server.clientOptions());
  const std::string script = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
  // How many EVALs the server has run (EVALSHA counts separately).
  auto evalCalls = [&] {
    const std::string info = c.command({"INFO", "commandstats"}).str;
    const std::string tag = "cmdstat_eval:calls=";
    const auto at = info.find(tag);
    return at == std::string::npos ? 0 : std::stoi(info.substr(at + tag.size()));
  };
  ASSERT_TRUE(c.command({"CONFIG", "RESETSTAT"}).isOk());

  EXPECT_EQ(c.eval(script, {"n"}, {"2"}).integer, 2);  // NOSCRIPT, then EVAL
  EXPECT_EQ(c.eval(script, {"n"}, {"3"}).integer, 5);  // EVALSHA
  // One EVAL only: the server knew our SHA1 the second time, so ours is its.
  EXPECT_EQ(evalCalls(), 1);

  ASSERT_TRUE(c.command({"SCRIPT", "FLUSH"}).isOk());
  EXPECT_EQ(c.eval(script, {"n"}, {"4"}).integer, 9);
  EXPECT_EQ(evalCalls(), 2);
  EXPECT_EQ(c.eval(script, {"n"}, {"1"}).integer, 10);
  EXPECT_EQ(evalCalls(), 2);

  // A script's own error is returned, not retried as EVAL.
  const RedisReply err = c.eval("return redis.error_reply('MYERR boom')", {}, {});
  EXPECT_TRUE(err.isError());
  EXPECT_EQ(err.str, "MYERR boom");
}

TEST(RedisClient, AuthWithPasswordAndAclUser) {
  const std::string password = "s3cret-Pa55";
  RedisServer server(
      {.password = password,
       .extraArgs = {"--user", "worker", "on", ">worker-Pa55", "~*", "&*", "+@all"}});

  RedisClient good(server.clientOptions());
  EXPECT_EQ(good.command({"PING"}).str, "PONG");
  EXPECT_EQ(good.command({"ACL", "WHOAMI"}).str, "default");

  RedisOptions user = server.clientOptions();
  user.username = "worker";
  user.password = "worker-Pa55";
  RedisClient worker(user);
  EXPECT_EQ(worker.command({"ACL", "WHOAMI"}).str, "worker");

  RedisOptions none = server.clientOptions();
  none.password.clear();
  RedisClient anonymous(none);
  const RedisReply noAuth = anonymous.command({"GET", "k"});
  EXPECT_TRUE(noAuth.isError());
  EXPECT_EQ(noAuth.str.rfind("NOAUTH", 0), 0u) << noAuth.str;

  for (const std::string& username : {std::string(), std::string("worker")}) {
    RedisOptions bad = server.clientOptions();
    bad.username = username;
    bad.password = "wrong-Pa55word";
    RedisClient c(bad);
    const std::string message = failureOf([&] { c.command({"PING"}); });
    EXPECT_NE(message.find(server.clientOptions().host), std::string::npos) << message;
    EXPECT_EQ(message.find("wrong-Pa55word"), std::string::npos) << message;
    EXPECT_EQ(message.find(password), std::string::npos) << message;
  }
}

TEST(RedisClient, PasswordNeverInUnavailableMessages) {
  RedisServer server({.password = "hunter2-xyz"});
  RedisClient c(server.clientOptions());
  ASSERT_EQ(c.command({"PING"}).str, "PONG");
  server.stop();
  const std::string message = failureOf([&] { c.command({"PING"}); });
  EXPECT_NE(message.find("is unreachable"), std::string::npos) << message;
  EXPECT_EQ(message.find("hunter2-xyz"), std::string::npos) << message;
}

TEST(RedisClient, UnixSocket) {
  RedisServer server({.unixSocket = true});
  RedisOptions o;
  o.unixSocket = server.unixSocketPath();
  o.port = 1;  // ignored: the socket wins
  RedisClient c(o);
  EXPECT_EQ(c.address(), server.unixSocketPath());
  ASSERT_TRUE(c.command({"SET", "k", "over unix"}).isOk());
  RedisClient tcp(server.clientOptions());
  EXPECT_EQ(tcp.command({"GET", "k"}).str, "over unix");
}

TEST(RedisClient, TlsWithVerifiedServer) {
  const TestCerts certs;
  RedisServer server({.tlsCertFile = certs.path("server.crt"),
                      .tlsKeyFile = certs.path("server.key"),
                      .tlsCaFile = certs.path("ca.crt")});
  RedisClient c(server.clientOptions());
  std::string value("tls\0\r\n", 6);
  ASSERT_TRUE(c.command({"SET", "k", value}).isOk());
  EXPECT_EQ(c.command({"GET", "k"}).str, value);
  // A pipeline bigger than one TLS record, and the connection is kept
  // (a session ticket arriving after the handshake is not taken for a close).
  const std::int64_t id = clientId(c);
  const auto replies = c.pipeline(
      std::vector<std::vector<std::string>>(2000, {"RPUSH", "l", std::string(100, 'x')}));
  ASSERT_EQ(replies.size(), 2000u);
  EXPECT_EQ(replies.back().integer, 2000);
  EXPECT_EQ(clientId(c), id);

  // Only TLS is served: a plain client gets no Redis answer.
  RedisOptions plain = server.clientOptions();
  plain.tls = false;
  plain.timeout = 500ms;
  RedisClient plainClient(plain);
  EXPECT_THROW(plainClient.command({"PING"}), RedisUnavailable);

  // After a restart the TLS client connects again.
  server.kill9();
  server.restart();
  try {
    c.command({"PING"});
  } catch (const RedisUnavailable&) {
  }
  EXPECT_EQ(c.command({"PING"}).str, "PONG");
}

TEST(RedisClient, TlsRejectsAnUnknownCaAndTheWrongName) {
  const TestCerts certs;
  {
    RedisServer server({.tlsCertFile = certs.path("server.crt"),
                        .tlsKeyFile = certs.path("server.key"),
                        .tlsCaFile = certs.path("ca.crt")});
    RedisOptions o = server.clientOptions();
    o.tlsCaFile = certs.path("other-ca.crt");
    RedisClient c(o);
    const auto t0 = Clock::now();
    EXPECT_THROW(c.command({"PING"}), RedisUnavailable);
    const std::string message = failureOf([&] { c.command({"PING"}); });
    // (Whether OpenSSL says "unable to get local issuer" or "self-signed
    // certificate in chain" depends on whether the server sends its CA.)
    EXPECT_NE(message.find("server certificate rejected"), std::string::npos) << message;
    EXPECT_LT(since(t0), 1500ms);  // a rejection, not a timeout
  }
  {
    // Signed by the right CA, but for redis.example: not who we dialled.
    RedisServer server({.tlsCertFile = certs.path("wrongname.crt"),
                        .tlsKeyFile = certs.path("wrongname.key"),
                        .tlsCaFile = certs.path("ca.crt"),
                        .pingWhenReady = false});
    RedisClient c(server.clientOptions());
    const std::string message = failureOf([&] { c.command({"PING"}); });
    EXPECT_NE(message.find("certificate rejected: IP address mismatch"), std::string::npos)
        << message;
  }
}

TEST(RedisClient, TimeoutWhenTheServerHangsThenReconnects) {
  RedisServer server;
  RedisOptions o = server.clientOptions();
  o.timeout = 700ms;
  RedisClient c(o);
  ASSERT_TRUE(c.command({"SET", "k", "v"}).isOk());

  server.pause();
  const auto t0 = Clock::now();
  const std::string message = failureOf([&] { c.command({"GET", "k"}); });
  const auto elapsed = since(t0);
  EXPECT_NE(message.find("Redis at 127.0.0.1:" + std::to_string(server.port()) + " is unreachable"),
            std::string::npos)
      << message;
  EXPECT_GE(elapsed, 600ms);
  EXPECT_LT(elapsed, o.timeout + 1s);
  // A fresh connection to a hung server times out too (the kernel accepts it).
  const auto t1 = Clock::now();
  EXPECT_THROW(c.command({"GET", "k"}), RedisUnavailable);
  EXPECT_LT(since(t1), 2 * o.timeout + 1s);

  server.resume();
  EXPECT_EQ(c.command({"GET", "k"}).str, "v");
}

TEST(RedisClient, KillAndRestartReconnectsAndTheAofIsReloaded) {
  RedisServer server({.appendOnly = true, .appendFsync = "always"});
  RedisClient c(server.clientOptions());
  ASSERT_TRUE(c.command({"SET", "k", "kept"}).isOk());
  const std::int64_t before = clientId(c);

  server.kill9();
  EXPECT_THROW(c.command({"GET", "k"}), RedisUnavailable);
  server.restart();
  try {
    c.command({"PING"});
  } catch (const RedisUnavailable&) {
  }
  EXPECT_EQ(c.command({"GET", "k"}).str, "kept");
  EXPECT_NE(clientId(c), before);
}

TEST(RedisClient, ClientMadeWhileTheServerIsDown) {
  RedisServer server;
  server.stop();
  RedisOptions o = server.clientOptions();
  o.timeout = 500ms;
  RedisClient c(o);  // does not connect
  const auto t0 = Clock::now();
  const std::string message = failureOf([&] { c.command({"PING"}); });
  EXPECT_LT(since(t0), 500ms);  // refused at once, no waiting
  EXPECT_NE(message.find("is unreachable"), std::string::npos) << message;

  server.restart();
  EXPECT_EQ(c.command({"PING"}).str, "PONG");
}

TEST(RedisClient, BlpopWithATimeoutOverride) {
  RedisServer server;
  RedisOptions o = server.clientOptions();
  o.timeout = 300ms;  // shorter than the BLPOP: the override must apply
  RedisClient c(o);
  const auto t0 = Clock::now();
  const RedisReply r = c.command({"BLPOP", "queue", "1"}, 3s);
  const auto elapsed = since(t0);
  EXPECT_TRUE(r.isNil());
  EXPECT_GE(elapsed, 900ms);
  EXPECT_LT(elapsed, 2500ms);

  ASSERT_EQ(c.command({"RPUSH", "queue", "job"}).integer, 1);
  const RedisReply popped = c.command({"BLPOP", "queue", "1"}, 3s);
  ASSERT_TRUE(popped.isArray());
  ASSERT_EQ(popped.elements.size(), 2u);
  EXPECT_EQ(popped.elements[1].str, "job");
}

TEST(RedisClient, ATimedOutBlockingCommandNeverAnswersALaterOne) {
  RedisServer server;
  RedisClient c(server.clientOptions());
  EXPECT_THROW(c.command({"BLPOP", "queue", "0"}, 300ms), RedisUnavailable);
  // Had the blocked connection been kept, the BLPOP would take this element
  // and its reply ([queue, job]) would be read as RPUSH's.
  const RedisReply pushed = c.command({"RPUSH", "queue", "job"});
  ASSERT_TRUE(pushed.isInteger());
  EXPECT_EQ(pushed.integer, 1);
  EXPECT_EQ(c.command({"LLEN", "queue"}).integer, 1);
}

TEST(RedisClient, RepliesNobodyAskedForCloseTheConnection) {
  RedisServer server;
  RedisClient c(server.clientOptions());
  const std::int64_t id = clientId(c);
  // SUBSCRIBE to two channels answers twice; command() reads one reply.
  const RedisReply first = c.command({"SUBSCRIBE", "a", "b"});
  ASSERT_TRUE(first.isArray());
  EXPECT_EQ(first.elements.at(1).str, "a");
  // On the subscribed connection PING would answer ["pong", ""], after the
  // pending ["subscribe", "b", 2]: a plain PONG means a new connection.
  const RedisReply pong = c.command({"PING"});
  EXPECT_TRUE(pong.isStatus());
  EXPECT_EQ(pong.str, "PONG");
  EXPECT_NE(clientId(c), id);
}

TEST(RedisClient, OneClientSharedByThreads) {
  RedisServer server;
  RedisClient c(server.clientOptions());
  std::vector<std::vector<std::int64_t>> seen(4);
  std::vector<std::thread> threads;
  for (auto& mine : seen)
    threads.emplace_back([&c, &mine] {
      for (int i = 0; i < 250; ++i) mine.push_back(c.command({"INCR", "n"}).integer);
    });
  for (auto& t : threads) t.join();
  std::vector<std::int64_t> all;
  for (const auto& mine : seen) all.insert(all.end(), mine.begin(), mine.end());
  std::sort(all.begin(), all.end());
  // Every INCR got its own reply: 1..1000, each once.
  ASSERT_EQ(all.size(), 1000u);
  for (std::size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], static_cast<std::int64_t>(i + 1));
}

TEST(RedisClient, AddressAndBadTlsFiles) {
  RedisOptions o;
  o.port = 7000;
  EXPECT_EQ(RedisClient(o).address(), "127.0.0.1:7000");
  o.host = "::1";
  EXPECT_EQ(RedisClient(o).address(), "[::1]:7000");
  o.tls = true;
  o.tlsCaFile = "/nonexistent/ca.crt";
  EXPECT_THROW(RedisClient{o}, std::runtime_error);
}

}  // namespace
}  // namespace tango
