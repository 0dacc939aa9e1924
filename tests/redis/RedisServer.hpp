#pragma once
// A real redis-server for tests: started on a free loopback port in its own
// temporary directory, killed with the test. Tests that need Redis to fail
// (kill -9, restart with the AOF reloaded, a server that hangs) get that from
// the real thing rather than from a mock.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tango/redis/RedisClient.hpp"
#include "tango/util/Fd.hpp"

namespace tango::test {

struct RedisServerOptions {
  bool appendOnly = false;
  std::string appendFsync = "everysec";  // always | everysec | no
  std::string password;                  // --requirepass
  bool unixSocket = false;               // also listen on unixSocketPath()
  // When all three are set, the server speaks TLS only, on port().
  std::string tlsCertFile, tlsKeyFile, tlsCaFile;
  std::vector<std::string> extraArgs;  // appended last, so they win
  // Ready means answering PING; false: accepting connections on port(), for
  // a server our client is meant to reject (a TLS certificate for another
  // name).
  bool pingWhenReady = true;
};

class RedisServer {
 public:
  explicit RedisServer(RedisServerOptions options = {}) : options_(std::move(options)) {
    dir_ = makeTempDir();
    // The port we found free may be taken before redis binds it: try again.
    for (int attempt = 1;; ++attempt) {
      port_ = freePort();
      try {
        start();
        return;
      } catch (const Exited&) {
        if (attempt < 5) continue;
        removeDir();
        throw;
      } catch (...) {
        removeDir();
        throw;
      }
    }
  }
  ~RedisServer() {
    kill9();
    removeDir();
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  const std::filesystem::path& dir() const { return dir_; }
  std::string unixSocketPath() const { return (dir_ / "redis.sock").string(); }
  bool running() const { return pid_ > 0; }

  // Options for a client of this server (port, password, TLS CA).
  RedisOptions clientOptions() const {
    RedisOptions o;
    o.port = port_;
    o.password = options_.password;
    o.tls = tls();
    o.tlsCaFile = options_.tlsCaFile;
    return o;
  }

  // A crash: no AOF rewrite, no fsync beyond what appendfsync already did.
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    reap();
  }

  // A clean shutdown (SIGTERM), SIGKILL if it takes more than 10 s.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    if (paused_) ::kill(pid_, SIGCONT);  // a stopped process acts on SIGTERM only then
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill9();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
  }

  // Starts again (stopping first if running) on the same port and directory,
  // so with appendOnly the AOF is loaded. Returns once it answers PING.
  void restart() {
    stop();
    start();
  }

  // SIGSTOP: connections are accepted by the kernel but never answered.
  void pause() {
    if (pid_ <= 0 || paused_) return;
    ::kill(pid_, SIGSTOP);
    int status = 0;
    ::waitpid(pid_, &status, WUNTRACED);  // returns once it has stopped
    paused_ = true;
  }
  void resume() {
    if (pid_ <= 0 || !paused_) return;
    ::kill(pid_, SIGCONT);
    paused_ = false;
  }

  // The end of redis's log, for failure messages.
  std::string logTail() const {
    std::ifstream in(dir_ / "redis.log");
    std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return log.size() > 2000 ? log.substr(log.size() - 2000) : log;
  }

 private:
  struct Exited : std::runtime_error {
    using std::runtime_error::runtime_error;
  };

  void removeDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  bool tls() const {
    return !options_.tlsCertFile.empty() && !options_.tlsKeyFile.empty() &&
           !options_.tlsCaFile.empty();
  }

  static std::filesystem::path makeTempDir() {
#ifdef TEST_TMP_DIR
    const std::filesystem::path base = TEST_TMP_DIR;
#else
    const std::filesystem::path base = "/tmp";
#endif
    std::filesystem::create_directories(base);
    std::string tmpl = (base / "redis-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp in " + base.string());
    return tmpl;
  }

  // A port nothing listens on now: the kernel's pick for port 0.
  static int freePort() {
    const Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (!s || ::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0)
      throw std::runtime_error("cannot find a free port");
    return ntohs(sa.sin_port);
  }

  void start() {
    const std::string port = std::to_string(port_);
    std::vector<std::string> args = {"/usr/bin/redis-server",
                                     "--port",
                                     tls() ? "0" : port,
                                     "--bind",
                                     "127.0.0.1",
                                     "--dir",
                                     dir_.string(),
                                     "--save",
                                     "",
                                     "--appendonly",
                                     options_.appendOnly ? "yes" : "no",
                                     "--appendfsync",
                                     options_.appendFsync,
                                     "--protected-mode",
                                     "no",
                                     "--daemonize",
                                     "no"};
    if (!options_.password.empty()) args.insert(args.end(), {"--requirepass", options_.password});
    if (options_.unixSocket)
      args.insert(args.end(), {"--unixsocket", unixSocketPath(), "--unixsocketperm", "700"});
    if (tls())
      args.insert(args.end(), {"--tls-port", port, "--tls-cert-file", options_.tlsCertFile,
                               "--tls-key-file", options_.tlsKeyFile, "--tls-ca-cert-file",
                               options_.tlsCaFile, "--tls-auth-clients", "no"});
    args.insert(args.end(), options_.extraArgs.begin(), options_.extraArgs.end());
    // Everything the child needs is made before fork: between fork and exec
    // only async-signal-safe calls are allowed (the test may have threads).
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const Fd log(
        ::open((dir_ / "redis.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    const Fd devNull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!log || !devNull) throw std::runtime_error("cannot open redis.log or /dev/null");
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      // SIGKILL when the forking thread dies, so a crashed test leaves no
      // server behind; the getppid check covers a parent already gone.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      ::dup2(devNull.get(), 0);
      ::dup2(log.get(), 1);
      ::dup2(log.get(), 2);
      ::close_range(3, ~0U, 0);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    pid_ = pid;
    paused_ = false;
    try {
      waitUntilReady();
    } catch (...) {
      kill9();
      throw;
    }
  }

  bool acceptsConnections() const {
    const Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(static_cast<std::uint16_t>(port_));
    return s && ::connect(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  }

  void waitUntilReady() {
    RedisOptions o = clientOptions();
    o.timeout = std::chrono::milliseconds(500);
    RedisClient client(o);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::string lastError;
    for (;;) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw Exited("redis-server exited at start: " + logTail());
      }
      if (!options_.pingWhenReady) {
        if (acceptsConnections()) return;
      } else {
        // PONG, not just any reply: while loading the AOF it answers -LOADING.
        try {
          const RedisReply r = client.command({"PING"});
          if (r.str == "PONG") return;
          lastError = "PING answered " + r.str;
        } catch (const RedisUnavailable& e) {
          lastError = e.what();
        }
      }
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("redis-server did not answer PING within 20 s (" + lastError +
                                 "); its log: " + logTail());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void reap() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    paused_ = false;
  }

  RedisServerOptions options_;
  std::filesystem::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  bool paused_ = false;
};

}  // namespace tango::test
