// CallbackSender against a real HTTP receiver on 127.0.0.1: the multipart
// body and Filename header Tango sends, retries while the receiver is down,
// giving up after maxAttempts, and a prompt stop() during a backoff wait.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tango/callback/CallbackSender.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using tango::CallbackSender;

namespace {

// Closes a socket when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

std::string lowerCase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Value of a header in a raw request head, or "" when absent.
std::string headerValue(const std::string& head, const std::string& name) {
  const std::string lowHead = lowerCase(head);
  const std::string needle = "\r\n" + lowerCase(name) + ":";
  auto pos = lowHead.find(needle);
  if (pos == std::string::npos) return "";
  pos += needle.size();
  auto end = head.find("\r\n", pos);
  std::string v = head.substr(pos, end - pos);
  v.erase(0, v.find_first_not_of(' '));
  return v;
}

struct Request {
  std::string head;  // request line and headers, up to and including the blank line
  std::string body;
};

// A minimal HTTP/1.1 server: one connection at a time, answers every request
// with a fixed status and closes the connection.
class Receiver {
 public:
  // `address`: the loopback address to listen on; `location`: sent as the
  // Location header (a redirect, with a 3xx status).
  explicit Receiver(int status, std::uint16_t port = 0, const std::string& address = "127.0.0.1",
                    std::string location = "")
      : status_(status), address_(address), location_(std::move(location)) {
    listen_ = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (listen_.get() < 0) throw std::runtime_error("socket");
    int one = 1;
    ::setsockopt(listen_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    if (::inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1)
      throw std::runtime_error("address");
    addr.sin_port = htons(port);
    if (::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_.get(), 16) != 0)
      throw std::runtime_error("bind/listen");
    socklen_t len = sizeof addr;
    ::getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~Receiver() {
    stop_ = true;
    thread_.join();
  }

  std::uint16_t port() const { return port_; }
  std::string url(const std::string& path = "/cb") const {
    return "http://" + address_ + ":" + std::to_string(port_) + path;
  }

  std::vector<Request> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  bool waitForRequests(std::size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
  }
  // Waits until n replies have been sent (a request is recorded before).
  bool waitForAnswers(std::size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return answered_ >= n; });
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{listen_.get(), POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      Fd conn(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (conn.get() < 0) continue;
      Request req;
      if (!readRequest(conn.get(), req)) continue;
      // Record the request before answering: once the reply is out, the sender
      // may report delivery and the test may look at requests() at once.
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(std::move(req));
      }
      cv_.notify_all();
      const std::string reply = "HTTP/1.1 " + std::to_string(status_) + " Status\r\n" +
                                (location_.empty() ? "" : "Location: " + location_ + "\r\n") +
                                "Content-Length: 2\r\nConnection: close\r\n\r\nok";
      (void)!::send(conn.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
      {
        std::lock_guard lock(mutex_);
        ++answered_;
      }
      cv_.notify_all();
    }
  }

  bool readSome(int fd, std::string& buf) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return false;
    char chunk[4096];
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buf.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  bool readRequest(int fd, Request& req) {
    std::string buf;
    std::size_t headEnd;
    while ((headEnd = buf.find("\r\n\r\n")) == std::string::npos)
      if (!readSome(fd, buf)) return false;
    req.head = buf.substr(0, headEnd + 4);
    buf.erase(0, headEnd + 4);
    // curl sends a Content-Length for a multipart body built from a file.
    const std::string cl = headerValue(req.head, "Content-Length");
    if (cl.empty()) return false;
    const std::size_t want = std::stoul(cl);
    while (buf.size() < want)
      if (!readSome(fd, buf)) return false;
    req.body = buf.substr(0, want);
    return true;
  }

