// The ec2SSH VMMS end to end: the real tangod launches "instances" through
// the EC2 Query API (the project's double, SigV4-checked, on loopback),
// reaches them over real OpenSSH and runs jobs there, driven over REST like
// Autolab. Credentials come from ~/.boto, as Tango's EC2 guide writes it.
#include <cstdlib>
#include <regex>

#include "../service/ServiceFixture.hpp"
#include "../ssh/SshMachines.hpp"
#include "Ec2Double.hpp"

namespace tango::test {
namespace {

const std::string kAccessKey = "AKIDTANGOTEST0000001";
const std::string kSecret = "tango-test-secret-aaaaaaaaaaaaaaaaaaaaaaaaaa";

// Sets a variable for the life of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

class Ec2SshTest : public ServiceTest {
 protected:
  void SetUp() override {
    if (!SshMachines::imagePresent())
      GTEST_FAIL() << "image " << kSshImage << " missing: ./dev test builds it";
    scratch = std::filesystem::path(TEST_TMP_DIR) / ("ec2-" + std::to_string(::getpid()));
    keys = std::make_unique<SshMachines>(scratch / "keys");
    double_ =
        std::make_unique<Ec2Double>(scratch, kAccessKey, kSecret, keys->key().string() + ".pub");
    home = scratch / "home";
    std::filesystem::create_directories(home);
    std::ofstream(home / ".boto") << "[Credentials]\naws_access_key_id = " << kAccessKey
                                  << "\naws_secret_access_key = " << botoSecret() << "\n";
    homeEnv = std::make_unique<ScopedEnv>("HOME", home.string());
    ::unsetenv("AWS_ACCESS_KEY_ID");
    ::unsetenv("AWS_SECRET_ACCESS_KEY");
    ServiceTest::SetUp();
  }
  void TearDown() override {
    ServiceTest::TearDown();
    if (HasFailure() && double_) std::cerr << "---- EC2 double ----\n" << double_->log() << "\n";
    tangod.reset();  // a clean stop: the VMMS removes its sockets' directory
    double_.reset();
    keys.reset();
    homeEnv.reset();
    std::error_code ec;
    std::filesystem::remove_all(scratch, ec);
  }
  virtual std::string botoSecret() { return kSecret; }
  virtual std::string more() { return "POOL_SIZE = 0\n"; }
  std::string extraConfig() override {
    return "VMMS_NAME = \"ec2SSH\"\nPREFIX = \"tec" + std::to_string(::getpid()) +
           "\"\nEC2_REGION = \"us-east-1\"\nEC2_USER_NAME = \"tango\"\nDEFAULT_AMI = \"" +
           Ec2Double::kAmi + "\"\nDEFAULT_INST_TYPE = \"t3.small\"\nSECURITY_KEY_NAME = \"" +
           Ec2Double::kKeyName + "\"\nSECURITY_KEY_PATH = \"" + keys->key().string() +
           "\"\nEC2_ENDPOINT = \"" + double_->endpoint() +
           "\"\nDEFAULT_SECURITY_GROUP = \"tango-autograding\"\nEC2_SSH_CIDR = "
           "\"127.0.0.1/32\"\nWAITVM_TIMEOUT = 20\n" +
           more();
  }
  std::int64_t submitHello(const std::string& out, const std::string& lab = "lab") {
    return submit(lab, {{"autograde-Makefile", kHelloMakefile}, {"hello.sh", kHelloScript}}, out);
  }
  // Blocks until the double sees no live instance (or fails the test).
  void expectNoLiveInstance(std::chrono::seconds within = std::chrono::seconds(30)) {
    auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline && !double_->liveInstances().empty())
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_TRUE(double_->liveInstances().empty()) << boost::json::serialize(double_->stats());
  }

