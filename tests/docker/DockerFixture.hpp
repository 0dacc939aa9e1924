#pragma once
// End-to-end tests of the localDocker VMMS against the real engine: the real
// tangod with VMMS_NAME = "localDocker", driven over HTTP like Autolab.
// Needs dockerd answering on /var/run/docker.sock and the test image built by
// `./dev test` (tango-image build tango-test-minimal --no-defaults --packages
// make --if-changed); a missing engine or image fails the test with that hint.
#include <unistd.h>

#include <cstdlib>

#include "../service/Listener.hpp"
#include "../service/ServiceFixture.hpp"
#include "tango/docker/Engine.hpp"

namespace tango::test {

inline std::string testImage() {
  const char* e = std::getenv("TANGO_DOCKER_TEST_IMAGE");
  return e && *e ? e : "tango-test-minimal";
}

// Why the tests cannot use this engine ("" when they can).
inline std::string engineProblem(docker::Engine& engine) {
  try {
    engine.apiVersion();
    return "";
  } catch (const std::exception& e) {
    return std::string("no Docker engine: ") + e.what() + " (./dev test starts dockerd)";
  }
}

class DockerTest : public ServiceTest {
 protected:
  void SetUp() override {
    if (auto why = engineProblem(engine); !why.empty()) GTEST_FAIL() << why;
    if (!engine.imageLabel(testImage() + ":latest", "tango.packages"))
      GTEST_FAIL() << "test image " << testImage() << " missing: build/.../apps/tango-image build "
                   << testImage() << " --no-defaults --packages make";
    ServiceTest::SetUp();
  }
  void TearDown() override {
    ServiceTest::TearDown();
    if (tangod) tangod->stop(SIGKILL);
    // Whatever a failed test left behind must not pile up on the engine.
    for (const auto& c : engine.listByLabel("tango.prefix", prefix)) engine.removeContainer(c.name);
  }
  // A prefix per test process: ctest runs tests in parallel, and a service
  // removes every container of its prefix at start-up.
  std::string extraConfig() override {
    return "VMMS_NAME = \"localDocker\"\nPREFIX = \"" + prefix +
           "\"\nPOOL_SIZE = " + std::to_string(poolSize()) + "\n" + dockerConfig();
  }
  virtual int poolSize() { return 0; }
  virtual std::string dockerConfig() { return ""; }

  std::int64_t submitTo(const std::string& lab, const std::map<std::string, std::string>& files,
                        const std::string& output, json::object extra = {}) {
    if (!extra.contains("image")) extra["image"] = testImage();
    return submit(lab, files, output, std::move(extra));
  }
  std::size_t containersOfPrefix() { return engine.listByLabel("tango.prefix", prefix).size(); }

  docker::Engine engine;
  std::string prefix = "tdt" + std::to_string(::getpid());
};

}  // namespace tango::test
