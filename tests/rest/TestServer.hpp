#pragma once
// A real HttpServer + TangoREST on an ephemeral port and a temp data dir,
// with a scripted JobService standing in for the core.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "TestClient.hpp"
#include "tango/config/Config.hpp"
#include "tango/core/JobService.hpp"
#include "tango/courselab/Courselabs.hpp"
#include "tango/rest/HttpServer.hpp"
#include "tango/rest/TangoREST.hpp"

namespace tango::test {

class FakeJobs : public JobService {
 public:
  AddJobResult addJob(const std::string& key, const std::string& courselab,
                      const std::filesystem::path& courselabDir,
                      const boost::json::value& body) override;
  boost::json::array jobs(bool dead, const std::optional<std::string>& owner) override;
  std::optional<std::string> partialOutput(std::int64_t jobId,
                                           const std::optional<std::string>& owner) override;
  boost::json::object info() override;
  PoolsResult pools(const std::optional<std::string>& image) override;
  SimpleResult prealloc(const std::string& image, int num,
                        const boost::json::object& body) override;
  SimpleResult build(const std::string& imageName, const std::filesystem::path& tarball) override;
  void watchOutputs(std::function<void(const std::string&)> onOutput) override {
    std::lock_guard lock(mutex);
    outputWatch = std::move(onOutput);
  }
  // As the core does when a job of this node wrote its output.
  void announceOutput(const std::string& name) {
    std::lock_guard lock(mutex);
    if (outputWatch) outputWatch(name);
  }
  std::function<void(const std::string&)> outputWatch;

  std::mutex mutex;
  // What the last calls received.
  std::string lastKey, lastCourselab, lastImage, lastTarball;
  std::filesystem::path lastDir, lastTarballPath;
  boost::json::value lastJob;
  boost::json::object lastPreallocBody;
  int lastNum = -1;
  int addJobCalls = 0;
  // The owner filter of the last jobs/partialOutput call (nullopt: every key's).
  std::optional<std::string> lastOwner{"unset"};
  // Scripted answers.
  AddJobResult addJobResult{true, 7, ""};
  SimpleResult preallocResult{true, ""};
  SimpleResult buildResult{true, ""};
  std::chrono::milliseconds buildTakes{0};  // how long build() blocks
};

class RestTest : public ::testing::Test {
 protected:
  RestTest();
  ~RestTest() override;

  // Starts the server with cfg_ as set up by the test (lazily, on first use).
  std::uint16_t port();
  std::optional<Response> get(const std::string& target, const Headers& h = {},
                              const std::string& body = {}) {
    return fetch(port(), "GET", target, h, body);
  }
  std::optional<Response> post(const std::string& target, const Headers& h = {},
                               const std::string& body = {}) {
    return fetch(port(), "POST", target, h, body);
  }
  // Stops and destroys the server (the destructor does it otherwise).
  void stopServer();
  // Every path under the temp dir (relative), to show a request wrote nothing.
  std::set<std::string> tree() const;
  std::filesystem::path labDir(const std::string& lab = "lab") const {
    return cfg_.courselabsDir() / ("test-" + lab);
  }

  std::filesystem::path tmp_;
  Config cfg_;
  FakeJobs jobs_;

 private:
  std::unique_ptr<Courselabs> labs_;
  std::unique_ptr<TangoREST> rest_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

// statusId and statusMsg of a JSON answer, checking its content type.
struct Status {
  int id = 99;
  std::string msg;
};
Status statusOf(const Response& r);
boost::json::object jsonOf(const Response& r);

}  // namespace tango::test
