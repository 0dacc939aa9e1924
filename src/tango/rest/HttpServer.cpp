#include "tango/rest/HttpServer.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <strings.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/file_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tango/rest/BeastHead.hpp"
#include "tango/util/Unavailable.hpp"

namespace tango {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
// Connections are bound to one io_context's executor, not the polymorphic
// any_io_executor: no type-erased executor copied for every operation.
using Executor = asio::io_context::executor_type;
using Socket = tcp::socket::rebind_executor<Executor>::other;
using Stream = beast::basic_stream<tcp, Executor>;

struct Limits {
  std::uint32_t maxHeaderBytes = 16 * 1024;
  // Waiting for the next request on an idle keep-alive connection.
  std::chrono::seconds idle = 120s;
  // From a request's first byte: its whole header (HTTP_HEADER_TIMEOUT), and
  // the whole request, body included (HTTP_REQUEST_TIMEOUT). Deadlines, not
  // timers renewed by each read: a byte now and then does not keep a
  // connection.
  std::chrono::seconds header = 10s;
  std::chrono::seconds request = 300s;
  // A body that stops coming for this long is given up before its deadline.
  std::chrono::seconds stall = 30s;
  std::chrono::seconds write = 30s;
  // Draining what a refused client is still sending, so it gets our answer
  // instead of a connection reset.
  std::chrono::seconds linger = 5s;
};

// Body bytes are handed to the exchange in pieces of at most this size, so a
// big upload never sits in memory.
constexpr std::size_t kChunkBytes = 64 * 1024;
// Read size while waiting for a request: small, so idle connections are cheap.
constexpr std::size_t kFirstReadBytes = 1024;

// Open connections, in all and per client address (MAX_CONNECTIONS,
// MAX_CONNECTIONS_PER_CLIENT). A connection holds a Slot for its life.
class ConnectionGate {
 public:
  ConnectionGate(std::size_t total, std::size_t perClient) : max_(total), maxPer_(perClient) {}

  class Slot {
   public:
    Slot(ConnectionGate& gate, asio::ip::address addr) : gate_(gate), addr_(std::move(addr)) {}
    ~Slot() { gate_.release(addr_); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    ConnectionGate& gate_;
    asio::ip::address addr_;
  };

  // A slot, or nullptr with `why` set when a limit is reached.
  std::unique_ptr<Slot> admit(asio::ip::address addr, std::string& why) {
    // One client is one host, whichever IP version it came in by.
    if (addr.is_v6() && addr.to_v6().is_v4_mapped())
      addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
    std::lock_guard lock(mu_);
    if (total_ >= max_) {
      why = "Too many connections: the service has " + std::to_string(max_) +
            " open (MAX_CONNECTIONS); try again shortly";
      return nullptr;
    }
    auto& n = per_[addr];
    if (n >= maxPer_) {
      why = "Too many connections from your address: at most " + std::to_string(maxPer_) +
            " (MAX_CONNECTIONS_PER_CLIENT); reuse connections (keep-alive)";
      return nullptr;
    }
    ++n;
    ++total_;
    return std::make_unique<Slot>(*this, std::move(addr));
  }

 private:
  void release(const asio::ip::address& addr) {
    std::lock_guard lock(mu_);
    --total_;
    if (auto it = per_.find(addr); it != per_.end() && --it->second == 0) per_.erase(it);
  }

  std::mutex mu_;
  std::size_t max_, maxPer_, total_ = 0;
  std::map<asio::ip::address, std::size_t> per_;
};

// The answer of a connection over a limit: 503, then close. Written from a
// buffer that lives as long as the write.
void refuseConnection(Socket socket, const std::string& why, std::chrono::seconds timeout) {
  struct Refusal {
    explicit Refusal(Socket s) : stream(std::move(s)) {}
    Stream stream;
    std::string text;
  };
  auto r = std::make_shared<Refusal>(std::move(socket));
  std::string body = jsonFailure(why, 503).body;
  r->text =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
      "Connection: close\r\nRetry-After: 1\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  r->stream.expires_after(timeout);
  asio::async_write(r->stream, asio::buffer(r->text), [r](beast::error_code, std::size_t) {
    beast::error_code ec;
    r->stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    r->stream.socket().close(ec);
  });
}

bool isHttpError(const beast::error_code& ec) {
  return ec.category() == beast::error_code(http::error::bad_target).category();
}

class Session;

// Connections whose answer comes later (HttpExchange::answersLater): kept
// alive here, not by whoever answers, so that the server drops them when it
// stops and an answer that comes after that goes nowhere.
struct Parked {
  std::mutex mu;
  bool closed = false;
  std::unordered_map<const Session*, std::shared_ptr<Session>> sessions;  // guarded by mu

