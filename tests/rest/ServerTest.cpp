// The HTTP layer: keep-alive, pipelining, streaming bodies, many connections, stop.
#include <fstream>
#include <vector>

#include "TestServer.hpp"
#include "tango/util/Md5.hpp"

namespace tango::test {
namespace {

long vmHwmKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

TEST_F(RestTest, KeepAliveManyRequestsOnOneConnection) {
  Conn c(port());
  ASSERT_TRUE(c.request("GET", "/open/test/lab/"));
  for (int i = 0; i < 200; ++i) {
    auto r = i % 3 == 0   ? c.request("GET", "/")
             : i % 3 == 1 ? c.request("GET", "/info/test/")
                          : c.request("POST", "/upload/test/lab/",
                                      {{"Filename", "f" + std::to_string(i % 7)}}, "content");
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->status, 200) << i;
    EXPECT_NE(r->header("connection"), "close");
  }
  // Failures keep the connection too.
  auto bad = c.request("GET", "/poll/test/lab/none/");
  EXPECT_EQ(statusOf(*bad).id, -1);
  EXPECT_EQ(c.request("GET", "/")->status, 200);
}

TEST_F(RestTest, PipelinedRequests) {
  Conn c(port());
  std::string two = Conn::requestText("GET", "/", {}, "") +
                    Conn::requestText("GET", "/info/test", {}, "") +
                    Conn::requestText("GET", "/nothing", {}, "");
  ASSERT_TRUE(c.sendAll(two));
  auto a = c.read();
  auto b = c.read();
  auto d = c.read();
  ASSERT_TRUE(a && b && d);
  EXPECT_EQ(a->body, "Hello, world! RESTful Tango here!");
  EXPECT_EQ(statusOf(*b).msg, "Found info successfully");
  EXPECT_EQ(d->status, 404);
}

TEST_F(RestTest, ConnectionCloseIsHonoured) {
  Conn c(port());
  auto r = c.request("GET", "/", {{"Connection", "close"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c.closedByPeer());
}

TEST_F(RestTest, Http10ClosesByDefault) {
  Conn c(port());
  ASSERT_TRUE(c.sendAll("GET / HTTP/1.0\r\n\r\n"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "Hello, world! RESTful Tango here!");
  EXPECT_TRUE(c.closedByPeer());
}

TEST_F(RestTest, ExpectContinueUpload) {
  get("/open/test/lab/");
  Conn c(port());
  ASSERT_TRUE(
      c.sendAll("POST /upload/test/lab/ HTTP/1.1\r\nHost: x\r\nFilename: f\r\n"
                "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
  // The interim answer comes before we send the body.
  auto interim = c.read(false);
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(c.sendAll("hello"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(statusOf(*r).msg, "Uploaded file");
}

TEST_F(RestTest, ChunkedUpload) {
  get("/open/test/lab/");
  Conn c(port());
  ASSERT_TRUE(
      c.sendAll("POST /upload/test/lab/ HTTP/1.1\r\nHost: x\r\nFilename: f\r\n"
                "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(statusOf(*r).msg, "Uploaded file");
  auto o = jsonOf(*c.request("GET", "/open/test/lab/"));
  EXPECT_EQ(o["files"].as_object()["f"].as_string(), md5Hex("hello world"));
}

TEST_F(RestTest, BigUploadIsStreamedNotBuffered) {
  get("/open/test/lab/");
  constexpr std::size_t kPiece = 1024 * 1024;
  constexpr int kPieces = 50;
  std::string piece(kPiece, '\0');
  for (std::size_t i = 0; i < kPiece; ++i) piece[i] = static_cast<char>(i * 31 + 7);
  Md5 md5;
  for (int i = 0; i < kPieces; ++i) md5.update(piece);
  std::string expected = md5.hexDigest();

  long before = vmHwmKb();
  Conn c(port());
  ASSERT_TRUE(
      c.sendAll("POST /upload/test/lab/ HTTP/1.1\r\nHost: x\r\nFilename: big.bin\r\n"
                "Content-Length: " +
                std::to_string(kPiece * kPieces) + "\r\n\r\n"));
  for (int i = 0; i < kPieces; ++i) ASSERT_TRUE(c.sendAll(piece));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(statusOf(*r).msg, "Uploaded file");
  long after = vmHwmKb();
  // Buffering 50 MB would raise the high-water mark by at least that much.
  EXPECT_LT(after - before, 30 * 1024) << "VmHWM grew from " << before << " to " << after << " kB";
  EXPECT_EQ(std::filesystem::file_size(labDir() / "big.bin"), kPiece * kPieces);
  auto o = jsonOf(*c.request("GET", "/open/test/lab/"));
  EXPECT_EQ(o["files"].as_object()["big.bin"].as_string(), expected);
  // Identical again: "File exists" (hashed from the cache, temp removed).
  ASSERT_TRUE(
      c.sendAll("POST /upload/test/lab/ HTTP/1.1\r\nHost: x\r\nFilename: big.bin\r\n"
                "Content-Length: " +
                std::to_string(kPiece * kPieces) + "\r\n\r\n"));
  for (int i = 0; i < kPieces; ++i) ASSERT_TRUE(c.sendAll(piece));
  EXPECT_EQ(statusOf(*c.read()).msg, "File exists");
  for (const auto& e : std::filesystem::directory_iterator(labDir())) {
    EXPECT_EQ(e.path().filename().string().rfind(".upload-", 0), std::string::npos);
  }
}

TEST_F(RestTest, ManyIdleConnectionsAndConcurrentClients) {
  std::vector<std::unique_ptr<Conn>> idle;
  for (int i = 0; i < 300; ++i) idle.push_back(std::make_unique<Conn>(port()));
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&] {
      Conn c(port());
      for (int i = 0; i < 25; ++i) {
        auto r = c.request("GET", "/");
        if (r && r->status == 200) ++ok;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 200);
  // The idle ones still work.
  EXPECT_EQ(idle.front()->request("GET", "/")->status, 200);
  EXPECT_EQ(idle.back()->request("GET", "/")->status, 200);
}

TEST(HttpServer, StopBeforeRunReturnsAndStopIsRepeatable) {
  Config cfg;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  struct Nothing : HttpHandler {
    std::unique_ptr<HttpExchange> begin(const HttpHead&) override { return nullptr; }
  } handler;
  HttpServer server(cfg, handler, 1, 1);
  EXPECT_NE(server.port(), 0);
  server.stop();
  server.stop();
  server.run();  // returns at once
  SUCCEED();
}

TEST(HttpServer, NullExchangeAnswers500) {
  Config cfg;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  struct Nothing : HttpHandler {
    std::unique_ptr<HttpExchange> begin(const HttpHead&) override { return nullptr; }
  } handler;
  HttpServer server(cfg, handler);
  std::thread t([&] { server.run(); });
  auto r = fetch(server.port(), "GET", "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  server.stop();
  t.join();
}

TEST(HttpServer, BindFailureThrows) {
  Config cfg;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  struct Nothing : HttpHandler {
    std::unique_ptr<HttpExchange> begin(const HttpHead&) override { return nullptr; }
  } handler;
  HttpServer first(cfg, handler, 1, 1);
  cfg.port = first.port();
  EXPECT_ANY_THROW(HttpServer(cfg, handler, 1, 1));
  cfg.port = 70000;
  EXPECT_ANY_THROW(HttpServer(cfg, handler, 1, 1));
}

}  // namespace
}  // namespace tango::test
