// One service, several courses: each key sees only its own jobs, operator
// routes need an operator key, and one key's limits (live jobs, disk share,
// input size) stop it without touching another. A real tangod on `local`.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <thread>

#include "HttpClient.hpp"
#include "Tangod.hpp"

namespace tango::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kA = "course-a-secret";
constexpr const char* kB = "course-b-secret";
constexpr const char* kOps = "operator-secret";

// A job that runs for a while and says so, so it can be seen live.
const std::string kSlowMakefile = "all:\n\t@echo started; sleep 4; echo finished\n";
const std::string kQuickMakefile = "all:\n\t@echo quick\n";

class KeysTest : public ::testing::Test {
 protected:
  virtual std::string config() {
    return std::string("KEYS = [\"") + kA + "\", \"" + kB + "\", \"" + kOps +
           "\"]\nOPERATOR_KEYS = [\"" + kOps + "\"]\nPOOL_SIZE = 4\n";
  }
  void SetUp() override {
    tangod = std::make_unique<Tangod>(config());
    http = std::make_unique<HttpClient>(tangod->port());
  }
  void TearDown() override {
    if (HasFailure() && tangod) std::cerr << "---- tangod log ----\n" << tangod->log() << "\n";
  }

  json::object upload(const std::string& key, const std::string& lab, const std::string& name,
                      const std::string& content) {
    return http->post("/upload/" + key + "/" + lab + "/", content, {{"Filename", name}}).json();
  }
  json::object addJob(const std::string& key, const std::string& lab, json::object job) {
    return http->post("/addJob/" + key + "/" + lab + "/", json::serialize(job)).json();
  }
  json::object jobOf(const std::string& out, const std::string& notifyURL = "") {
    json::object job{{"image", "autograding_image"},
                     {"files", json::array{json::object{{"localFile", "Makefile.slow"},
                                                        {"destFile", "Makefile"}}}},
                     {"output_file", out},
                     {"jobName", "job-" + out},
                     {"timeout", 30}};
    if (!notifyURL.empty()) job["notifyURL"] = notifyURL;
    return job;
  }
  // Opens the lab and uploads the slow Makefile; a job id.
  std::int64_t submitSlow(const std::string& key, const std::string& lab, const std::string& out,
                          const std::string& notifyURL = "") {
    http->get("/open/" + key + "/" + lab + "/");
    EXPECT_EQ(upload(key, lab, "Makefile.slow", kSlowMakefile)["statusId"].as_int64(), 0);
    auto r = addJob(key, lab, jobOf(out, notifyURL));
    EXPECT_EQ(r["statusId"].as_int64(), 0) << json::serialize(r);
    if (r["statusId"].as_int64() != 0) return -1;
    return std::stoll(std::string(r["jobId"].as_string()));
  }
  std::vector<std::int64_t> idsIn(const std::string& key, bool dead) {
    auto r = http->get(std::string("/jobs/") + key + "/" + (dead ? "1" : "0") + "/").json();
    EXPECT_EQ(r["statusId"].as_int64(), 0) << json::serialize(r);
    std::vector<std::int64_t> ids;
    for (auto& j : r["jobs"].as_array()) ids.push_back(j.as_object().at("id").as_int64());
    return ids;
  }
  static bool has(const std::vector<std::int64_t>& ids, std::int64_t id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  }
  bool waitDead(const std::string& key, std::int64_t id, std::chrono::seconds within = 60s) {
    auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline) {
      if (has(idsIn(key, true), id)) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  std::unique_ptr<Tangod> tangod;
  std::unique_ptr<HttpClient> http;
};

TEST_F(KeysTest, AKeySeesOnlyItsOwnJobsAndTheOperatorSeesAll) {
  const std::string secretURL = "http://127.0.0.1:9/cb?autolab_secret=NOTIFY-SECRET-A";
  const auto a = submitSlow(kA, "lab", "a.out", secretURL);
  const auto b = submitSlow(kB, "lab", "b.out");
  ASSERT_GT(a, 0);
  ASSERT_GT(b, 0);

  // Live: each course its own, the operator both.
  EXPECT_TRUE(has(idsIn(kA, false), a));
  EXPECT_FALSE(has(idsIn(kA, false), b));
  EXPECT_TRUE(has(idsIn(kB, false), b));
  EXPECT_FALSE(has(idsIn(kB, false), a));
  EXPECT_TRUE(has(idsIn(kOps, false), a));
  EXPECT_TRUE(has(idsIn(kOps, false), b));
  // Nothing of A's job (its notifyURL carries Autolab's secret) in B's answer.
  EXPECT_EQ(http->get(std::string("/jobs/") + kB + "/0/").body.find("NOTIFY-SECRET-A"),
            std::string::npos);

  // The running job's output so far: its owner and the operator, not B.
  auto partial = [&](const char* key, std::int64_t id) {
    return http->get("/getPartialOutput/" + std::string(key) + "/" + std::to_string(id) + "/");
  };
  std::string soFar;
  for (int i = 0; i < 100 && soFar.find("started") == std::string::npos; ++i) {
    auto r = partial(kA, a).json();
    if (r["statusId"].as_int64() == 0) soFar = std::string(r["output"].as_string());
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_NE(soFar.find("started"), std::string::npos);
  auto theirs = partial(kB, a);
  EXPECT_EQ(theirs.json()["statusId"].as_int64(), -1) << theirs.body;
  EXPECT_EQ(theirs.body.find("started"), std::string::npos);
  EXPECT_EQ(partial(kOps, a).json()["statusId"].as_int64(), 0);

  // Finished: the same split.
  ASSERT_TRUE(waitDead(kA, a));
  ASSERT_TRUE(waitDead(kB, b));
  EXPECT_FALSE(has(idsIn(kB, true), a));
  EXPECT_FALSE(has(idsIn(kA, true), b));
  EXPECT_TRUE(has(idsIn(kOps, true), a));
  EXPECT_TRUE(has(idsIn(kOps, true), b));
  EXPECT_EQ(http->get(std::string("/jobs/") + kB + "/1/").body.find("NOTIFY-SECRET-A"),
            std::string::npos);
  // Outputs live in each key's own courselab: B polling the same names finds nothing.
  EXPECT_EQ(http->get(std::string("/poll/") + kB + "/lab/a.out/").contentType, "application/json");
  EXPECT_NE(http->get(std::string("/poll/") + kA + "/lab/a.out/").body.find("finished"),
            std::string::npos);
}

TEST_F(KeysTest, OperatorRoutesNeedAnOperatorKey) {
  http->get(std::string("/open/") + kB + "/lab/");
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"POST", std::string("/prealloc/") + kB + "/autograding_image/2/"},
           {"POST", std::string("/build/") + kB + "/"}}) {
    auto r = http->request(method, path, "x", {{"imageName", "autograding_image"}});
    auto o = r.json();
    EXPECT_EQ(o["statusId"].as_int64(), -1) << path;
    EXPECT_NE(std::string(o["statusMsg"].as_string()).find("OPERATOR_KEYS"), std::string::npos)
        << path;
  }
  // The pool the course key asked for was not made.
  auto pools = http->get(std::string("/pool/") + kOps + "/").json();
  EXPECT_EQ(pools["statusId"].as_int64(), 0);
  EXPECT_FALSE(
      pools["pools"].as_object().contains("autograding_image") &&
      pools["pools"].as_object()["autograding_image"].as_object()["total"].as_array().size() == 2)
      << json::serialize(pools);
  for (const char* route : {"/metrics", "/status/", "/status/data"}) {
    EXPECT_EQ(http->get(std::string(route) + "?key=" + kB).status, 403) << route;
    EXPECT_EQ(http->get(route).status, 403) << route;
    EXPECT_EQ(http->get(std::string(route) + "?key=" + kOps).status, 200) << route;
  }
  // The operator may prealloc, within MAX_POOL_SIZE.
  EXPECT_EQ(http->post(std::string("/prealloc/") + kOps + "/autograding_image/1/", "")
                .json()["statusId"]
                .as_int64(),
            0);
  auto over = http->post(std::string("/prealloc/") + kOps + "/autograding_image/65/", "").json();
  EXPECT_EQ(over["statusId"].as_int64(), -1);
  EXPECT_NE(std::string(over["statusMsg"].as_string()).find("MAX_POOL_SIZE"), std::string::npos);
  auto cores =
      http->post(std::string("/prealloc/") + kOps + "/autograding_image/1/", R"({"cores": 1000})")
          .json();
  EXPECT_EQ(cores["statusId"].as_int64(), -1) << json::serialize(cores);
}