  void close() {
    std::unordered_map<const Session*, std::shared_ptr<Session>> gone;
    {
      std::lock_guard lock(mu);
      closed = true;
      gone.swap(sessions);
    }
  }
};

// One connection: reads requests one after the other (keep-alive), all
// handlers on the one thread of the connection's io_context.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket&& socket, HttpHandler& handler, asio::thread_pool& workers,
          asio::thread_pool& longWork, const Limits& limits,
          std::unique_ptr<ConnectionGate::Slot> slot, std::shared_ptr<Parked> parked)
      : stream_(std::move(socket)),
        handler_(handler),
        workers_(workers),
        longWork_(longWork),
        limits_(limits),
        slot_(std::move(slot)),
        parked_(std::move(parked)) {}

  void start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->awaitRequest(); });
  }

 private:
  enum class Answer { Finish, TooLarge };

  void awaitRequest() {
    parser_.reset();
    exchange_.reset();
    chunk_ = {};
    res_ = {};
    received_ = 0;
    keepAlive_ = false;
    version_ = 11;
    if (buffer_.size() > 0) return readHeader();  // pipelined request already here
    buffer_.shrink_to_fit();
    stream_.expires_after(limits_.idle);
    stream_.async_read_some(buffer_.prepare(kFirstReadBytes),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (ec) return self->closeNow();
                              self->buffer_.commit(n);
                              self->readHeader();
                            });
  }

  void readHeader() {
    parser_.emplace();
    parser_->header_limit(limits_.maxHeaderBytes);
    parser_->body_limit(boost::none);  // limits differ per route: counted in onBody
    deadline_ = std::chrono::steady_clock::now() + limits_.request;
    stream_.expires_after(std::min(limits_.header, limits_.request));
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onHeader(ec); });
  }

  void onHeader(beast::error_code ec) {
    if (ec) return failProtocol(ec);
    const auto& req = parser_->get();
    keepAlive_ = req.keep_alive();
    version_ = req.version();
    const HttpHead head = headOf(*parser_);
    try {
      exchange_ = handler_.begin(head);
    } catch (const std::exception& e) {
      spdlog::error("HTTP handler failed on {} {}: {}", head.method, head.target, e.what());
    }
    if (!exchange_) return send(jsonFailure("Internal server error", 500), true);
    policy_ = exchange_->bodyPolicy();
    if (parser_->is_done()) return respond(Answer::Finish, false);
    auto len = parser_->content_length();
    if (len && *len > policy_.limit) {
      // Known too big: answer without reading it (a client that sent
      // "Expect: 100-continue" then never sends the body).
      return respond(policy_.wanted ? Answer::TooLarge : Answer::Finish, true);
    }
    auto expect = head.header("Expect");
    if (expect && expect->size() == 12 && ::strncasecmp(expect->data(), "100-continue", 12) == 0 &&
        version_ >= 11) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_at(deadline_);
      asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](beast::error_code wec, std::size_t) {
                          if (wec) return self->closeNow();
                          self->readBody();
                        });
      return;
    }
    readBody();
  }

  void readBody() {
    if (chunk_.size() < kChunkBytes) chunk_.resize(kChunkBytes);
    // Beast reads at most the buffer's free capacity at a time; the small
    // buffer of an idle connection would mean 1 KB reads for a whole upload.
    if (buffer_.capacity() < kChunkBytes) buffer_.reserve(kChunkBytes);
    auto& body = parser_->get().body();
    body.data = chunk_.data();
    body.size = chunk_.size();
    stream_.expires_at(std::min(deadline_, std::chrono::steady_clock::now() + limits_.stall));
    http::async_read_some(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onBody(ec); });
  }

  void onBody(beast::error_code ec) {
    if (ec == http::error::need_buffer) ec = {};  // our chunk is full: not an error
    if (ec) return failProtocol(ec);
    std::size_t got = chunk_.size() - parser_->get().body().size;
    received_ += got;
    if (received_ > policy_.limit) {
      return respond(policy_.wanted ? Answer::TooLarge : Answer::Finish, true);
    }
    if (policy_.wanted && got > 0) {
      bool ok = false;
      try {
        ok = exchange_->onBody(std::string_view(chunk_.data(), got));
      } catch (const std::exception& e) {
        spdlog::error("HTTP body handler failed: {}", e.what());
      }
      if (!ok) return respond(Answer::Finish, true);
    }
    if (parser_->is_done()) return respond(Answer::Finish, false);
    readBody();
  }

  // Gets the answer from the exchange, on a worker thread when it may block.
  void respond(Answer answer, bool close) {
    auto produce = [answer](HttpExchange& ex) -> HttpResponse {
      try {
        return answer == Answer::TooLarge ? ex.tooLarge() : ex.finish();
      } catch (const ServiceUnavailable& e) {
        spdlog::warn("HTTP handler: {}", e.what());
        return jsonFailure(e.what(), 503);
      } catch (const std::exception& e) {
        spdlog::error("HTTP handler failed: {}", e.what());
        return jsonFailure("Internal server error", 500);
      }
    };
    if (answer == Answer::Finish && exchange_->answersLater()) return park(close);
    if (!exchange_->blocking()) return send(produce(*exchange_), close);
    // No other operation is pending on this connection meanwhile, so the
    // worker has the exchange to itself.
    asio::post(exchange_->longRunning() ? longWork_ : workers_, [self = shared_from_this(), produce,
                                                                 close] {
      HttpResponse r = produce(*self->exchange_);
      asio::post(self->stream_.get_executor(),
                 [self, r = std::move(r), close]() mutable { self->send(std::move(r), close); });
    });
  }

  // Waits, with no thread, for the exchange's answer from elsewhere.
  void park(bool close) {
    {
      std::lock_guard lock(parked_->mu);
      if (parked_->closed) return closeNow();
      parked_->sessions.emplace(this, shared_from_this());
    }
    auto done = [parked = parked_, key = static_cast<const Session*>(this), close](HttpResponse r) {
      std::lock_guard lock(parked->mu);
      auto it = parked->sessions.find(key);
      if (it == parked->sessions.end()) return;  // the server stopped
      auto self = std::move(it->second);
      parked->sessions.erase(it);
      // Under the lock: the server's io_context lives until close().
      asio::post(self->stream_.get_executor(),
                 [self, r = std::move(r), close]() mutable { self->send(std::move(r), close); });
    };
    try {
      exchange_->finishLater(done);
    } catch (const std::exception& e) {
      spdlog::error("HTTP handler failed: {}", e.what());
      done(jsonFailure("Internal server error", 500));
    }
  }

  void send(HttpResponse r, bool close) {
    exchange_.reset();  // temp files of the request go now, not after the write
    parser_.reset();
    close = close || r.close || !keepAlive_;
    if (r.file) return sendFile(std::move(r), close);
    res_ = {};
    res_.version(version_);
    res_.result(static_cast<unsigned>(r.status));
    res_.set(http::field::content_type, r.contentType);
    res_.body() = std::move(r.body);
    res_.keep_alive(!close);
    res_.prepare_payload();
    stream_.expires_after(limits_.write);
    http::async_write(stream_, res_,
                      [self = shared_from_this(), close](beast::error_code ec, std::size_t) {
                        if (ec) return self->closeNow();
                        if (close) return self->lingerAndClose();
                        self->awaitRequest();
                      });
  }

  // The body read from an open file a piece at a time (Beast's file_body:
  // 4 KiB reads of a file just written, so from the page cache), never
  // whole in memory.
  void sendFile(HttpResponse r, bool close) {
    beast::error_code ec;
    http::file_body::value_type body;
    beast::file file;
    file.native_handle(r.file->release());
    body.reset(std::move(file), ec);
    if (ec) return send(jsonFailure("Cannot read output file", 500), true);
    fileRes_.emplace();
    fileRes_->version(version_);
    fileRes_->result(static_cast<unsigned>(r.status));
    fileRes_->set(http::field::content_type, r.contentType);
    fileRes_->body() = std::move(body);
    fileRes_->keep_alive(!close);
    fileRes_->prepare_payload();
    stream_.expires_after(limits_.write);
    http::async_write(stream_, *fileRes_,
                      [self = shared_from_this(), close](beast::error_code wec, std::size_t) {
                        self->fileRes_.reset();  // the file closes now
                        if (wec) return self->closeNow();
                        if (close) return self->lingerAndClose();
                        self->awaitRequest();
                      });
  }

  void lingerAndClose() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return closeNow();
    if (chunk_.size() < 4096) chunk_.resize(4096);
    stream_.expires_after(limits_.linger);
    drain();
  }

  void drain() {
    stream_.async_read_some(asio::buffer(chunk_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec) return self->closeNow();
                              self->drain();
                            });
  }

  void closeNow() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  // Before a route is known the answer cannot be a route's: a JSON failure
  // with a fitting HTTP status, then close.
  void failProtocol(const beast::error_code& ec) {
    if (ec == http::error::header_limit) {
      return send(jsonFailure("Request header too large (limit " +
                                  std::to_string(limits_.maxHeaderBytes) + " bytes)",
                              431),
                  true);
    }
    if (isHttpError(ec) && ec != http::error::end_of_stream && ec != http::error::partial_message) {
      return send(jsonFailure("Malformed HTTP request: " + ec.message(), 400), true);
    }
    closeNow();  // the client went away or timed out: nobody to answer
  }

  Stream stream_;
  HttpHandler& handler_;
  asio::thread_pool& workers_;
  asio::thread_pool& longWork_;
  const Limits& limits_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::buffer_body>> parser_;
  std::unique_ptr<HttpExchange> exchange_;
  HttpExchange::BodyPolicy policy_;
  std::uint64_t received_ = 0;
  std::vector<char> chunk_;
  http::response<http::string_body> res_;
  std::optional<http::response<http::file_body>> fileRes_;
  bool keepAlive_ = false;
  unsigned version_ = 11;
  std::chrono::steady_clock::time_point deadline_;
  std::unique_ptr<ConnectionGate::Slot> slot_;
  std::shared_ptr<Parked> parked_;
};

