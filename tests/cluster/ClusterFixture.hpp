#pragma once
// Several real tangod nodes (API and manager roles) around one real
// redis-server, all on loopback, sharing one courselabs directory, with the
// `local` VMMS. Jobs are the hello example; callbacks go to a receiver that
// counts them per output file.
#include <signal.h>

#include <map>
#include <set>

#include "../redis/RedisServer.hpp"
#include "../service/HttpClient.hpp"
#include "../service/Receiver.hpp"
#include "../service/ServiceFixture.hpp"
#include "../service/Tangod.hpp"

namespace tango::test {

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    labs_ = std::filesystem::path(TEST_TMP_DIR) / ("cluster-labs-" + std::to_string(::getpid()));
    std::filesystem::remove_all(labs_);
    std::filesystem::create_directories(labs_);
    receiver_ = std::make_unique<Receiver>();
  }
  void TearDown() override {
    if (HasFailure()) {
      for (auto* list : {&apis_, &managers_})
        for (auto& n : *list)
          if (n) std::cerr << "---- node log ----\n" << tail(n->allLogs()) << "\n";
      if (redis_) std::cerr << "---- redis ----\n" << redis_->logTail() << "\n";
    }
    apis_.clear();
    managers_.clear();
    redis_.reset();
    std::filesystem::remove_all(labs_);
  }
  static std::string tail(const std::string& s) {
    return s.size() > 6000 ? s.substr(s.size() - 6000) : s;
  }

  void startRedis(RedisServerOptions o = {}) { redis_ = std::make_unique<RedisServer>(o); }
  // The shipped settings (examples/redis/redis-tango.conf): AOF, fsync always.
  void startDurableRedis() {
    RedisServerOptions o;
    o.appendOnly = true;
    o.appendFsync = "always";
    startRedis(o);
  }

  std::string nodeConfig(const std::string& role, const std::string& id,
                         const std::string& extra) const {
    return "LOG_LEVEL = \"info\"\nUSE_REDIS = true\nREDIS_HOSTNAME = \"127.0.0.1\"\nREDIS_PORT = " +
           std::to_string(redis_->port()) + "\nROLE = \"" + role + "\"\nNODE_ID = \"" + id +
           "\"\nCOURSELABS = \"" + labs_.string() +
           "\"\nLEASE_SECS = " + std::to_string(leaseSecs_) + "\nPOOL_SIZE = 2\n" + extra;
  }
  Tangod& addApi(const std::string& extra = "") {
    apis_.push_back(
        std::make_unique<Tangod>(nodeConfig("api", "api" + std::to_string(apis_.size()), extra)));
    clients_.push_back(std::make_unique<HttpClient>(apis_.back()->port()));
    return *apis_.back();
  }
  Tangod& addManager(const std::string& extra = "") {
    managers_.push_back(std::make_unique<Tangod>(
        nodeConfig("manager", "mgr" + std::to_string(managers_.size()), extra)));
    return *managers_.back();
  }
  HttpClient& api(std::size_t i) { return *clients_.at(i % clients_.size()); }

  // The hello example in lab "lab", uploaded once through the first API node.
  void uploadHello() {
    auto& c = api(0);
    ASSERT_EQ(c.get("/open/test/lab/").json()["statusId"].as_int64(), 0);
    for (auto [name, content] :
         {std::pair{"autograde-Makefile", kHelloMakefile}, std::pair{"hello.sh", kHelloScript}}) {
      auto up = c.post("/upload/test/lab/", content, {{"Filename", name}}).json();
      ASSERT_EQ(up["statusId"].as_int64(), 0) << json::serialize(up);
    }
  }
  // The hello job's addJob body: output "<name>", callback to the receiver
  // at /cb/<name>.
  std::string jobJson(const std::string& name, const std::string& makefile = "") const {
    json::object job{
        {"image", "autograding_image"},
        {"files",
         json::array{json::object{{"localFile", makefile.empty() ? "autograde-Makefile" : makefile},
                                  {"destFile", "Makefile"}},
                     json::object{{"localFile", "hello.sh"}, {"destFile", "hello.sh"}}}},
        {"output_file", name},
        {"jobName", "job-hello.out"},
        {"timeout", 30},
        {"notifyURL", "http://127.0.0.1:" + std::to_string(receiver_->port()) + "/cb/" + name}};
    return json::serialize(job);
  }
  // Submits it through API node `via`. Returns its id, or -1.
  std::int64_t submit(std::size_t via, const std::string& name, const std::string& makefile = "") {
    auto r = api(via).post("/addJob/test/lab/", jobJson(name, makefile));
    if (r.contentType != "application/json") return -1;
    auto o = r.json();
    if (o["statusId"].as_int64() != 0) return -1;
    return std::stoll(std::string(o["jobId"].as_string()));
  }
  // `n` hello jobs "out-<i>", through the API nodes in turn; by id, each id
  // given once.
  std::map<std::int64_t, std::string> submitMany(int n) {
    std::map<std::int64_t, std::string> names;
    for (int i = 0; i < n; ++i) {
      const std::string name = "out-" + std::to_string(i);
      auto id = submit(static_cast<std::size_t>(i), name);
      EXPECT_GT(id, 0) << "job " << i;
      EXPECT_TRUE(names.emplace(id, name).second) << "id " << id << " given twice";
    }
    return names;
  }
  static std::set<std::int64_t> idsOf(const std::map<std::int64_t, std::string>& names) {
    std::set<std::int64_t> ids;
    for (const auto& [id, name] : names) ids.insert(id);
    return ids;
  }
  // A job whose make sleeps `secs` (saying "begun" first) before the hello
  // output, as "slow.out". Returns its id, or -1.
  std::int64_t submitSlow(int secs) {
    const std::string slow = "all:\n\t@echo begun\n\t@sleep " + std::to_string(secs) +
                             "\n\t@echo \"Hello from the sandbox\"\n";
    auto up = api(0).post("/upload/test/lab/", slow, {{"Filename", "slow-Makefile"}}).json();
    if (up["statusId"].as_int64() != 0) return -1;
    return submit(0, "slow.out", "slow-Makefile");
  }
  // Waits until job `id` is in its runJob step.
  bool waitRunning(std::int64_t id, std::chrono::seconds within = std::chrono::seconds(20)) {
    for (auto end = std::chrono::steady_clock::now() + within;
         std::chrono::steady_clock::now() < end;
         std::this_thread::sleep_for(std::chrono::milliseconds(20))) {
      auto live = api(0).get("/jobs/test/0/").json();
      for (auto& j : live["jobs"].as_array())
        if (j.as_object().at("id").as_int64() == id &&
            j.as_object().at("step").as_string() == "runJob")
          return true;
    }
    return false;
  }
  std::filesystem::path outputPath(const std::string& name) const {
    for (const auto& e : std::filesystem::directory_iterator(labs_))
      if (e.path().filename().string().ends_with("-lab")) return e.path() / "output" / name;
    return {};
  }
  // Finished jobs by id, as the first API node lists them.
  std::map<std::int64_t, json::object> finished(std::size_t via = 0) {
    std::map<std::int64_t, json::object> out;
    auto r = api(via).get("/jobs/test/1/");
    if (r.contentType != "application/json") return out;
    auto body = r.json();
    for (auto& j : body["jobs"].as_array()) out[j.as_object().at("id").as_int64()] = j.as_object();
    return out;
  }
  bool waitFinished(const std::set<std::int64_t>& ids, std::chrono::seconds within) {
    const auto end = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < end) {
      auto done = finished();
      std::size_t n = 0;
      for (auto id : ids) n += done.count(id);
      if (n == ids.size()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return false;
  }
  // Callbacks received, per output name.
  std::map<std::string, int> callbacks() {
    std::map<std::string, int> out;
    for (const auto& req : receiver_->requests()) {
      auto at = req.find(" /cb/");
      if (at == std::string::npos) continue;
      auto end = req.find(' ', at + 5);
      ++out[req.substr(at + 5, end - at - 5)];
    }
    return out;
  }
  // "job <id>: finished on node" lines across every start of every manager.
  std::map<std::int64_t, int> finishLines() {
    std::map<std::int64_t, int> out;
    static const std::regex re(R"(job (\d+): finished on node)");
    for (auto& n : managers_) {
      const std::string logs = n->allLogs();
      for (std::sregex_iterator it(logs.begin(), logs.end(), re), end; it != end; ++it)
        ++out[std::stoll((*it)[1])];
    }
    return out;
  }
  bool outputIsHello(const std::string& name, std::int64_t id) {
    const std::string text = readFile(outputPath(name));
    return std::regex_match(text, helloOutputRe(id));
  }

  int leaseSecs_ = 2;
  std::filesystem::path labs_;
  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<Receiver> receiver_;
  std::vector<std::unique_ptr<Tangod>> apis_, managers_;
  std::vector<std::unique_ptr<HttpClient>> clients_;
};

}  // namespace tango::test
