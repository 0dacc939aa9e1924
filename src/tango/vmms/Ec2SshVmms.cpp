#include "tango/vmms/Ec2SshVmms.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <set>
#include <thread>

#include "tango/util/Fd.hpp"
#include "tango/util/Sha256.hpp"

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
    : cfg_(cfg),
      settings_(ec2::settingsFrom(cfg)),
      env_(env),
      home_(home),
      controlDir_(ssh::controlDir(fs::absolute(cfg.dataDir).string())),
      jobs_(cfg_) {}

Ec2SshVmms::~Ec2SshVmms() {
  {
    std::lock_guard lock(mu_);
    for (auto& [name, vm] : vms_)
      if (vm.session) vm.session->close();
  }
  // The sockets' directory goes with the last socket (it is in /run).
  std::error_code ec;
  fs::remove(controlDir_, ec);
}

std::string Ec2SshVmms::describeError(const ec2::Ec2Error& e) const {
  if (e.code == "AuthFailure" || e.code == "UnauthorizedOperation")
    return "EC2 refused the credentials from " + credentialSource_ + " (" + e.what() + ")";
  return std::string("EC2: ") + e.what();
}

std::string Ec2SshVmms::preflight() {
  // getVMs runs it first at start-up (it needs the client); once is enough,
  // and its answer stands.
  if (!preflighted_) preflighted_ = checkAccount();
  return *preflighted_;
}