tcp::endpoint endpointFor(asio::io_context& ioc, const std::string& host, int port) {
  if (port < 0 || port > 65535) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "invalid port " + std::to_string(port));
  }
  auto p = static_cast<std::uint16_t>(port);
  beast::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (!ec) return {addr, p};
  tcp::resolver resolver(ioc);
  return *resolver.resolve(host, std::to_string(p)).begin();
}

}  // namespace

struct HttpServer::Impl {
  Impl(const Config& cfg, HttpHandler& h, unsigned io, unsigned workerThreads)
      : gate(static_cast<std::size_t>(cfg.maxConnections),
             static_cast<std::size_t>(cfg.maxConnectionsPerClient)),
        handler(h),
        ioThreads(io == 0 ? 1 : io),
        workers(workerThreads == 0 ? 1 : workerThreads),
        longWork(1) {
    limits.maxHeaderBytes = static_cast<std::uint32_t>(cfg.maxHeaderBytes);
    limits.header = std::chrono::seconds(cfg.httpHeaderTimeoutSecs);
    limits.request = std::chrono::seconds(cfg.httpRequestTimeoutSecs);
    // One io_context per I/O thread, as nginx has one event loop per worker:
    // threads sharing one context contend for its lock and wake each other
    // for every ready socket, which cost a third of /info's throughput.
    for (unsigned i = 1; i < ioThreads; ++i) {
      connIocs.push_back(std::make_unique<asio::io_context>(1));
      // Idle until its first connection, not finished.
      connIdle.push_back(asio::make_work_guard(*connIocs.back()));
    }
    tcp::endpoint ep = endpointFor(ioc, cfg.host, cfg.port);
    acceptor.open(ep.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen(asio::socket_base::max_listen_connections);
    boundPort = acceptor.local_endpoint().port();

    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
      throw std::system_error(errno, std::generic_category(), "pipe2");
    }
    wakeRead.assign(fds[0]);
    wakeWrite = fds[1];
    watchStop();
    accept();
  }

