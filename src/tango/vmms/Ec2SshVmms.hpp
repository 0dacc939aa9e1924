#pragma once
// The `ec2SSH` VMMS: every VM is an Amazon EC2 instance (or one of a
// compatible cloud), launched from an AMI made as Tango's EC2 guide says
// (the autodriver at /usr/bin/autodriver, an `autograde` user, a login user
// with sudo), reached over SSH and run by the job path all SSH backends
// share (SshJobs.hpp).
//
// initializeVM launches the instance (tagged Name = <PREFIX>-<id>-<image>
// and tango-prefix = <PREFIX>) and waits for `running`; waitVM waits until
// SSH logs in (`true`), which also opens the VM's master connection and
// records its host key in a known-hosts file of its own; destroyVM
// terminates it (safeDestroyVM waits for `terminated`). getVMs lists the
// service's instances by tag, so a restart terminates those no job owns.
// With REUSE_VMS an instance runs job after job, reset between them.
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "tango/config/Config.hpp"
#include "tango/ec2/Ec2Client.hpp"
#include "tango/ec2/Ec2Settings.hpp"
#include "tango/ssh/SshSession.hpp"
#include "tango/util/Spawner.hpp"
#include "tango/vmms/SshJobs.hpp"
#include "tango/vmms/Vmms.hpp"

namespace tango {

class Ec2SshVmms : public Vmms {
 public:
  static constexpr const char* kPrefixTag = "tango-prefix";
  static constexpr const char* kNodeTag = "tango-node";  // NODE_ID of the node that made it
  // The image name Tango's clients use when they mean "the default AMI".
  static constexpr const char* kDefaultImage = "autograding_image";

  // Throws ConfigError for a bad EC2 setting.
  Ec2SshVmms(const Config& cfg, const std::map<std::string, std::string>& env,
             const std::filesystem::path& home);
  ~Ec2SshVmms() override;

  std::string name() const override { return "ec2SSH"; }
  bool reusesVms() const override { return cfg_.reuseVms; }
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
  StepResult safeDestroyVM(const TangoMachine& vm) override;
  std::vector<TangoMachine> getVMs() override;
  std::vector<std::string> getImages() override;
  std::optional<std::string> getPartialOutput(const TangoMachine& vm) override;

  // EC2 API calls made so far (the benchmark's "calls per job").
  long apiCalls() const { return client_ ? client_->calls() : 0; }

 private:
  struct Vm {
    std::string instanceId;
    std::string address;
    std::shared_ptr<ssh::Session> session;
    // A job's own account: its client, and the key pair made for the VM.
    std::shared_ptr<ec2::Client> client;
    std::string keyName;
  };
  // The client of `vm`'s account (the service's unless the job brought keys).
  std::shared_ptr<ec2::Client> clientOf(const std::string& name);
  // Key pair and account file of a VM in a job's own account.
  std::filesystem::path dynamicDir() const;
  void forgetOwnAccount(ec2::Client& client, const std::string& name);
  void cleanUpOwnAccounts();
  // "" or why the job's own account cannot take its VM.
  std::string prepareOwnAccount(ec2::Client& client, const TangoMachine& vm,
                                const std::string& name, const std::filesystem::path& keyFile,
                                std::vector<std::string>& groups, ec2::Clock::time_point deadline);
  std::shared_ptr<ssh::Session> sessionOf(const TangoMachine& vm);
  std::optional<std::string> amiFor(const std::string& image, ec2::Clock::time_point deadline);
  std::optional<std::string> instanceIdOf(const std::string& name, ec2::Client& client);
  struct Terminated {
    StepResult result;
    std::string id;                       // the instance, if one was found
    std::shared_ptr<ec2::Client> client;  // of its account
    bool own = false;                     // a job's own account
  };
  Terminated terminate(const std::string& name);
  std::string describeError(const ec2::Ec2Error& e) const;

  Config cfg_;
  ec2::Settings settings_;
  std::map<std::string, std::string> env_;
  std::filesystem::path home_;
  std::filesystem::path controlDir_;        // the masters' sockets
  std::string checkAccount();               // preflight's work
  std::optional<std::string> preflighted_;  // preflight's answer, once known
  std::shared_ptr<ec2::Client> client_;     // made by preflight, once credentials are found
  std::string endpoint_;
  std::string credentialSource_;
  std::vector<std::string> groups_;  // security groups instances join
  Spawner spawner_;
  SshJobs jobs_;
  std::mutex mu_;
  std::map<std::string, Vm> vms_;            // by instance name; guarded by mu_
  std::map<std::string, std::string> amis_;  // image -> AMI id; guarded by mu_
  std::vector<std::string> images_;          // getImages' answer; guarded by mu_
  std::optional<std::chrono::steady_clock::time_point> imagesAt_;  // guarded by mu_
};

}  // namespace tango
