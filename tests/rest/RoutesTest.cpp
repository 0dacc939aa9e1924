// Every route's success answer, exact texts and content types, both slash forms.
#include <fstream>
#include <thread>

#include "TestServer.hpp"
#include "tango/util/Md5.hpp"

namespace tango::test {
namespace {

void writeFile(const std::filesystem::path& p, const std::string& data) {
  std::ofstream(p, std::ios::binary) << data;
}

TEST_F(RestTest, HelloIsPlainText) {
  auto r = get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "Hello, world! RESTful Tango here!");
  EXPECT_EQ(r->header("content-type"), "text/plain");
}

TEST_F(RestTest, OpenCreatesThenFinds) {
  auto r = get("/open/test/lab/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto o = jsonOf(*r);
  EXPECT_EQ(o["statusId"].as_int64(), 0);
  EXPECT_EQ(o["statusMsg"].as_string(), "Created directory");
  EXPECT_TRUE(o["files"].as_object().empty());
  EXPECT_TRUE(std::filesystem::is_directory(labDir() / "output"));

  auto again = get("/open/test/lab");  // no trailing slash
  ASSERT_TRUE(again);
  auto s = statusOf(*again);
  EXPECT_EQ(s.id, 0);
  EXPECT_EQ(s.msg, "Found directory");
}

TEST_F(RestTest, UploadThenOpenListsRealMd5s) {
  ASSERT_EQ(statusOf(*get("/open/test/lab/")).msg, "Created directory");
  auto up = post("/upload/test/lab/", {{"Filename", "Makefile"}}, "all:\n\techo hi\n");
  ASSERT_TRUE(up);
  EXPECT_EQ(statusOf(*up).id, 0);
  EXPECT_EQ(statusOf(*up).msg, "Uploaded file");
  ASSERT_TRUE(post("/upload/test/lab", {{"Filename", "empty.txt"}}, ""));

  auto o = jsonOf(*get("/open/test/lab/"));
  EXPECT_EQ(o["statusMsg"].as_string(), "Found directory");
  auto& files = o["files"].as_object();
  EXPECT_EQ(files.size(), 2u);
  EXPECT_EQ(files["Makefile"].as_string(), md5Hex("all:\n\techo hi\n"));
  EXPECT_EQ(files["empty.txt"].as_string(), md5Hex(""));

  // Same content again: nothing to do.
  auto same = post("/upload/test/lab/", {{"Filename", "Makefile"}}, "all:\n\techo hi\n");
  EXPECT_EQ(statusOf(*same).id, 0);
  EXPECT_EQ(statusOf(*same).msg, "File exists");
  // New content replaces the file and the map follows.
  auto changed = post("/upload/test/lab/", {{"Filename", "Makefile"}}, "all:\n\ttrue\n");
  EXPECT_EQ(statusOf(*changed).msg, "Uploaded file");
  auto o2 = jsonOf(*get("/open/test/lab/"));
  EXPECT_EQ(o2["files"].as_object()["Makefile"].as_string(), md5Hex("all:\n\ttrue\n"));
  // Same size, different content: not "File exists".
  auto sameSize = post("/upload/test/lab/", {{"Filename", "Makefile"}}, "all:\n\tfals\n");
  EXPECT_EQ(statusOf(*sameSize).msg, "Uploaded file");

  // A file rewritten behind our back (same inode, new mtime/size) is rehashed.
  writeFile(labDir() / "empty.txt", "now something");
  auto o3 = jsonOf(*get("/open/test/lab/"));
  EXPECT_EQ(o3["files"].as_object()["empty.txt"].as_string(), md5Hex("now something"));
}

TEST_F(RestTest, OpenListsOnlyRegularFiles) {
  get("/open/test/lab/");
  std::filesystem::create_directory(labDir() / "subdir");
  writeFile(tmp_ / "secret", "secret");
  std::filesystem::create_symlink(tmp_ / "secret", labDir() / "link");
  writeFile(labDir() / ".upload-abc123", "partial");
  writeFile(labDir() / "real", "x");
  auto o = jsonOf(*get("/open/test/lab/"));
  auto& files = o["files"].as_object();
  EXPECT_EQ(files.size(), 1u);
  EXPECT_TRUE(files.contains("real"));
}

TEST_F(RestTest, AddJobReturnsIdAsString) {
  get("/open/test/lab/");
  auto r = post("/addJob/test/lab/", {},
                R"({"image":"autograding_image","jobName":"j","output_file":"out",
                    "files":[{"localFile":"Makefile","destFile":"Makefile"}],"timeout":10})");
  ASSERT_TRUE(r);
  auto o = jsonOf(*r);
  EXPECT_EQ(o["statusId"].as_int64(), 0);
  EXPECT_EQ(o["statusMsg"].as_string(), "Job added");
  ASSERT_TRUE(o["jobId"].is_string());
  EXPECT_EQ(o["jobId"].as_string(), "7");
  std::lock_guard lock(jobs_.mutex);
  EXPECT_EQ(jobs_.lastKey, "test");
  EXPECT_EQ(jobs_.lastCourselab, "lab");
  EXPECT_EQ(jobs_.lastDir, labDir());
  EXPECT_EQ(jobs_.lastJob.as_object().at("jobName").as_string(), "j");
}

TEST_F(RestTest, AddJobFailureCarriesServiceMessage) {
  get("/open/test/lab/");
  jobs_.addJobResult = {false, 0, "Job rejected: no Makefile"};
  auto s = statusOf(*post("/addJob/test/lab", {}, "{}"));
  EXPECT_EQ(s.id, -1);
  EXPECT_EQ(s.msg, "Job rejected: no Makefile");
}

TEST_F(RestTest, PollReturnsRawBytesBothSlashForms) {
  get("/open/test/lab/");
  std::string content("Autograder [x]: Received job\n\0binary\xff", 38);
  writeFile(labDir() / "output" / "out", content);
  for (const char* target : {"/poll/test/lab/out", "/poll/test/lab/out/"}) {
    auto r = get(target);
    ASSERT_TRUE(r) << target;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->header("content-type"), "application/octet-stream");
    EXPECT_EQ(r->body, content);
  }
  // URL-encoded name.
  writeFile(labDir() / "output" / "a b.txt", "spaced");
  EXPECT_EQ(get("/poll/test/lab/a%20b.txt")->body, "spaced");