  std::filesystem::path scratch, home;
  std::unique_ptr<SshMachines> keys;
  std::unique_ptr<Ec2Double> double_;
  std::unique_ptr<ScopedEnv> homeEnv;
};

TEST_F(Ec2SshTest, HelloJobOnAFreshInstanceWhichIsTerminatedAfterwards) {
  auto id = submitHello("hello.out");
  ASSERT_GT(id, 0);
  auto out = waitOutput("lab", "hello.out", std::chrono::seconds(90));
  ASSERT_TRUE(out);
  EXPECT_TRUE(std::regex_match(*out, helloOutputRe(id))) << *out;
  EXPECT_EQ(double_->calls("RunInstances"), 1);
  // The group it made admits SSH from the configured range only.
  EXPECT_EQ(double_->calls("CreateSecurityGroup"), 1);
  EXPECT_EQ(double_->calls("AuthorizeSecurityGroupIngress"), 1);
  expectNoLiveInstance();
  // The secret is nowhere the operator or a client looks.
  auto job = waitDead(id);
  ASSERT_TRUE(job);
  EXPECT_EQ(boost::json::serialize(*job).find(kSecret), std::string::npos);
  EXPECT_EQ(tangod->log().find(kSecret), std::string::npos);
  EXPECT_NE(tangod->log().find(".boto"), std::string::npos)
      << "says where the credentials came from";
}

TEST_F(Ec2SshTest, ThrottlingAndMissingCapacityAreAnsweredWithBackoff) {
  double_->control(R"({"throttle": 3, "insufficientCapacity": 2})");
  auto id = submitHello("throttled.out");
  ASSERT_GT(id, 0);
  auto out = waitOutput("lab", "throttled.out", std::chrono::seconds(90));
  ASSERT_TRUE(out);
  EXPECT_NE(out->find("Hello from the sandbox"), std::string::npos) << *out;
  auto job = waitDead(id);
  ASSERT_TRUE(job);
  EXPECT_EQ((*job)["retries"].as_int64(), 0) << "retried within the step, not as a new try";
  // Two launches refused for capacity (besides any throttled), then one made.
  EXPECT_GE(double_->calls("RunInstances"), 3);
  EXPECT_EQ(double_->stats()["instances"].as_object().size(), 1u);
}

TEST_F(Ec2SshTest, AnInstanceThatNeverAnswersSshIsTerminatedAndTheJobRetried) {
  double_->control(R"({"noSshd": 1})");
  auto id = submitHello("nossh.out");
  ASSERT_GT(id, 0);
  auto out = waitOutput("lab", "nossh.out", std::chrono::seconds(120));
  ASSERT_TRUE(out);
  EXPECT_NE(out->find("Hello from the sandbox"), std::string::npos) << *out;
  EXPECT_EQ(double_->calls("RunInstances"), 2);
  auto job = waitDead(id);
  ASSERT_TRUE(job);
  EXPECT_EQ((*job)["retries"].as_int64(), 1);
  expectNoLiveInstance();
}

TEST_F(Ec2SshTest, AnInstanceTerminatedBehindTheServicesBackMidJobIsRetried) {
  auto id =
      submit("lab", {{"autograde-Makefile", "all:\n\t@sleep 4; echo survived\n"}}, "lost.out");
  ASSERT_GT(id, 0);
  // Wait for the job to run, then take its instance away.
  std::string victim;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline && victim.empty()) {
    auto live = http->get("/jobs/test/0/").json()["jobs"].as_array();
    if (!live.empty() && live[0].as_object().at("trace").as_array().size() >= 3) {
      auto ids = double_->liveInstances();
      if (!ids.empty()) victim = ids.front();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(victim.empty());
  std::this_thread::sleep_for(std::chrono::seconds(1));
  double_->control("{\"killInstance\": \"" + victim + "\"}");
  auto out = waitOutput("lab", "lost.out", std::chrono::seconds(120));
  ASSERT_TRUE(out);
  EXPECT_NE(out->find("survived"), std::string::npos) << *out;
  auto job = waitDead(id);
  ASSERT_TRUE(job);
  EXPECT_GE((*job)["retries"].as_int64(), 1);
  expectNoLiveInstance();
}

TEST_F(Ec2SshTest, AJobWithItsOwnKeysRunsInItsAccountWithAKeyPairMadeForIt) {
  auto id =
      submit("lab", {{"autograde-Makefile", kHelloMakefile}, {"hello.sh", kHelloScript}}, "own.out",
             {{"accessKeyId", Ec2Double::kAccessKey2}, {"accessKey", Ec2Double::kSecret2}});
  ASSERT_GT(id, 0);
  auto out = waitOutput("lab", "own.out", std::chrono::seconds(90));
  ASSERT_TRUE(out);
  EXPECT_NE(out->find("Hello from the sandbox"), std::string::npos) << *out;
  auto stats = double_->stats();
  auto& instances = stats["instances"].as_object();
  ASSERT_EQ(instances.size(), 1u) << boost::json::serialize(stats);
  EXPECT_EQ(instances.begin()->value().as_object()["account"], Ec2Double::kAccessKey2);
  EXPECT_EQ(double_->calls("CreateKeyPair"), 1);
  // The key pair goes with the VM, in EC2 and on disk.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline && double_->calls("DeleteKeyPair") < 1)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(double_->calls("DeleteKeyPair"), 1);
  expectNoLiveInstance();
  std::error_code ec;
  std::size_t left = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(tangod->dataDir() / "ssh", ec);
       it != std::filesystem::recursive_directory_iterator(); ++it)
    left += it->path().extension() == ".pem" || it->path().extension() == ".account";
  EXPECT_EQ(left, 0u) << "no key or account file is left";
  // Its secret is in no answer and no log line.
  auto job = waitDead(id);
  ASSERT_TRUE(job);
  EXPECT_EQ(boost::json::serialize(*job).find(Ec2Double::kSecret2), std::string::npos);
  EXPECT_EQ(boost::json::serialize(http->get("/jobs/test/1/").json()).find(Ec2Double::kSecret2),
            std::string::npos);
  EXPECT_EQ(tangod->log().find(Ec2Double::kSecret2), std::string::npos);
}

TEST_F(Ec2SshTest, KillNineLeavesNothingInAJobsOwnAccount) {
  auto id = submit("lab", {{"autograde-Makefile", "all:\n\t@sleep 3; echo own-once\n"}}, "k.out",
                   {{"accessKeyId", Ec2Double::kAccessKey2}, {"accessKey", Ec2Double::kSecret2}});
  ASSERT_GT(id, 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline && double_->liveInstances().empty())
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto before = double_->liveInstances();
  ASSERT_EQ(before.size(), 1u);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  tangod->stop(SIGKILL);
  tangod->start();
  restartHttp();
  auto out = waitOutput("lab", "k.out", std::chrono::seconds(120));
  ASSERT_TRUE(out);
  EXPECT_NE(out->find("own-once"), std::string::npos) << *out;
  ASSERT_TRUE(waitDead(id));
  auto stats = double_->stats()["instances"].as_object();
  const auto state = std::string(stats[before[0]].as_object()["state"].as_string());
  EXPECT_TRUE(state == "terminated" || state == "shutting-down") << state;
  expectNoLiveInstance();
  // Both VMs' key pairs were deleted (the killed run's at start-up, the
  // retry's once its instance is gone).
  auto keysDeadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < keysDeadline &&
         double_->calls("CreateKeyPair") != double_->calls("DeleteKeyPair"))
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(double_->calls("CreateKeyPair"), 2);
  EXPECT_EQ(double_->calls("DeleteKeyPair"), 2);
  EXPECT_EQ(tangod->log().find(Ec2Double::kSecret2), std::string::npos);
}