  const int status_;
  const std::string address_;
  const std::string location_;
  Fd listen_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Request> requests_;
  std::size_t answered_ = 0;
};

// A port nothing listens on right now (bound, read, released).
std::uint16_t closedPort() {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw std::runtime_error("bind");
  socklen_t len = sizeof addr;
  ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

// Collects onDone calls so the test thread can wait for them.
struct Outcomes {
  struct Done {
    std::int64_t jobId;
    bool delivered;
    std::string detail;
  };
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<Done> done;

  CallbackSender::OnDone handler() {
    return [this](std::int64_t id, bool ok, const std::string& detail) {
      {
        std::lock_guard lock(mutex);
        done.push_back({id, ok, detail});
      }
      cv.notify_all();
    };
  }
  bool waitFor(std::size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, timeout, [&] { return done.size() >= n; });
  }
  std::vector<Done> snapshot() {
    std::lock_guard lock(mutex);
    return done;
  }
};

class CallbackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "tango-callback-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path writeFile(const std::string& name, const std::string& content) {
    fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  fs::path dir_;
};

}  // namespace

TEST(CallbackUrl, Validation) {
  using tango::isValidCallbackUrl;
  EXPECT_TRUE(isValidCallbackUrl("http://example.com/cb"));
  EXPECT_TRUE(isValidCallbackUrl("https://autolab.example.edu:3000/courses/x/notify?id=3"));
  EXPECT_TRUE(isValidCallbackUrl("HTTP://127.0.0.1:8080"));
  EXPECT_TRUE(isValidCallbackUrl("http://[::1]:80/x"));
  EXPECT_FALSE(isValidCallbackUrl(""));
  EXPECT_FALSE(isValidCallbackUrl("ftp://example.com/x"));
  EXPECT_FALSE(isValidCallbackUrl("file:///etc/passwd"));
  EXPECT_FALSE(isValidCallbackUrl("gopher://example.com"));
  EXPECT_FALSE(isValidCallbackUrl("example.com/cb"));
  EXPECT_FALSE(isValidCallbackUrl("http://"));
  EXPECT_FALSE(isValidCallbackUrl("http:///path"));
  EXPECT_FALSE(isValidCallbackUrl("http://user@/path"));
  EXPECT_FALSE(isValidCallbackUrl("http://:80/path"));
  EXPECT_TRUE(isValidCallbackUrl("http://user:pw@host/path"));
  EXPECT_FALSE(isValidCallbackUrl("http:/example.com"));
  EXPECT_FALSE(isValidCallbackUrl("http://exa mple.com/"));
  EXPECT_FALSE(isValidCallbackUrl("http://example.com/a b"));
  EXPECT_FALSE(isValidCallbackUrl("http://example.com/\r\nX: y"));
  EXPECT_FALSE(isValidCallbackUrl(std::string("http://example.com/\0", 20)));
  std::string longUrl = "http://example.com/" + std::string(2048, 'a');
  EXPECT_FALSE(isValidCallbackUrl(longUrl));
  EXPECT_TRUE(isValidCallbackUrl(longUrl.substr(0, 2048)));
}

TEST_F(CallbackTest, PostsMultipartFileFieldAndFilenameHeader) {
  // Bytes that would break a careless multipart writer or reader.
  std::string content = "line 1\r\n--not-a-boundary\r\n";
  content += std::string("\0\x01\xff binary", 10);
  content += "\n{\"scores\": {\"q1\": 10}}\n";
  fs::path file = writeFile("out.txt", content);

  Receiver rx(200);
  Outcomes out;
  {
    CallbackSender sender(3, 0.05, 5, out.handler());
    sender.enqueue({42, rx.url("/notify?x=1"), file, "test-lab_3_out.txt"});
    ASSERT_TRUE(out.waitFor(1, 10s));
  }
  auto done = out.snapshot();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].jobId, 42);
  EXPECT_TRUE(done[0].delivered);
  EXPECT_EQ(done[0].detail, "");

  auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 1u);
  const Request& r = reqs[0];
  EXPECT_EQ(r.head.rfind("POST /notify?x=1 HTTP/1.1\r\n", 0), 0u) << r.head;
  EXPECT_EQ(headerValue(r.head, "Filename"), "test-lab_3_out.txt");

  const std::string ctype = headerValue(r.head, "Content-Type");
  ASSERT_EQ(ctype.rfind("multipart/form-data;", 0), 0u) << ctype;
  auto b = ctype.find("boundary=");
  ASSERT_NE(b, std::string::npos);
  const std::string boundary = "--" + ctype.substr(b + 9);

  // Exactly one part, named "file", with the output file's name and bytes.
  ASSERT_EQ(r.body.rfind(boundary + "\r\n", 0), 0u);
  EXPECT_EQ(r.body.find(boundary, boundary.size()), r.body.size() - boundary.size() - 4);
  EXPECT_EQ(r.body.substr(r.body.size() - boundary.size() - 4), boundary + "--\r\n");
  auto partHeadEnd = r.body.find("\r\n\r\n");
  ASSERT_NE(partHeadEnd, std::string::npos);
  const std::string partHead = r.body.substr(0, partHeadEnd);
  EXPECT_NE(partHead.find("Content-Disposition: form-data; name=\"file\"; "
                          "filename=\"test-lab_3_out.txt\""),
            std::string::npos)
      << partHead;
  auto dataStart = partHeadEnd + 4;
  auto dataEnd = r.body.rfind("\r\n" + boundary + "--");
  ASSERT_NE(dataEnd, std::string::npos);
  EXPECT_EQ(r.body.substr(dataStart, dataEnd - dataStart), content);
}

