// Nodes that share one Docker engine never remove each other's containers
// (their `tango.node` label; the cluster tests cover nodes on one Redis);
// and one node serves `local` and `localDocker` images at once.
#include "DockerFixture.hpp"
#include "tango/vmms/DockerLabels.hpp"

namespace tango::test {
namespace {

using namespace std::chrono_literals;

std::string nodeConfig(const std::string& prefix, const std::string& node) {
  return "VMMS_NAME = \"localDocker\"\nPREFIX = \"" + prefix + "\"\nNODE_ID = \"" + node +
         "\"\nPOOL_SIZE = 1\nWARM_IMAGES = [\"" + testImage() + "\"]\n";
}

// Containers of `prefix` by node label.
std::map<std::string, std::set<std::string>> containersByNode(docker::Engine& engine,
                                                              const std::string& prefix) {
  std::map<std::string, std::set<std::string>> out;
  for (const auto& c : engine.listByLabel(kPrefixLabel, prefix)) {
    auto n = c.labels.find(kNodeLabel);
    out[n == c.labels.end() ? "" : n->second].insert(c.name);
  }
  return out;
}

bool eventually(const std::function<bool()>& cond, std::chrono::seconds within = 30s) {
  for (auto end = std::chrono::steady_clock::now() + within; std::chrono::steady_clock::now() < end;
       std::this_thread::sleep_for(100ms))
    if (cond()) return true;
  return cond();
}

// Two one-node services (SQLite) on one engine with the same PREFIX: their
// VM ids collide, so the second cannot make its VMs, and says why; it
// never removes the first one's containers.
TEST(NodesOnOneEngineTest, AnotherNodesContainerOfTheSameNameIsNeverReplaced) {
  docker::Engine engine;
  if (auto why = engineProblem(engine); !why.empty()) GTEST_FAIL() << why;
  const std::string prefix = "tdn" + std::to_string(::getpid());
  {
    Tangod a(nodeConfig(prefix, "node-a"));
    ASSERT_TRUE(eventually([&] { return containersByNode(engine, prefix)["node-a"].size() == 1; }));
    const auto aWarm = containersByNode(engine, prefix)["node-a"];
    Tangod b(nodeConfig(prefix, "node-b"));
    ASSERT_TRUE(eventually([&] {
      return b.log().find("belongs to node node-a") != std::string::npos;
    })) << b.log();
    EXPECT_EQ(containersByNode(engine, prefix)["node-a"], aWarm)
        << "node b left node a's container alone";
  }
  for (const auto& c : engine.listByLabel(kPrefixLabel, prefix)) engine.removeContainer(c.name);
}

// VMMS_NAME local with MORE_VMMS localDocker: a job goes to the first VMMS
// that has its image, or to the one it names.
class MoreVmmsTest : public DockerTest {
 protected:
  std::string extraConfig() override {
    return "VMMS_NAME = \"local\"\nMORE_VMMS = [\"localDocker\"]\nPREFIX = \"" + prefix +
           "\"\nPOOL_SIZE = 1\n";
  }
};

TEST_F(MoreVmmsTest, OneNodeRunsLocalAndLocalDockerJobsAtOnce) {
  const std::map<std::string, std::string> files{{"autograde-Makefile", kHelloMakefile},
                                                 {"hello.sh", kHelloScript}};
  auto local = submit("lab", files, "hello.out");
  auto docker = submitTo("lab", files, "docker.out");
  ASSERT_GT(local, 0);
  ASSERT_GT(docker, 0);
  auto l = waitDead(local);
  auto d = waitDead(docker);
  ASSERT_TRUE(l && d);
  EXPECT_EQ(l->at("vm").at("vmms").as_string(), "local");
  EXPECT_EQ(d->at("vm").at("vmms").as_string(), "localDocker");
  EXPECT_EQ(l->at("outcome").as_string(), "success");
  EXPECT_EQ(d->at("outcome").as_string(), "success");
  // A job naming a VMMS that lacks its image is refused, naming both.
  json::object job{{"image", testImage()},
                   {"vmms", "local"},
                   {"files", json::array{json::object{{"localFile", "autograde-Makefile"},
                                                      {"destFile", "Makefile"}}}},
                   {"output_file", "x.out"},
                   {"jobName", "x"}};
  auto r = http->post("/addJob/test/lab/", json::serialize(job)).json();
  EXPECT_NE(r["statusId"].as_int64(), 0);
  EXPECT_NE(std::string(r["statusMsg"].as_string()).find("not an image of the local VMMS"),
            std::string::npos)
      << json::serialize(r);
  auto info = http->get("/info/test/").json()["info"].as_object();
  EXPECT_EQ(info["vmms_served"].as_array().size(), 2u);
}

}  // namespace
}  // namespace tango::test
