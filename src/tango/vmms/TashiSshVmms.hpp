#pragma once
// The `tashiSSH` VMMS (alias `ssh`): jobs on machines that already exist
// (lab servers, VMs of another manager), listed in [[SSH_MACHINES]], driven
// over SSH by the job path every SSH backend shares (SshJobs.hpp).
//
// Tango's tashiSSH drove the Tashi cluster manager, retired long ago; what
// its users need is this: a fixed set of machines, each running one job at
// a time per grading user it lists. A "VM" is one such slot: initializeVM
// claims a free slot (waiting for one within its timeout), destroyVM resets
// it and gives it back. Machines are always reused: after each job the slot
// is reset (SshJobs::reset) and checked before it takes another.
//
// A machine that stops answering, or whose reset fails, is taken out of
// service (its job is retried on another machine, through the worker's
// retries) and probed every few seconds; it comes back once it answers and
// every one of its slots resets cleanly. At start-up every slot is reset,
// so whatever a killed service left running is gone.
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "tango/config/Config.hpp"
#include "tango/ssh/SshSession.hpp"
#include "tango/util/Spawner.hpp"
#include "tango/vmms/SshJobs.hpp"
#include "tango/vmms/Vmms.hpp"

namespace tango {

class TashiSshVmms : public Vmms {
 public:
  explicit TashiSshVmms(const Config& cfg);
  ~TashiSshVmms() override;

  std::string name() const override { return "tashiSSH"; }
  bool reusesVms() const override { return true; }
  std::string preflight() override;
  StepResult initializeVM(const TangoMachine& vm, std::chrono::seconds timeout) override;
  StepResult waitVM(const TangoMachine& vm, std::chrono::seconds timeout) override;
  StepResult copyIn(const TangoMachine& vm, const std::vector<InputFile>& files,
                    std::chrono::seconds timeout) override;
  RunResult runJob(const TangoMachine& vm, const RunSpec& spec) override;
  StepResult copyOut(const TangoMachine& vm, const std::filesystem::path& dest,
                     std::chrono::seconds timeout) override;
  StepResult resetVM(const TangoMachine& vm) override;
  StepResult destroyVM(const TangoMachine& vm) override;
  StepResult safeDestroyVM(const TangoMachine& vm) override { return destroyVM(vm); }
  std::vector<TangoMachine> getVMs() override { return {}; }  // slots, not VMs: preflight resets
  std::vector<std::string> getImages() override;
  std::optional<std::string> getPartialOutput(const TangoMachine& vm) override;

  // Which machine runs `vm`'s job (its name), for /pool and tests.
  std::optional<std::string> machineOf(const TangoMachine& vm);
  bool inService(const std::string& machine);

 private:
  struct Machine {
    SshMachine conf;
    std::unique_ptr<ssh::Session> session;
    bool inService = true;
    std::string why;  // why it is out of service
  };
  struct Slot {
    std::size_t machine = 0;
    std::string user;     // its grading user
    std::string vm;       // the VM's instance name; empty = free
    bool broken = false;  // its reset failed: not given out until one succeeds
  };
  struct Claim {
    Machine* machine;
    std::string user;
  };
  std::optional<Claim> claimOf(const TangoMachine& vm);
  void takeOutOfService(std::size_t machine, const std::string& why);
  // A failed reset: the machine leaves service if ssh failed, else only the slot.
  void resetFailed(std::size_t machine, const std::string& user, const std::string& why);
  void release(const std::string& vm);
  void healthLoop();
  bool resetMachine(std::size_t machine);

  Config cfg_;
  std::filesystem::path controlDir_;  // the masters' sockets
  Spawner spawner_;
  SshJobs jobs_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Machine> machines_;  // fixed after construction; flags guarded by mu_
  std::vector<Slot> slots_;        // guarded by mu_
  bool stop_ = false;
  std::thread health_;
};

}  // namespace tango