  auto missing = get("/poll/test/lab/nope/");
  EXPECT_EQ(statusOf(*missing).id, -1);
  EXPECT_EQ(statusOf(*missing).msg, "Output file not found");
  auto noLab = get("/poll/test/never/out/");
  EXPECT_EQ(statusOf(*noLab).msg, "Output file not found");
}

TEST_F(RestTest, PartialOutput) {
  auto r = get("/getPartialOutput/test/5/");
  auto o = jsonOf(*r);
  EXPECT_EQ(o["statusId"].as_int64(), 0);
  EXPECT_EQ(o["statusMsg"].as_string(), "Partial output obtained");
  EXPECT_EQ(o["output"].as_string(), "so far\n\xEF\xBF\xBD");  // invalid UTF-8 replaced

  auto unknown = statusOf(*get("/getPartialOutput/test/6"));
  EXPECT_EQ(unknown.id, -1);
  EXPECT_NE(unknown.msg.find("not running"), std::string::npos);
  for (const char* bad :
       {"/getPartialOutput/test/0/", "/getPartialOutput/test/-1/", "/getPartialOutput/test/abc/",
        "/getPartialOutput/test/1x/", "/getPartialOutput/test/99999999999999999999999/"}) {
    auto s = statusOf(*get(bad));
    EXPECT_EQ(s.id, -1) << bad;
    EXPECT_EQ(s.msg, "Invalid job id: must be a positive integer") << bad;
  }
}

TEST_F(RestTest, InfoJobsPools) {
  auto info = jsonOf(*get("/info/test/"));
  EXPECT_EQ(info["statusMsg"].as_string(), "Found info successfully");
  EXPECT_EQ(info["info"].as_object()["job_requests"].as_int64(), 4);
  EXPECT_EQ(statusOf(*get("/info/test")).id, 0);

  auto live = jsonOf(*get("/jobs/test/0/"));
  EXPECT_EQ(live["statusMsg"].as_string(), "Found list of jobs");
  EXPECT_EQ(live["jobs"].as_array()[0].as_object()["id"].as_int64(), 3);
  auto dead = jsonOf(*get("/jobs/test/1"));
  EXPECT_EQ(dead["jobs"].as_array()[0].as_object()["id"].as_int64(), 2);
  for (const char* bad : {"/jobs/test/2/", "/jobs/test/x/", "/jobs/test/01/"}) {
    EXPECT_EQ(statusOf(*get(bad)).id, -1) << bad;
  }

  auto all = jsonOf(*get("/pool/test/"));
  EXPECT_EQ(all["statusMsg"].as_string(), "Found all pools");
  EXPECT_EQ(all["pools"].as_object()["autograding_image"].as_object()["total"].as_array().size(),
            2u);
  auto one = jsonOf(*get("/pool/test/autograding_image"));
  EXPECT_EQ(one["statusMsg"].as_string(), "Found pool");
  auto none = statusOf(*get("/pool/test/other/"));
  EXPECT_EQ(none.id, -1);
  EXPECT_EQ(none.msg, "Pool not found");
}

