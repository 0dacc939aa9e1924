#include "tango/vmms/TashiSshVmms.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <set>

namespace tango {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {
constexpr auto kHealthEvery = 5s;
constexpr std::chrono::seconds kResetTimeout{30};
}  // namespace

TashiSshVmms::TashiSshVmms(const Config& cfg) : cfg_(cfg), jobs_(cfg_) {
  const fs::path hosts = fs::absolute(cfg.dataDir) / "ssh" / "machines";
  const fs::path sockets = controlDir_ = ssh::controlDir(fs::absolute(cfg.dataDir).string());
  for (std::size_t i = 0; i < cfg.sshMachines.size(); ++i) {
    const SshMachine& m = cfg.sshMachines[i];
    Machine mach;
    mach.conf = m;
    mach.session = std::make_unique<ssh::Session>(ssh::Target{m.address, m.port, m.user, m.key},
                                                  hosts / (m.name + ".known_hosts"),
                                                  sockets / ("m" + std::to_string(i)), spawner_);
    machines_.push_back(std::move(mach));
    for (const auto& u : m.gradingUsers) slots_.push_back({i, u, {}});
  }
}

TashiSshVmms::~TashiSshVmms() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (health_.joinable()) health_.join();
  // The sockets' directory goes with the last socket (it is in /run).
  for (auto& m : machines_) m.session->close();
  std::error_code ec;
  fs::remove(controlDir_, ec);
}

bool TashiSshVmms::resetMachine(std::size_t i) {
  Machine& m = machines_[i];
  if (auto p = SshJobs::probe(*m.session, 15s); !p.ok) {
    takeOutOfService(i, p.error);
    return false;
  }
  for (const auto& user : m.conf.gradingUsers) {
    if (auto r = SshJobs::reset(*m.session, user, kResetTimeout); !r.ok) {
      takeOutOfService(i, r.error);
      return false;
    }
  }
  return true;
}

std::string TashiSshVmms::preflight() {
  std::string problems;
  for (std::size_t i = 0; i < machines_.size(); ++i) {
    const SshMachine& m = machines_[i].conf;
    struct stat st {};
    if (::stat(m.key.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
      return "SSH_MACHINES " + m.name + ": key " + m.key.string() + " is not a readable file";
    if ((st.st_mode & 077) != 0)
      return "SSH_MACHINES " + m.name + ": key " + m.key.string() +
             " is readable by others (ssh refuses it): chmod 600 it";
  }
  std::size_t up = 0;
  for (std::size_t i = 0; i < machines_.size(); ++i) {
    // Whatever a killed service left running on a machine dies here.
    if (resetMachine(i)) {
      ++up;
      spdlog::info("tashiSSH: machine {} ({}) ready, {} job(s) at once", machines_[i].conf.name,
                   machines_[i].session->target().shown(), machines_[i].conf.gradingUsers.size());
    }
  }
  if (up == 0) spdlog::error("tashiSSH: no machine answers yet; jobs wait until one does");
  health_ = std::thread([this] { healthLoop(); });
  return problems;
}

void TashiSshVmms::takeOutOfService(std::size_t i, const std::string& why) {
  {
    std::lock_guard lock(mu_);
    if (!machines_[i].inService) return;
    machines_[i].inService = false;
    machines_[i].why = why;
  }
  machines_[i].session->close();
  spdlog::warn("tashiSSH: machine {} out of service: {}", machines_[i].conf.name, why);
}

void TashiSshVmms::resetFailed(std::size_t machine, const std::string& user,
                               const std::string& why) {
  if (why.find("ssh to ") != std::string::npos) {
    takeOutOfService(machine, why);
    return;
  }
  {
    std::lock_guard lock(mu_);
    for (auto& s : slots_)
      if (s.machine == machine && s.user == user) s.broken = true;
  }
  spdlog::warn("tashiSSH: machine {}: grading user {} not reused until a reset succeeds: {}",
               machines_[machine].conf.name, user, why);
}

void TashiSshVmms::healthLoop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, kHealthEvery, [this] { return stop_; });
    if (stop_) return;
    // Machines out of service, and broken slots of machines in service,
    // each with the grading users to reset before they are used again: the
    // free slots' (a slot an idle pool VM holds was reset after its job).
    std::map<std::size_t, std::vector<std::string>> todo;
    for (const auto& s : slots_) {
      const bool down = !machines_[s.machine].inService;
      if (down || s.broken) {
        auto& users = todo[s.machine];
        if (s.vm.empty() || s.broken) users.push_back(s.user);
      }
    }
    lock.unlock();
    for (auto& [i, users] : todo) {
      Machine& m = machines_[i];
      if (!SshJobs::probe(*m.session, 10s).ok) continue;
      std::vector<std::string> clean;
      for (const auto& user : users)
        if (SshJobs::reset(*m.session, user, kResetTimeout).ok) clean.push_back(user);
      std::lock_guard l(mu_);
      for (auto& s : slots_)
        if (s.machine == i && std::find(clean.begin(), clean.end(), s.user) != clean.end())
          s.broken = false;
      if (!m.inService && clean.size() == users.size()) {
        m.inService = true;
        m.why.clear();
        spdlog::info("tashiSSH: machine {} back in service", m.conf.name);
      }
      cv_.notify_all();
    }
    lock.lock();
  }
}

std::optional<TashiSshVmms::Claim> TashiSshVmms::claimOf(const TangoMachine& vm) {
  const std::string name = instanceName(cfg_.prefix, vm);
  std::lock_guard lock(mu_);
  for (const auto& s : slots_)
    if (s.vm == name) return Claim{&machines_[s.machine], s.user};
  return std::nullopt;
}