class Ec2SshReuseTest : public Ec2SshTest {
 protected:
  std::string more() override { return "POOL_SIZE = 1\nREUSE_VMS = true\n"; }
};

TEST_F(Ec2SshReuseTest, AWarmReusedInstanceCostsNoApiCallsAndCarriesNothingOver) {
  auto first = submit(
      "lab", {{"autograde-Makefile", "all:\n\t@touch $$HOME/planted /tmp/planted; echo first\n"}},
      "first.out");
  ASSERT_GT(first, 0);
  ASSERT_TRUE(waitOutput("lab", "first.out", std::chrono::seconds(90)));
  ASSERT_TRUE(waitDead(first));
  // Back in its pool once reset.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    auto p = http->get("/pool/test/autograding_image/").json();
    auto& pools = p["pools"].as_object();
    if (pools.contains("autograding_image") &&
        !pools["autograding_image"].as_object()["free"].as_array().empty())
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  double_->control(R"({"reset": true})");
  auto second = submit(
      "lab", {{"autograde-Makefile", "all:\n\t@ls -A $$HOME /tmp | grep planted || echo clean\n"}},
      "second.out");
  ASSERT_GT(second, 0);
  auto out = waitOutput("lab", "second.out", std::chrono::seconds(60));
  ASSERT_TRUE(out);
  EXPECT_NE(out->find("clean"), std::string::npos) << *out;
  EXPECT_EQ(out->find("planted"), std::string::npos) << *out;
  auto calls = double_->stats()["calls"].as_object();
  std::int64_t total = 0;
  for (auto& [k, v] : calls) total += v.as_int64();
  EXPECT_EQ(total, 0) << "a job on a warm instance calls no EC2 API: "
                      << boost::json::serialize(calls);
  EXPECT_EQ(double_->liveInstances().size(), 1u);
}

