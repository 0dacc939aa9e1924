// JobManager and Worker against a fake VMMS: the path of one job through
// Tango's steps, retries, a failure at each step, a VMMS that throws, a VM
// that never becomes ready, and a lease lost while the job runs.
#include "CoreFixture.hpp"
#include "tango/util/KeyId.hpp"

namespace tango::test {
namespace {

TEST_F(CoreTest, AJobRunsThroughEveryStepAndItsVmIsDestroyed) {
  start();
  auto id = submit();
  auto job = waitFinished(id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->outcome, JobOutcome::Success);
  EXPECT_NE(outputOf().find("hello from the fake VMMS"), std::string::npos) << outputOf();
  EXPECT_NE(outputOf().find("Success: Autodriver returned normally"), std::string::npos);
  EXPECT_EQ(vmms_->inits, 1);
  EXPECT_EQ(vmms_->runs, 1);
  EXPECT_TRUE(eventually([&] { return vmms_->aliveCount() == 0; }))
      << "a VM runs one job and is destroyed";
  EXPECT_EQ(job->vm.node, "node-a") << "the VM carries the node that made it";
  EXPECT_TRUE(traceHas(*job, "Added job j:" + std::to_string(id) + " to queue"));
}

TEST_F(CoreTest, AFailedInitializeIsRetriedOnAFreshVm) {
  configure = [](FakeVmms& f) {
    f.initHook = [](int n) { return n < 2 ? std::string("no capacity") : std::string(); };
  };
  start();
  auto job = waitFinished(submit());
  ASSERT_TRUE(job);
  EXPECT_EQ(job->outcome, JobOutcome::Success);
  EXPECT_EQ(job->retries, 2);
  EXPECT_EQ(server_->stats().jobRetries, 2);
  EXPECT_TRUE(traceHas(*job, "Retrying job"));
  EXPECT_TRUE(eventually([&] { return vmms_->aliveCount() == 0; }));
}

// Each step failing on every try: the job ends after JOB_RETRIES + 1 tries
// with Tango's per-step status line, and no VM is left.
TEST_F(CoreTest, AStepThatAlwaysFailsEndsTheJobAfterItsRetries) {
  struct Case {
    const char* step;
    std::function<void(FakeVmms&)> fail;
    const char* status;
  };
  const std::vector<Case> cases = {
      {"waitVM", [](FakeVmms& f) { f.waitHook = [](int) { return std::string("timed out"); }; },
       "waitVM=-1 copyIn=None runJob=None copyOut=None"},
      {"copyIn", [](FakeVmms& f) { f.copyInHook = [](int) { return std::string("timed out"); }; },
       "waitVM=0 copyIn=-1 runJob=None copyOut=None"},
      {"runJob", [](FakeVmms& f) { f.runHook = [](int) { return std::string("timed out"); }; },
       "waitVM=0 copyIn=0 runJob=-1 copyOut=None"},
      {"copyOut", [](FakeVmms& f) { f.copyOutHook = [](int) { return std::string("timed out"); }; },
       "waitVM=0 copyIn=0 runJob=0 copyOut=-1"},
  };
  configure = [&](FakeVmms&) {};
  start();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.step);
    c.fail(*vmms_);
    const std::string out = std::string(c.step) + ".txt";
    auto job = waitFinished(submit(out));
    ASSERT_TRUE(job);
    EXPECT_EQ(job->outcome, JobOutcome::InternalError);
    EXPECT_EQ(job->retries, 2);
    EXPECT_NE(outputOf(out).find("Unable to complete job after 3 tries"), std::string::npos)
        << outputOf(out);
    EXPECT_NE(outputOf(out).find(c.status), std::string::npos) << outputOf(out);
    EXPECT_EQ(vmms_->aliveCount(), 0u);
    vmms_->waitHook = vmms_->copyInHook = vmms_->runHook = vmms_->copyOutHook = nullptr;
  }
}

