#include "TestServer.hpp"

#include <stdlib.h>

#include <boost/json/parse.hpp>
#include <fstream>
#include <iterator>
#include <vector>

namespace tango::test {

AddJobResult FakeJobs::addJob(const std::string& key, const std::string& courselab,
                              const std::filesystem::path& courselabDir,
                              const boost::json::value& body) {
  std::lock_guard lock(mutex);
  lastKey = key;
  lastCourselab = courselab;
  lastDir = courselabDir;
  lastJob = body;
  ++addJobCalls;
  return addJobResult;
}

boost::json::array FakeJobs::jobs(bool dead, const std::optional<std::string>& owner) {
  std::lock_guard lock(mutex);
  lastOwner = owner;
  boost::json::array a;
  boost::json::object j;
  j["id"] = dead ? 2 : 3;
  j["name"] = dead ? "done" : "live";
  j["assigned"] = !dead;
  a.push_back(std::move(j));
  return a;
}

std::optional<std::string> FakeJobs::partialOutput(std::int64_t jobId,
                                                   const std::optional<std::string>& owner) {
  {
    std::lock_guard lock(mutex);
    lastOwner = owner;
  }
  if (jobId == 5) return std::string("so far\n\xff");
  return std::nullopt;
}

boost::json::object FakeJobs::info() {
  boost::json::object o;
  o["elapsed_secs"] = 1.5;
  o["job_requests"] = 4;
  o["num_threads"] = 3;
  return o;
}

PoolsResult FakeJobs::pools(const std::optional<std::string>& image) {
  PoolsResult r;
  boost::json::object pool;
  pool["total"] = boost::json::array{1000, 1001};
  pool["free"] = boost::json::array{1001};
  if (!image || *image == "autograding_image") {
    r.found = true;
    r.pools["autograding_image"] = std::move(pool);
  }
  return r;
}

SimpleResult FakeJobs::prealloc(const std::string& image, int num,
                                const boost::json::object& body) {
  std::lock_guard lock(mutex);
  lastImage = image;
  lastNum = num;
  lastPreallocBody = body;
  return preallocResult;
}

SimpleResult FakeJobs::build(const std::string& imageName, const std::filesystem::path& tarball) {
  std::this_thread::sleep_for(buildTakes);
  std::lock_guard lock(mutex);
  lastImage = imageName;
  lastTarballPath = tarball;
  std::ifstream in(tarball, std::ios::binary);
  lastTarball.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return buildResult;
}

RestTest::RestTest() {
#ifdef TEST_TMP_DIR
  std::filesystem::path base = TEST_TMP_DIR;
#else
  std::filesystem::path base = std::filesystem::temp_directory_path();
#endif
  std::filesystem::create_directories(base);
  std::string pattern = (base / "rest-XXXXXX").string();
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp");
  tmp_ = buf.data();
  cfg_.host = "127.0.0.1";
  cfg_.port = 0;
  cfg_.dataDir = tmp_ / "data";
  cfg_.maxInputFileSize = 64LL * 1024 * 1024;
  std::filesystem::create_directories(cfg_.dataDir);
}

void RestTest::stopServer() {
  if (server_) {
    server_->stop();
    thread_.join();
  }
  server_.reset();
}

RestTest::~RestTest() {
  stopServer();
  rest_.reset();
  labs_.reset();
  std::error_code ec;
  std::filesystem::remove_all(tmp_, ec);
}

std::uint16_t RestTest::port() {
  if (!server_) {
    labs_ = std::make_unique<Courselabs>(cfg_);
    rest_ = std::make_unique<TangoREST>(cfg_, jobs_, *labs_);
    server_ = std::make_unique<HttpServer>(cfg_, *rest_, 2, 2);
    thread_ = std::thread([this] { server_->run(); });
  }
  return server_->port();
}

std::set<std::string> RestTest::tree() const {
  // The server may remove a temp file while we walk: walk again then.
  for (;;) {
    try {
      std::set<std::string> out;
      for (auto it = std::filesystem::recursive_directory_iterator(tmp_);
           it != std::filesystem::recursive_directory_iterator(); ++it) {
        out.insert(std::filesystem::relative(it->path(), tmp_).string());
      }
      return out;
    } catch (const std::filesystem::filesystem_error&) {
    }
  }
}

boost::json::object jsonOf(const Response& r) {
  EXPECT_EQ(r.header("content-type"), "application/json");
  boost::system::error_code ec;
  auto v = boost::json::parse(r.body, ec);
  EXPECT_FALSE(ec) << r.body;
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

Status statusOf(const Response& r) {
  auto o = jsonOf(r);
  Status s;
  if (auto* id = o.if_contains("statusId")) s.id = static_cast<int>(id->to_number<double>());
  if (auto* msg = o.if_contains("statusMsg"); msg && msg->is_string()) {
    s.msg = std::string(msg->as_string());
  }
  return s;
}

}  // namespace tango::test