TEST_F(CallbackTest, RetriesUntilReceiverComesUp) {
  fs::path file = writeFile("out", "result\n");
  const std::uint16_t port = closedPort();
  Outcomes out;
  CallbackSender sender(8, 0.2, 5, out.handler());
  sender.enqueue({7, "http://127.0.0.1:" + std::to_string(port) + "/cb", file, "out"});
  // The first attempt finds the port closed; the receiver appears during the backoff.
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(out.snapshot().empty());
  Receiver rx(200, port);
  ASSERT_TRUE(out.waitFor(1, 20s));
  auto done = out.snapshot();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].jobId, 7);
  EXPECT_TRUE(done[0].delivered) << done[0].detail;
  EXPECT_EQ(rx.requests().size(), 1u);
}

TEST_F(CallbackTest, GivesUpAfterMaxAttemptsOnServerError) {
  fs::path file = writeFile("out", "result\n");
  Receiver rx(500);
  Outcomes out;
  CallbackSender sender(3, 0.05, 5, out.handler());
  sender.enqueue({9, rx.url(), file, "out"});
  ASSERT_TRUE(out.waitFor(1, 20s));
  // No further attempts or onDone calls after giving up.
  std::this_thread::sleep_for(300ms);
  auto done = out.snapshot();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].jobId, 9);
  EXPECT_FALSE(done[0].delivered);
  EXPECT_NE(done[0].detail.find("HTTP 500"), std::string::npos) << done[0].detail;
  EXPECT_NE(done[0].detail.find("3 attempt"), std::string::npos) << done[0].detail;
  EXPECT_EQ(rx.requests().size(), 3u);
}

// A callback another node took over (this one stalled past its lease) is
// dropped before the next attempt: no request, no onDone.
TEST_F(CallbackTest, ACallbackNoLongerOursIsNotSent) {
  fs::path file = writeFile("out", "result\n");
  Receiver rx(500);
  Outcomes out;
  CallbackSender sender(5, 0.2, 5, out.handler());
  std::atomic<bool> ours{true};
  sender.enqueue({13, rx.url(), file, "out", [&] { return ours.load(); }});
  for (int i = 0; i < 100 && rx.requests().empty(); ++i) std::this_thread::sleep_for(20ms);
  ASSERT_EQ(rx.requests().size(), 1u) << "first attempt, still ours";
  ours = false;  // taken over during the backoff
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(rx.requests().size(), 1u) << "no attempt once it is another node's";
  EXPECT_TRUE(out.snapshot().empty()) << "and no completion recorded here";
  // One that is ours goes out.
  sender.enqueue({14, rx.url(), file, "out", [] { return true; }});
  for (int i = 0; i < 100 && rx.requests().size() < 2; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(rx.requests().size(), 2u);
}

TEST_F(CallbackTest, StopReturnsPromptlyDuringBackoff) {
  fs::path file = writeFile("out", "result\n");
  Receiver rx(503);
  Outcomes out;
  CallbackSender sender(5, 30.0, 5, out.handler());
  sender.enqueue({11, rx.url(), file, "out"});
  ASSERT_TRUE(rx.waitForAnswers(1, 10s));
  std::this_thread::sleep_for(100ms);  // now sleeping out the 30 s backoff
  auto t0 = std::chrono::steady_clock::now();
  sender.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);  // far from the 30 s backoff
  // Dropped, not failed: the caller's store keeps it pending.
  EXPECT_TRUE(out.snapshot().empty());
  sender.stop();                                // idempotent
  sender.enqueue({12, rx.url(), file, "out"});  // ignored after stop
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(rx.requests().size(), 1u);
}

