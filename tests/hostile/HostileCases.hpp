#pragma once
// What the hostile-job suites share, whatever the VMMS: submitting a case
// directory tests/hostile/<case>/ (its README.md says what it attacks and
// what must hold), its bound (timeout + 5 s), the helpers that read the
// output, the normal job that must run right after, the host's disk and
// memory back to where they were, and the mix of hostile and normal jobs.
// `Base` is the service fixture of the VMMS (ServiceTest or DockerTest); the
// suite's fixture adds how it checks that the host is clean.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "../service/Listener.hpp"
#include "../service/ServiceFixture.hpp"
#include "../service/TestHost.hpp"
#include "HostResources.hpp"

namespace tango::test {

namespace hostile {
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
constexpr auto kBound = 5s;  // a job must end within its timeout + this
// Submitting and polling come on top of the job's own time. On a loaded
// 2-core CI machine running ASan builds they alone can take seconds, so the
// bounds are checked on the service's own times (runJob to finished) and the
// wall clock only has to show that nothing hung.
constexpr auto kSubmitAndPoll = 20s;
// A VM's teardown follows its output; under load it can take some seconds.
constexpr auto kCleanupBound = 15s;
inline const std::filesystem::path kCases = std::filesystem::path(SOURCE_DIR) / "tests/hostile";
}  // namespace hostile

struct CaseRun {
  std::string output;
  json::object job;
  hostile::Clock::duration elapsed{};  // submit to output pollable, as a client sees it
  double ran = -1;                     // seconds from runJob to finished, by the service
};

// Seconds from the start of runJob to the job's end, from its dead-job record.
inline double ranSeconds(const json::object& job) {
  const json::object& times = job.at("times").as_object();
  return times.at("finished").to_number<double>() - times.at("runJob").to_number<double>();
}

template <class Base>
class HostileCases : public Base {
 protected:
  using Clock = hostile::Clock;

  void SetUp() override {
    limitSanitizerCaches();
    Base::SetUp();
    if (::testing::Test::HasFatalFailure()) return;
    prepareService();
    if (::testing::Test::HasFatalFailure()) return;
    baseline_ = sampleHost(resourcePaths(), ours());
    ready_ = true;
  }
  // Also after a failed case: what it left behind is part of the report.
  void TearDown() override {
    if (ready_) {
      expectHostClean();
      expectBackToBaseline(baseline_, resourcePaths(), ours());
    }
    Base::TearDown();
  }

  // Under ASan, tangod keeps up to 256 MB of freed memory in quarantine and
  // hands little back to the system, so its resident memory grows with the
  // allocations of a case (a 1 GiB stream, 40 jobs polled every 20 ms) though
  // nothing is leaked. A small quarantine and a prompt return of free pages
  // make its memory come back as a release build's would (its children
  // inherit this; ASan reads it when they start).
  static void limitSanitizerCaches() {
    const char* now = std::getenv("ASAN_OPTIONS");
    std::string opts = now ? now : "";
    if (opts.find("quarantine_size_mb") != std::string::npos) return;
    if (!opts.empty()) opts += ":";
    opts += "quarantine_size_mb=8:allocator_release_to_os_interval_ms=100";
    ::setenv("ASAN_OPTIONS", opts.c_str(), 1);
  }

  // Set-up after the service started, before the baseline is taken.
  virtual void prepareService() {}
  // The VMMS's own checks that nothing of the case's jobs is left.
  virtual void expectHostClean() = 0;
  // Fields every job of this suite carries (the image, on localDocker).
  virtual json::object jobDefaults() { return {}; }
  // Processes of the case beyond the test's descendants (HostResources.hpp).
  virtual OursPredicate ours() { return {}; }
  // The file systems whose free space must come back.
  virtual std::vector<std::filesystem::path> resourcePaths() {
    return {this->tangod->dataDir(), "/tmp", "/var/tmp", "/dev/shm"};
  }