TEST_F(RestTest, Prealloc) {
  // Autolab's form: GET with a JSON body.
  auto r = get("/prealloc/test/autograding_image/3/", {}, R"({"vmms":"localDocker","cores":2})");
  auto s = statusOf(*r);
  EXPECT_EQ(s.id, 0);
  EXPECT_EQ(s.msg, "VMs preallocated");
  {
    std::lock_guard lock(jobs_.mutex);
    EXPECT_EQ(jobs_.lastImage, "autograding_image");
    EXPECT_EQ(jobs_.lastNum, 3);
    EXPECT_EQ(jobs_.lastPreallocBody["cores"].as_int64(), 2);
  }
  EXPECT_EQ(statusOf(*post("/prealloc/test/autograding_image/0")).msg, "VMs preallocated");
  // The ceiling is MAX_POOL_SIZE (64 unless configured): one more is refused
  // with the key to change, and nothing reaches the pools.
  EXPECT_EQ(statusOf(*post("/prealloc/test/autograding_image/64/")).id, 0);
  {
    std::lock_guard lock(jobs_.mutex);
    jobs_.lastNum = -7;
  }
  auto over = statusOf(*post("/prealloc/test/img/65/"));
  EXPECT_EQ(over.id, -1);
  EXPECT_EQ(over.msg, "Invalid prealloc size: at most 64 (MAX_POOL_SIZE)");
  {
    std::lock_guard lock(jobs_.mutex);
    EXPECT_EQ(jobs_.lastNum, -7);
  }
  for (const char* bad : {"/prealloc/test/img/-1/", "/prealloc/test/img/abc/",
                          "/prealloc/test/img/1.5/", "/prealloc/test/img/%20/"}) {
    auto b = statusOf(*post(bad));
    EXPECT_EQ(b.id, -1) << bad;
    EXPECT_EQ(b.msg, "Invalid prealloc size") << bad;
  }
  EXPECT_EQ(statusOf(*post("/prealloc/test/..%2Fx/1/")).msg, "Invalid image name");
  EXPECT_EQ(statusOf(*post("/prealloc/test/-img/1/")).msg, "Invalid image name");
  EXPECT_EQ(statusOf(*post("/prealloc/test/img/1/", {}, "[1]")).id, -1);
  EXPECT_EQ(statusOf(*post("/prealloc/test/img/1/", {}, "{bad")).id, -1);

  jobs_.preallocResult = {false, ""};
  EXPECT_EQ(statusOf(*post("/prealloc/test/img/1/")).msg, "Preallocate VM failed");
}

TEST_F(RestTest, BuildStreamsTarballToTempFileAndRemovesIt) {
  std::string tar(300 * 1024, 'T');
  auto r = post("/build/test/", {{"imageName", "myimage"}}, tar);
  auto s = statusOf(*r);
  EXPECT_EQ(s.id, 0);
  EXPECT_EQ(s.msg, "Docker image built");
  {
    std::lock_guard lock(jobs_.mutex);
    EXPECT_EQ(jobs_.lastImage, "myimage");
    EXPECT_EQ(jobs_.lastTarball, tar);
    EXPECT_EQ(jobs_.lastTarballPath.parent_path(), cfg_.dataDir / "tmp");
    EXPECT_FALSE(std::filesystem::exists(jobs_.lastTarballPath));
  }
  jobs_.buildResult = {false, ""};
  EXPECT_EQ(statusOf(*post("/build/test", {{"imageName", "myimage"}}, "x")).msg,
            "Image build failed");
  EXPECT_EQ(statusOf(*post("/build/test/", {}, "x")).msg, "Invalid image name");
  EXPECT_EQ(statusOf(*post("/build/test/", {{"imageName", "../x"}}, "x")).msg,
            "Invalid image name");
  EXPECT_TRUE(std::filesystem::is_empty(cfg_.dataDir / "tmp"));
}