TEST_F(KeysTest, NoKeyReachesTheLog) {
  // A job whose name carries a key: its trace lines (logged at debug) would
  // show it, as would any path of its courselab (<key>-<lab>).
  http->get(std::string("/open/") + kA + "/lab/");
  ASSERT_EQ(upload(kA, "lab", "Makefile.slow", kSlowMakefile)["statusId"].as_int64(), 0);
  auto job = jobOf("a.out");
  job["jobName"] = std::string("named-") + kA;
  auto r = addJob(kA, "lab", job);
  ASSERT_EQ(r["statusId"].as_int64(), 0) << json::serialize(r);
  const auto a = std::stoll(std::string(r["jobId"].as_string()));
  http->get("/jobs/wrong-" + std::string(kB) + "/0/");
  http->get(std::string("/metrics?key=") + kOps);
  ASSERT_TRUE(waitDead(kA, a));
  const std::string log = tangod->allLogs();
  ASSERT_NE(log.find("<key>"), std::string::npos) << "the log has no redacted line to check";
  for (const char* key : {kA, kB, kOps}) EXPECT_EQ(log.find(key), std::string::npos) << key;
}

class KeyLimitsTest : public KeysTest {
 protected:
  std::string config() override {
    return KeysTest::config() +
           "MAX_LIVE_JOBS_PER_KEY = 2\nMAX_JOB_INPUT_FILES = 3\nMAX_JOB_INPUT_BYTES = 10000\n"
           "MAX_KEY_DISK = 300000\n";
  }
};

