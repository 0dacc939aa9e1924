#pragma once
// What HttpServer and a router (TangoREST) exchange, without Beast or Asio so
// the router and its tests compile fast. The server reads a request's header,
// asks the handler for an HttpExchange, feeds it the body as the exchange's
// BodyPolicy says, and sends whatever finish() (or tooLarge()) returns.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tango/util/Fd.hpp"

namespace tango {

struct HttpHead {
  std::string method;  // "GET", "POST", ...
  std::string target;  // raw request target, still URL-encoded
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<std::uint64_t> contentLength;  // nullopt: chunked or no body

  // First header named `name` (case-insensitive).
  std::optional<std::string_view> header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string contentType = "application/json";
  std::string body;
  bool close = false;  // close the connection after sending
  // When set, the body is this open file instead of `body`, sent in small
  // pieces as the client takes them (a poll's output file).
  std::shared_ptr<Fd> file;
};

// Tango's failure answer: {"statusId": -1, "statusMsg": message}.
HttpResponse jsonFailure(std::string_view message, int status = 200);

class HttpExchange {
 public:
  struct BodyPolicy {
    bool wanted = false;      // false: the body is read and dropped
    std::uint64_t limit = 0;  // larger bodies are refused and the connection closed
  };

  virtual ~HttpExchange() = default;
  virtual BodyPolicy bodyPolicy() const = 0;
  // finish() may block (disk, docker, a database): run it off the I/O threads.
  virtual bool blocking() const { return false; }
  // finish() may take minutes (an image build): it runs on the server's own
  // thread for such work, one at a time, so the request threads stay free.
  virtual bool longRunning() const { return false; }
  // The answer comes later, from elsewhere (a poll that waits for its
  // output): the server calls finishLater() instead of finish(), and
  // `done` is called once, from any thread, with the answer. Nothing waits
  // meanwhile; `done` does nothing once the server has stopped.
  virtual bool answersLater() const { return false; }
  virtual void finishLater(std::function<void(HttpResponse)> done) { done(finish()); }
  // One piece of the body (only when wanted). false: stop reading, the
  // server calls finish() and closes the connection.
  virtual bool onBody(std::string_view chunk) = 0;
  // The body is complete (or was refused by onBody): the answer.
  virtual HttpResponse finish() = 0;
  // A wanted body exceeded the limit: the answer (the connection then closes).
  virtual HttpResponse tooLarge() = 0;
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Called once per request, when its header has been read. Never null.
  virtual std::unique_ptr<HttpExchange> begin(const HttpHead& head) = 0;
};

}  // namespace tango
