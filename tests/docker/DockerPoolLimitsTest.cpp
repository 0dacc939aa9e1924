// Per-pool limits on localDocker: `/prealloc/<key>/<image>/<num>/` with
// Tango's JSON body {"cores": .., "memory": ..} (Autolab sends it as a GET
// with a body; a POST works too) gives the pool's containers those limits,
// over the service's own DOCKER_* limits: in the engine's HostConfig and as
// a job in the pool sees them in its cgroup.
#include <cstdio>
#include <memory>

#include "DockerFixture.hpp"

namespace tango::test {
namespace {

using namespace std::chrono_literals;

// `docker inspect` of a container's HostConfig limits: "<Memory> <NanoCpus>".
std::string inspectLimits(const std::string& name) {
  const std::string cmd =
      "docker inspect --format '{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}' " + name + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> p(::popen(cmd.c_str(), "r"), ::pclose);
  if (!p) return "popen failed";
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p.get())) out += buf;
  return out;
}

class DockerPoolLimitsTest : public DockerTest {
 protected:
  // Other limits for the service, so the test sees the pool's win.
  std::string dockerConfig() override {
    return "DOCKER_MEMORY_LIMIT = 64\nDOCKER_CORES_LIMIT = 2\n";
  }

  // Waits until the image's pool has `n` free containers.
  bool waitFree(std::size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = http->get("/pool/test/" + testImage() + "/").json();
      if (r["statusId"].as_int64() == 0 &&
          r["pools"].as_object().at(testImage()).as_object().at("free").as_array().size() == n)
        return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  void expectPoolLimits(const std::string& method) {
    const std::string body = R"({"cores": 1, "memory": 96})";
    auto r = http->request(method, "/prealloc/test/" + testImage() + "/2/", body, {}).json();
    ASSERT_EQ(r["statusId"].as_int64(), 0) << json::serialize(r);
    ASSERT_TRUE(waitFree(2)) << tangod->log();
    auto containers = engine.listByLabel("tango.prefix", prefix);
    ASSERT_EQ(containers.size(), 2u);
    for (const auto& c : containers) EXPECT_EQ(inspectLimits(c.name), "100663296 1000000000\n");

    // A job of the pool sees them from inside (cgroup v2, else v1 files).
    submitTo("limits",
             {{"autograde-Makefile",
               "all:\n\t@cat /sys/fs/cgroup/memory.max 2>/dev/null || cat "
               "/sys/fs/cgroup/memory/memory.limit_in_bytes\n"
               "\t@cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat "
               "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us\n"}},
             "limits.out");
    auto out = waitOutput("limits", "limits.out");
    ASSERT_TRUE(out) << tangod->log();
    EXPECT_TRUE(out->ends_with("status 0\n100663296\n100000 100000\n") ||
                out->ends_with("status 0\n100663296\n100000\n100000\n"))
        << *out;
    // The containers that replace the used one keep the pool's limits.
    ASSERT_TRUE(waitFree(2)) << tangod->log();
    for (const auto& c : engine.listByLabel("tango.prefix", prefix))
      EXPECT_EQ(inspectLimits(c.name), "100663296 1000000000\n") << c.name;
  }
};

TEST_F(DockerPoolLimitsTest, PreallocAsAGetWithABodyLimitsThePoolsContainers) {
  expectPoolLimits("GET");
}

TEST_F(DockerPoolLimitsTest, PreallocAsAPostWithABodyLimitsThePoolsContainers) {
  expectPoolLimits("POST");
}

}  // namespace
}  // namespace tango::test