StepResult TashiSshVmms::initializeVM(const TangoMachine& vm, std::chrono::seconds timeout) {
  const std::string name = instanceName(cfg_.prefix, vm);
  const std::string image = vm.image.empty() ? vm.name : vm.image;
  std::unique_lock lock(mu_);
  Slot* got = nullptr;
  auto free = [&] {
    // The least busy machine that serves the image, so jobs spread out.
    std::map<std::size_t, int> busy;
    for (const auto& s : slots_)
      if (!s.vm.empty()) ++busy[s.machine];
    for (auto& s : slots_) {
      const Machine& m = machines_[s.machine];
      if (!s.vm.empty() || s.broken || !m.inService) continue;
      const auto& imgs = m.conf.images;
      if (std::find(imgs.begin(), imgs.end(), image) == imgs.end()) continue;
      if (!got || busy[s.machine] < busy[got->machine]) got = &s;
    }
    return got != nullptr || stop_;
  };
  if (!cv_.wait_for(lock, timeout, free) || !got)
    return StepResult::failure("no machine of SSH_MACHINES serving " + image +
                               " had a free slot in time");
  got->vm = name;
  return StepResult::success();
}

StepResult TashiSshVmms::waitVM(const TangoMachine& vm, std::chrono::seconds timeout) {
  auto c = claimOf(vm);
  if (!c) return StepResult::failure("no machine was claimed for this VM");
  auto r = SshJobs::ready(*c->machine->session, timeout);
  if (!r.ok) takeOutOfService(static_cast<std::size_t>(c->machine - machines_.data()), r.error);
  return r;
}

StepResult TashiSshVmms::copyIn(const TangoMachine& vm, const std::vector<InputFile>& files,
                                std::chrono::seconds) {
  if (!claimOf(vm)) return StepResult::failure("no machine was claimed for this VM");
  return jobs_.copyIn(instanceName(cfg_.prefix, vm), files);
}

RunResult TashiSshVmms::runJob(const TangoMachine& vm, const RunSpec& spec) {
  auto c = claimOf(vm);
  if (!c) {
    RunResult r;
    r.error = "no machine was claimed for this VM";
    return r;
  }
  auto r = jobs_.runJob(instanceName(cfg_.prefix, vm), *c->machine->session, c->user, spec,
                        /*resetAfter=*/true);
  // ssh itself failed (the machine went away mid-job): out of service until
  // it answers again; the worker retries the job elsewhere.
  if (r.status < 0 && r.error.find("ssh to ") != std::string::npos)
    takeOutOfService(static_cast<std::size_t>(c->machine - machines_.data()), r.error);
  return r;
}

StepResult TashiSshVmms::copyOut(const TangoMachine& vm, const fs::path& dest,
                                 std::chrono::seconds) {
  return jobs_.copyOut(instanceName(cfg_.prefix, vm), dest);
}

std::optional<std::string> TashiSshVmms::getPartialOutput(const TangoMachine& vm) {
  return jobs_.partialOutput(instanceName(cfg_.prefix, vm));
}

StepResult TashiSshVmms::resetVM(const TangoMachine& vm) {
  auto c = claimOf(vm);
  if (!c) return StepResult::failure("no machine was claimed for this VM");
  auto r = jobs_.resetAfterJob(instanceName(cfg_.prefix, vm), *c->machine->session, c->user,
                               kResetTimeout);
  if (!r.ok) {
    resetFailed(static_cast<std::size_t>(c->machine - machines_.data()), c->user, r.error);
    release(instanceName(cfg_.prefix, vm));
  }
  return r;
}

void TashiSshVmms::release(const std::string& name) {
  jobs_.forget(name);
  {
    std::lock_guard lock(mu_);
    for (auto& s : slots_)
      if (s.vm == name) s.vm.clear();
  }
  cv_.notify_all();
}

StepResult TashiSshVmms::destroyVM(const TangoMachine& vm) {
  // The slot's machine stays; what the job left on it goes (a machine that
  // cannot be reset leaves service until it can).
  const std::string name = instanceName(cfg_.prefix, vm);
  auto resetting = jobs_.forget(name);
  auto c = claimOf(vm);
  if (!c) return StepResult::success();
  const auto i = static_cast<std::size_t>(c->machine - machines_.data());
  bool up;
  {
    std::lock_guard lock(mu_);
    up = machines_[i].inService;
  }
  if (up) {
    // The last run's own reset ends first: two at once would race.
    if (resetting)
      c->machine->session->finish(*resetting, Clock::now() + kResetTimeout, nullptr, nullptr);
    if (auto r = SshJobs::reset(*c->machine->session, c->user, kResetTimeout); !r.ok)
      resetFailed(i, c->user, r.error);
  }
  release(name);
  return StepResult::success();
}

std::vector<std::string> TashiSshVmms::getImages() {
  std::set<std::string> all;
  for (const auto& m : machines_) all.insert(m.conf.images.begin(), m.conf.images.end());
  return {all.begin(), all.end()};
}

std::optional<std::string> TashiSshVmms::machineOf(const TangoMachine& vm) {
  auto c = claimOf(vm);
  if (!c) return std::nullopt;
  return c->machine->conf.name;
}

bool TashiSshVmms::inService(const std::string& machine) {
  std::lock_guard lock(mu_);
  for (const auto& m : machines_)
    if (m.conf.name == machine) return m.inService;
  return false;
}

}  // namespace tango