  std::int64_t submitJob(const std::string& lab, const std::map<std::string, std::string>& files,
                         const std::string& output, json::object extra) {
    for (auto& [k, v] : jobDefaults())
      if (!extra.contains(k)) extra[k] = v;
    return this->submit(lab, files, output, std::move(extra));
  }

  // The files of a case directory, README excluded, plus `extra`.
  static std::map<std::string, std::string> caseFiles(
      const std::string& name, std::map<std::string, std::string> extra = {}) {
    for (const auto& e : std::filesystem::directory_iterator(hostile::kCases / name)) {
      const std::string f = e.path().filename().string();
      if (f != "README.md") extra.emplace(f, readFile(e.path()));
    }
    return extra;
  }

  // Submits a case and waits (bounded) for its output and its dead-job record.
  CaseRun runCase(const std::string& name, const std::string& lab, int timeout,
                  std::map<std::string, std::string> extraFiles = {}, json::object extra = {}) {
    using namespace std::chrono_literals;
    CaseRun r;
    const std::string output = name + ".out";
    extra["timeout"] = timeout;
    const auto start = Clock::now();
    auto id = submitJob(lab, caseFiles(name, std::move(extraFiles)), output, std::move(extra));
    EXPECT_GT(id, 0);
    auto out = this->waitOutput(lab, output, std::chrono::seconds(timeout) + hostile::kBound + 60s);
    r.elapsed = Clock::now() - start;
    EXPECT_TRUE(out) << name << ": no output";
    if (out) r.output = *out;
    EXPECT_LE(r.elapsed, std::chrono::seconds(timeout) + hostile::kBound + hostile::kSubmitAndPoll)
        << name << " took " << std::chrono::duration<double>(r.elapsed).count() << " s";
    auto job = this->waitDead(id);
    EXPECT_TRUE(job) << name << ": not in the dead jobs";
    if (job) {
      r.job = *job;
      r.ran = ranSeconds(r.job);
      EXPECT_LE(r.ran, timeout + std::chrono::duration<double>(hostile::kBound).count())
          << name << " ran " << r.ran << " s";
    }
    return r;
  }

  static std::string outcome(const CaseRun& r) {
    auto* o = r.job.if_contains("outcome");
    return o && o->is_string() ? std::string(o->as_string()) : "";
  }
  // What the autodriver printed: everything after the Autograder header.
  static std::string body(const CaseRun& r) {
    auto pos = r.output.find("\n---\n");
    return pos == std::string::npos ? r.output : r.output.substr(pos + 5);
  }
  // The service's header above the "---" line.
  static std::string header(const CaseRun& r) {
    return r.output.substr(0, r.output.find("\n---\n"));
  }

  // A normal job right after the hostile one runs normally.
  void expectNormalJob(const std::string& tag = "after") {
    using namespace std::chrono_literals;
    auto id = submitJob(tag, {{"autograde-Makefile", kHelloMakefile}, {"hello.sh", kHelloScript}},
                        tag + ".out", {{"timeout", 10}});
    auto out = this->waitOutput(tag, tag + ".out", 30s);
    ASSERT_TRUE(out);
    EXPECT_TRUE(
        out->ends_with("---\nAutodriver: Job exited with status 0\nHello from the "
                       "sandbox\n{\"scores\": {\"hello\": 100}}\n"))
        << *out;
    auto job = this->waitDead(id);
    ASSERT_TRUE(job);
    EXPECT_EQ(std::string((*job)["outcome"].as_string()), "success");
  }

