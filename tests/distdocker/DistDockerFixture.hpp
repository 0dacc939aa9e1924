#pragma once
// End-to-end tests of the distDocker VMMS on three real Docker engines: the
// main one (unix socket) and two more that tests/docker/engines/
// test-engines.sh starts on this machine, each in a network namespace of
// its own, e2 reached over TCP with TLS client certificates and e3 over SSH
// (a real sshd on loopback). The engines stay up between tests (`up` is
// idempotent and quick); ./dev test takes them down at the end.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

#include "../docker/DockerFixture.hpp"
#include "../service/ServiceFixture.hpp"
#include "../ssh/SshMachines.hpp"
#include "tango/docker/Engine.hpp"

namespace tango::test {

inline const std::string kEnginesScript =
    std::string(SOURCE_DIR) + "/tests/docker/engines/test-engines.sh";
inline const std::string kEnginesState = "/var/lib/tango-tests/engines";

// Runs the engines script; its output (stdout and stderr) in `out`.
inline int engines(const std::string& args, std::string* out = nullptr) {
  int st = 0;
  std::string text = shell(
      "TANGO_IMAGE=" + std::string(TANGO_IMAGE_PATH) + " " + kEnginesScript + " " + args + " 2>&1",
      &st);
  if (out) *out = text;
  return st;
}

inline std::map<std::string, std::string> readEnv(const std::string& file) {
  std::map<std::string, std::string> env;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    auto eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

class DistDockerTest : public ServiceTest {
 protected:
  void SetUp() override {
    if (auto why = engineProblem(main); !why.empty()) GTEST_FAIL() << why;
    std::string out;
    if (engines("up " + kEnginesState, &out) != 0)
      GTEST_FAIL() << "the test engines did not start:\n" << out;
    env = readEnv(kEnginesState + "/engines.env");
    ASSERT_FALSE(env["E2_CERT_PATH"].empty()) << out;
    e2 = std::make_unique<docker::Engine>(env["E2_SOCKET"]);
    e3 = std::make_unique<docker::Engine>(env["E3_SOCKET"]);
    ServiceTest::SetUp();
  }
  void TearDown() override {
    ServiceTest::TearDown();
    if (tangod) tangod->stop(SIGKILL);
    // Whatever a failed test left must not pile up on the engines.
    for (auto* e : all()) {
      try {
        for (const auto& c : e->listByLabel("tango.prefix", prefix)) e->removeContainer(c.name);
      } catch (const std::exception&) {
        // an engine a test killed and did not bring back
      }
    }
  }

  std::string e2Url() const { return "tcp://127.0.0.1:" + env.at("E2_PORT"); }
  std::string e3Url() const {
    return "ssh://root@127.0.0.1:" + env.at("SSH_PORT") + env.at("E3_SOCKET");
  }
  // DOCKER_HOSTS entries for the three engines, each with `capacity`.
  std::string threeEngines(int capacity) const {
    const std::string cap = "capacity = " + std::to_string(capacity);
    return "DOCKER_HOSTS = [\n"
           "  { url = \"unix:///var/run/docker.sock\", " +
           cap + " },\n  { url = \"" + e2Url() + "\", " + cap + ", cert_path = \"" +
           env.at("E2_CERT_PATH") + "\" },\n  { url = \"" + e3Url() + "\", " + cap + ", key = \"" +
           env.at("SSH_KEY") + "\" },\n]\n";
  }
  std::string extraConfig() override {
    return "VMMS_NAME = \"distDocker\"\nPREFIX = \"" + prefix +
           "\"\nPOOL_SIZE = " + std::to_string(poolSize()) +
           "\nDOCKER_PING_SECS = 1\nJOB_RETRIES = 3\n" + engineConfig();
  }
  virtual int poolSize() { return 2; }
  virtual std::string engineConfig() { return threeEngines(3); }

  std::vector<docker::Engine*> all() { return {&main, e2.get(), e3.get()}; }

  // /info's "hosts", by engine URL.
  std::map<std::string, json::object> hosts() {
    std::map<std::string, json::object> out;
    auto info = http->get("/info/test/").json();
    auto* h = info["info"].as_object().if_contains("hosts");
    if (!h) return out;
    for (auto& x : h->as_array()) {
      auto o = x.as_object();
      out[std::string(o.at("name").as_string())] = o;
    }
    return out;
  }
  std::int64_t jobsRun(const std::string& url) {
    auto h = hosts();
    return h.count(url) ? h[url].at("jobs_run").as_int64() : -1;
  }
  bool waitHealthy(const std::string& url, bool healthy, std::chrono::seconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      auto h = hosts();
      if (h.count(url) && h[url].at("healthy").as_bool() == healthy) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return false;
  }

  // Submits the hello job `n` times (output files <tag>-<i>); ids by output.
  std::map<std::string, std::int64_t> submitHello(int n, const std::string& tag,
                                                  const std::string& image = testImage()) {
    std::map<std::string, std::int64_t> ids;
    const std::map<std::string, std::string> files = {{"autograde-Makefile", kHelloMakefile},
                                                      {"hello.sh", kHelloScript}};
    for (int i = 0; i < n; ++i) {
      const std::string out = tag + "-" + std::to_string(i);
      json::object extra{{"image", image}};
      ids[out] = i == 0 ? submit("lab", files, out, extra) : addJobOnly(out, image);
    }
    return ids;
  }
  // addJob for files already uploaded by submitHello's first call.
  std::int64_t addJobOnly(const std::string& out, const std::string& image) {
    json::array list{json::object{{"localFile", "autograde-Makefile"}, {"destFile", "Makefile"}},
                     json::object{{"localFile", "hello.sh"}, {"destFile", "hello.sh"}}};
    json::object job{
        {"image", image}, {"files", list}, {"output_file", out}, {"jobName", out}, {"timeout", 30}};
    auto r = http->post("/addJob/test/lab/", json::serialize(job)).json();
    EXPECT_EQ(r["statusId"].as_int64(), 0) << json::serialize(r);
    return r["statusId"].as_int64() == 0 ? std::stoll(std::string(r["jobId"].as_string())) : -1;
  }
  // Waits until every job of `ids` is finished; the finished jobs by id.
  std::map<std::int64_t, json::object> waitAll(const std::map<std::string, std::int64_t>& ids,
                                               std::chrono::seconds timeout) {
    std::map<std::int64_t, json::object> done;
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      auto r = http->get("/jobs/test/1/").json();
      for (auto& j : r["jobs"].as_array()) done[j.as_object().at("id").as_int64()] = j.as_object();
      bool all = true;
      for (auto& [out, id] : ids) all = all && done.count(id);
      if (all) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return done;
  }
  // The output of the hello job as Autolab gets it.
  bool helloOutput(const std::string& out) {
    auto text = waitOutput("lab", out, std::chrono::seconds(5));
    return text && text->find("Hello from the sandbox") != std::string::npos &&
           text->find("{\"scores\": {\"hello\": 100}}") != std::string::npos;
  }

  docker::Engine main;
  std::unique_ptr<docker::Engine> e2, e3;
  std::map<std::string, std::string> env;
  std::string prefix = "tdd" + std::to_string(::getpid());
};

}  // namespace tango::test