  ~Impl() {
    // Workers may still run an exchange that posts back to `ioc`: finish
    // them while everything they touch is alive.
    longWork.stop();
    longWork.join();
    workers.stop();
    workers.join();
    // Waiting connections close while `ioc` is still there.
    parked->close();
    if (wakeWrite >= 0) ::close(wakeWrite);
  }

  void watchStop() {
    wakeRead.async_read_some(asio::buffer(&wakeByte, 1), [this](beast::error_code ec, std::size_t) {
      if (ec == asio::error::operation_aborted) return;
      beast::error_code ignored;
      acceptor.close(ignored);
      acceptRetry.cancel();
      ioc.stop();
      for (auto& c : connIocs) c->stop();
    });
  }

  void accept() {
    acceptor.async_accept(nextConnectionContext(), [this](beast::error_code ec, Socket s) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (ec) {
        spdlog::warn("HTTP accept failed: {}", ec.message());
        // Out of descriptors or memory: retrying at once would spin.
        acceptRetry.expires_after(100ms);
        acceptRetry.async_wait([this](beast::error_code tec) {
          if (!tec) accept();
        });
        return;
      }
      beast::error_code ignored;
      s.set_option(tcp::no_delay(true), ignored);
      // Accepting goes on at the limit: a refused client gets its answer at
      // once instead of waiting in the backlog, and the others go on.
      std::string why;
      auto peer = s.remote_endpoint(ignored);
      auto slot = ignored ? nullptr : gate.admit(peer.address(), why);
      if (slot)
        std::make_shared<Session>(std::move(s), handler, workers, longWork, limits, std::move(slot),
                                  parked)
            ->start();
      else if (!ignored)
        refuseConnection(std::move(s), why, limits.linger);
      accept();
    });
  }

  // Connections are spread over the I/O threads' contexts in turn. Each
  // context has one thread, so a connection's handlers never run at once
  // and need no strand.
  Executor nextConnectionContext() {
    const std::size_t n = connIocs.size() + 1;
    const std::size_t i = nextIoc++ % n;
    return i == 0 ? ioc.get_executor() : connIocs[i - 1]->get_executor();
  }

  void runLoop(asio::io_context& c) {
    for (;;) {
      try {
        c.run();
        return;
      } catch (const std::exception& e) {
        // A bug in one request must not take the service down.
        spdlog::error("HTTP I/O thread: {}", e.what());
      }
    }
  }

  // First, so it outlives every session (they give their slots back to it).
  ConnectionGate gate;
  HttpHandler& handler;
  Limits limits;
  unsigned ioThreads;
  // The other I/O threads' contexts, each only connections'. Before `ioc`,
  // so they outlive it: a pending accept holds a socket of one of them.
  std::vector<std::unique_ptr<asio::io_context>> connIocs;
  std::vector<asio::executor_work_guard<Executor>> connIdle;
  // The acceptor's, and connections' too. All are stopped by the stop
  // pipe's watcher and run by run()'s threads.
  asio::io_context ioc{1};
  std::size_t nextIoc = 0;  // only the acceptor's handler uses it
  tcp::acceptor acceptor{ioc};
  asio::steady_timer acceptRetry{ioc};
  asio::posix::stream_descriptor wakeRead{ioc};
  int wakeWrite = -1;
  char wakeByte = 0;
  std::uint16_t boundPort = 0;
  asio::thread_pool workers;
  // Image builds: minutes each, one at a time, never on a request thread.
  asio::thread_pool longWork;
  std::shared_ptr<Parked> parked = std::make_shared<Parked>();
};

HttpServer::HttpServer(const Config& cfg, HttpHandler& handler, unsigned ioThreads,
                       unsigned workerThreads)
    : impl_(std::make_unique<Impl>(cfg, handler, ioThreads, workerThreads)) {}

HttpServer::~HttpServer() = default;

std::uint16_t HttpServer::port() const { return impl_->boundPort; }

void HttpServer::run() {
  std::vector<std::thread> threads;
  for (auto& c : impl_->connIocs) threads.emplace_back([this, &c] { impl_->runLoop(*c); });
  impl_->runLoop(impl_->ioc);
  for (auto& t : threads) t.join();
}

void HttpServer::stop() noexcept {
  char c = 1;
  [[maybe_unused]] auto n = ::write(impl_->wakeWrite, &c, 1);  // async-signal-safe
}

}  // namespace tango
