// What a new operator meets in the first hour: the README's first job from a
// clone in a private home directory, the listen address while the key is a
// shipped example, and a data directory that is the service's alone and
// holds no API key.
#include <sys/stat.h>

#include <fstream>
#include <iterator>

#include "ServiceFixture.hpp"
#include "tango/config/Config.hpp"

namespace tango::test {
namespace {

namespace fs = std::filesystem;

unsigned modeOf(const fs::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return 0xFFFF;
  return st.st_mode & 07777;
}

// The local address a TCP socket listening on `port` is bound to, from
// /proc/net/tcp (hex, e.g. "0100007F" for 127.0.0.1): read, not probed, so
// the test sends nothing to any address but loopback.
std::string listenAddress(int port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  char want[8];
  std::snprintf(want, sizeof want, ":%04X", port);
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    if (state == "0A" && local.size() > 5 && local.ends_with(want))
      return local.substr(0, local.size() - 5);
  }
  return "";
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The hello job of the README, under `key`; returns the output.
std::optional<std::string> helloJob(HttpClient& http, const std::string& key) {
  const std::string lab = "/" + key + "/hello-lab/";
  http.get("/open" + lab);
  http.post("/upload" + lab, kHelloMakefile, {{"Filename", "autograde-Makefile"}});
  http.post("/upload" + lab, kHelloScript, {{"Filename", "hello.sh"}});
  auto r = http.post("/addJob" + lab, R"({"image": "autograding_image", "jobName": "hello",
      "output_file": "hello.out", "timeout": 20,
      "files": [{"localFile": "autograde-Makefile", "destFile": "Makefile"},
                {"localFile": "hello.sh", "destFile": "hello.sh"}]})")
               .json();
  if (r["statusId"].as_int64() != 0) return std::nullopt;
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
       std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(std::chrono::milliseconds(20))) {
    auto p = http.get("/poll" + lab + "hello.out/");
    if (p.contentType != "application/json") return p.body;
  }
  return std::nullopt;
}

// Opens `keyLab` ("<key>/<courselab>"), uploads `makefile` and submits it as
// job `name`; its id, or -1.
std::int64_t oneJob(HttpClient& http, const std::string& keyLab, const std::string& makefile,
                    const std::string& name, int timeout) {
  http.get("/open/" + keyLab + "/");
  http.post("/upload/" + keyLab + "/", makefile, {{"Filename", "Makefile"}});
  const json::object job{
      {"image", "autograding_image"},
      {"jobName", name},
      {"output_file", name + ".out"},
      {"timeout", timeout},
      {"files", json::array{json::object{{"localFile", "Makefile"}, {"destFile", "Makefile"}}}}};
  auto r = http.post("/addJob/" + keyLab + "/", json::serialize(job)).json();
  if (r["statusId"].as_int64() != 0) return -1;
  return std::stoll(std::string(r["jobId"].as_string()));
}

