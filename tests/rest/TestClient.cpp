#include "TestClient.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <stdexcept>

namespace tango::test {

Conn::Conn(std::uint16_t port) : Conn(port, "127.0.0.1") {}

Conn::Conn(std::uint16_t port, const std::string& sourceAddress, int timeoutSecs) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("socket");
  timeval tv{timeoutSecs, 0};  // a hung server fails the test instead of hanging it
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  if (::inet_pton(AF_INET, sourceAddress.c_str(), &src.sin_addr) != 1 ||
      ::bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
    ::close(fd_);
    throw std::runtime_error("bind " + sourceAddress);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    throw std::runtime_error("connect");
  }
}

Conn::~Conn() {
  if (fd_ >= 0) ::close(fd_);
}

bool Conn::sendAll(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool Conn::fill() {
  char tmp[16384];
  for (;;) {
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<std::size_t>(n));
    return true;
  }
}

std::optional<Response> Conn::read(bool skipInterim) {
  std::size_t end;
  while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) return std::nullopt;
  }
  std::string head = buf_.substr(0, end);
  buf_.erase(0, end + 4);
  Response r;
  std::size_t lineEnd = head.find("\r\n");
  std::string statusLine = head.substr(0, lineEnd);
  if (statusLine.size() < 12) return std::nullopt;
  r.status = std::stoi(statusLine.substr(9, 3));
  std::size_t pos = lineEnd == std::string::npos ? head.size() : lineEnd + 2;
  while (pos < head.size()) {
    std::size_t next = head.find("\r\n", pos);
    if (next == std::string::npos) next = head.size();
    std::string line = head.substr(pos, next - pos);
    auto colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      r.headers[name] = value;
    }
    pos = next + 2;
  }
  if (r.status == 100) return skipInterim ? read() : std::optional<Response>(r);
  std::size_t len = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
  while (buf_.size() < len) {
    if (!fill()) return std::nullopt;
  }
  r.body = buf_.substr(0, len);
  buf_.erase(0, len);
  return r;
}

std::string Conn::requestText(const std::string& method, const std::string& target,
                              const Headers& headers, const std::string& body) {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n";
  bool hasLength = false;
  for (const auto& [n, v] : headers) {
    req += n + ": " + v + "\r\n";
    if (n == "Content-Length" || n == "Transfer-Encoding") hasLength = true;
  }
  if (!hasLength && !body.empty()) req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n";
  req += body;
  return req;
}

std::optional<Response> Conn::request(const std::string& method, const std::string& target,
                                      const Headers& headers, const std::string& body) {
  if (!sendAll(requestText(method, target, headers, body))) return std::nullopt;
  return read();
}

bool Conn::closedByPeer() {
  for (;;) {
    char tmp[4096];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
    // Unexpected bytes: keep reading until the close.
  }
}

std::optional<Response> fetch(std::uint16_t port, const std::string& method,
                              const std::string& target, const Headers& headers,
                              const std::string& body) {
  Conn c(port);
  return c.request(method, target, headers, body);
}

}  // namespace tango::test
