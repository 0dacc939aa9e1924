#pragma once
// The core (TangoServer, JobManager, Worker, Preallocator, LocalJobQueue
// over a real SQLite file) with a fake VMMS in place of a real one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "FakeVmms.hpp"
#include "tango/core/LocalJobQueue.hpp"
#include "tango/core/ServiceParts.hpp"
#include "tango/core/TangoServer.hpp"
#include "tango/store/SqliteJobStore.hpp"
#include "tango/util/SafeName.hpp"

namespace tango::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Forwards to a JobQueue, except that renewals can be held back (a node
// that stalls) so that its leases lapse.
class StallingQueue final : public JobQueue {
 public:
  explicit StallingQueue(std::unique_ptr<JobQueue> inner) : inner_(std::move(inner)) {
    inner_->setOnWork([this] { wake(); });
  }
  std::atomic<bool> stallRenewals{false};

  std::int64_t add(TangoJob job) override { return inner_->add(std::move(job)); }
  int recover() override { return inner_->recover(); }
  std::optional<TakenJob> take(const std::function<bool(const TangoJob&)>& accept,
                               const std::function<void(const TangoJob&)>& undo) override {
    return inner_->take(accept, undo);
  }
  std::optional<TakenJob> claim(std::int64_t id) override { return inner_->claim(id); }
  void requestCancel(std::int64_t id) override { inner_->requestCancel(id); }
  std::vector<std::int64_t> cancelsAsked(const std::vector<Lease>& leases) override {
    return inner_->cancelsAsked(leases);
  }
  void setSharePolicy(SharePolicy policy) override { inner_->setSharePolicy(std::move(policy)); }
  std::vector<Lease> renew(const std::vector<Lease>& leases) override {
    if (stallRenewals) return {};
    return inner_->renew(leases);
  }
  bool update(const Lease& l, const TangoJob& j) override { return inner_->update(l, j); }
  bool unassign(const Lease& l, TangoJob j) override { return inner_->unassign(l, std::move(j)); }
  bool finish(const Lease& l, TangoJob j) override { return inner_->finish(l, std::move(j)); }
  std::optional<TangoJob> get(std::int64_t id) override { return inner_->get(id); }
  std::vector<std::pair<TangoJob, std::optional<std::int64_t>>> liveJobs() override {
    return inner_->liveJobs();
  }
  std::size_t unassignedCount() override { return inner_->unassignedCount(); }
  std::size_t liveCount() override { return inner_->liveCount(); }
  std::vector<TangoJob> finished(int limit) override { return inner_->finished(limit); }
  std::int64_t countFinished() override { return inner_->countFinished(); }
  std::vector<TangoJob> pendingCallbacks() override { return inner_->pendingCallbacks(); }
  void callbackDone(std::int64_t id, const std::string& r, const std::string& d,
                    double w) override {
    inner_->callbackDone(id, r, d, w);
  }
  std::int64_t nextVmId() override { return inner_->nextVmId(); }

 private:
  std::unique_ptr<JobQueue> inner_;
};

inline bool traceHas(const TangoJob& j, const std::string& text) {
  for (const auto& t : j.trace)
    if (t.find(text) != std::string::npos) return true;
  return false;
}

// A VM is destroyed after its job's output is published (so the poll does
// not wait for it), and a pool's VM counts as alive before it joins the free
// list: what follows a finish is checked as it settles, not at once.
inline bool eventually(const std::function<bool()>& cond,
                       std::chrono::milliseconds within = std::chrono::milliseconds(5000)) {
  const auto end = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

class CoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::path(TEST_TMP_DIR) / ("core-" + std::to_string(::getpid()) + "-" +
                                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    cfg_.dataDir = dir_ / "data";
    cfg_.keys = {"k"};
    cfg_.poolSize = 0;
    cfg_.jobRetries = 2;
    cfg_.nodeId = "node-a";
    cfg_.leaseSecs = 1;
    cfg_.waitVmTimeout = 1;
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }

  // Starts the core; `lease` is the queue's lease time.
  void start(std::chrono::milliseconds lease = 1000ms) {
    fs::create_directories(cfg_.dataDir / "tmp");
    fs::create_directories(cfg_.courselabsDir());
    auto local = std::make_unique<LocalJobQueue>(
        std::make_unique<SqliteJobStore>(cfg_.stateFile(), labDirFinder(cfg_)), lease);
    auto stalling = std::make_unique<StallingQueue>(std::move(local));
    queue_ = stalling.get();
    auto fake = std::make_unique<FakeVmms>();
    vmms_ = fake.get();
    configure(*vmms_);
    ServiceParts parts;
    parts.queue = std::move(stalling);
    parts.vmms.add(std::move(fake));
    parts.cluster = std::make_unique<SingleNode>(cfg_.nodeId);
    server_ = std::make_unique<TangoServer>(cfg_, std::move(parts));
    server_->start();
    lab_ = *courselabDir(cfg_.courselabsDir(), "k", "lab");
    fs::create_directories(lab_ / "output");
    std::ofstream(lab_ / "Makefile") << "all:\n\techo hi\n";
  }
  // Set the fake's hooks before the service starts.
  std::function<void(FakeVmms&)> configure = [](FakeVmms&) {};

  std::int64_t submit(const std::string& out = "out.txt", int timeout = 5) {
    auto body =
        boost::json::parse(R"({"image": "autograding_image", "jobName": "j", "output_file": ")" +
                           out + R"(", "timeout": )" + std::to_string(timeout) +
                           R"(, "files": [{"localFile": "Makefile", "destFile": "Makefile"}]})");
    auto r = server_->addJob("k", "lab", lab_, body);
    EXPECT_TRUE(r.ok) << r.error;
    return r.jobId;
  }

  std::optional<TangoJob> waitFinished(std::int64_t id, std::chrono::seconds within = 20s) {
    const auto end = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < end) {
      auto j = queue_->get(id);
      if (j && j->state == JobState::Finished) return j;
      std::this_thread::sleep_for(20ms);
    }
    return std::nullopt;
  }

  std::string outputOf(const std::string& name = "out.txt") {
    std::ifstream in(lab_ / "output" / name, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }

  fs::path dir_, lab_;
  Config cfg_;
  StallingQueue* queue_ = nullptr;
  FakeVmms* vmms_ = nullptr;
  std::unique_ptr<TangoServer> server_;
};

}  // namespace tango::test