TEST_F(KeyLimitsTest, LiveJobsPerKeyStopOneKeyOnly) {
  ASSERT_GT(submitSlow(kA, "lab", "1.out"), 0);
  ASSERT_GT(submitSlow(kA, "lab", "2.out"), 0);
  auto third = addJob(kA, "lab", jobOf("3.out"));
  EXPECT_EQ(third["statusId"].as_int64(), -1);
  EXPECT_NE(std::string(third["statusMsg"].as_string()).find("MAX_LIVE_JOBS_PER_KEY"),
            std::string::npos)
      << json::serialize(third);
  EXPECT_EQ(idsIn(kA, false).size(), 2u);  // nothing queued
  // Another course is not held back by A's limit.
  EXPECT_GT(submitSlow(kB, "lab", "1.out"), 0);
}

TEST_F(KeyLimitsTest, AJobsInputIsBoundedInFilesAndBytes) {
  http->get(std::string("/open/") + kA + "/lab/");
  ASSERT_EQ(upload(kA, "lab", "Makefile", kQuickMakefile)["statusId"].as_int64(), 0);
  ASSERT_EQ(upload(kA, "lab", "big", std::string(6000, 'b'))["statusId"].as_int64(), 0);
  auto job = [](json::array files) {
    return json::object{{"image", "autograding_image"},
                        {"files", std::move(files)},
                        {"output_file", "o.out"},
                        {"jobName", "bounded"},
                        {"timeout", 10}};
  };
  auto f = [](const char* local, const std::string& dest) {
    return json::object{{"localFile", local}, {"destFile", dest}};
  };
  // The same small file four times: over MAX_JOB_INPUT_FILES.
  auto many = addJob(
      kA, "lab",
      job({f("Makefile", "Makefile"), f("Makefile", "a"), f("Makefile", "b"), f("Makefile", "c")}));
  EXPECT_EQ(many["statusId"].as_int64(), -1);
  EXPECT_NE(std::string(many["statusMsg"].as_string()).find("MAX_JOB_INPUT_FILES"),
            std::string::npos)
      << json::serialize(many);
  // One 6,000-byte file twice: 12,000 bytes, over MAX_JOB_INPUT_BYTES.
  auto big = addJob(kA, "lab", job({f("Makefile", "Makefile"), f("big", "x"), f("big", "y")}));
  EXPECT_EQ(big["statusId"].as_int64(), -1);
  EXPECT_NE(std::string(big["statusMsg"].as_string()).find("MAX_JOB_INPUT_BYTES"),
            std::string::npos)
      << json::serialize(big);
  EXPECT_TRUE(idsIn(kA, false).empty());
  // Within both: accepted.
  auto ok = addJob(kA, "lab", job({f("Makefile", "Makefile"), f("big", "x")}));
  EXPECT_EQ(ok["statusId"].as_int64(), 0) << json::serialize(ok);
}

