// The tashiSSH VMMS end to end: the real tangod runs jobs over real OpenSSH
// on machines listed in [[SSH_MACHINES]] (containers of tango-test-ssh on
// this machine's Docker bridge), driven over REST like Autolab.
#include <regex>

#include "../service/ServiceFixture.hpp"
#include "SshMachines.hpp"

namespace tango::test {
namespace {

class TashiSshTest : public ServiceTest {
 protected:
  void SetUp() override {
    if (!SshMachines::imagePresent())
      GTEST_FAIL() << "image " << kSshImage
                   << " missing: ./dev test builds it (tango-image build tango-test-ssh "
                      "--no-defaults --packages make,openssh-server,sudo)";
    machines = std::make_unique<SshMachines>(std::filesystem::path(TEST_TMP_DIR) /
                                             ("ssh-" + std::to_string(::getpid())));
    for (int i = 0; i < machineCount(); ++i) {
      started.push_back(machines->start(machineEnv()));
    }
    for (auto& m : started) machines->waitSsh(m);
    ServiceTest::SetUp();
  }
  void TearDown() override {
    ServiceTest::TearDown();
    tangod.reset();  // a clean stop: the VMMS removes its sockets' directory
    machines.reset();
  }
  virtual int machineCount() { return 1; }
  virtual std::string machineEnv() { return "-e GRADING_USERS=autograde2"; }
  virtual std::string machineExtra() { return "grading_users = [\"autograde\", \"autograde2\"]"; }
  virtual std::string topConfig() { return "POOL_SIZE = 2\n"; }
  std::string extraConfig() override {
    std::string c = "VMMS_NAME = \"tashiSSH\"\nPREFIX = \"tsh" + std::to_string(::getpid()) +
                    "\"\n" + topConfig();
    for (std::size_t i = 0; i < started.size(); ++i)
      c += machines->configEntry(started[i], "m" + std::to_string(i), machineExtra());
    return c;
  }
  std::int64_t submitHello(const std::string& out, json::object extra = {}) {
    return submit("lab", {{"autograde-Makefile", kHelloMakefile}, {"hello.sh", kHelloScript}}, out,
                  std::move(extra));
  }

