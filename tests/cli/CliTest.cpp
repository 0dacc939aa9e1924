// The real tango-cli binary against a real tangod: every flag of Tango's
// tango-cli.py, exit statuses, --json, and --runJob waiting for outputs.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <thread>

#include "../service/HttpClient.hpp"
#include "CliRunner.hpp"

namespace tango::test {
namespace {

namespace json = boost::json;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tangod = std::make_unique<Tangod>("POOL_SIZE = 2\n");
    dir = tangod->dir() / "job";
    std::filesystem::create_directories(dir);
    std::filesystem::copy_file(
        std::filesystem::path(SOURCE_DIR) / "examples/hello/autograde-Makefile",
        dir / "autograde-Makefile");
    std::filesystem::copy_file(std::filesystem::path(SOURCE_DIR) / "examples/hello/hello.sh",
                               dir / "hello.sh");
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "---- tangod log ----\n" << tangod->log() << "\n";
  }
  // tango-cli with -s/-P/-k pointing at the test's tangod.
  CliResult cli(std::vector<std::string> args, const std::string& key = "test") {
    std::vector<std::string> all{"-s", "127.0.0.1", "-P", std::to_string(tangod->port()),
                                 "-k", key};
    all.insert(all.end(), args.begin(), args.end());
    return runCli(all);
  }
  json::object cliJson(std::vector<std::string> args) {
    args.push_back("--json");
    auto r = cli(args);
    EXPECT_EQ(r.exit, 0) << r;
    return json::parse(r.out).as_object();
  }
  // Submits a job with -a and returns its id.
  long long addJob(const std::string& lab, const std::string& output,
                   std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"-l",
                                  lab,
                                  "-a",
                                  "--json",
                                  "--outputFile",
                                  output,
                                  "--infiles",
                                  R"({"localFile": "autograde-Makefile", "destFile": "Makefile"})",
                                  R"({"localFile": "hello.sh", "destFile": "hello.sh"})"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = cli(args);
    EXPECT_EQ(r.exit, 0) << r;
    auto j = json::parse(r.out).as_object();
    return std::stoll(std::string(j["jobId"].as_string()));
  }
  void openAndUpload(const std::string& lab) {
    auto o = cli({"-l", lab, "-o"});
    ASSERT_EQ(o.exit, 0) << o;
    for (const char* f : {"autograde-Makefile", "hello.sh"}) {
      auto u = cli({"-l", lab, "-u", "--filename", (dir / f).string()});
      ASSERT_EQ(u.exit, 0) << u;
    }
  }
  CliResult waitPoll(const std::string& lab, const std::string& output) {
    CliResult r;
    for (int i = 0; i < 300; ++i) {
      r = cli({"-l", lab, "-p", "--outputFile", output});
      if (r.exit == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return r;
  }

  std::unique_ptr<Tangod> tangod;
  std::filesystem::path dir;
};

TEST(CliFlags, HelpListsEveryFlagWithDefaults) {
  auto r = runCli({"--help"});
  ASSERT_EQ(r.exit, 0) << r.err;
  for (const char* flag : {"-s,--server",      "-P,--port",     "-S,--ssl",    "-k,--key",
                           "-l,--courselab",   "-o,--open",     "-u,--upload", "--filename",
                           "-a,--addJob",      "--infiles",     "--image",     "--outputFile",
                           "--jobname",        "--maxsize",     "--timeout",   "--notifyURL",
                           "--disableNetwork", "--accessKeyId", "--accessKey", "-p,--poll",
                           "-i,--info",        "-j,--jobs",     "--deadJobs",  "--pool",
                           "--prealloc",       "--num",         "--vmms",      "--cores",
                           "--memory",         "--build",       "--imageName", "--getPartialOutput",
                           "--jobid",          "--runJob",      "--numJobs",   "--json",
                           "--cancel",         "--priority"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag << "\n" << r.out;
  }
  for (const char* def :
       {"localhost", "3000", "result.out", "test_job", "autograding_image", "512"}) {
    EXPECT_NE(r.out.find(def), std::string::npos) << def;
  }
}

TEST(CliFlags, BadFlagsExitTwoAndSayWhatToFix) {
  auto r = runCli({"-P", "notaport", "-i", "-k", "test"});
  EXPECT_EQ(r.exit, 2) << r.err;
  EXPECT_NE(r.err.find("--port"), std::string::npos) << r.err;

  r = runCli({"-k", "test"});
  EXPECT_EQ(r.exit, 2);
  EXPECT_NE(r.err.find("no action given"), std::string::npos) << r.err;

  r = runCli({"-k", "test", "-i", "-j"});
  EXPECT_EQ(r.exit, 2);
  EXPECT_NE(r.err.find("more than one action"), std::string::npos) << r.err;

  r = runCli({"-i"});
  EXPECT_EQ(r.exit, 2);
  EXPECT_NE(r.err.find("missing -k"), std::string::npos) << r.err;

  r = runCli({"-k", "test", "-o"});
  EXPECT_EQ(r.exit, 2);
  EXPECT_NE(r.err.find("missing -l"), std::string::npos) << r.err;

  r = runCli({"-k", "test", "-l", "x", "-u"});
  EXPECT_EQ(r.exit, 2);
  EXPECT_NE(r.err.find("--filename"), std::string::npos) << r.err;

  r = runCli({"-k", "test", "--runJob", "/nonexistent-dir"});
  EXPECT_EQ(r.exit, 2);
  EXPECT_NE(r.err.find("--runJob"), std::string::npos) << r.err;
}

TEST(CliFlags, ConnectionRefusedExitsThreeNamingTheFlags) {
  auto r = runCli({"-s", "127.0.0.1", "-P", "1", "-k", "test", "-i"});
  EXPECT_EQ(r.exit, 3) << r.out;
  EXPECT_NE(r.err.find("cannot reach http://127.0.0.1:1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--port"), std::string::npos) << r.err;
}

TEST_F(CliTest, SslAgainstAPlainServerFailsClearly) {
  auto r = cli({"-S", "-i"});
  EXPECT_EQ(r.exit, 3) << r;
  EXPECT_NE(r.err.find("https://127.0.0.1"), std::string::npos) << r.err;
}

TEST_F(CliTest, WrongKeyIsAFailureWithAHint) {
  auto r = cli({"-i"}, "wrong");
  EXPECT_EQ(r.exit, 1) << r;
  EXPECT_NE(r.err.find("Key not recognized"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("check -k"), std::string::npos) << r.err;
}

TEST_F(CliTest, OpenUploadAddJobPollJobsInfo) {
  auto o = cli({"-l", "lab", "-o"});
  ASSERT_EQ(o.exit, 0) << o;
  EXPECT_NE(o.out.find("Created directory"), std::string::npos) << o.out;
  auto u = cli({"-l", "lab", "-u", "--filename", (dir / "hello.sh").string()});
  ASSERT_EQ(u.exit, 0) << u;
  EXPECT_NE(u.out.find("Uploaded file"), std::string::npos) << u.out;
  cli({"-l", "lab", "-u", "--filename", (dir / "autograde-Makefile").string()});
  auto opened = cliJson({"-l", "lab", "--open"});
  EXPECT_TRUE(opened["files"].as_object().contains("hello.sh")) << json::serialize(opened);

  auto p = cli({"-l", "lab", "-p", "--outputFile", "not-yet.out"});
  EXPECT_EQ(p.exit, 1) << p;
  EXPECT_NE(p.err.find("Output file not found"), std::string::npos) << p.err;

  long long id = addJob("lab", "hello.out",
                        {"--image", "autograding_image", "--jobname", "cli-hello", "--maxsize",
                         "64", "--timeout", "30", "--notifyURL", "http://127.0.0.1:1/cb",
                         "--disableNetwork", "--accessKeyId", "AKID", "--accessKey", "SECRET"});
  ASSERT_GT(id, 0);
  auto polled = waitPoll("lab", "hello.out");
  ASSERT_EQ(polled.exit, 0) << polled;
  EXPECT_NE(polled.out.find("Hello from the sandbox"), std::string::npos) << polled.out;
  EXPECT_NE(polled.out.find("Received job cli-hello:" + std::to_string(id)), std::string::npos)
      << polled.out;
  auto pj = cliJson({"-l", "lab", "-p", "--outputFile", "hello.out"});
  EXPECT_NE(std::string(pj["output"].as_string()).find("Hello from the sandbox"),
            std::string::npos);

  // The job's fields as the server recorded them.
  json::object dead;
  for (int i = 0; i < 100 && dead.empty(); ++i) {
    auto jobs = cliJson({"-j", "--deadJobs", "1"});
    for (auto& j : jobs["jobs"].as_array())
      if (j.as_object().at("id").to_number<long long>() == id) dead = j.as_object();
    if (dead.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(dead.empty());
  EXPECT_EQ(dead["name"].as_string(), "cli-hello");
  EXPECT_EQ(dead["notifyURL"].as_string(), "http://127.0.0.1:1/cb");
  EXPECT_EQ(dead["maxOutputFileSize"].to_number<long long>(), 64 * 1024);
  EXPECT_EQ(dead["timeout"].to_number<long long>(), 30);

  auto live = cliJson({"--jobs"});
  EXPECT_TRUE(live["jobs"].is_array());
  auto plainJobs = cli({"-j"});
  EXPECT_EQ(plainJobs.exit, 0) << plainJobs;
  EXPECT_NE(plainJobs.out.find("Found list of jobs"), std::string::npos);

  auto info = cliJson({"-i"});
  EXPECT_GE(info["info"].as_object().at("job_requests").as_int64(), 1);
  auto plainInfo = cli({"--info"});
  EXPECT_NE(plainInfo.out.find("job_requests"), std::string::npos) << plainInfo.out;
}

TEST_F(CliTest, AddJobValidation) {
  openAndUpload("lab");
  auto r = cli({"-l", "lab", "-a", "--infiles", "not json"});
  EXPECT_EQ(r.exit, 2) << r;
  EXPECT_NE(r.err.find("--infiles"), std::string::npos) << r.err;
  r = cli({"-l", "lab", "-a"});
  EXPECT_EQ(r.exit, 2) << r;
  // The server rejects a job without a Makefile: its trace is the message.
  r = cli({"-l", "lab", "-a", "--infiles", R"({"localFile": "hello.sh", "destFile": "hello.sh"})"});
  EXPECT_EQ(r.exit, 1) << r;
  EXPECT_NE(r.err.find("addJob failed"), std::string::npos) << r.err;
}

TEST_F(CliTest, PoolPreallocBuild) {
  // Pools are made on demand: none before a job or a prealloc asks.
  auto all = cliJson({"--pool"});
  EXPECT_TRUE(all["pools"].as_object().empty()) << json::serialize(all);
  for (const char* image : {"autograding_image", "nosuchimage"}) {
    auto none = cli({"--pool", "--image", image});
    EXPECT_EQ(none.exit, 1) << none;
    EXPECT_NE(none.err.find("Pool not found"), std::string::npos) << none.err;
  }

  auto pre = cli({"--prealloc", "--image", "autograding_image", "--num", "3", "--cores", "1",
                  "--memory", "256"});
  EXPECT_EQ(pre.exit, 0) << pre;
  EXPECT_NE(pre.out.find("VMs preallocated"), std::string::npos);
  bool grown = false;
  for (int i = 0; i < 100 && !grown; ++i) {
    auto p = cliJson({"--pool", "--image", "autograding_image"});
    grown =
        p["pools"].as_object().at("autograding_image").as_object().at("total").as_array().size() ==
        3;
    if (!grown) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(grown);
  all = cliJson({"--pool"});
  EXPECT_TRUE(all["pools"].as_object().contains("autograding_image")) << json::serialize(all);
  auto one = cliJson({"--pool", "--image", "autograding_image"});
  EXPECT_EQ(one["statusMsg"].as_string(), "Found pool");
  auto badVmms = cli({"--prealloc", "--image", "autograding_image", "--vmms", "ec2SSH"});
  EXPECT_EQ(badVmms.exit, 1) << badVmms;
  EXPECT_NE(badVmms.err.find("Preallocate VM failed"), std::string::npos) << badVmms.err;
  auto badImage = cli({"--prealloc", "--image", "nosuchimage", "--num", "1"});
  EXPECT_EQ(badImage.exit, 1) << badImage;
  EXPECT_NE(badImage.err.find("Invalid image name"), std::string::npos) << badImage.err;

  // The local VMMS cannot load docker tarballs: the server says so and the CLI fails.
  std::ofstream(dir / "image.tar") << "not a tarball";
  auto build =
      cli({"--build", "--filename", (dir / "image.tar").string(), "--imageName", "myimage"});
  EXPECT_EQ(build.exit, 1) << build;
  EXPECT_NE(build.err.find("build failed"), std::string::npos) << build.err;
  auto noName = cli({"--build", "--filename", (dir / "image.tar").string()});
  EXPECT_EQ(noName.exit, 2) << noName;
}

TEST_F(CliTest, GetPartialOutputOfARunningJob) {
  std::ofstream(dir / "slow.sh") << "echo partial-line-1\nsleep 20\necho done\n";
  std::ofstream(dir / "autograde-Makefile", std::ios::trunc) << "autograde:\n\t@sh slow.sh\n";
  openAndUpload("slow");
  cli({"-l", "slow", "-u", "--filename", (dir / "slow.sh").string()});
  auto r = cli({"-l", "slow", "-a", "--json", "--outputFile", "slow.out", "--infiles",
                R"({"localFile": "autograde-Makefile", "destFile": "Makefile"})",
                R"({"localFile": "slow.sh", "destFile": "slow.sh"})"});
  ASSERT_EQ(r.exit, 0) << r;
  auto id = std::string(json::parse(r.out).as_object()["jobId"].as_string());
  CliResult part;
  for (int i = 0; i < 80; ++i) {
    part = cli({"--getPartialOutput", "--jobid", id});
    if (part.exit == 0 && part.out.find("partial-line-1") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(part.exit, 0) << part;
  EXPECT_NE(part.out.find("Partial output obtained"), std::string::npos) << part;
  EXPECT_NE(part.out.find("partial-line-1"), std::string::npos) << part;

  auto unknown = cli({"--getPartialOutput", "--jobid", "999999"});
  EXPECT_EQ(unknown.exit, 1) << unknown;
  EXPECT_NE(unknown.err.find("--jobid"), std::string::npos) << unknown.err;
  auto missing = cli({"--getPartialOutput"});
  EXPECT_EQ(missing.exit, 2) << missing;
}

// --cancel: one job by --jobid, or every queued job of -l; --priority on -a.
TEST_F(CliTest, CancelAndPriority) {
  std::ofstream(dir / "autograde-Makefile", std::ios::trunc) << "autograde:\n\t@sleep 60\n";
  openAndUpload("slow");
  const std::vector<std::string> files{
      "--infiles", R"({"localFile": "autograde-Makefile", "destFile": "Makefile"})"};
  auto add = [&](const std::string& out, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"-l", "slow", "-a", "--json", "--outputFile", out};
    args.insert(args.end(), files.begin(), files.end());
    args.insert(args.end(), extra.begin(), extra.end());
    return cli(args);
  };
  auto idOf = [](const CliResult& r) {
    return std::string(json::parse(r.out).as_object()["jobId"].as_string());
  };
  auto r1 = add("c1.out"), r2 = add("c2.out");  // the pool's two VMs
  ASSERT_EQ(r1.exit, 0) << r1;
  ASSERT_EQ(r2.exit, 0) << r2;
  auto r3 = add("c3.out", {"--priority", "low"});
  ASSERT_EQ(r3.exit, 0) << r3;
  auto jobs = cliJson({"-j"});
  bool sawLow = false;
  for (auto& j : jobs["jobs"].as_array())
    if (std::to_string(j.as_object().at("id").as_int64()) == idOf(r3))
      sawLow = j.as_object().at("priority") == "low";
  EXPECT_TRUE(sawLow) << json::serialize(jobs);

  auto bad = add("c4.out", {"--priority", "urgent"});
  EXPECT_EQ(bad.exit, 2) << bad;
  auto high = add("c4.out", {"--priority", "high"});
  EXPECT_EQ(high.exit, 1) << high;
  EXPECT_NE(high.err.find("this key may ask for at most 'normal'"), std::string::npos) << high;

  // Wait until the first two hold the VMs, so the third is the queued one.
  for (int i = 0; i < 200; ++i) {
    int assigned = 0;
    auto list = cliJson({"-j"});
    for (auto& j : list["jobs"].as_array()) assigned += j.as_object().at("assigned").as_bool();
    if (assigned == 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto all = cli({"-l", "slow", "--cancel"});
  EXPECT_EQ(all.exit, 0) << all;
  EXPECT_NE(all.out.find("Cancelled 1 queued jobs of courselab slow"), std::string::npos) << all;
  EXPECT_NE(all.out.find(idOf(r3)), std::string::npos) << all;
  auto one = cli({"--cancel", "--jobid", idOf(r1)});
  EXPECT_EQ(one.exit, 0) << one;
  EXPECT_NE(one.out.find("is being cancelled"), std::string::npos) << one;
  auto out = waitPoll("slow", "c1.out");
  EXPECT_EQ(out.exit, 0) << out;
  EXPECT_NE(out.out.find("Error: Job cancelled while running"), std::string::npos) << out;
  auto unknown = cli({"--cancel", "--jobid", "999999"});
  EXPECT_EQ(unknown.exit, 1) << unknown;
  EXPECT_NE(unknown.err.find("Job 999999 not found"), std::string::npos) << unknown;
  auto neither = cli({"--cancel"});
  EXPECT_EQ(neither.exit, 2) << neither;
  EXPECT_EQ(cli({"--cancel", "--jobid", idOf(r2)}).exit, 0);
}

TEST_F(CliTest, RunJobUploadsSubmitsAndWaits) {
  auto r = cli({"-l", "runlab", "--runJob", dir.string(), "--numJobs", "3"});
  ASSERT_EQ(r.exit, 0) << r;
  for (int i = 1; i <= 3; ++i) {
    EXPECT_NE(r.out.find("(test_job-" + std::to_string(i) + ") finished: result.out-" +
                         std::to_string(i) + ": {\"scores\": {\"hello\": 100}}"),
              std::string::npos)
        << r.out;
  }
  EXPECT_NE(r.out.find("all 3 jobs finished"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\r'), std::string::npos);  // not a terminal: no progress bar

  auto j = cliJson({"-l", "runlab", "--runJob", dir.string(), "--numJobs", "2", "--jobname",
                    "batch", "--outputFile", "b.out"});
  EXPECT_EQ(j["statusId"].as_int64(), 0);
  ASSERT_EQ(j["jobs"].as_array().size(), 2u);
  auto& first = j["jobs"].as_array()[0].as_object();
  EXPECT_EQ(first.at("jobName").as_string(), "batch-1");
  EXPECT_EQ(first.at("outputFile").as_string(), "b.out-1");
  EXPECT_NE(std::string(first.at("output").as_string()).find("Hello from the sandbox"),
            std::string::npos);
}

TEST_F(CliTest, RunJobDrawsAProgressBarOnATerminal) {
  // util-linux `script` gives tango-cli a pseudo-terminal as stdout.
  auto log = tangod->dir() / "tty.log";
  std::string cmd = std::string("script -qec \"") + TANGO_CLI_PATH + " -s 127.0.0.1 -P " +
                    std::to_string(tangod->port()) + " -k test -l ttylab --runJob " + dir.string() +
                    " --numJobs 2\" /dev/null > " + log.string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << readFile(log);
  std::string out = readFile(log);
  EXPECT_NE(out.find("\r["), std::string::npos) << out;
  EXPECT_NE(out.find("] 2/2 jobs finished"), std::string::npos) << out;
  EXPECT_EQ(out.find(") finished: "), std::string::npos) << out;  // no per-job lines on a terminal
}

TEST_F(CliTest, RunJobGivesUpAfterWaitSecs) {
  std::ofstream(dir / "autograde-Makefile", std::ios::trunc) << "autograde:\n\t@sleep 10\n";
  auto r = cli({"-l", "waitlab", "--runJob", dir.string(), "--waitSecs", "1", "--timeout", "20"});
  EXPECT_EQ(r.exit, 1) << r;
  EXPECT_NE(r.err.find("did not finish within --waitSecs"), std::string::npos) << r.err;
}

TEST_F(CliTest, RunJobNeedsAnAutogradeMakefile) {
  std::filesystem::remove(dir / "autograde-Makefile");
  auto r = cli({"-l", "lab", "--runJob", dir.string()});
  EXPECT_EQ(r.exit, 2) << r;
  EXPECT_NE(r.err.find("autograde-Makefile"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tango::test
