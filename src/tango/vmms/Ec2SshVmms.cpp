#include "tango/vmms/Ec2SshVmms.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <charconv>
#include <set>
#include <thread>

namespace tango {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ec2::Clock;

namespace {
constexpr std::chrono::seconds kResetTimeout{30};
constexpr std::chrono::seconds kApiTimeout{60};
constexpr auto kImagesTtl = 30s;
}  // namespace

Ec2SshVmms::Ec2SshVmms(const Config& cfg, const std::map<std::string, std::string>& env,
                       const fs::path& home)
    : cfg_(cfg), settings_(ec2::settingsFrom(cfg)), env_(env), home_(home), jobs_(cfg_) {}

std::string Ec2SshVmms::describeError(const ec2::Ec2Error& e) const {
  if (e.code == "AuthFailure" || e.code == "UnauthorizedOperation")
    return "EC2 refused the credentials from " + credentialSource_ + " (" + e.what() + ")";
  return std::string("EC2: ") + e.what();
}

std::string Ec2SshVmms::preflight() {
  struct stat st {};
  if (::stat(settings_.keyPath.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return "SECURITY_KEY_PATH: " + settings_.keyPath.string() + " is not a readable file";
  if ((st.st_mode & 077) != 0)
    return "SECURITY_KEY_PATH: " + settings_.keyPath.string() +
           " is readable by others (ssh refuses it): chmod 600 it";
  auto creds = ec2::findCredentials(env_, home_);
  if (!creds)
    return "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or write them "
           "to " +
           (home_ / ".boto").string() + " ([Credentials] aws_access_key_id, aws_secret_access_key)";
  credentialSource_ = creds->source;
  const std::string endpoint = ec2::endpointFor(settings_.endpoint, settings_.region, env_);
  client_ = std::make_unique<ec2::Client>(endpoint, settings_.region, *creds);
  spdlog::info("ec2SSH: region {} at {}, credentials from {}", settings_.region, endpoint,
               credentialSource_);
  const auto deadline = Clock::now() + kApiTimeout;
  try {
    if (!amiFor(kDefaultImage, deadline))
      return "DEFAULT_AMI: no AMI " + settings_.defaultAmi + " in " + settings_.region;
    if (!settings_.securityGroup.empty()) {
      groups_ = {settings_.securityGroup};
      // Tango opens every port of its group to the world; ours admits SSH
      // from EC2_SSH_CIDR only.
      if (!settings_.sshCidr.empty())
        groups_ = {
            client_->ensureSecurityGroup(settings_.securityGroup, settings_.sshCidr, deadline)};
    }
  } catch (const ec2::Ec2Error& e) {
    return describeError(e);
  }
  return "";
}

std::optional<std::string> Ec2SshVmms::amiFor(const std::string& image,
                                              Clock::time_point deadline) {
  const std::string wanted = image == kDefaultImage ? settings_.defaultAmi : image;
  {
    std::lock_guard lock(mu_);
    if (auto it = amis_.find(wanted); it != amis_.end()) return it->second;
  }
  auto id = client_->findImage(wanted, deadline);
  if (id) {
    std::lock_guard lock(mu_);
    amis_[wanted] = *id;
  }
  return id;
}

std::shared_ptr<ssh::Session> Ec2SshVmms::sessionOf(const TangoMachine& vm) {
  std::lock_guard lock(mu_);
  auto it = vms_.find(instanceName(cfg_.prefix, vm));
  return it == vms_.end() ? nullptr : it->second.session;
}

StepResult Ec2SshVmms::initializeVM(const TangoMachine& vm, std::chrono::seconds timeout) {
  if (!client_) return StepResult::failure("ec2SSH was not started");
  const std::string name = instanceName(cfg_.prefix, vm);
  const auto deadline = Clock::now() + timeout;
  const std::string image = vm.image.empty() ? vm.name : vm.image;
  std::string id;
  try {
    auto ami = amiFor(image, deadline);
    if (!ami) return StepResult::failure("EC2: no AMI named " + image);
    auto launched = client_->runInstance(*ami, ec2::instanceTypeFor(settings_, vm.cores, vm.memory),
                                         settings_.keyName, groups_,
                                         {{"Name", name}, {kPrefixTag, cfg_.prefix}}, deadline);
    if (launched.empty()) return StepResult::failure("EC2: RunInstances launched nothing");
    id = launched.front().id;
    {
      std::lock_guard lock(mu_);
      vms_[name].instanceId = id;
    }
    spdlog::info("ec2SSH: {} is instance {}", name, id);
    for (;;) {
      auto found = client_->describeInstances({}, {id}, deadline);
      if (!found.empty()) {
        const auto& i = found.front();
        if (i.state == "running") {
          const std::string address = settings_.privateAddress ? i.privateIp : i.publicIp;
          if (!ssh::isSafeAddress(address))
            return StepResult::failure("EC2: instance " + id + " has no " +
                                       (settings_.privateAddress ? "private" : "public") +
                                       " address");
          const fs::path hosts = fs::absolute(cfg_.dataDir) / "ssh" / "vms";
          auto session = std::make_shared<ssh::Session>(
              ssh::Target{address, 22, settings_.user, settings_.keyPath},
              hosts / (name + ".known_hosts"),
              ssh::controlDir(fs::absolute(cfg_.dataDir).string()) / ("v" + std::to_string(vm.id)),
              spawner_);
          std::lock_guard lock(mu_);
          vms_[name] = Vm{id, address, std::move(session)};
          return StepResult::success();
        }
        if (i.state != "pending")
          return StepResult::failure("EC2: instance " + id + " is " + i.state + ", not running");
      }
      if (Clock::now() + 1s >= deadline)
        return StepResult::failure("EC2: instance " + id + " not running after " +
                                   std::to_string(timeout.count()) + " s");
      std::this_thread::sleep_for(500ms);
    }
  } catch (const ec2::Ec2Error& e) {
    return StepResult::failure(describeError(e));
  }
}

StepResult Ec2SshVmms::waitVM(const TangoMachine& vm, std::chrono::seconds timeout) {
  auto session = sessionOf(vm);
  if (!session) return StepResult::failure("no instance was launched for this VM");
  if (session->isUp()) return StepResult::success();  // SshJobs::ready
  // sshd comes up some seconds after the instance is `running`.
  const auto deadline = Clock::now() + timeout;
  std::string last;
  while (Clock::now() < deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline - Clock::now());
    auto r = SshJobs::probe(*session, std::clamp(left, 1s, 10s));
    if (r.ok) return r;
    last = r.error;
    session->close();
    std::this_thread::sleep_for(500ms);
  }
  return StepResult::failure("SSH did not answer within " + std::to_string(timeout.count()) + " s" +
                             (last.empty() ? "" : ": " + last));
}

StepResult Ec2SshVmms::copyIn(const TangoMachine& vm, const std::vector<InputFile>& files,
                              std::chrono::seconds) {
  if (!sessionOf(vm)) return StepResult::failure("no instance was launched for this VM");
  return jobs_.copyIn(instanceName(cfg_.prefix, vm), files);
}

RunResult Ec2SshVmms::runJob(const TangoMachine& vm, const RunSpec& spec) {
  auto session = sessionOf(vm);
  if (!session) {
    RunResult r;
    r.error = "no instance was launched for this VM";
    return r;
  }
  return jobs_.runJob(instanceName(cfg_.prefix, vm), *session, SshJobs::kGradingUser, spec);
}

StepResult Ec2SshVmms::copyOut(const TangoMachine& vm, const fs::path& dest, std::chrono::seconds) {
  return jobs_.copyOut(instanceName(cfg_.prefix, vm), dest);
}

std::optional<std::string> Ec2SshVmms::getPartialOutput(const TangoMachine& vm) {
  return jobs_.partialOutput(instanceName(cfg_.prefix, vm));
}

StepResult Ec2SshVmms::resetVM(const TangoMachine& vm) {
  auto session = sessionOf(vm);
  if (!session) return StepResult::failure("no instance was launched for this VM");
  return SshJobs::reset(*session, SshJobs::kGradingUser, kResetTimeout);
}

std::optional<std::string> Ec2SshVmms::instanceIdOf(const TangoMachine& vm) {
  const std::string name = instanceName(cfg_.prefix, vm);
  {
    std::lock_guard lock(mu_);
    if (auto it = vms_.find(name); it != vms_.end() && !it->second.instanceId.empty())
      return it->second.instanceId;
  }
  if (!client_) return std::nullopt;
  // A VM of an earlier run of the service (getVMs at start-up).
  auto found = client_->describeInstances(
      {{"tag:Name", {name}},
       {"instance-state-name", {"pending", "running", "stopping", "stopped"}}},
      {}, Clock::now() + kApiTimeout);
  if (found.empty()) return std::nullopt;
  return found.front().id;
}

StepResult Ec2SshVmms::destroyVM(const TangoMachine& vm) {
  const std::string name = instanceName(cfg_.prefix, vm);
  jobs_.forget(name);
  try {
    auto id = instanceIdOf(vm);
    std::shared_ptr<ssh::Session> session;
    {
      std::lock_guard lock(mu_);
      if (auto it = vms_.find(name); it != vms_.end()) session = it->second.session;
      vms_.erase(name);
    }
    if (session) session->forget();  // its known-hosts file goes with it
    if (!id) return StepResult::success();
    client_->terminateInstances({*id}, Clock::now() + kApiTimeout);
    spdlog::info("ec2SSH: terminating {} ({})", name, *id);
    std::lock_guard lock(mu_);
    vms_[name].instanceId = *id;  // for safeDestroyVM's wait
    return StepResult::success();
  } catch (const ec2::Ec2Error& e) {
    if (e.code == "InvalidInstanceID.NotFound") return StepResult::success();
    return StepResult::failure(describeError(e));
  }
}

StepResult Ec2SshVmms::safeDestroyVM(const TangoMachine& vm) {
  auto r = destroyVM(vm);
  const std::string name = instanceName(cfg_.prefix, vm);
  std::string id;
  {
    std::lock_guard lock(mu_);
    if (auto it = vms_.find(name); it != vms_.end()) id = it->second.instanceId;
    vms_.erase(name);
  }
  if (!r.ok || id.empty()) return r;
  const auto deadline = Clock::now() + std::chrono::seconds(cfg_.initializeVmTimeout);
  try {
    while (Clock::now() < deadline) {
      auto found = client_->describeInstances({}, {id}, deadline);
      if (found.empty() || found.front().state == "terminated") return StepResult::success();
      std::this_thread::sleep_for(500ms);
    }
  } catch (const ec2::Ec2Error& e) {
    if (e.code == "InvalidInstanceID.NotFound") return StepResult::success();
    return StepResult::failure(describeError(e));
  }
  return StepResult::failure("EC2: instance " + id + " not terminated in time");
}

std::vector<TangoMachine> Ec2SshVmms::getVMs() {
  std::vector<TangoMachine> out;
  if (!client_) {
    // Called before preflight at start-up: find the credentials first.
    if (auto why = preflight(); !why.empty()) {
      spdlog::error("ec2SSH: cannot list instances: {}", why);
      return out;
    }
  }
  try {
    for (const auto& i : client_->describeInstances(
             {{"tag:" + std::string(kPrefixTag), {cfg_.prefix}},
              {"instance-state-name", {"pending", "running", "stopping", "stopped"}}},
             {}, Clock::now() + kApiTimeout)) {
      // Name = <PREFIX>-<id>-<image>
      const std::string n = i.tags.count("Name") ? i.tags.at("Name") : "";
      const std::string pre = cfg_.prefix + "-";
      if (!n.starts_with(pre)) continue;
      const auto dash = n.find('-', pre.size());
      if (dash == std::string::npos) continue;
      TangoMachine vm;
      const auto digits = std::string_view(n).substr(pre.size(), dash - pre.size());
      if (std::from_chars(digits.data(), digits.data() + digits.size(), vm.id).ec != std::errc())
        continue;
      vm.name = vm.image = n.substr(dash + 1);
      vm.vmms = name();
      {
        std::lock_guard lock(mu_);
        vms_[n].instanceId = i.id;
      }
      out.push_back(vm);
    }
  } catch (const ec2::Ec2Error& e) {
    spdlog::error("ec2SSH: cannot list instances: {}", describeError(e));
  }
  return out;
}

std::vector<std::string> Ec2SshVmms::getImages() {
  {
    std::lock_guard lock(mu_);
    if (imagesAt_ && Clock::now() - *imagesAt_ < kImagesTtl) return images_;
  }
  std::set<std::string> names{kDefaultImage};
  if (client_) {
    try {
      // The account's own AMIs, by id, Name tag and name.
      for (const auto& img : client_->ownImages(Clock::now() + kApiTimeout)) {
        for (const auto* n : {&img.id, &img.name, &img.nameTag})
          if (!n->empty()) names.insert(*n);
      }
    } catch (const ec2::Ec2Error& e) {
      spdlog::warn("ec2SSH: cannot list images: {}", describeError(e));
    }
  }
  std::vector<std::string> out(names.begin(), names.end());
  std::lock_guard lock(mu_);
  images_ = out;
  imagesAt_ = Clock::now();
  return out;
}

}  // namespace tango