TEST_F(RestTest, WrongKeyEverywhere) {
  get("/open/test/lab/");
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"GET", "/open/nokey/lab/"},
      {"POST", "/upload/nokey/lab/"},
      {"POST", "/addJob/nokey/lab/"},
      {"GET", "/poll/nokey/lab/out/"},
      {"GET", "/getPartialOutput/nokey/5/"},
      {"GET", "/info/nokey/"},
      {"GET", "/jobs/nokey/0/"},
      {"GET", "/pool/nokey/"},
      {"GET", "/pool/nokey/autograding_image/"},
      {"POST", "/prealloc/nokey/img/1/"},
      {"POST", "/build/nokey/"},
      {"GET", "/open/..%2Ftest/lab/"},
      {"GET", "/info/%00/"}};
  auto before = tree();
  for (const auto& [method, target] : routes) {
    auto r = fetch(port(), method, target, {{"Filename", "f"}, {"imageName", "img"}}, "{}");
    ASSERT_TRUE(r) << target;
    EXPECT_EQ(r->status, 200) << target;
    auto s = statusOf(*r);
    EXPECT_EQ(s.id, -1) << target;
    EXPECT_EQ(s.msg, "Key not recognized") << target;
  }
  EXPECT_EQ(tree(), before);
  EXPECT_EQ(jobs_.addJobCalls, 0);
}

TEST_F(RestTest, UnknownRoutesAndMethods) {
  for (const char* target : {"/nothing", "/open/test/", "/open/test/lab/extra/", "/info/test/x/",
                             "/poll/test/lab/", "//"}) {
    auto r = get(target);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404) << target;
    EXPECT_EQ(statusOf(*r).id, -1) << target;
  }
  auto r = post("/open/test/lab/");
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(statusOf(*r).id, -1);
  EXPECT_EQ(get("/upload/test/lab/")->status, 405);
  EXPECT_EQ(fetch(port(), "DELETE", "/")->status, 405);
  auto bad = get("/open/test/%zz/");
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(statusOf(*bad).id, -1);
}

}  // namespace
}  // namespace tango::test

namespace tango::test {
namespace {

// A build takes minutes on a real engine: it runs on the server's own
// thread for such work, so requests that need a handler thread go on.
TEST_F(RestTest, BuildsNeverHoldTheRequestThreads) {
  jobs_.buildTakes = std::chrono::milliseconds(2000);
  const auto p = port();  // 2 handler threads
  std::vector<std::thread> builds;
  std::vector<int> ids(3, 99);
  for (int i = 0; i < 3; ++i)
    builds.emplace_back([&, i] {
      auto r = fetch(p, "POST", "/build/test/", {{"imageName", "img" + std::to_string(i)}}, "tar");
      if (r) ids[static_cast<std::size_t>(i)] = statusOf(*r).id;
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // /jobs and /open run on the handler threads.
  for (const char* target : {"/jobs/test/0/", "/open/test/lab/", "/jobs/test/1/"}) {
    auto t = std::chrono::steady_clock::now();
    auto r = get(target);
    ASSERT_TRUE(r) << target;
    EXPECT_EQ(statusOf(*r).id, 0) << target;
    EXPECT_LT(std::chrono::steady_clock::now() - t, std::chrono::milliseconds(1000)) << target;
  }
  for (auto& t : builds) t.join();
  EXPECT_EQ(ids, (std::vector<int>{0, 0, 0}));
}

TEST_F(RestTest, ABuildWhoseClientLeavesRemovesItsTarball) {
  auto c = std::make_unique<Conn>(port());
  ASSERT_TRUE(
      c->sendAll("POST /build/test/ HTTP/1.1\r\nHost: x\r\nimageName: img\r\nContent-Length: "
                 "1000000\r\n\r\n"));
  ASSERT_TRUE(c->sendAll(std::string(200000, 't')));
  // The tarball is being written...
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    std::error_code ec;
    seen = std::filesystem::exists(cfg_.dataDir / "tmp") &&
           !std::filesystem::is_empty(cfg_.dataDir / "tmp", ec);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(seen);
  c.reset();  // the client goes away mid-body
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    std::error_code ec;
    gone = std::filesystem::is_empty(cfg_.dataDir / "tmp", ec) && !ec;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone);
  std::lock_guard lock(jobs_.mutex);
  EXPECT_EQ(jobs_.lastImage, "");
}

}  // namespace
}  // namespace tango::test
