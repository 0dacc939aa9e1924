#pragma once
// A minimal HTTP receiver on 127.0.0.1 for callback tests: records each
// request (headers + body) and answers 200.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tango::test {

class Receiver {
 public:
  // port 0 = any free port.
  explicit Receiver(int port = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~Receiver() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  // Every request, including one whose sender stopped midway (cut short).
  std::vector<std::string> requests() {
    std::lock_guard l(mu_);
    return requests_;
  }
  // Only the requests that arrived whole (headers and Content-Length bytes):
  // a sender killed mid-request delivered nothing.
  std::vector<std::string> completeRequests() {
    std::lock_guard l(mu_);
    return complete_;
  }

 private:
  void loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::string req;
      char buf[65536];
      // Read headers, then Content-Length bytes of body.
      std::size_t want = std::string::npos;
      while (true) {
        pollfd q{c, POLLIN, 0};
        if (::poll(&q, 1, 2000) <= 0) break;
        ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        req.append(buf, static_cast<std::size_t>(n));
        auto end = req.find("\r\n\r\n");
        if (end != std::string::npos && want == std::string::npos) {
          auto cl = req.find("Content-Length: ");
          if (cl == std::string::npos) cl = req.find("content-length: ");
          want =
              end + 4 + (cl != std::string::npos && cl < end ? std::stoul(req.substr(cl + 16)) : 0);
        }
        if (want != std::string::npos && req.size() >= want) break;
      }
      // Record before answering: once the reply is out, the service may mark
      // the callback delivered and the test may look at requests() at once.
      {
        std::lock_guard l(mu_);
        requests_.push_back(req);
        if (want != std::string::npos && req.size() >= want) complete_.push_back(req);
      }
      const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
      (void)!::write(c, ok, sizeof ok - 1);
      ::close(c);
    }
  }
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> requests_;
  std::vector<std::string> complete_;
  std::thread thread_;
};

}  // namespace tango::test
