#pragma once
// A tiny blocking HTTP/1.1 client over a POSIX socket, so tests control every
// byte (malformed requests, huge headers, pipelining, keep-alive).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tango::test {

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& lowerName) const {
    auto it = headers.find(lowerName);
    return it == headers.end() ? std::string() : it->second;
  }
};

using Headers = std::vector<std::pair<std::string, std::string>>;

class Conn {
 public:
  explicit Conn(std::uint16_t port);
  // From a loopback address of the test's choice (127.0.0.2 is another
  // client as far as the server can tell); `timeoutSecs` bounds each read.
  Conn(std::uint16_t port, const std::string& sourceAddress, int timeoutSecs = 20);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool sendAll(std::string_view data);
  // Reads one response (status line, headers, Content-Length body). nullopt
  // when the connection closed or timed out first. Interim (1xx) answers are
  // skipped unless `skipInterim` is false.
  std::optional<Response> read(bool skipInterim = true);
  // Sends a request (with Content-Length when body is non-empty or forced)
  // and reads the answer.
  std::optional<Response> request(const std::string& method, const std::string& target,
                                  const Headers& headers = {}, const std::string& body = {});
  // True when the server closed the connection (read returns EOF or reset).
  bool closedByPeer();
  int fd() const { return fd_; }

  static std::string requestText(const std::string& method, const std::string& target,
                                 const Headers& headers, const std::string& body);

 private:
  bool fill();
  int fd_ = -1;
  std::string buf_;
};

// One request on a fresh connection.
std::optional<Response> fetch(std::uint16_t port, const std::string& method,
                              const std::string& target, const Headers& headers = {},
                              const std::string& body = {});

}  // namespace tango::test