TEST_F(CallbackTest, StopAbortsATransferInProgress) {
  // A listener that accepts (via the backlog) but never answers.
  Fd silent(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(silent.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(silent.get(), 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(silent.get(), reinterpret_cast<sockaddr*>(&addr), &len);

  fs::path file = writeFile("out", "result\n");
  Outcomes out;
  CallbackSender sender(1, 1.0, 60, out.handler());
  sender.enqueue(
      {13, "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/", file, "out"});
  std::this_thread::sleep_for(300ms);
  auto t0 = std::chrono::steady_clock::now();
  sender.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);  // far from the 60 s transfer timeout
  EXPECT_TRUE(out.snapshot().empty());
}

TEST_F(CallbackTest, TimeoutCountsAsFailure) {
  Fd silent(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(silent.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(silent.get(), 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(silent.get(), reinterpret_cast<sockaddr*>(&addr), &len);

  fs::path file = writeFile("out", "result\n");
  Outcomes out;
  CallbackSender sender(1, 0.1, 1, out.handler());
  sender.enqueue(
      {14, "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/", file, "out"});
  ASSERT_TRUE(out.waitFor(1, 10s));
  auto done = out.snapshot();
  EXPECT_FALSE(done[0].delivered);
  EXPECT_NE(lowerCase(done[0].detail).find("timed out"), std::string::npos) << done[0].detail;
}

TEST_F(CallbackTest, PermanentFailuresAreNotRetried) {
  Receiver rx(200);
  Outcomes out;
  CallbackSender sender(5, 10.0, 5, out.handler());
  sender.enqueue({1, "ftp://127.0.0.1/x", writeFile("a", "x"), "a"});
  sender.enqueue({2, rx.url(), dir_ / "missing", "missing"});
  sender.enqueue({3, rx.url(), writeFile("b", "x"), "bad\r\nX-Injected: 1"});
  ASSERT_TRUE(out.waitFor(3, 5s));
  for (const auto& d : out.snapshot()) {
    EXPECT_FALSE(d.delivered) << d.jobId;
    EXPECT_NE(d.detail.find("1 attempt"), std::string::npos) << d.detail;
    // The detail is stored and shown: it names the file, never its host
    // path (which holds the API key in a courselab directory's name).
    EXPECT_EQ(d.detail.find(dir_.string()), std::string::npos) << d.detail;
    if (d.jobId == 2) {
      EXPECT_NE(d.detail.find("output file missing not found"), std::string::npos) << d.detail;
    }
  }
  EXPECT_TRUE(rx.requests().empty());
}

TEST_F(CallbackTest, ManyDeliveriesEachReportedOnce) {
  Receiver rx(200);
  Outcomes out;
  CallbackSender sender(3, 0.05, 5, out.handler());
  for (int i = 0; i < 20; ++i)
    sender.enqueue({i, rx.url(), writeFile("f" + std::to_string(i), std::to_string(i)),
                    "f" + std::to_string(i)});
  ASSERT_TRUE(out.waitFor(20, 30s));
  std::this_thread::sleep_for(100ms);
  auto done = out.snapshot();
  ASSERT_EQ(done.size(), 20u);
  std::vector<std::int64_t> ids;
  for (const auto& d : done) {
    EXPECT_TRUE(d.delivered);
    ids.push_back(d.jobId);
  }
  std::sort(ids.begin(), ids.end());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(ids[static_cast<std::size_t>(i)], i);
}

// The callback policy (CALLBACK_DENY / CALLBACK_ALLOW) with receivers on
// loopback and a policy that denies loopback: nothing is ever sent anywhere
// else.
TEST_F(CallbackTest, ADeniedAddressIsNeverContactedAndNotRetried) {
  Receiver rx(200);
  Outcomes out;
  CallbackSender::Options denyLoopback;
  denyLoopback.policy = tango::AddressPolicy({}, {"127.0.0.0/8"});
  CallbackSender sender(5, 0.05, 5, out.handler(), denyLoopback);
  sender.enqueue({1, rx.url("/cb?secret=S3CR3T"), writeFile("a", "x"), "a"});
  ASSERT_TRUE(out.waitFor(1, 5s));
  auto d = out.snapshot().at(0);
  EXPECT_FALSE(d.delivered);
  EXPECT_NE(d.detail.find("1 attempt"), std::string::npos) << d.detail;
  EXPECT_NE(d.detail.find("127.0.0.1 is not allowed (CALLBACK_DENY / CALLBACK_ALLOW)"),
            std::string::npos)
      << d.detail;
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(rx.requests().empty());

  // An allow list that leaves the address out refuses it as well.
  Outcomes out2;
  CallbackSender::Options allowOther;
  allowOther.policy = tango::AddressPolicy({"127.0.0.2/32"}, {});
  CallbackSender narrow(5, 0.05, 5, out2.handler(), allowOther);
  narrow.enqueue({2, rx.url(), writeFile("b", "x"), "b"});
  ASSERT_TRUE(out2.waitFor(1, 5s));
  EXPECT_FALSE(out2.snapshot().at(0).delivered);
  EXPECT_TRUE(rx.requests().empty());
}

TEST_F(CallbackTest, ARedirectToADeniedAddressIsNotFollowed) {
  // The final receiver listens on 127.0.0.2; the first one, on 127.0.0.1,
  // redirects there (307 keeps the POST and its body).
  Receiver target(200, 0, "127.0.0.2");
  Receiver redirector(307, 0, "127.0.0.1", target.url("/stolen"));
  fs::path file = writeFile("out", "the output\n");

  // Control: with nothing denied, the redirect is followed with the body,
  // so the refusal below is the policy's doing.
  {
    Outcomes out;
    CallbackSender open(1, 0.05, 5, out.handler());
    open.enqueue({1, redirector.url(), file, "out"});
    ASSERT_TRUE(out.waitFor(1, 5s));
    EXPECT_TRUE(out.snapshot().at(0).delivered) << out.snapshot().at(0).detail;
    ASSERT_EQ(target.requests().size(), 1u);
  }
  Outcomes out;
  CallbackSender::Options deny;
  deny.policy = tango::AddressPolicy({}, {"127.0.0.2/32"});
  CallbackSender sender(3, 0.05, 5, out.handler(), deny);
  sender.enqueue({2, redirector.url(), file, "out"});
  ASSERT_TRUE(out.waitFor(1, 5s));
  auto d = out.snapshot().at(0);
  EXPECT_FALSE(d.delivered);
  EXPECT_NE(d.detail.find("127.0.0.2 is not allowed"), std::string::npos) << d.detail;
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(target.requests().size(), 1u);  // still only the control's
  EXPECT_EQ(redirector.requests().size(), 2u);
}

TEST_F(CallbackTest, TheJobsOwnCopyIsSentThenRemoved) {
  Receiver rx(200);
  Outcomes out;
  fs::path copy = writeFile(".callback-9", "as it finished\n");
  {
    CallbackSender sender(3, 0.05, 5, out.handler());
    CallbackSender::Delivery d{9, rx.url(), copy, "lab_9_out"};
    d.removeWhenDone = true;
    sender.enqueue(std::move(d));
    ASSERT_TRUE(out.waitFor(1, 5s));
  }
  EXPECT_TRUE(out.snapshot().at(0).delivered);
  ASSERT_EQ(rx.requests().size(), 1u);
  EXPECT_NE(rx.requests()[0].body.find("as it finished\n"), std::string::npos);
  EXPECT_FALSE(fs::exists(copy));
}