TEST_F(Ec2SshReuseTest, KillNineThenRestartLeaksNoInstanceAndEveryJobFinishesOnce) {
  auto id = submit("lab", {{"autograde-Makefile", "all:\n\t@sleep 3; echo once\n"}}, "k.out");
  ASSERT_GT(id, 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    auto live = http->get("/jobs/test/0/").json()["jobs"].as_array();
    if (!live.empty() && live[0].as_object().at("trace").as_array().size() >= 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const auto before = double_->liveInstances();
  ASSERT_FALSE(before.empty());
  tangod->stop(SIGKILL);
  tangod->start();
  restartHttp();
  auto out = waitOutput("lab", "k.out", std::chrono::seconds(120));
  ASSERT_TRUE(out);
  EXPECT_NE(out->find("once"), std::string::npos) << *out;
  ASSERT_TRUE(waitDead(id));
  // The instances of the killed run were terminated at start-up.
  auto stats = double_->stats()["instances"].as_object();
  for (const auto& i : before) {
    const auto state = std::string(stats[i].as_object()["state"].as_string());
    EXPECT_TRUE(state == "terminated" || state == "shutting-down") << i << " is " << state;
  }
  auto dead = http->get("/jobs/test/1/").json()["jobs"].as_array();
  int n = 0;
  for (auto& j : dead) n += j.as_object().at("id").as_int64() == id;
  EXPECT_EQ(n, 1);
  // What runs now is the pool's one warm instance.
  EXPECT_LE(double_->liveInstances().size(), 1u);
}

class Ec2SshScalingTest : public Ec2SshTest {
 protected:
  std::string more() override {
    return "POOL_SIZE = 1\nREUSE_VMS = true\nPOOL_MAX = 3\nPOOL_GROW_EVERY = 1\n"
           "POOL_IDLE_SECS = 3\n";
  }
};

TEST_F(Ec2SshScalingTest, ABurstGrowsThePoolToItsMaximumAndIdlenessShrinksItBack) {
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 6; ++i) {
    ids.push_back(submit("lab" + std::to_string(i),
                         {{"autograde-Makefile", "all:\n\t@sleep 2; echo burst\n"}}, "b.out"));
    ASSERT_GT(ids.back(), 0);
  }
  std::size_t most = 0;
  for (int i = 0; i < 6; ++i) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    std::optional<std::string> out;
    while (!out && std::chrono::steady_clock::now() < deadline) {
      most = std::max(most, double_->liveInstances().size());
      out = waitOutput("lab" + std::to_string(i), "b.out", std::chrono::milliseconds(200));
    }
    ASSERT_TRUE(out) << "job " << ids[i];
    EXPECT_NE(out->find("burst"), std::string::npos) << *out;
  }
  EXPECT_EQ(most, 3u) << "grew to POOL_MAX, never beyond\n" << tangod->log();
  EXPECT_GE(double_->calls("RunInstances"), 3);
  EXPECT_NE(tangod->log().find("grows to"), std::string::npos);
  // Idle for POOL_IDLE_SECS: back to POOL_SIZE.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline && double_->liveInstances().size() > 1)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(double_->liveInstances().size(), 1u);
}

// Wrong credentials: the service says so at start-up and does not start.
TEST(Ec2SshStartTest, WrongCredentialsAreAClearStartUpError) {
  if (!SshMachines::imagePresent()) GTEST_FAIL() << "image " << kSshImage << " missing";
  auto scratch = std::filesystem::path(TEST_TMP_DIR) / ("ec2-bad-" + std::to_string(::getpid()));
  SshMachines keys(scratch / "keys");
  Ec2Double dbl(scratch, kAccessKey, kSecret, keys.key().string() + ".pub");
  std::filesystem::create_directories(scratch / "home");
  std::ofstream(scratch / "home" / ".boto") << "[Credentials]\naws_access_key_id = " << kAccessKey
                                            << "\naws_secret_access_key = not-the-secret\n";
  ScopedEnv homeEnv("HOME", (scratch / "home").string());
  const std::string cfg = "VMMS_NAME = \"ec2SSH\"\nEC2_REGION = \"us-east-1\"\nDEFAULT_AMI = \"" +
                          std::string(Ec2Double::kAmi) +
                          "\"\nDEFAULT_INST_TYPE = \"t3.small\"\nSECURITY_KEY_NAME = \"" +
                          Ec2Double::kKeyName + "\"\nSECURITY_KEY_PATH = \"" + keys.key().string() +
                          "\"\nEC2_ENDPOINT = \"" + dbl.endpoint() + "\"\n";
  try {
    Tangod t(cfg);
    ADD_FAILURE() << "tangod started with a wrong secret:\n" << t.log();
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("AuthFailure"), std::string::npos) << msg;
    EXPECT_NE(msg.find(".boto"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("not-the-secret"), std::string::npos) << msg;
  }
  EXPECT_EQ(dbl.calls("RunInstances"), 0);
  std::error_code ec;
  std::filesystem::remove_all(scratch, ec);
}

// The double is EC2 as far as Debian's awscli can tell: it accepts awscli's
// signatures and awscli parses its answers through a whole instance's life
// (tests/ec2/awscli-smoke.sh, which also SSHes into the instance).
TEST(Ec2AwsCliTest, DebiansAwsCliDrivesTheDouble) {
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/aws"))
      << "awscli missing (scripts/install-deps.sh)";
  int st = 0;
  const std::string out =
      shell("bash " + std::string(SOURCE_DIR) + "/tests/ec2/awscli-smoke.sh 2>&1", &st);
  EXPECT_EQ(st, 0) << out;
  EXPECT_NE(out.find("ok - "), std::string::npos) << out;
}

}  // namespace
}  // namespace tango::test