// Each step gets its configured timeout, and a VMMS that spends all of it
// (then gives up, as a real one does) fails the step: the job is retried and
// ends after its retries, in about three timeouts. runJob is bounded by the
// job's own timeout plus 10 s (its hard timeout), given here, not waited out.
TEST_F(CoreTest, EachStepGetsItsTimeoutAndOneThatRunsOutOfItIsRetried) {
  cfg_.initializeVmTimeout = 1;
  cfg_.waitVmTimeout = 1;
  cfg_.copyInTimeout = 1;
  cfg_.copyOutTimeout = 1;
  struct Case {
    const char* step;
    FakeVmms::Hook FakeVmms::*hook;
    std::atomic<int> FakeVmms::*calls;
    const char* status;  // Tango's per-step line (initializeVM has none of its own)
  };
  const std::vector<Case> cases = {
      {"initializeVM", &FakeVmms::initHook, &FakeVmms::inits, "waitVM=None"},
      {"waitVM", &FakeVmms::waitHook, &FakeVmms::waits, "waitVM=-1 copyIn=None"},
      {"copyIn", &FakeVmms::copyInHook, &FakeVmms::copyIns, "waitVM=0 copyIn=-1 runJob=None"},
      {"copyOut", &FakeVmms::copyOutHook, &FakeVmms::copyOuts, "runJob=0 copyOut=-1"},
  };
  start();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.step);
    FakeVmms& f = *vmms_;
    const std::string step = c.step;
    f.*c.hook = [&f, step](int) {
      const auto t = f.timeoutOf(step);
      std::this_thread::sleep_for(t);
      return step + " timed out after " + std::to_string(t.count()) + " s";
    };
    const int before = f.*c.calls;
    const std::string out = step + "-timeout.txt";
    const auto t0 = std::chrono::steady_clock::now();
    auto job = waitFinished(submit(out, 7), 60s);
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_TRUE(job);
    EXPECT_EQ(f.timeoutOf(step), 1s);
    EXPECT_EQ(job->outcome, JobOutcome::InternalError);
    EXPECT_EQ(job->retries, 2);
    EXPECT_EQ(f.*c.calls - before, 3) << "one call per try";
    EXPECT_GE(took, 3.0);
    EXPECT_LT(took, 20.0);
    EXPECT_NE(outputOf(out).find(c.status), std::string::npos) << outputOf(out);
    EXPECT_TRUE(traceHas(*job, step + " timed out after 1 s")) << step;
    EXPECT_EQ(f.aliveCount(), 0u);
    f.*c.hook = nullptr;
  }
  // The run's bounds: the job's timeout for the autodriver, 10 s more for the VMMS.
  EXPECT_EQ(vmms_->timeoutOf("runJob (job's own)"), 7s);
  EXPECT_EQ(vmms_->timeoutOf("runJob"), 17s);
}

TEST_F(CoreTest, AVmmsThatThrowsFailsTheStepAndTheJobStillEnds) {
  configure = [](FakeVmms& f) {
    f.runHook = [](int n) -> std::string {
      if (n == 0) throw std::runtime_error("engine exploded");
      return "";
    };
  };
  start();
  auto job = waitFinished(submit());
  ASSERT_TRUE(job) << "the job must not be stuck after a VMMS threw";
  EXPECT_EQ(job->outcome, JobOutcome::Success);
  EXPECT_EQ(job->retries, 1);
  EXPECT_TRUE(traceHas(*job, "runJob threw: engine exploded"));
  EXPECT_TRUE(eventually([&] { return vmms_->aliveCount() == 0; }));
}

