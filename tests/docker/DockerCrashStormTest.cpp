// The crash storm on `localDocker` (tests/service/CrashStorm.hpp): what a
// killed service may leave is a container; none may remain once the
// restarted service is idle, beyond its warm pool.
#include "../service/CrashStorm.hpp"
#include "DockerFixture.hpp"

namespace tango::test {
namespace {

class DockerCrashStormTest : public CrashStorm<DockerTest> {
 protected:
  int poolSize() override { return 2; }
  std::string stormImage() override { return testImage(); }

  std::vector<std::string> leftovers() override {
    std::set<std::string> free;
    auto pools = http->get("/pool/test/").json();
    for (auto& [image, pool] : pools["pools"].as_object())
      for (auto& v : pool.as_object().at("free").as_array())
        free.insert(prefix + "-" + std::to_string(v.as_int64()) + "-");
    std::vector<std::string> left;
    for (const auto& c : engine.listByLabel("tango.prefix", prefix)) {
      bool pooled = false;
      for (const auto& f : free) pooled = pooled || c.name.starts_with(f);
      if (!pooled) left.push_back("container " + c.name);
    }
    return left;
  }
};

TEST_F(DockerCrashStormTest, KillNineAtRandomMomentsLosesNoJobRunsNoneTwiceAndLeavesNothing) {
  storm();
}

}  // namespace
}  // namespace tango::test