std::string Ec2SshVmms::checkAccount() {
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
  endpoint_ = endpoint;
  client_ = std::make_shared<ec2::Client>(endpoint, settings_.region, *creds);
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
  std::shared_ptr<ec2::Client> client = client_;
  std::string keyName = settings_.keyName;
  fs::path keyFile = settings_.keyPath;
  std::vector<std::string> groups = groups_;
  try {
    auto ami = amiFor(image, deadline);
    if (!ami) return StepResult::failure("EC2: no AMI named " + image);
    if (vm.ownAccount()) {
      client = std::make_shared<ec2::Client>(
          endpoint_, settings_.region,
          ec2::Credentials{*vm.accessKeyId, *vm.accessKey, "", "the job's own keys"});
      keyName = name;
      keyFile = dynamicDir() / (name + ".pem");
      {
        std::lock_guard lock(mu_);
        vms_[name].client = client;
        vms_[name].keyName = keyName;
      }
      if (auto why = prepareOwnAccount(*client, vm, name, keyFile, groups, deadline); !why.empty())
        return StepResult::failure(why);
    }
    auto launched = client->runInstance(*ami, ec2::instanceTypeFor(settings_, vm.cores, vm.memory),
                                        keyName, groups,
                                        {{"Name", name},
                                         {kPrefixTag, cfg_.prefix},
                                         {kNodeTag, vm.node.empty() ? cfg_.nodeId : vm.node}},
                                        sha256Hex(name).substr(0, 32), deadline);
    if (launched.empty()) return StepResult::failure("EC2: RunInstances launched nothing");
    id = launched.front().id;
    {
      std::lock_guard lock(mu_);
      vms_[name].instanceId = id;
    }
    spdlog::info("ec2SSH: {} is instance {}", name, id);
    for (;;) {
      auto found = client->describeInstances({}, {id}, deadline);
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
              ssh::Target{address, 22, settings_.user, keyFile}, hosts / (name + ".known_hosts"),
              controlDir_ / ("v" + std::to_string(vm.id)), spawner_);
          std::lock_guard lock(mu_);
          Vm& rec = vms_[name];
          rec.instanceId = id;
          rec.address = address;
          rec.session = std::move(session);
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

std::string Ec2SshVmms::prepareOwnAccount(ec2::Client& client, const TangoMachine& vm,
                                          const std::string& name, const fs::path& keyFile,
                                          std::vector<std::string>& groups,
                                          Clock::time_point deadline) {
  // Tango's feature: the job runs in the requester's account, with a key
  // pair made for its VM (saved 0600, deleted with the VM). The account file,
  // written first, lets a restarted service terminate what a killed one
  // left there (cleanUpOwnAccounts).
  const fs::path dir = dynamicDir();
  std::error_code ec;
  fs::create_directories(dir, ec);
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  auto writePrivate = [](const fs::path& p, const std::string& text) {
    Fd f(::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    return f && ::write(f.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
  };
  if (!writePrivate(dir / (name + ".account"), *vm.accessKeyId + "\n" + *vm.accessKey + "\n"))
    return "cannot write the job's account file in " + dir.string();
  auto kp = client.createKeyPair(name, deadline);
  if (!kp.privateKey.ends_with('\n')) kp.privateKey += '\n';  // OpenSSH needs it
  if (!writePrivate(keyFile, kp.privateKey))
    return "cannot write the job's key pair in " + dir.string();
  // The account's default group, unless we may make ours there.
  groups.clear();
  if (!settings_.securityGroup.empty() && !settings_.sshCidr.empty())
    groups = {client.ensureSecurityGroup(settings_.securityGroup, settings_.sshCidr, deadline)};
  return "";
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
  // A VM of the job's own account is never reused: nothing to reset.
  return jobs_.runJob(instanceName(cfg_.prefix, vm), *session, SshJobs::kGradingUser, spec,
                      reusesVms() && !vm.ownAccount());
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
  return jobs_.resetAfterJob(instanceName(cfg_.prefix, vm), *session, SshJobs::kGradingUser,
                             kResetTimeout);
}

std::optional<std::string> Ec2SshVmms::instanceIdOf(const std::string& name, ec2::Client& client) {
  {
    std::lock_guard lock(mu_);
    if (auto it = vms_.find(name); it != vms_.end() && !it->second.instanceId.empty())
      return it->second.instanceId;
  }
  // A VM of an earlier run, or one whose RunInstances answer never came.
  auto found = client.describeInstances(
      {{"tag:Name", {name}},
       {"instance-state-name", {"pending", "running", "stopping", "stopped"}}},
      {}, Clock::now() + kApiTimeout);
  if (found.empty()) return std::nullopt;
  return found.front().id;
}

StepResult Ec2SshVmms::destroyVM(const TangoMachine& vm) {
  return terminate(instanceName(cfg_.prefix, vm)).result;
}

// Terminates the VM's instance and drops its record. A VM of a job's own
// account keeps its key pair and account file until safeDestroyVM has seen
// the instance gone (or a restart has): they are the only way back to it.
Ec2SshVmms::Terminated Ec2SshVmms::terminate(const std::string& name) {
  jobs_.forget(name);  // a reset under way dies with the instance
  Terminated t;
  std::shared_ptr<ssh::Session> session;
  {
    std::lock_guard lock(mu_);
    if (auto it = vms_.find(name); it != vms_.end()) {
      session = it->second.session;
      t.client = it->second.client;
      t.own = t.client != nullptr;
      if (!it->second.instanceId.empty()) t.id = it->second.instanceId;
      vms_.erase(it);
    }
  }
  if (!t.client) t.client = client_;
  if (session) session->forget();  // its known-hosts file goes with it
  if (!t.client) return t;
  try {
    if (t.id.empty())
      if (auto id = instanceIdOf(name, *t.client)) t.id = *id;
    if (!t.id.empty()) {
      t.client->terminateInstances({t.id}, Clock::now() + kApiTimeout);
      spdlog::info("ec2SSH: terminating {} ({})", name, t.id);
    }
  } catch (const ec2::Ec2Error& e) {
    if (e.code != "InvalidInstanceID.NotFound") t.result = StepResult::failure(describeError(e));
  }
  return t;
}

StepResult Ec2SshVmms::safeDestroyVM(const TangoMachine& vm) {
  const std::string name = instanceName(cfg_.prefix, vm);
  auto t = terminate(name);
  if (!t.result.ok || !t.client) return t.result;
  auto gone = [&] {
    if (t.own) forgetOwnAccount(*t.client, name);
    return StepResult::success();
  };
  if (t.id.empty()) return gone();
  const auto deadline = Clock::now() + std::chrono::seconds(cfg_.initializeVmTimeout);
  try {
    while (Clock::now() < deadline) {
      auto found = t.client->describeInstances({}, {t.id}, deadline);
      if (found.empty() || found.front().state == "terminated") return gone();
      std::this_thread::sleep_for(500ms);
    }
  } catch (const ec2::Ec2Error& e) {
    if (e.code == "InvalidInstanceID.NotFound") return gone();
    return StepResult::failure(describeError(e));
  }
  return StepResult::failure("EC2: instance " + t.id + " not terminated in time");
}

std::shared_ptr<ec2::Client> Ec2SshVmms::clientOf(const std::string& name) {
  std::lock_guard lock(mu_);
  if (auto it = vms_.find(name); it != vms_.end() && it->second.client) return it->second.client;
  return client_;
}

fs::path Ec2SshVmms::dynamicDir() const {
  return settings_.dynamicKeyPath.empty() ? fs::absolute(cfg_.dataDir) / "ssh" / "keys"
                                          : settings_.dynamicKeyPath;
}

void Ec2SshVmms::forgetOwnAccount(ec2::Client& client, const std::string& name) {
  try {
    client.deleteKeyPair(name, Clock::now() + kApiTimeout);
  } catch (const ec2::Ec2Error& e) {
    spdlog::warn("ec2SSH: cannot delete key pair {}: {}", name, describeError(e));
  }
  std::error_code ec;
  fs::remove(dynamicDir() / (name + ".pem"), ec);
  fs::remove(dynamicDir() / (name + ".account"), ec);
}

void Ec2SshVmms::cleanUpOwnAccounts() {
  // VMs a killed service left in jobs' own accounts, found by their account
  // files.
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dynamicDir(), ec))
    if (e.path().extension() == ".account" &&
        e.path().stem().string().starts_with(cfg_.prefix + "-"))
      files.push_back(e.path());
  for (const auto& file : files) {
    const std::string name = file.stem().string();
    std::ifstream in(file);
    std::string id, secret;
    std::getline(in, id);
    std::getline(in, secret);
    ec2::Client client(endpoint_, settings_.region, {id, secret, "", "a job's own keys"});
    try {
      std::vector<std::string> ids;
      for (const auto& i : client.describeInstances(
               {{"tag:Name", {name}},
                {"instance-state-name", {"pending", "running", "stopping", "stopped"}}},
               {}, Clock::now() + kApiTimeout))
        ids.push_back(i.id);
      if (!ids.empty()) {
        spdlog::info("ec2SSH: terminating leftover {} in a job's own account", name);
        client.terminateInstances(ids, Clock::now() + kApiTimeout);
      }
      forgetOwnAccount(client, name);
    } catch (const ec2::Ec2Error& err) {
      // Kept for the next start: the account file is the only way back.
      spdlog::warn("ec2SSH: cannot clean up {}: {}", name, describeError(err));
    }
  }
}

std::vector<TangoMachine> Ec2SshVmms::getVMs() {
  std::vector<TangoMachine> out;
  {
    // Called before preflight at start-up: find the credentials first.
    if (auto why = preflight(); !why.empty()) {
      spdlog::error("ec2SSH: cannot list instances: {}", why);
      return out;
    }
  }
  cleanUpOwnAccounts();
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
      if (auto node = i.tags.find(kNodeTag); node != i.tags.end()) vm.node = node->second;
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