// waitVM gives up after WAITVM_TIMEOUT each time: three tries, then the
// job ends with the cause, in about three timeouts.
TEST_F(CoreTest, AVmThatNeverBecomesReadyEndsTheJobAfterItsRetries) {
  configure = [this](FakeVmms& f) {
    f.waitHook = [this](int) {
      std::this_thread::sleep_for(std::chrono::seconds(cfg_.waitVmTimeout));
      return std::string("VM not ready after " + std::to_string(cfg_.waitVmTimeout) + " s");
    };
  };
  start();
  const auto t0 = std::chrono::steady_clock::now();
  auto job = waitFinished(submit(), 30s);
  ASSERT_TRUE(job);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(job->outcome, JobOutcome::InternalError);
  EXPECT_EQ(vmms_->waits, 3);
  EXPECT_GE(took, 3.0);
  EXPECT_LT(took, 10.0);
  EXPECT_EQ(server_->stats().waitvmTimeouts, 3);
  EXPECT_NE(outputOf().find("waitVM=-1"), std::string::npos);
  EXPECT_EQ(vmms_->aliveCount(), 0u);
}

// The manager cannot renew (a stalled node): the lease lapses, the job goes
// back to the queue and runs again on another VM. When renewals resume,
// the stalled worker learns it lost the job: its VM is stopped, and it
// writes nothing. The output is the second run's, written once.
TEST_F(CoreTest, ALostLeaseStopsTheWorkerAndTheJobRunsOnceElsewhere) {
  cfg_.poolSize = 2;  // room for the second run beside the stalled one
  configure = [](FakeVmms& f) { f.holdRuns = true; };
  start(600ms);
  auto id = submit("out.txt", 30);
  ASSERT_TRUE(vmms_->waitForRun(10s));
  queue_->stallRenewals = true;
  const auto firstVm = queue_->get(id)->vm.id;
  // The lease lapses; the manager's next pass puts the job back and takes it again.
  const auto end = std::chrono::steady_clock::now() + 10s;
  std::int64_t secondVm = 0;
  while (std::chrono::steady_clock::now() < end) {
    auto j = queue_->get(id);
    if (j && j->assigned && j->vm.id != firstVm && j->vm.id != 0) {
      secondVm = j->vm.id;
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_NE(secondVm, 0) << "the job was not taken again after its lease lapsed";
  vmms_->output = "second run\n";
  queue_->stallRenewals = false;  // the stalled worker now learns its lease is gone
  // Its VM is stopped for it.
  const auto gone = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < gone && server_->stats().leasesLost.load() == 0)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(server_->stats().leasesLost.load(), 1);
  vmms_->holdRuns = false;
  vmms_->cv.notify_all();
  auto job = waitFinished(id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->outcome, JobOutcome::Success);
  EXPECT_EQ(job->vm.id, secondVm);
  EXPECT_TRUE(traceHas(*job, "stopped renewing its lease"));
  EXPECT_NE(outputOf().find("second run"), std::string::npos) << outputOf();
  EXPECT_EQ(server_->stats().jobsFinished.load(), 1) << "finished once";
  std::lock_guard lock(vmms_->mu);
  EXPECT_FALSE(vmms_->alive.count(firstVm)) << "the stalled run's VM was stopped";
  EXPECT_FALSE(vmms_->alive.count(secondVm));
}

TEST_F(CoreTest, PartialOutputComesFromTheVmOfARunningJob) {
  configure = [](FakeVmms& f) { f.holdRuns = true; };
  start();
  auto id = submit();
  ASSERT_TRUE(vmms_->waitForRun(10s));
  EXPECT_EQ(server_->partialOutput(id, std::nullopt).value_or("<none>"), "partial");
  EXPECT_EQ(server_->partialOutput(id, keyId("k")).value_or("<none>"), "partial");
  EXPECT_FALSE(server_->partialOutput(id, keyId("another-key")))
      << "another key sees nothing of the job, not even that it runs";
  vmms_->holdRuns = false;
  vmms_->cv.notify_all();
  ASSERT_TRUE(waitFinished(id));
  EXPECT_FALSE(server_->partialOutput(id, std::nullopt)) << "a finished job has no partial output";
}

}  // namespace
}  // namespace tango::test
