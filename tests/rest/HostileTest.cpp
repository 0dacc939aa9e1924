// Bad input: each gets a JSON -1 with a message, and nothing is written or
// read outside the courselab (the temp dir's tree is compared before/after).
#include <fstream>

#include "TestServer.hpp"

namespace tango::test {
namespace {

void writeFile(const std::filesystem::path& p, const std::string& data) {
  std::ofstream(p, std::ios::binary) << data;
}

class HostileTest : public RestTest {
 protected:
  void expectFailure(const std::optional<Response>& r, const std::string& msgPart,
                     const std::string& what) {
    ASSERT_TRUE(r) << what;
    auto s = statusOf(*r);
    EXPECT_EQ(s.id, -1) << what;
    EXPECT_NE(s.msg.find(msgPart), std::string::npos) << what << ": " << s.msg;
  }
};

TEST_F(HostileTest, OpenWithTraversalCreatesNothing) {
  auto before = tree();
  for (const char* target :
       {"/open/test/..%2F..%2Fescape/", "/open/test/..%2F..%2F..%2Fescape", "/open/test/../",
        "/open/test/%2E%2E/", "/open/test/a%2Fb/", "/open/test/%2Fabs/", "/open/test/%00/",
        "/open/test/x%00y/", "/open/test/%0a/"}) {
    expectFailure(get(target), "Invalid courselab name", target);
  }
  auto empty = get("/open/test//");
  ASSERT_TRUE(empty);
  EXPECT_EQ(statusOf(*empty).id, -1);
  EXPECT_EQ(tree(), before);
}

TEST_F(HostileTest, UploadBadFilenamesLeaveNothing) {
  get("/open/test/lab/");
  auto before = tree();
  for (const char* name :
       {"../../x", "..", ".", "a/b", "/etc/passwd", "", "output", ".upload-abc123"}) {
    expectFailure(post("/upload/test/lab/", {{"Filename", name}}, "data"), "Invalid file name",
                  std::string("Filename=") + name);
  }
  expectFailure(post("/upload/test/lab/", {}, "data"), "Missing Filename header", "no Filename");
  expectFailure(post("/upload/test/..%2F..%2Fx/", {{"Filename", "f"}}, "data"),
                "Invalid courselab name", "traversal courselab");
  expectFailure(post("/upload/test/never/", {{"Filename", "f"}}, "data"), "Courselab not found",
                "never opened");
  EXPECT_EQ(tree(), before);
}

TEST_F(HostileTest, PollCannotReadOutside) {
  get("/open/test/lab/");
  writeFile(tmp_ / "secret", "TOPSECRET");
  writeFile(labDir() / "notoutput", "TOPSECRET");
  std::filesystem::create_symlink(tmp_ / "secret", labDir() / "output" / "link");
  std::filesystem::create_directory(labDir() / "output" / "dir");
  for (const char* target :
       {"/poll/test/lab/..%2F..%2F..%2F..%2Fsecret/", "/poll/test/lab/..%2Fnotoutput",
        "/poll/test/lab/link/", "/poll/test/lab/dir/", "/poll/test/lab/%2E%2E/",
        "/poll/test/..%2F..%2F..%2F/secret/", "/poll/test/lab/%00/"}) {
    auto r = get(target);
    ASSERT_TRUE(r) << target;
    EXPECT_EQ(r->header("content-type"), "application/json") << target;
    EXPECT_EQ(statusOf(*r).id, -1) << target;
    EXPECT_EQ(r->body.find("TOPSECRET"), std::string::npos) << target;
  }
}

TEST_F(HostileTest, OversizeUploadIsRefusedAndRemoved) {
  cfg_.maxInputFileSize = 1024 * 1024;
  get("/open/test/lab/");
  auto before = tree();
  {
    // Declared too big: refused before the body is read.
    Conn c(port());
    std::string body(2 * 1024 * 1024, 'x');
    auto r = c.request("POST", "/upload/test/lab/", {{"Filename", "big"}}, body);
    expectFailure(r, "File too large", "content-length");
    EXPECT_NE(statusOf(*r).msg.find("1048576"), std::string::npos);
    EXPECT_TRUE(c.closedByPeer());
  }
  {
    // Chunked: found out while streaming; the partial file goes.
    Conn c(port());
    ASSERT_TRUE(
        c.sendAll("POST /upload/test/lab/ HTTP/1.1\r\nHost: x\r\nFilename: big\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n"));
    std::string piece(256 * 1024, 'y');
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
    for (int i = 0; i < 5; ++i) {
      if (!c.sendAll(std::string(size) + piece + "\r\n")) break;
    }
    c.sendAll("0\r\n\r\n");
    expectFailure(c.read(), "File too large", "chunked");
    EXPECT_TRUE(c.closedByPeer());
  }
  EXPECT_EQ(tree(), before);
}

TEST_F(HostileTest, ExpectContinueOversizeGetsAnswerInsteadOfContinue) {
  cfg_.maxInputFileSize = 1024;
  get("/open/test/lab/");
  Conn c(port());
  ASSERT_TRUE(
      c.sendAll("POST /upload/test/lab/ HTTP/1.1\r\nHost: x\r\nFilename: big\r\n"
                "Expect: 100-continue\r\nContent-Length: 5000\r\n\r\n"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  expectFailure(r, "File too large", "expect");
}

TEST_F(HostileTest, AddJobBadBodies) {
  cfg_.maxJsonBodyBytes = 1024;
  get("/open/test/lab/");
  auto before = tree();
  expectFailure(post("/addJob/test/lab/", {}, "{not json"), "Malformed JSON", "malformed");
  expectFailure(post("/addJob/test/lab/", {}, ""), "Malformed JSON", "empty");
  expectFailure(post("/addJob/test/lab/", {}, "[1,2]"), "must be a JSON object", "array");
  expectFailure(post("/addJob/test/lab/", {}, "\"str\""), "must be a JSON object", "string");
  expectFailure(post("/addJob/test/lab/", {}, std::string(200, '[')), "Malformed JSON", "deep");
  expectFailure(post("/addJob/test/lab/", {}, "{\"a\":\"\xff\"}"), "Malformed JSON", "utf8");
  expectFailure(post("/addJob/test/lab/", {}, "{\"x\":\"" + std::string(4096, 'a') + "\"}"),
                "too large", "oversize");
  expectFailure(post("/addJob/test/never/", {}, "{}"), "Courselab not found", "not opened");
  expectFailure(post("/addJob/test/..%2Fx/", {}, "{}"), "Invalid courselab name", "traversal");
  EXPECT_EQ(jobs_.addJobCalls, 0);
  EXPECT_EQ(tree(), before);
}

TEST_F(HostileTest, HugeHeaderGets431) {
  Conn c(port());
  std::string big(cfg_.maxHeaderBytes + 1000, 'a');
  auto r = c.request("GET", "/", {{"X-Big", big}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(statusOf(*r).id, -1);
  EXPECT_TRUE(c.closedByPeer());
}

TEST_F(HostileTest, MalformedRequestsGet400AndNoCrash) {
  using namespace std::string_literals;
  for (const std::string& raw :
       {"GARBAGE\r\n\r\n"s, "GET / HTTP/9.9\r\n\r\n"s, "GET / HTTP/1.1\r\nBad Header\r\n\r\n"s,
        "POST /upload/test/lab/ HTTP/1.1\r\nContent-Length: abc\r\n\r\n"s,
        "POST /upload/test/lab/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"s,
        "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"s}) {
    Conn c(port());
    ASSERT_TRUE(c.sendAll(raw));
    auto r = c.read();
    ASSERT_TRUE(r) << raw;
    EXPECT_EQ(r->status, 400) << raw;
    EXPECT_EQ(statusOf(*r).id, -1) << raw;
  }
  // Still serving.
  EXPECT_EQ(get("/")->status, 200);
}

TEST_F(HostileTest, ClientVanishingMidUploadLeavesNothing) {
  get("/open/test/lab/");
  auto before = tree();
  {
    Conn c(port());
    ASSERT_TRUE(
        c.sendAll("POST /upload/test/lab/ HTTP/1.1\r\nHost: x\r\nFilename: f\r\nContent-Length: "
                  "1000000\r\n\r\n" +
                  std::string(300000, 'z')));
    // Let the server create the temp file and write some of it.
    for (int i = 0; i < 1000 && tree() == before; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_NE(tree(), before);  // the temp file exists while the body streams
  }
  for (int i = 0; i < 1000 && tree() != before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(tree(), before);
}

TEST_F(HostileTest, UploadOverADirectoryFailsCleanly) {
  get("/open/test/lab/");
  std::filesystem::create_directory(labDir() / "subdir");
  auto before = tree();
  expectFailure(post("/upload/test/lab/", {{"Filename", "subdir"}}, "data"), "Cannot store file",
                "directory");
  EXPECT_EQ(tree(), before);
}

TEST_F(HostileTest, StopWithUploadInFlightLeavesNothing) {
  get("/open/test/lab/");
  auto before = tree();
  Conn c(port());
  ASSERT_TRUE(
      c.sendAll("POST /upload/test/lab/ HTTP/1.1\r\nHost: x\r\nFilename: f\r\nContent-Length: "
                "1000000\r\n\r\n" +
                std::string(1000, 'z')));
  for (int i = 0; i < 1000 && tree() == before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_NE(tree(), before);  // the temp file exists while the body streams
  stopServer();
  EXPECT_EQ(tree(), before);
}

}  // namespace
}  // namespace tango::test
