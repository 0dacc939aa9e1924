#pragma once
// A test double of the project's own VMMS interface: every call can be made
// to fail, throw, or block, and the double keeps count of the VMs alive so
// a test can prove nothing leaked. Its runJob blocks (up to the hard
// timeout) while `holdRuns` is set, until its VM is destroyed, as a real
// VMMS's run ends when its VM goes.
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>

#include "tango/vmms/Vmms.hpp"

namespace tango::test {

class FakeVmms final : public Vmms {
 public:
  // Per-call hooks: return a failure text to fail that call ("" = succeed),
  // or throw. They see the call's number (0, 1, ...).
  using Hook = std::function<std::string(int call)>;
  Hook initHook, waitHook, copyInHook, runHook, copyOutHook;
  std::string output = "hello from the fake VMMS\n";
  std::atomic<bool> holdRuns{false};
  std::string vmmsName = "local";
  std::vector<std::string> images{"autograding_image"};

  std::string name() const override { return vmmsName; }

  StepResult initializeVM(const TangoMachine& vm, std::chrono::seconds timeout) override {
    given("initializeVM", timeout);
    if (auto why = call(initHook, inits); !why.empty()) return StepResult::failure(why);
    std::lock_guard lock(mu);
    alive.insert(vm.id);
    made.push_back(vm);
    return StepResult::success();
  }
  StepResult waitVM(const TangoMachine&, std::chrono::seconds timeout) override {
    given("waitVM", timeout);
    auto why = call(waitHook, waits);
    return why.empty() ? StepResult::success() : StepResult::failure(why);
  }
  StepResult copyIn(const TangoMachine&, const std::vector<InputFile>&,
                    std::chrono::seconds timeout) override {
    given("copyIn", timeout);
    auto why = call(copyInHook, copyIns);
    return why.empty() ? StepResult::success() : StepResult::failure(why);
  }
  RunResult runJob(const TangoMachine& vm, const RunSpec& spec) override {
    given("runJob", spec.hardTimeout);
    given("runJob (job's own)", std::chrono::seconds(spec.timeoutSecs));
    RunResult r;
    if (auto why = call(runHook, runs); !why.empty()) {
      r.error = why;
      return r;
    }
    std::unique_lock lock(mu);
    running.insert(vm.id);
    cv.notify_all();
    cv.wait_for(lock, spec.hardTimeout, [&] { return !holdRuns || !alive.count(vm.id); });
    running.erase(vm.id);
    if (!alive.count(vm.id)) {
      r.error = "VM destroyed during the run";
      return r;
    }
    r.status = 0;
    return r;
  }
  StepResult copyOut(const TangoMachine&, const std::filesystem::path& dest,
                     std::chrono::seconds timeout) override {
    given("copyOut", timeout);
    if (auto why = call(copyOutHook, copyOuts); !why.empty()) return StepResult::failure(why);
    std::ofstream(dest, std::ios::binary) << output;
    return StepResult::success();
  }
  StepResult destroyVM(const TangoMachine& vm) override {
    std::lock_guard lock(mu);
    alive.erase(vm.id);
    ++destroys;
    cv.notify_all();
    return StepResult::success();
  }
  StepResult safeDestroyVM(const TangoMachine& vm) override { return destroyVM(vm); }
  std::vector<TangoMachine> getVMs() override {
    std::lock_guard lock(mu);
    std::vector<TangoMachine> out;
    for (const auto& vm : made)
      if (alive.count(vm.id)) out.push_back(vm);
    return out;
  }
  std::vector<std::string> getImages() override { return images; }
  std::optional<std::string> getPartialOutput(const TangoMachine& vm) override {
    std::lock_guard lock(mu);
    if (!running.count(vm.id)) return std::nullopt;
    return std::string("partial");
  }

  std::size_t aliveCount() {
    std::lock_guard lock(mu);
    return alive.size();
  }
  // Waits until a run is in progress.
  bool waitForRun(std::chrono::milliseconds within) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, within, [&] { return !running.empty(); });
  }

  // The timeout the last call of each step was given.
  std::chrono::seconds timeoutOf(const std::string& step) {
    std::lock_guard lock(mu);
    auto it = timeouts.find(step);
    return it == timeouts.end() ? std::chrono::seconds(-1) : it->second;
  }

  std::atomic<int> inits{0}, waits{0}, copyIns{0}, runs{0}, copyOuts{0}, destroys{0};
  std::mutex mu;
  std::condition_variable cv;
  std::set<std::int64_t> alive, running;
  std::vector<TangoMachine> made;
  std::map<std::string, std::chrono::seconds> timeouts;

 private:
  void given(const std::string& step, std::chrono::seconds timeout) {
    std::lock_guard lock(mu);
    timeouts[step] = timeout;
  }
  static std::string call(const Hook& hook, std::atomic<int>& counter) {
    const int n = counter++;
    return hook ? hook(n) : std::string();
  }
};

}  // namespace tango::test
