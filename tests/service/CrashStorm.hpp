#pragma once
// The crash storm, whatever the VMMS: JOBS jobs queued, then the service
// killed with SIGKILL at random moments KILLS times and started again each
// time. Then: every acknowledged job finished once with its own output (0
// lost), no job completed twice (every callback of a job carries the same
// run's nonce as its output file: a second run to completion would publish
// or call back another), and nothing left behind (the VMMS's own check).
// CI runs 10 kills (CRASH_STORM_KILLS, CRASH_STORM_JOBS set it);
// bench/crashstorm.sh runs the campaign of 100 kills and 1,000 jobs.
#include <signal.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <set>

#include "Receiver.hpp"
#include "ServiceFixture.hpp"

namespace tango::test {

inline int stormParam(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

template <class Base>
class CrashStorm : public Base {
 protected:
  // The image the jobs run in.
  virtual std::string stormImage() = 0;
  // What the VMMS left that it should not have (sandboxes, processes,
  // cgroups, containers), once the service is idle again.
  virtual std::vector<std::string> leftovers() = 0;

  // "nonce" of the one run that produced `text` (the job prints it).
  static std::string nonceOf(const std::string& text) {
    const auto at = text.find("nonce ");
    return at == std::string::npos ? "" : text.substr(at + 6, 36);
  }

  void storm() {
    using namespace std::chrono_literals;
    const int jobs = stormParam("CRASH_STORM_JOBS", 100);
    const int kills = stormParam("CRASH_STORM_KILLS", 10);
    Receiver receiver;
    const std::string cb = "http://127.0.0.1:" + std::to_string(receiver.port()) + "/cb";
    this->openLab("storm");
    ASSERT_EQ(this->upload("storm", "autograde-Makefile",
                           "all:\n\t@sleep 0.2; cat id.txt; echo nonce $$(cat "
                           "/proc/sys/kernel/random/uuid)\n")["statusId"]
                  .as_int64(),
              0);
    std::map<std::int64_t, int> index;  // job id -> its number
    for (int i = 0; i < jobs; ++i) {
      const std::string idFile = "id-" + std::to_string(i);
      ASSERT_EQ(
          this->upload("storm", idFile, "job " + std::to_string(i) + "\n")["statusId"].as_int64(),
          0);
      json::object job{
          {"image", stormImage()},
          {"files",
           json::array{json::object{{"localFile", "autograde-Makefile"}, {"destFile", "Makefile"}},
                       json::object{{"localFile", idFile}, {"destFile", "id.txt"}}}},
          {"output_file", "s" + std::to_string(i) + ".out"},
          {"jobName", "storm-" + std::to_string(i)},
          {"timeout", 20},
          {"callback_url", cb}};
      auto r = this->http->post("/addJob/test/storm/", json::serialize(job)).json();
      ASSERT_EQ(r["statusId"].as_int64(), 0) << json::serialize(r);
      index[std::stoll(std::string(r["jobId"].as_string()))] = i;
    }

    std::mt19937 rng(std::random_device{}());
    std::uniform_int_distribution<int> pause(200, 1200);
    int hitRunning = 0;
    const auto stormStart = std::chrono::steady_clock::now();
    for (int k = 0; k < kills; ++k) {
      std::this_thread::sleep_for(std::chrono::milliseconds(pause(rng)));
      try {
        auto live = this->http->get("/jobs/test/0/").json();
        for (auto& j : live["jobs"].as_array())
          if (j.as_object().at("assigned").as_bool()) {
            ++hitRunning;
            break;
          }
      } catch (const std::exception&) {
      }
      ASSERT_TRUE(WIFSIGNALED(this->tangod->stop(SIGKILL)));
      this->tangod->start();
      this->restartHttp();
    }

    // Every job finishes, once.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60 + jobs);
    std::size_t live = 1;
    while (live > 0 && std::chrono::steady_clock::now() < deadline) {
      live = this->http->get("/jobs/test/0/").json()["jobs"].as_array().size();
      if (live) std::this_thread::sleep_for(100ms);
    }
    ASSERT_EQ(live, 0u) << "jobs still live after the storm";
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - stormStart).count();
    auto deadList = this->http->get("/jobs/test/1/").json();
    std::map<std::int64_t, int> finished;
    for (auto& j : deadList["jobs"].as_array()) ++finished[j.as_object().at("id").as_int64()];
    int lost = 0, twice = 0, completedTwice = 0, duplicateCallbacks = 0;
    std::map<int, std::string> nonce;  // job number -> the nonce of its output
    for (const auto& [id, i] : index) {
      if (finished[id] != 1) ++twice;
      auto out = this->waitOutput("storm", "s" + std::to_string(i) + ".out", 5s);
      if (!out || !out->ends_with("job " + std::to_string(i) + "\nnonce " + nonceOf(*out) + "\n") ||
          nonceOf(*out).size() != 36) {
        ++lost;
        ADD_FAILURE() << "job " << i << " (id " << id
                      << "): " << (out ? *out : std::string("no output"));
        continue;
      }
      nonce[i] = nonceOf(*out);
    }
    // Callbacks: at least one per job, each carrying the run of its output.
    // A callback cut short by a kill delivered nothing (its sender retries
    // after the restart): only whole requests count.
    std::this_thread::sleep_for(2s);
    std::map<int, int> calls;
    const auto whole = receiver.completeRequests();
    const auto cutShort = receiver.requests().size() - whole.size();
    for (const auto& req : whole) {
      const auto at = req.find("Filename: s");
      if (at == std::string::npos) continue;
      const int i = std::atoi(req.c_str() + at + 11);
      ++calls[i];
      if (nonce.count(i) && nonceOf(req) != nonce[i]) ++completedTwice;
    }
    for (const auto& [id, i] : index) {
      if (calls[i] == 0) ADD_FAILURE() << "job " << i << ": no callback";
      if (calls[i] > 1) duplicateCallbacks += calls[i] - 1;
    }
    std::cout << "crash storm: " << jobs << " jobs, " << kills << " kills (" << hitRunning
              << " with jobs running), " << secs << " s; lost " << lost << ", finished twice "
              << twice << ", completed twice " << completedTwice << ", callbacks repeated "
              << duplicateCallbacks << " (" << cutShort << " cut short by a kill)" << std::endl;
    EXPECT_EQ(lost, 0);
    EXPECT_EQ(twice, 0);
    EXPECT_EQ(completedTwice, 0);
    EXPECT_GT(hitRunning, 0) << "no kill hit a running job";

    // Nothing left behind once the pool has settled.
    std::vector<std::string> left;
    const auto settle = std::chrono::steady_clock::now() + 30s;
    do {
      left = leftovers();
      if (!left.empty()) std::this_thread::sleep_for(200ms);
    } while (!left.empty() && std::chrono::steady_clock::now() < settle);
    EXPECT_TRUE(left.empty()) << ::testing::PrintToString(left);
  }
};

}  // namespace tango::test
