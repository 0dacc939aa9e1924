// The attach connection against the real engine: what is written reaches the
// container's stdin, its end closes stdin (StdinOnce), stdout and stderr come
// back apart, /wait gives the exit code; a missing container is a 404.
#include <gtest/gtest.h>
#include <unistd.h>

#include "DockerFixture.hpp"
#include "tango/docker/Engine.hpp"

namespace tango::test {
namespace {

using namespace std::chrono_literals;

// A started container running `cmd` with stdin open once; removed with this.
class Started {
 public:
  Started(docker::Engine& engine, std::string name, std::vector<std::string> cmd,
          bool readOnly = false)
      : engine_(engine), name_(std::move(name)) {
    docker::ContainerSpec spec;
    spec.name = name_;
    spec.image = testImage();
    spec.labels = {{"tango.prefix", name_}};
    spec.entrypoint = {cmd.front()};
    spec.cmd.assign(cmd.begin() + 1, cmd.end());
    spec.openStdin = true;
    spec.readonlyRootfs = readOnly;
    spec.networkNone = true;
    engine_.createContainer(spec, 30s);
    engine_.startContainer(name_, 30s);
  }
  ~Started() { engine_.removeContainer(name_); }
  const std::string& name() const { return name_; }

 private:
  docker::Engine& engine_;
  std::string name_;
};

TEST(Attach, StdinInStdoutAndStderrOutThenTheExitCode) {
  docker::Engine engine;
  try {
    engine.apiVersion();
  } catch (const std::exception& e) {
    GTEST_FAIL() << "no Docker engine: " << e.what() << " (./dev test starts dockerd)";
  }
  // Reads stdin to its end: it only ends if closing our side closed it.
  Started c(engine, "tango-attach-test-" + std::to_string(::getpid()),
            {"/bin/sh", "-c", "tr a-z A-Z; echo to-stderr >&2; exit 7"}, /*readOnly=*/true);
  const std::string& name = c.name();
  auto att = engine.attach(name, 30s);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  ASSERT_TRUE(att.write("hello through stdin\n", deadline));
  att.closeStdin();
  std::string out, err;
  att.drain([&](std::string_view c) { out.append(c); }, [&](std::string_view c) { err.append(c); },
            deadline);
  EXPECT_EQ(out, "HELLO THROUGH STDIN\n");
  EXPECT_EQ(err, "to-stderr\n");
  EXPECT_EQ(engine.waitContainer(name, 30s), 7);
}

TEST(Attach, AContainerThatDoesNotExistIsA404) {
  docker::Engine engine;
  try {
    engine.attach("tango-no-such-container-" + std::to_string(::getpid()), 10s);
    ADD_FAILURE() << "attach to a missing container succeeded";
  } catch (const docker::EngineError& e) {
    EXPECT_EQ(e.status, 404) << e.what();
  }
}

TEST(Attach, TheDeadlinePassingWhileTheContainerIsSilentIsATimeout) {
  docker::Engine engine;
  Started c(engine, "tango-attach-silent-" + std::to_string(::getpid()), {"sleep", "60"});
  const std::string& name = c.name();
  auto att = engine.attach(name, 30s);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(att.drain([](std::string_view) {}, [](std::string_view) {}, t0 + 1s),
               docker::DockerTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

}  // namespace
}  // namespace tango::test