TEST_F(KeyLimitsTest, AKeysDiskShareRefusesUploadsAndStoresNothing) {
  http->get(std::string("/open/") + kA + "/lab/");
  http->get(std::string("/open/") + kA + "/other/");
  ASSERT_EQ(upload(kA, "lab", "one", std::string(200000, '1'))["statusId"].as_int64(), 0);
  // The share counts every courselab of the key.
  auto over = upload(kA, "other", "two", std::string(150000, '2'));
  EXPECT_EQ(over["statusId"].as_int64(), -1);
  EXPECT_NE(std::string(over["statusMsg"].as_string()).find("MAX_KEY_DISK"), std::string::npos)
      << json::serialize(over);
  const auto labs = tangod->dataDir() / "courselabs";
  EXPECT_FALSE(std::filesystem::exists(labs / (std::string(kA) + "-other") / "two"));
  // Within what is left: fine. Another key has its own share.
  EXPECT_EQ(upload(kA, "other", "small", std::string(50000, 's'))["statusId"].as_int64(), 0);
  http->get(std::string("/open/") + kB + "/lab/");
  EXPECT_EQ(upload(kB, "lab", "one", std::string(200000, '1'))["statusId"].as_int64(), 0);
}

class FreeDiskTest : public KeysTest {
 protected:
  // A floor above this machine's free space (1 TiB, the most the key takes).
  std::string config() override { return KeysTest::config() + "MIN_FREE_DISK = 1099511627776\n"; }
};

TEST_F(FreeDiskTest, BelowTheFloorUploadsAndJobsAreRefused) {
  http->get(std::string("/open/") + kA + "/lab/");
  auto up = upload(kA, "lab", "Makefile.slow", kSlowMakefile);
  EXPECT_EQ(up["statusId"].as_int64(), -1);
  const std::string msg(up["statusMsg"].as_string());
  EXPECT_NE(msg.find("MIN_FREE_DISK"), std::string::npos) << msg;
  EXPECT_EQ(msg.find(tangod->dir().string()), std::string::npos) << "no host path: " << msg;
  EXPECT_FALSE(std::filesystem::exists(tangod->dataDir() / "courselabs" /
                                       (std::string(kA) + "-lab") / "Makefile.slow"));
  auto job = addJob(kA, "lab", jobOf("x.out"));
  EXPECT_EQ(job["statusId"].as_int64(), -1);
  EXPECT_NE(std::string(job["statusMsg"].as_string()).find("MIN_FREE_DISK"), std::string::npos);
  EXPECT_TRUE(idsIn(kOps, false).empty());
}

}  // namespace
}  // namespace tango::test

namespace tango::test {
namespace {

// An image tarball a crash left in DATA_DIR/tmp goes at the next start;
// a recent one (another node's build in progress) stays.
TEST_F(KeysTest, StaleBuildTarballsGoAtStartUp) {
  tangod->stop(SIGKILL);
  const auto tmp = tangod->dataDir() / "tmp";
  std::ofstream(tmp / "build-stale1") << "tar";
  std::ofstream(tmp / "build-recent") << "tar";
  std::filesystem::last_write_time(
      tmp / "build-stale1", std::filesystem::file_time_type::clock::now() - std::chrono::hours(2));
  tangod->start();
  EXPECT_FALSE(std::filesystem::exists(tmp / "build-stale1"));
  EXPECT_TRUE(std::filesystem::exists(tmp / "build-recent"));
}

}  // namespace
}  // namespace tango::test
