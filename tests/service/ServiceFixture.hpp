#pragma once
// Shared steps of the end-to-end tests: open a courselab, upload, submit,
// wait for the output the way Autolab does (polling).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <optional>
#include <regex>
#include <thread>

#include "HttpClient.hpp"
#include "Tangod.hpp"

namespace tango::test {

namespace json = boost::json;

inline const std::string kHelloMakefile =
    readFile(std::filesystem::path(SOURCE_DIR) / "examples/hello/autograde-Makefile");
inline const std::string kHelloScript =
    readFile(std::filesystem::path(SOURCE_DIR) / "examples/hello/hello.sh");

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tangod = std::make_unique<Tangod>(extraConfig(), autodriver());
    http = std::make_unique<HttpClient>(tangod->port());
  }
  void TearDown() override {
    if (HasFailure() && tangod) std::cerr << "---- tangod log ----\n" << tangod->log() << "\n";
  }
  virtual std::string extraConfig() { return "POOL_SIZE = 2\n"; }
  // The AUTODRIVER setting; "" leaves it unset.
  virtual std::string autodriver() { return AUTODRIVER_PATH; }

  void restartHttp() { http = std::make_unique<HttpClient>(tangod->port()); }

  json::object openLab(const std::string& lab = "lab") {
    auto r = http->get("/open/test/" + lab + "/");
    EXPECT_EQ(r.contentType, "application/json");
    return r.json();
  }
  json::object upload(const std::string& lab, const std::string& name, const std::string& content) {
    return http->post("/upload/test/" + lab + "/", content, {{"Filename", name}}).json();
  }
  // Uploads a job directory given as name -> content, with "autograde-Makefile*"
  // becoming the Makefile, and submits it. Returns the job id.
  std::int64_t submit(const std::string& lab, const std::map<std::string, std::string>& files,
                      const std::string& output, json::object extra = {}) {
    openLab(lab);
    json::array list;
    for (auto& [name, content] : files) {
      auto up = upload(lab, name, content);
      EXPECT_EQ(up["statusId"].as_int64(), 0) << json::serialize(up);
      list.push_back(
          json::object{{"localFile", name},
                       {"destFile", name.starts_with("autograde-Makefile") ? "Makefile" : name}});
    }
    json::object job{{"image", "autograding_image"},
                     {"files", list},
                     {"output_file", output},
                     {"jobName", "job-" + output},
                     {"timeout", 20}};
    for (auto& [k, v] : extra) job[k] = v;
    auto r = http->post("/addJob/test/" + lab + "/", json::serialize(job)).json();
    EXPECT_EQ(r["statusId"].as_int64(), 0) << json::serialize(r);
    if (r["statusId"].as_int64() != 0) return -1;
    EXPECT_TRUE(r["jobId"].is_string());  // Tango sends the id as a string
    return std::stoll(std::string(r["jobId"].as_string()));
  }
  // Polls like Autolab until the output exists; nullopt after `timeout`.
  std::optional<std::string> waitOutput(
      const std::string& lab, const std::string& output,
      std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = http->get("/poll/test/" + lab + "/" + output);  // Autolab: no trailing slash
      if (r.contentType != "application/json") return r.body;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::nullopt;
  }
  // The finished job with this id from /jobs/<key>/1/.
  std::optional<json::object> deadJob(std::int64_t id) {
    auto r = http->get("/jobs/test/1/").json();
    for (auto& j : r["jobs"].as_array())
      if (j.as_object().at("id").as_int64() == id) return j.as_object();
    return std::nullopt;
  }
  std::optional<json::object> waitDead(std::int64_t id,
                                       std::chrono::seconds timeout = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (auto j = deadJob(id)) return j;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return std::nullopt;
  }

  std::unique_ptr<Tangod> tangod;
  std::unique_ptr<HttpClient> http;
};

// Tango's output header, timestamps matched by pattern.
inline std::string ctimeRe() {
  return R"([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4})";
}

// The whole output file of the hello example (examples/hello) submitted as
// job `id` with output file hello.out, in Tango's format.
inline std::regex helloOutputRe(std::int64_t id) {
  const std::string t = ctimeRe();
  return std::regex("Autograder \\[" + t + "\\]: Received job job-hello.out:" + std::to_string(id) +
                    "\n" + "Autograder \\[" + t + "\\]: Success: Autodriver returned normally\n" +
                    "Autograder \\[" + t + "\\]: Here is the output from the autograder:\n" +
                    "---\n" + "Autodriver: Job exited with status 0\n" +
                    "Hello from the sandbox\n" +
                    R"(\{"scores": \{"hello": 100\}\}
)");
}

}  // namespace tango::test