  std::unique_ptr<SshMachines> machines;
  std::vector<SshMachines::Machine> started;
};

TEST_F(TashiSshTest, HelloJobRunsOnAListedMachineWithTangosOutput) {
  auto id = submitHello("hello.out");
  ASSERT_GT(id, 0);
  auto out = waitOutput("lab", "hello.out");
  ASSERT_TRUE(out);
  EXPECT_TRUE(std::regex_match(*out, helloOutputRe(id))) << *out;
  auto job = waitDead(id);
  ASSERT_TRUE(job);
  EXPECT_EQ((*job)["vm"].as_object()["vmms"], "tashiSSH");
}

TEST_F(TashiSshTest, TimeoutOutputCapAndPartialOutput) {
  // A job that prints, then hangs past its timeout: its head is readable
  // while it runs, and it ends as a timeout.
  auto slow = submit("lab", {{"autograde-Makefile", "all:\n\t@echo started-here; sleep 30\n"}},
                     "slow.out", {{"timeout", 3}});
  ASSERT_GT(slow, 0);
  std::string partial;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline &&
         partial.find("started-here") == std::string::npos) {
    auto r = http->get("/getPartialOutput/test/" + std::to_string(slow) + "/").json();
    if (r["statusId"].as_int64() == 0) partial = r["output"].as_string();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(partial.find("started-here"), std::string::npos) << partial;
  auto out = waitOutput("lab", "slow.out");
  ASSERT_TRUE(out);
  EXPECT_NE(out->find("Error: Job timed out after 3 seconds"), std::string::npos) << *out;

  // An output far over the cap is cut to it.
  auto big = submit("lab2", {{"autograde-Makefile", "all:\n\t@yes 0123456789 | head -c 5000000\n"}},
                    "big.out", {{"max_kb", 1}});
  ASSERT_GT(big, 0);
  auto bigOut = waitOutput("lab2", "big.out");
  ASSERT_TRUE(bigOut);
  EXPECT_LT(bigOut->size(), 8000u);
  EXPECT_NE(bigOut->find("0123456789"), std::string::npos);
}

class TashiSshReuseTest : public TashiSshTest {
 protected:
  std::string machineEnv() override { return ""; }
  std::string machineExtra() override { return ""; }
  std::string topConfig() override { return "POOL_SIZE = 1\nMAX_CONCURRENT_JOBS = 1\n"; }
};

TEST_F(TashiSshReuseTest, AReusedMachineCarriesNothingOfThePreviousJob) {
  // The first job leaves what it can: files in its home and /tmp, and a
  // process that left its session.
  auto first = submit("lab",
                      {{"autograde-Makefile",
                        "all:\n\t@touch $$HOME/planted /tmp/planted /var/tmp/planted; "
                        "setsid sh -c 'exec sleep 4321' </dev/null >/dev/null 2>&1 & echo left\n"}},
                      "first.out");
  ASSERT_GT(first, 0);
  auto out1 = waitOutput("lab", "first.out");
  ASSERT_TRUE(out1);
  EXPECT_NE(out1->find("left"), std::string::npos) << *out1;
  auto job1 = waitDead(first);
  ASSERT_TRUE(job1);
  // A process of the grading user that no job started (as cron would), from
  // an execute-only binary: the reset after the next job must kill it too
  // (found by its real uid in /proc/PID/status, as the reset looks).
  std::string planted;
  ASSERT_EQ(machines->runOn(started[0],
                            "cp /bin/sleep /usr/local/bin/hidden-sleep && chmod 0711 "
                            "/usr/local/bin/hidden-sleep && setpriv --reuid=autograde "
                            "--regid=autograde --clear-groups setsid /usr/local/bin/hidden-sleep "
                            "4242 </dev/null >/dev/null 2>&1 & sleep 0.3; stat -c %U /proc/$(pgrep "
                            "-f 'hidden-sleep 4242' 2>/dev/null || echo 1)",
                            &planted),
            0)
      << planted;
  // The next job looks for them, on the same VM.
  auto second = submit(
      "lab",
      {{"autograde-Makefile",
        "all:\n\t@ls -A $$HOME /tmp /var/tmp | grep planted || echo no-files; "
        "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -c 'sleep 4321' || true\n"}},
      "second.out");
  ASSERT_GT(second, 0);
  auto out2 = waitOutput("lab", "second.out");
  ASSERT_TRUE(out2);
  EXPECT_NE(out2->find("no-files"), std::string::npos) << *out2;
  EXPECT_EQ(out2->find("planted"), std::string::npos) << *out2;
  // grep -c counts only its own command line (which holds the pattern).
  EXPECT_NE(out2->find("\n1\n"), std::string::npos) << *out2;
  auto job2 = waitDead(second);
  ASSERT_TRUE(job2);
  EXPECT_EQ((*job1)["vm"].as_object()["id"], (*job2)["vm"].as_object()["id"])
      << "the second job ran on the first one's VM";
  // And seen from outside: no process of the grading user, nothing of it left.
  std::string left;
  machines->runOn(started[0],
                  "find /home/autograde /tmp /var/tmp -mindepth 1 -user autograde; "
                  "awk -v u=$(id -u autograde) '$1 == \"Uid:\" && $2 == u { print FILENAME }' "
                  "/proc/[0-9]*/status; true",
                  &left);
  EXPECT_EQ(left, "");
}

class TashiSshFailoverTest : public TashiSshTest {
 protected:
  int machineCount() override { return 2; }
  std::string machineEnv() override { return ""; }
  std::string machineExtra() override { return ""; }
  std::string topConfig() override { return "POOL_SIZE = 2\nWAITVM_TIMEOUT = 5\n"; }
};

TEST_F(TashiSshFailoverTest, AMachineThatStopsAnsweringLeavesServiceAndItsJobsRunElsewhere) {
  // Both machines take a job at first.
  for (int i = 0; i < 2; ++i) {
    auto id = submitHello("warm" + std::to_string(i) + ".out");
    ASSERT_GT(id, 0);
    ASSERT_TRUE(waitOutput("lab", "warm" + std::to_string(i) + ".out"));
  }
  // m0 stops answering (frozen: it keeps its address, which a stopped
  // container could lose to another test's); every job still finishes, on m1.
  machines->pause(started[0]);
  // Jobs of a second each, submitted at once: both machines' VMs are taken,
  // whichever the pool hands out first.
  std::vector<std::int64_t> ids;
  const std::map<std::string, std::string> slow = {
      {"autograde-Makefile", "all:\n\t@sleep 1; echo Hello from the sandbox\n"}};
  for (int i = 0; i < 4; ++i) {
    ids.push_back(submit("slowlab", slow, "after" + std::to_string(i) + ".out"));
    ASSERT_GT(ids.back(), 0);
  }
  for (int i = 0; i < 4; ++i) {
    auto out =
        waitOutput("slowlab", "after" + std::to_string(i) + ".out", std::chrono::seconds(120));
    ASSERT_TRUE(out) << "job " << ids[i];
    EXPECT_NE(out->find("Hello from the sandbox"), std::string::npos) << *out;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline &&
         tangod->log().find("machine m0 out of service") == std::string::npos)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_NE(tangod->log().find("machine m0 out of service"), std::string::npos);
  // It comes back once it answers again.
  machines->unpause(started[0]);
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline &&
         tangod->log().find("machine m0 back in service") == std::string::npos)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_NE(tangod->log().find("machine m0 back in service"), std::string::npos);
}

TEST_F(TashiSshFailoverTest, KillNineWithJobsRunningThenRestartEveryJobFinishesOnce) {
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 2; ++i) {
    ids.push_back(
        submit("lab" + std::to_string(i),
               {{"autograde-Makefile", "all:\n\t@sleep 3; echo done-" + std::to_string(i) + "\n"}},
               "k.out"));
    ASSERT_GT(ids.back(), 0);
  }
  // Wait until both run, then kill the service under them.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    auto live = http->get("/jobs/test/0/").json()["jobs"].as_array();
    int running = 0;
    for (auto& j : live)
      if (j.as_object().at("assigned").as_bool()) ++running;
    if (running == 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  tangod->stop(SIGKILL);
  tangod->start();
  restartHttp();
  for (int i = 0; i < 2; ++i) {
    auto out = waitOutput("lab" + std::to_string(i), "k.out", std::chrono::seconds(90));
    ASSERT_TRUE(out);
    EXPECT_NE(out->find("done-" + std::to_string(i)), std::string::npos) << *out;
    auto job = waitDead(ids[i]);
    ASSERT_TRUE(job);
  }
  // Each job finished once: one dead entry each, and nothing live.
  auto dead = http->get("/jobs/test/1/").json()["jobs"].as_array();
  for (auto id : ids) {
    int n = 0;
    for (auto& j : dead) n += j.as_object().at("id").as_int64() == id;
    EXPECT_EQ(n, 1) << "job " << id;
  }
  EXPECT_TRUE(http->get("/jobs/test/0/").json()["jobs"].as_array().empty());
}

}  // namespace
}  // namespace tango::test
