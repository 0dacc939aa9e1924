// distDocker on three real engines (DistDockerFixture.hpp): placement within
// capacity, an engine that dies and comes back, images on some engines
// only, engines that cannot be reached, and images pushed by tango-image.
#include <sys/stat.h>

#include "DistDockerFixture.hpp"
#include "tango/docker/Tar.hpp"

namespace tango::test {
namespace {

using namespace std::chrono_literals;

// Every engine's containers of this test's prefix, by VM id.
std::set<std::int64_t> vmIdsOn(docker::Engine& e, const std::string& prefix) {
  std::set<std::int64_t> ids;
  for (const auto& c : e.listByLabel("tango.prefix", prefix))
    if (auto it = c.labels.find("tango.vmId"); it != c.labels.end())
      ids.insert(std::stoll(it->second));
  return ids;
}

// 200 jobs over three engines of capacity 3: all finish with their output,
// every engine runs some, none runs more than 3 at once.
TEST_F(DistDockerTest, TwoHundredJobsSpreadOverThreeEnginesWithinCapacity) {
  ASSERT_TRUE(waitHealthy(e3Url(), true, 30s)) << tangod->log();
  // Sampled from the engines themselves while the jobs run: never more
  // containers on one than its capacity plus its share of the spares.
  std::atomic<bool> sampling{true};
  std::map<std::string, std::size_t> mostHeld;
  std::thread sampler([&] {
    while (sampling) {
      const std::vector<std::pair<std::string, docker::Engine*>> es = {
          {"main", &main}, {"e2", e2.get()}, {"e3", e3.get()}};
      for (auto& [n, e] : es) mostHeld[n] = std::max(mostHeld[n], vmIdsOn(*e, prefix).size());
      std::this_thread::sleep_for(50ms);
    }
  });
  auto ids = submitHello(200, "spread");
  auto done = waitAll(ids, 300s);
  sampling = false;
  sampler.join();
  int ok = 0;
  for (auto& [out, id] : ids) {
    ASSERT_TRUE(done.count(id)) << "job " << id << " did not finish\n" << tangod->log();
    if (helloOutput(out)) ++ok;
  }
  EXPECT_EQ(ok, 200);
  auto h = hosts();
  ASSERT_EQ(h.size(), 3u);
  std::int64_t total = 0;
  for (auto& [url, s] : h) {
    EXPECT_TRUE(s.at("healthy").as_bool()) << url;
    EXPECT_GT(s.at("jobs_run").as_int64(), 0) << url << " ran no job";
    EXPECT_LE(s.at("max_running").as_int64(), 3) << url << " ran more than its capacity";
    EXPECT_GE(s.at("max_running").as_int64(), 1) << url;
    total += s.at("jobs_run").as_int64();
  }
  EXPECT_GE(total, 200);
  // Containers held at once: at most capacity (3) running plus the pool's
  // spares (2 in all) on any one engine.
  for (auto& [n, most] : mostHeld) EXPECT_LE(most, 5u) << n;
  // /pool says which engine each VM is on.
  auto pool = http->get("/pool/test/" + testImage() + "/").json();
  auto& p = pool["pools"].as_object().at(testImage()).as_object();
  ASSERT_TRUE(p.contains("hosts")) << json::serialize(pool);
  for (auto& [engine, vms] : p.at("hosts").as_object())
    EXPECT_TRUE(h.count(std::string(engine))) << engine;
}

// kill -9 of an engine (its dockerd, containerd and containers: the host
// dies) in the middle of 200 jobs: every job finishes on the others. Back
// again, it takes jobs, and what it held from before is gone.
TEST_F(DistDockerTest, AnEngineThatDiesLosesNoJobAndComesBackClean) {
  ASSERT_TRUE(waitHealthy(e2Url(), true, 30s)) << tangod->log();
  auto ids = submitHello(200, "storm");
  // Once e2 runs jobs, kill it.
  const auto end = std::chrono::steady_clock::now() + 60s;
  while (jobsRun(e2Url()) < 5 && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(20ms);
  ASSERT_GE(jobsRun(e2Url()), 5) << tangod->log();
  const auto before = vmIdsOn(*e2, prefix);
  std::string out;
  ASSERT_EQ(engines("kill9 e2", &out), 0) << out;
  EXPECT_TRUE(waitHealthy(e2Url(), false, 20s)) << tangod->log();
  auto done = waitAll(ids, 300s);
  int ok = 0;
  for (auto& [name, id] : ids) {
    ASSERT_TRUE(done.count(id)) << "job " << id << " lost\n" << tangod->log();
    if (helloOutput(name)) ++ok;
  }
  EXPECT_EQ(ok, 200) << tangod->log();
  EXPECT_NE(tangod->log().find("engine " + e2Url() + " does not answer"), std::string::npos);

  ASSERT_EQ(engines("restart e2", &out), 0) << out;
  ASSERT_TRUE(waitHealthy(e2Url(), true, 30s)) << tangod->log();
  // Nothing of before is left there (the dead containers were removed
  // before it took jobs again).
  for (auto id : vmIdsOn(*e2, prefix)) EXPECT_EQ(before.count(id), 0u) << "leftover VM " << id;
  const auto ranBefore = jobsRun(e2Url());
  auto again = submitHello(30, "after");
  auto done2 = waitAll(again, 120s);
  for (auto& [name, id] : again) EXPECT_TRUE(done2.count(id)) << name;
  EXPECT_GT(jobsRun(e2Url()), ranBefore) << "e2 took no job after it came back";
}

// An engine that freezes (its dockerd stopped: connections stay open,
// nothing answers): its running jobs are abandoned when it leaves placement
// and finish elsewhere, long before their hard timeout. Thawed, it comes
// back without what it held.
TEST_F(DistDockerTest, AFrozenEnginesRunningJobsFinishElsewhereBeforeTheirTimeout) {
  ASSERT_TRUE(waitHealthy(e2Url(), true, 30s)) << tangod->log();
  const std::map<std::string, std::string> slow = {
      {"autograde-Makefile", "all:\n\t@sleep 3; echo Hello from the sandbox\n"}};
  json::object opts{{"image", testImage()}, {"timeout", 60}};  // hard timeout: 70 s
  std::map<std::string, std::int64_t> ids;
  for (int i = 0; i < 12; ++i) {
    const std::string out = "frozen-" + std::to_string(i);
    ids[out] = submit("frozen", slow, out, opts);
  }
  const auto end = std::chrono::steady_clock::now() + 60s;
  auto runningOnE2 = [&] { return hosts()[e2Url()].at("running").as_int64(); };
  while (runningOnE2() < 1 && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(50ms);
  ASSERT_GE(runningOnE2(), 1) << tangod->log();
  const auto before = vmIdsOn(*e2, prefix);
  std::string out;
  ASSERT_EQ(engines("freeze e2", &out), 0) << out;
  struct Thaw {
    ~Thaw() { engines("thaw e2"); }
  } thaw;
  const auto frozenAt = std::chrono::steady_clock::now();
  EXPECT_TRUE(waitHealthy(e2Url(), false, 20s)) << tangod->log();
  auto done = waitAll(ids, 60s);
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - frozenAt).count();
  for (auto& [name, id] : ids) {
    ASSERT_TRUE(done.count(id)) << "job " << id << " not finished\n" << tangod->log();
    auto text = waitOutput("frozen", name, 5s);
    ASSERT_TRUE(text) << name;
    EXPECT_NE(text->find("Hello from the sandbox"), std::string::npos) << *text;
  }
  EXPECT_LT(took, 45.0) << "the frozen engine's jobs waited for their hard timeout";
  EXPECT_NE(tangod->log().find("the run was abandoned"), std::string::npos) << tangod->log();
  ASSERT_EQ(engines("thaw e2", &out), 0) << out;
  ASSERT_TRUE(waitHealthy(e2Url(), true, 30s)) << tangod->log();
  for (auto id : vmIdsOn(*e2, prefix)) EXPECT_EQ(before.count(id), 0u) << "leftover VM " << id;
}

// An image on one engine only: its jobs run there and nowhere else.
TEST_F(DistDockerTest, AnImageOnOneEngineRunsOnlyThere) {
  const std::string only = "tdd-only-e3-" + std::to_string(::getpid());
  e3->tagImage(testImage() + ":latest", only, "latest");
  struct Untag {
    docker::Engine& e;
    std::string name;
    ~Untag() {
      try {
        e.removeImage(name + ":latest", /*force=*/false);
      } catch (const std::exception&) {
      }
    }
  } untag{*e3, only};
  // Within a ping the engines' image lists know it.
  const auto end = std::chrono::steady_clock::now() + 10s;
  bool listed = false;
  while (!listed && std::chrono::steady_clock::now() < end) {
    auto r = http->post("/prealloc/test/" + only + "/0/", "{}").json();
    listed = r["statusId"].as_int64() == 0;
    if (!listed) std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(listed) << "the image never showed in the engines' lists";
  const auto m0 = jobsRun("unix:///var/run/docker.sock"), e20 = jobsRun(e2Url()),
             e30 = jobsRun(e3Url());
  auto ids = submitHello(12, "only", only);
  auto done = waitAll(ids, 120s);
  for (auto& [name, id] : ids) {
    ASSERT_TRUE(done.count(id)) << name << "\n" << tangod->log();
    EXPECT_TRUE(helloOutput(name)) << name;
  }
  EXPECT_EQ(jobsRun("unix:///var/run/docker.sock"), m0);
  EXPECT_EQ(jobsRun(e2Url()), e20);
  EXPECT_EQ(jobsRun(e3Url()), e30 + 12);
}

// What localDocker guarantees holds on the remote engines too: no network,
// the memory limit and its message, the partial output of a running job.
class DistDockerLimitsTest : public DistDockerTest {
 protected:
  std::string engineConfig() override { return threeEngines(2) + "DOCKER_MEMORY_LIMIT = 64\n"; }
};

TEST_F(DistDockerLimitsTest, NoNetworkMemoryLimitAndPartialOutputOnEveryEngine) {
  const std::vector<std::pair<std::string, docker::Engine*>> remote = {{"e2", e2.get()},
                                                                       {"e3", e3.get()}};
  std::vector<std::string> tags;
  for (auto& [n, e] : remote) {
    tags.push_back("tdd-on-" + n + "-" + std::to_string(::getpid()));
    e->tagImage(testImage() + ":latest", tags.back(), "latest");
  }
  struct Untag {
    std::vector<std::pair<std::string, docker::Engine*>> es;
    std::vector<std::string> tags;
    ~Untag() {
      for (std::size_t i = 0; i < es.size(); ++i) try {
          es[i].second->removeImage(tags[i] + ":latest", /*force=*/false);
        } catch (const std::exception&) {
        }
    }
  } untag{remote, tags};
  for (std::size_t i = 0; i < remote.size(); ++i) {
    const std::string& image = tags[i];
    const std::string url = i == 0 ? e2Url() : e3Url();
    const auto ran = jobsRun(url);
    // Listed once the engine's next ping has seen it.
    for (int t = 0; t < 50; ++t) {
      auto r = http->post("/prealloc/test/" + image + "/0/", "{}").json();
      if (r["statusId"].as_int64() == 0) break;
      std::this_thread::sleep_for(200ms);
    }
    json::object on{{"image", image}};
    const std::string lab = "lim" + std::to_string(i);
    // A lab each: a job reads its files when it runs.
    submit(lab + "n", {{"autograde-Makefile", "all:\n\t@ls /sys/class/net\n"}}, "net.out", on);
    submit(lab + "h",
           {{"autograde-Makefile", "all:\n\t@head -c 1000m /dev/zero | tail > /dev/null\n"}},
           "hog.out", on);
    auto slow =
        submit(lab + "s", {{"autograde-Makefile", "all:\n\t@echo early bird\n\t@sleep 5\n"}},
               "slow.out", on);
    std::string seen;
    const auto end = std::chrono::steady_clock::now() + 40s;
    while (std::chrono::steady_clock::now() < end && seen.find("early bird") == std::string::npos) {
      auto r = http->get("/getPartialOutput/test/" + std::to_string(slow) + "/").json();
      if (r["statusId"].as_int64() == 0) seen = r["output"].as_string();
      std::this_thread::sleep_for(100ms);
    }
    EXPECT_NE(seen.find("early bird"), std::string::npos) << image << "\n" << tangod->log();
    auto net = waitOutput(lab + "n", "net.out", 60s);
    ASSERT_TRUE(net) << image;
    EXPECT_TRUE(net->ends_with("status 0\nlo\n")) << image << ": " << *net;
    auto hog = waitOutput(lab + "h", "hog.out", 60s);
    ASSERT_TRUE(hog) << image;
    EXPECT_NE(hog->find("]: Error: the job was killed for exceeding the memory limit of 64 MB\n"),
              std::string::npos)
        << image << ": " << *hog;
    ASSERT_TRUE(waitOutput(lab + "s", "slow.out", 60s)) << image;
    EXPECT_EQ(jobsRun(url), ran + 3) << image << " ran elsewhere";
  }
}

// Engines that cannot be used: a TLS certificate the engine does not
// trust, an address where nothing listens, an SSH key the host refuses.
// Each is named with why; the main engine runs the jobs meanwhile.
class DistDockerBrokenEnginesTest : public DistDockerTest {
 protected:
  std::string engineConfig() override {
    // Certificates of another CA: the engine refuses the client.
    const auto bad = std::filesystem::path(kEnginesState) / "untrusted-certs";
    shell("rm -rf " + bad.string() + " && mkdir -p " + bad.string() + " && cd " + bad.string() +
          " && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout "
          "ca-key.pem -out ca.pem 2>/dev/null && openssl req -newkey rsa:2048 -nodes -subj "
          "/CN=client -keyout key.pem -out req.pem 2>/dev/null && openssl x509 -req -in req.pem "
          "-CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -out cert.pem 2>/dev/null");
    const auto key = std::filesystem::path(kEnginesState) / "refused_key";
    shell("rm -f " + key.string() + "* && ssh-keygen -q -t ed25519 -N '' -f " + key.string());
    return "DOCKER_HOSTS = [\n"
           "  { url = \"unix:///var/run/docker.sock\", capacity = 2 },\n"
           "  { url = \"" +
           e2Url() + "\", cert_path = \"" + bad.string() +
           "\" },\n"
           "  { url = \"tcp://127.0.0.1:1\", cert_path = \"" +
           env.at("E2_CERT_PATH") +
           "\" },\n"
           "  { url = \"" +
           e3Url() + "\", key = \"" + key.string() + "\" },\n]\n";
  }
};

TEST_F(DistDockerBrokenEnginesTest, EachIsNamedWithWhyAndTheOthersWork) {
  auto h = hosts();
  ASSERT_EQ(h.size(), 4u) << tangod->log();
  EXPECT_TRUE(h["unix:///var/run/docker.sock"].at("healthy").as_bool());
  for (const std::string& url : {e2Url(), std::string("tcp://127.0.0.1:1"), e3Url()}) {
    EXPECT_FALSE(h[url].at("healthy").as_bool()) << url;
    const std::string problem(h[url].at("problem").as_string());
    EXPECT_NE(problem.find(url), std::string::npos) << problem;
    EXPECT_NE(tangod->log().find(url), std::string::npos) << "the log does not name " << url;
  }
  EXPECT_NE(std::string(h[e3Url()].at("problem").as_string()).find("Permission denied"),
            std::string::npos)
      << h[e3Url()].at("problem");
  auto ids = submitHello(6, "broken");
  auto done = waitAll(ids, 60s);
  for (auto& [name, id] : ids) {
    ASSERT_TRUE(done.count(id)) << name;
    EXPECT_TRUE(helloOutput(name)) << name;
  }
  EXPECT_EQ(jobsRun("unix:///var/run/docker.sock"), 6);
}

// The build route loads an image onto every engine that answers, and says
// which ones failed.
TEST_F(DistDockerBrokenEnginesTest, BuildLoadsOnTheEnginesThatAnswerAndNamesTheOthers) {
  const std::string tiny = "tdd-tiny-" + std::to_string(::getpid());
  const auto dir = std::filesystem::path(kEnginesState) / tiny;
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir / "root.tar", std::ios::binary)
        << docker::makeTar({{"hello.txt", docker::TarEntry::Kind::File, "hi\n", 0644}});
  }
  main.importImage(dir / "root.tar", tiny, "latest", {"CMD [\"/hello.txt\"]"}, 60s);
  main.saveImage(tiny + ":latest", dir / "image.tar");
  main.removeImage(tiny + ":latest");
  const std::string built = tiny + "-built";
  auto r = http->post("/build/test/", readFile(dir / "image.tar"), {{"imageName", built}}).json();
  std::filesystem::remove_all(dir);
  const bool onMain = main.inspectImage(built + ":latest").has_value();
  if (onMain) main.removeImage(built + ":latest");
  EXPECT_TRUE(onMain) << "not loaded on the engine that answers";
  EXPECT_NE(r["statusId"].as_int64(), 0);
  const std::string msg(r["statusMsg"].as_string());
  EXPECT_TRUE(msg.starts_with("Image build failed")) << msg;
  for (const std::string& url : {e2Url(), std::string("tcp://127.0.0.1:1"), e3Url()})
    EXPECT_NE(msg.find(url), std::string::npos) << msg;
  EXPECT_NE(msg.find("loaded on unix:///var/run/docker.sock"), std::string::npos) << msg;
}

// kill -9 of the service with jobs running on every engine: started again,
// it leaves no container of before on any engine.
TEST_F(DistDockerTest, NoLeftoversAfterTheServiceIsKilled) {
  ASSERT_TRUE(waitHealthy(e3Url(), true, 30s));
  ASSERT_TRUE(waitHealthy(e2Url(), true, 30s));
  json::object slow{{"image", testImage()}};
  const std::map<std::string, std::string> files = {{"autograde-Makefile", "all:\n\t@sleep 30\n"}};
  for (int i = 0; i < 9; ++i) submit("slow", files, "slow-" + std::to_string(i), slow);
  const auto end = std::chrono::steady_clock::now() + 60s;
  auto running = [&] {
    int n = 0;
    for (auto& [url, s] : hosts()) n += static_cast<int>(s.at("running").as_int64());
    return n;
  };
  while (running() < 9 && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(100ms);
  ASSERT_EQ(running(), 9) << tangod->log();
  std::set<std::int64_t> before;
  for (auto* e : all()) {
    auto ids = vmIdsOn(*e, prefix);
    EXPECT_FALSE(ids.empty());
    before.insert(ids.begin(), ids.end());
  }
  tangod->stop(SIGKILL);
  tangod->start();
  restartHttp();
  for (auto* e : all())
    for (auto id : vmIdsOn(*e, prefix)) EXPECT_EQ(before.count(id), 0u) << "leftover VM " << id;
}

// tango-image push loads an image onto an engine over TLS and over SSH.
TEST_F(DistDockerTest, TangoImagePushesOverTlsAndSsh) {
  const std::string name = "tdd-pushed-" + std::to_string(::getpid());
  main.tagImage(testImage() + ":latest", name, "latest");
  struct Untag {
    std::vector<docker::Engine*> es;
    std::string ref;
    ~Untag() {
      for (auto* e : es) try {
          e->removeImage(ref, /*force=*/false);
        } catch (const std::exception&) {
        }
    }
  } untag{all(), name + ":latest"};
  const std::string tool = TANGO_IMAGE_PATH;
  int st = 0;
  std::string out = shell(
      tool + " push " + name + " --to " + e2Url() + " --cert-path " + env["E2_CERT_PATH"] + " 2>&1",
      &st);
  EXPECT_EQ(st, 0) << out;
  out = shell(
      tool + " push " + name + " --to " + e3Url() + " --ssh-key " + env["SSH_KEY"] + " 2>&1", &st);
  EXPECT_EQ(st, 0) << out;
  const auto id = main.inspectImage(name + ":latest")->id;
  ASSERT_TRUE(e2->inspectImage(name + ":latest"));
  ASSERT_TRUE(e3->inspectImage(name + ":latest"));
  EXPECT_EQ(e2->inspectImage(name + ":latest")->id, id);
  EXPECT_EQ(e3->inspectImage(name + ":latest")->id, id);
  // A second push of the same image is skipped with --if-changed.
  out = shell(tool + " push " + name + " --to " + e2Url() + " --cert-path " + env["E2_CERT_PATH"] +
                  " --if-changed 2>&1",
              &st);
  EXPECT_EQ(st, 0) << out;
  EXPECT_NE(out.find("holds " + name + ":latest already"), std::string::npos) << out;
  // A wrong certificate is a clear error, not a hang.
  out = shell(tool + " push " + name + " --to " + e2Url() + " --cert-path /nonexistent 2>&1", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find(e2Url()), std::string::npos) << out;
}

}  // namespace
}  // namespace tango::test