// A directory nobody but root can search, like /root holding a clone.
class PrivateHome {
 public:
  PrivateHome() {
    dir_ = fs::path(TEST_TMP_DIR) / ("home-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::replace);
  }
  ~PrivateHome() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
};

TEST(FirstHourTest, TheHelloJobRunsWithDataDirAndAutodriverInAPrivateHome) {
  PrivateHome home;
  // The clone's layout: the build's autodriver and the data directory below
  // a 0700 directory. SANDBOX_DIR is left to its default.
  fs::create_directories(home.dir() / "clone/build");
  const fs::path autodriver = home.dir() / "clone/build/autodriver";
  fs::copy_file(AUTODRIVER_PATH, autodriver);
  const fs::path data = home.dir() / "clone/data";
  Config expected;
  expected.dataDir = data;
  const fs::path sandboxes = expected.vmsDir();
  ASSERT_TRUE(sandboxes.string().starts_with("/var/lib/tango-sandboxes/")) << sandboxes;
  {
    Tangod tangod("DATA_DIR = \"" + data.string() + "\"\nSANDBOX_DIR = \"\"\nPOOL_SIZE = 1\n",
                  autodriver.string());
    HttpClient http(tangod.port());
    auto out = helloJob(http, "test");
    ASSERT_TRUE(out) << tangod.log();
    EXPECT_TRUE(
        out->ends_with("Autodriver: Job exited with status 0\nHello from the sandbox\n"
                       "{\"scores\": {\"hello\": 100}}\n"))
        << *out;
    EXPECT_NE(out->find("Success: Autodriver returned normally"), std::string::npos);
    // The sandboxes ran from the default SANDBOX_DIR, with their own copy of
    // the autodriver, root's and searchable but not listable by others.
    EXPECT_EQ(modeOf(sandboxes), 0711u);
    EXPECT_EQ(modeOf(sandboxes / "autodriver"), 0755u);
    EXPECT_EQ(slurp(sandboxes / "autodriver"), slurp(autodriver));
  }
  std::error_code ec;
  fs::remove_all(sandboxes, ec);
}

TEST(FirstHourTest, ASandboxDirNobodyCanReachStopsTheStartWithTheFix) {
  PrivateHome home;
  try {
    Tangod tangod("SANDBOX_DIR = \"" + (home.dir() / "sandboxes").string() + "\"\n");
    ADD_FAILURE() << "tangod started with sandboxes below a 0700 directory:\n" << tangod.log();
  } catch (const std::runtime_error& e) {
    const std::string log = e.what();
    EXPECT_NE(
        log.find("SANDBOX_DIR: " + home.dir().string() + " cannot be searched by other users"),
        std::string::npos)
        << log;
    EXPECT_NE(log.find("chmod o+x " + home.dir().string()), std::string::npos) << log;
  }
}

TEST(FirstHourTest, WithTheExampleKeyTheServiceListensOnLoopbackOnlyAndSaysSo) {
  // HOST asks for every address; the key is the shipped "test".
  Tangod tangod("HOST = \"0.0.0.0\"\n");
  EXPECT_EQ(listenAddress(tangod.port()), "0100007F") << "127.0.0.1 only";
  const std::string log = tangod.log();
  EXPECT_NE(log.find("the API key \"test\" is a shipped example, so the service listens on "
                     "loopback only (127.0.0.1, not HOST \"0.0.0.0\")"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("set KEYS = [\"<a long random secret>\"]"), std::string::npos) << log;
  EXPECT_NE(log.find("listening on http://127.0.0.1:"), std::string::npos) << log;
  HttpClient http(tangod.port());
  EXPECT_EQ(http.get("/info/test/").json()["statusId"].as_int64(), 0);
}

TEST(FirstHourTest, WithoutAnyConfigTheServiceListensOnLoopbackOnly) {
  // tangod as `./dev serve` runs it: no config file at all.
  const fs::path dir = fs::path(TEST_TMP_DIR) / ("noconfig-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path log = dir / "tangod.log";
  const pid_t pid =
      spawnLogged({TANGOD_PATH, "--port", "0", "--data-dir", (dir / "data").string(),
                   "--autodriver", AUTODRIVER_PATH},
                  {.out = log, .extraEnv = {"SANDBOX_DIR=" + (dir / "sandboxes").string()}});
  ASSERT_GE(pid, 0);
  int port = 0;
  const std::regex re(R"(listening on http://([^:]+):(\d+))");
  std::smatch m;
  std::string text;
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
       !port && std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(std::chrono::milliseconds(20))) {
    text = slurp(log);
    if (std::regex_search(text, m, re)) port = std::stoi(m[2]);
  }
  if (port) {
    EXPECT_EQ(m[1].str(), "127.0.0.1");
    EXPECT_EQ(listenAddress(port), "0100007F");
    HttpClient http(port);
    EXPECT_EQ(http.get("/info/test/").json()["statusId"].as_int64(), 0);
  }
  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
  EXPECT_GT(port, 0) << text;
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST(FirstHourTest, ARealKeyListensWhereConfigured) {
  Tangod tangod("HOST = \"0.0.0.0\"\nKEYS = [\"a-real-key-of-the-operator\"]\n");
  EXPECT_EQ(listenAddress(tangod.port()), "00000000") << "every address, as configured";
  EXPECT_EQ(tangod.log().find("shipped example"), std::string::npos) << tangod.log();
  HttpClient http(tangod.port());
  EXPECT_EQ(http.get("/info/a-real-key-of-the-operator/").json()["statusId"].as_int64(), 0);
  EXPECT_EQ(http.get("/info/test/").json()["statusMsg"].as_string(), "Key not recognized");
}

TEST(FirstHourTest, AQueuedJobWhoseKeyLeftTheConfigEndsWithTheReasonAfterARestart) {
  // One job at a time: the second key's job waits behind a long one, then
  // the service dies and comes back without that key.
  Tangod tangod("KEYS = [\"key-one\", \"key-two\"]\nMAX_CONCURRENT_JOBS = 1\n");
  std::int64_t id = 0;
  {
    HttpClient http(tangod.port());
    ASSERT_GT(oneJob(http, "key-one/slow", "all:\n\t@sleep 30\n", "slow", 60), 0);
    id = oneJob(http, "key-two/lab", "all:\n\t@echo hi\n", "orphan", 20);
    ASSERT_GT(id, 0);
  }
  tangod.stop(SIGKILL);
  const fs::path config = tangod.dir() / "tango.toml";
  std::string text = slurp(config);
  const std::string keys = "KEYS = [\"key-one\", \"key-two\"]";
  ASSERT_NE(text.find(keys), std::string::npos);
  text.replace(text.find(keys), keys.size(), "KEYS = [\"key-one\"]");
  std::ofstream(config) << text;
  tangod.start();
  HttpClient http(tangod.port());
  std::optional<json::object> job;
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
       !job && std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(std::chrono::milliseconds(50))) {
    auto dead = http.get("/jobs/key-one/1/").json();
    for (auto& j : dead["jobs"].as_array())
      if (j.as_object().at("id").as_int64() == id) job = j.as_object();
  }
  ASSERT_TRUE(job) << tangod.log();
  auto& trace = (*job)["trace"].as_array();
  EXPECT_TRUE(std::string(trace.back().as_string())
                  .ends_with("|Error: the API key that submitted this job is no longer configured"))
      << json::serialize(trace);
  EXPECT_EQ((*job)["outcome"].as_string(), "internal_error");
  EXPECT_NE(tangod.log().find("its API key"), std::string::npos) << tangod.log();
}

TEST(FirstHourTest, TheDataDirIsPrivateAndTheDatabaseHoldsNoKey) {
  const std::string key = "Sup3r-Secret-Key-4711";
  Tangod tangod("KEYS = [\"" + key + "\"]\n");
  {
    HttpClient http(tangod.port());
    auto out = helloJob(http, key);
    ASSERT_TRUE(out) << tangod.log();
    EXPECT_NE(out->find("Hello from the sandbox"), std::string::npos) << *out;
  }
  const fs::path data = tangod.dataDir();
  const fs::path lab = data / "courselabs" / (key + "-hello-lab");
  EXPECT_EQ(modeOf(data), 0700u);
  EXPECT_EQ(modeOf(data / "tmp"), 0700u);
  EXPECT_EQ(modeOf(data / "courselabs"), 0700u);
  EXPECT_EQ(modeOf(lab), 0700u);
  EXPECT_EQ(modeOf(lab / "output"), 0700u);
  EXPECT_EQ(modeOf(lab / "hello.sh"), 0600u);
  EXPECT_EQ(modeOf(lab / "output/hello.out"), 0600u);
  EXPECT_EQ(modeOf(data / "tango.sqlite"), 0600u);
  for (const char* suffix : {"-wal", "-shm"}) {
    const fs::path f = data / ("tango.sqlite" + std::string(suffix));
    if (fs::exists(f)) {
      EXPECT_EQ(modeOf(f), 0600u) << f;
    }
  }
  // Stop cleanly, so that everything SQLite holds is on disk, then look for
  // the key in every file of the state.
  tangod.stop(SIGTERM);
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(data)) {
    if (!e.is_regular_file() || !e.path().filename().string().starts_with("tango.sqlite")) continue;
    ++files;
    const std::string bytes = slurp(e.path());
    EXPECT_EQ(bytes.find(key), std::string::npos) << e.path();
  }
  EXPECT_GE(files, 1u);
  const std::string db = slurp(data / "tango.sqlite");
  EXPECT_NE(db.find("hello.out"), std::string::npos) << "the job is in the file we searched";

  // After a restart the job's paths are whole again: /jobs shows Tango's
  // absolute outputFile.
  tangod.start();
  HttpClient http(tangod.port());
  auto jobs = http.get("/jobs/" + key + "/1/").json()["jobs"].as_array();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].as_object()["outputFile"].as_string(), (lab / "output/hello.out").string());
  EXPECT_EQ(jobs[0].as_object()["input"].as_array()[1].as_object()["localFile"].as_string(),
            (lab / "hello.sh").string());
}

}  // namespace
}  // namespace tango::test