  // A job holding every process it may have in one VM does not keep a
  // normal job in another from running: the process limits are per job.
  void expectNormalJobBesideAProcessHog() {
    using namespace std::chrono_literals;
    auto hog = submitJob("hog", caseFiles("process_hog"), "hog.out", {{"timeout", 8}});
    ASSERT_GT(hog, 0);
    bool holding = false;
    for (auto deadline = Clock::now() + 30s; !holding && Clock::now() < deadline;) {
      auto r = this->http->get("/getPartialOutput/test/" + std::to_string(hog) + "/").json();
      holding = r["statusId"].as_int64() == 0 &&
                std::string(r["output"].as_string()).find("holding") != std::string::npos;
      if (!holding) std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(holding) << "the hog did not fill its limit";
    expectNormalJob("beside");
    auto out = this->waitOutput("hog", "hog.out", 30s);
    ASSERT_TRUE(out);
    EXPECT_NE(out->find("\n---\nAutodriver: Job timed out after 8 seconds\nholding\n"),
              std::string::npos)
        << *out;
  }

  // 20 hostile and 20 normal jobs submitted at once: every normal job runs
  // normally, every job ends within its bound, none is retried.

  // Cases whose expectations are the same on every VMMS.
  void checkForkBomb() {
    auto r = this->runCase("fork_bomb", "bomb", 3);
    EXPECT_EQ(outcome(r), "timeout") << r.output;
    EXPECT_TRUE(body(r).starts_with("Autodriver: Job timed out after 3 seconds\nbomb start\n"))
        << body(r).substr(0, 300);
    expectNormalJob();
  }

  void checkLoopIgnoringSigtermIsKilledAtTheTimeout() {
    auto r = this->runCase("ignore_sigterm", "spin", 2);
    EXPECT_EQ(outcome(r), "timeout") << r.output;
    EXPECT_TRUE(body(r).starts_with("Autodriver: Job timed out after 2 seconds\nspinning\n"))
        << body(r);
    expectNormalJob();
  }

  void checkDoubleForkedDaemonDiesWithTheJob() {
    auto r = this->runCase("double_fork_daemon", "daemon", 5);
    EXPECT_EQ(outcome(r), "success") << r.output;
    EXPECT_TRUE(
        body(r).ends_with("Autodriver: Job exited with status 0\ndaemon started\nmake done\n"))
        << body(r);
    EXPECT_LT(r.ran, 4) << r.output;  // ends with make, not at the timeout
    expectNormalJob();
  }

  // With the network on, the test's own outside host answers; the host's
  // loopback service (on 127.0.0.1 only) and its abstract unix socket do
  // not, by any of `loopbacks`.
  void checkHostLoopbackUnreachableWithNetworkOn(const std::vector<std::string>& loopbacks) {
    tango::test::Listener privateService(/*loopbackOnly=*/true);
    tango::test::AbstractListener abstractSocket;
    tango::test::TestHost outside;
    std::string list;
    for (const auto& l : loopbacks) list += " " + l;
    const std::string mk = "PORT = " + std::to_string(privateService.port()) +
                           "\nLOOPBACKS =" + list + "\nABSTRACT = " + abstractSocket.name() +
                           "\nTESTHOST = " + outside.address() + "\n";
    // The probes work: from the host itself, both private services answer.
    const std::string hostProbe =
        "perl -MSocket -e 'socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die; connect($s, "
        "pack_sockaddr_un(\"\\0\" . $ARGV[0])) or exit 1' " +
        abstractSocket.name() + " && bash -c 'echo hi > /dev/tcp/127.0.0.1/" +
        std::to_string(privateService.port()) + "'";
    ASSERT_EQ(std::system(hostProbe.c_str()), 0) << hostProbe;
    auto r = this->runCase("loopback_network_on", "loopnet", 20, {{"paths.mk", mk}},
                           {{"disable_network", false}});
    EXPECT_EQ(outcome(r), "success") << r.output;
    std::string expected = "Autodriver: Job exited with status 0\nTESTHOST\noutside reached\n";
    for (const auto& l : loopbacks) expected += "blocked " + l + "\n";
    expected += "blocked abstract\n";
    EXPECT_EQ(body(r), expected);
    expectNormalJob();
  }

  void checkClosedStdoutAndSleepEndsAtTheTimeout() {
    auto r = this->runCase("close_stdout", "closed", 2);
    EXPECT_EQ(outcome(r), "timeout") << r.output;
    EXPECT_EQ(body(r), "Autodriver: Job timed out after 2 seconds\nclosing\n");
    expectNormalJob();
  }

  void checkTmpFilesDoNotReachTheNextJob() {
    auto first = this->runCase("tmp_leftovers", "tmp1", 5);
    EXPECT_TRUE(body(first).ends_with("status 0\n0\nplanted\n")) << body(first);
    auto second = this->runCase("tmp_leftovers", "tmp2", 5);
    EXPECT_TRUE(body(second).ends_with("status 0\n0\nplanted\n")) << body(second);
    expectNormalJob();
  }

  void checkMakeKilledBySignal() {
    auto r = this->runCase("make_killed", "killed", 10);
    EXPECT_EQ(outcome(r), "make_failed") << r.output;
    EXPECT_EQ(body(r), "Autodriver: Job exited with status 137\nabout to kill make\n");
    EXPECT_LT(r.ran, 5) << r.output;  // at once, not at the timeout
    expectNormalJob();
  }

  // The job finds the autodriver and the sandbox's init in /proc and reaches
  // neither: no signal, no fd, no memory, no forged usage line taken.
  void checkTheJobCannotTouchTheAutodriver() {
    auto r = this->runCase("touch_autodriver", "touch", 10);
    EXPECT_EQ(outcome(r), "success") << r.output;
    const std::string b = body(r);
    EXPECT_TRUE(b.starts_with("Autodriver: Job exited with status 0\n")) << b;
    EXPECT_NE(b.find("\nforeign processes found\nsignals delivered: 0\nfds opened: 0\n"
                     "nested user namespace: refused ("),
              std::string::npos)
        << b;
    EXPECT_TRUE(b.ends_with(")\nprobe done\n")) << b;
    std::cout << "touch_autodriver: " << b.substr(b.find("nested")) << std::flush;
    // The usage the service recorded is the autodriver's, not the one the
    // job printed (or would have written on the autodriver's stderr).
    const json::value* usage = r.job.if_contains("usage");
    ASSERT_TRUE(usage && usage->is_object()) << json::serialize(r.job);
    const json::value* rss = usage->as_object().if_contains("max_rss_kb");
    ASSERT_TRUE(rss && rss->is_int64()) << json::serialize(*usage);
    EXPECT_NE(rss->as_int64(), 424242) << json::serialize(*usage);
    EXPECT_GT(rss->as_int64(), 0) << json::serialize(*usage);
    expectNormalJob();
  }

  void checkMakefileReadingStdinEndsAtOnce() {
    auto r = this->runCase("stdin_wait", "stdin", 10);
    EXPECT_EQ(outcome(r), "success") << r.output;
    EXPECT_EQ(body(r), "Autodriver: Job exited with status 0\nread returned 1\ncat returned 0\n");
    EXPECT_LT(r.ran, 5) << r.output;
    expectNormalJob();
  }

  void checkOneGigabyteToStdout() {
    // Whether 1 GiB gets through a pipe in 5 s depends on the machine (a loaded
    // CI runner manages ~100 MB/s): both endings are right, as long as the
    // output stays capped and the job ends within its bound.
    auto r = this->runCase("stdout_1gb", "flood", 5);
    const std::string b = body(r);
    if (outcome(r) == "success") {
      EXPECT_TRUE(b.starts_with("Autodriver: Job exited with status 0\n0123456789abc"))
          << b.substr(0, 200);
      EXPECT_TRUE(b.ends_with("\nEND-OF-FLOOD\n"));
    } else {
      EXPECT_EQ(outcome(r), "timeout");
      EXPECT_TRUE(b.starts_with("Autodriver: Job timed out after 5 seconds\n0123456789abc"))
          << b.substr(0, 200);
    }
    EXPECT_NE(b.find("\n...[excess bytes elided]...\n"), std::string::npos);
    EXPECT_LE(r.output.size(), 1000u * 1024 + 1024);  // MAX_OUTPUT_FILE_SIZE + header
    expectNormalJob();
  }

  void checkNulBytesInvalidUtf8AndA50MegabyteLine() {
    auto r = this->runCase("weird_output", "weird", 10);
    EXPECT_EQ(outcome(r), "success") << r.output.substr(0, 300);
    const std::string b = body(r);
    const std::string head = std::string("Autodriver: Job exited with status 0\nnul[") + '\0' +
                             "] bad[\xff\xfe\xc0] end\nyyyy";
    EXPECT_EQ(b.substr(0, head.size()), head);
    EXPECT_NE(b.find("\n...[excess bytes elided]...\n"), std::string::npos);
    EXPECT_TRUE(b.ends_with("yyyy\n{\"scores\": {\"weird\": 1}}\n")) << b.substr(b.size() - 100);
    // The job list (which carries the trace) stays valid JSON.
    EXPECT_EQ(this->http->get("/jobs/test/1/").json()["statusId"].as_int64(), 0);
    expectNormalJob();
  }

  void runMix(std::chrono::seconds budget) {
    using namespace std::chrono_literals;
    const std::vector<std::string> hostileCases{"fork_bomb", "ignore_sigterm", "memory_hog",
                                                "double_fork_daemon", "close_stdout"};
    constexpr int kTimeout = 2;
    struct Submitted {
      std::int64_t id;
      std::string lab, output;
      bool normal;
    };
    std::vector<Submitted> jobs;
    double slowestHostile = 0, slowestNormal = 0;  // runJob to finished, reported below
    const auto start = Clock::now();
    for (int i = 0; i < 40; ++i) {
      const bool normal = i % 2 == 1;
      const std::string lab = "mix" + std::to_string(i);
      const std::string output = "mix" + std::to_string(i) + ".out";
      std::int64_t id;
      if (normal) {
        id = submitJob(lab, {{"autograde-Makefile", kHelloMakefile}, {"hello.sh", kHelloScript}},
                       output, {{"timeout", 10}});
      } else {
        id = submitJob(lab, caseFiles(hostileCases[static_cast<std::size_t>(i / 2) % 5]), output,
                       {{"timeout", kTimeout}});
      }
      ASSERT_GT(id, 0);
      jobs.push_back({id, lab, output, normal});
    }
    for (const auto& j : jobs) {
      auto out = this->waitOutput(j.lab, j.output, 120s);
      ASSERT_TRUE(out) << j.output;
      if (j.normal) {
        EXPECT_TRUE(
            out->ends_with("---\nAutodriver: Job exited with status 0\nHello from the "
                           "sandbox\n{\"scores\": {\"hello\": 100}}\n"))
            << *out;
      }
      auto dead = this->waitDead(j.id, 30s);
      ASSERT_TRUE(dead) << j.output;
      // Each run within its bound, whatever it waited in the queue.
      const double ran = ranSeconds(*dead);
      EXPECT_LE(ran, (j.normal ? 10 : kTimeout) + 5.0) << j.output;
      double& slowest = j.normal ? slowestNormal : slowestHostile;
      slowest = std::max(slowest, ran);
      EXPECT_EQ((*dead)["retries"].as_int64(), 0) << j.output;
      if (j.normal) {
        EXPECT_EQ(std::string((*dead)["outcome"].as_string()), "success") << *out;
      }
    }
    EXPECT_LT(Clock::now() - start, budget);
    std::cout << "slowest run: hostile " << slowestHostile << " s (timeout " << kTimeout
              << "), normal " << slowestNormal << " s\n";
  }

  HostResources baseline_;
  bool ready_ = false;  // set up: the service runs and the baseline is taken
};

}  // namespace tango::test
