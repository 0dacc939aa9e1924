#include "tango/vmms/DockerVmms.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "tango/docker/Tar.hpp"
#include "tango/docker/UsageLine.hpp"
#include "tango/util/Lines.hpp"

namespace tango {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using docker::TarEntry;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kPrefixLabel = "tango.prefix";
constexpr const char* kIdLabel = "tango.vmId";
constexpr const char* kImageLabel = "tango.image";
// The grading user's home in Tango's images and in the user we add.
constexpr const char* kGradingHome = "/home/autograde";
// Extra stdout kept beyond the job's cap: the autodriver's header line and
// the elision marker. The autodriver caps; this bounds a broken one.
constexpr std::int64_t kOutputSlack = 64 * 1024;
constexpr std::size_t kStderrCap = 64 * 1024;
constexpr int kVmmsProcesses = 4;
// What the autodriver needs as root in the container: hand the job directory
// to the grading user (CHOWN, FOWNER, DAC_OVERRIDE), become that user
// (SETUID, SETGID) and kill what the job left behind (KILL). Nothing else.
const std::vector<std::string> kCaps = {"CHOWN",  "SETUID",       "SETGID",
                                        "FOWNER", "DAC_OVERRIDE", "KILL"};

std::string socketFromEnv() {
  const char* h = std::getenv("DOCKER_HOST");
  if (h && std::string_view(h).starts_with("unix://")) return std::string(h + 7);
  return "/var/run/docker.sock";
}

std::optional<std::string> readHostFile(const fs::path& p, std::int64_t max) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (static_cast<std::int64_t>(s.size()) > max) return std::nullopt;
  return s;
}

bool hasUser(std::string_view passwd, std::string_view user) {
  const std::string prefix = std::string(user) + ":";
  bool found = false;
  forEachLine(passwd, [&](std::string_view line) { return !(found = line.starts_with(prefix)); });
  return found;
}

// The first uid/gid from 61000 up that no line of `file` uses (field 3).
unsigned freeId(std::string_view file) {
  std::set<unsigned> used;
  forEachLine(file, [&](std::string_view line) {
    std::size_t a = line.find(':'), b = a == std::string_view::npos ? a : line.find(':', a + 1);
    if (b == std::string_view::npos) return true;
    std::string_view num = line.substr(b + 1, line.find(':', b + 1) - b - 1);
    unsigned v = 0;
    if (std::from_chars(num.data(), num.data() + num.size(), v).ec == std::errc()) used.insert(v);
    return true;
  });
  unsigned id = 61000;
  while (used.count(id)) ++id;
  return id;
}

// "N" after "key " on a line of a cgroup file's text; 0 if absent.
std::int64_t counter(std::string_view text, std::string_view key) {
  std::int64_t v = 0;
  forEachLine(text, [&](std::string_view line) {
    if (!line.starts_with(key) || line.size() <= key.size() || line[key.size()] != ' ') return true;
    std::string_view num = line.substr(key.size() + 1);
    std::from_chars(num.data(), num.data() + num.size(), v);
    return false;
  });
  return v;
}

// The job's processes and threads, plus what the VMMS runs in the container
// besides them: init, the keepalive, the autodriver.
std::int64_t pidsLimitFor(int procs) { return std::max(procs, 1) + kVmmsProcesses; }

std::chrono::milliseconds ms(std::chrono::seconds s) {
  return s.count() > 0 ? std::chrono::milliseconds(s) : std::chrono::milliseconds(60s);
}

}  // namespace

DockerVmms::DockerVmms(const Config& cfg, std::string socketPath)
    : cfg_(cfg), engine_(socketPath.empty() ? socketFromEnv() : std::move(socketPath)) {}

std::string DockerVmms::containerName(const TangoMachine& vm) const {
  std::string n = instanceName(cfg_.prefix, vm);
  for (char& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') c = '_';
  return n;
}

bool DockerVmms::pidsLimited() {
  std::lock_guard lock(mu_);
  if (!pidsLimited_) {
    try {
      pidsLimited_ = engine_.supportsPidsLimit();
    } catch (const docker::DockerError& e) {
      spdlog::warn("cannot ask the engine about pids limits: {}", e.what());
      return false;  // ask again next time; meanwhile -u holds
    }
    if (!*pidsLimited_)
      spdlog::warn(
          "the Docker engine cannot limit processes per container: falling back to "
          "RLIMIT_NPROC, which all containers' grading users share");
  }
  return *pidsLimited_;
}

const std::string* DockerVmms::autodriverBytes() {
  std::lock_guard lock(mu_);
  if (cfg_.autodriver.empty()) return nullptr;
  if (!autodriver_) {
    auto bytes = readHostFile(cfg_.autodriver, 256LL * 1024 * 1024);
    if (!bytes) return nullptr;
    autodriver_ = std::move(*bytes);
  }
  return &*autodriver_;
}

StepResult DockerVmms::initializeVM(const TangoMachine& vm, std::chrono::seconds timeout) {
  docker::ContainerSpec spec;
  spec.name = containerName(vm);
  spec.image = vm.image.empty() ? vm.name : vm.image;
  spec.labels = {
      {kPrefixLabel, cfg_.prefix}, {kIdLabel, std::to_string(vm.id)}, {kImageLabel, vm.name}};
  // The keepalive: the job runs through exec, PID 1 only keeps the container up.
  spec.entrypoint = {"sleep"};
  spec.cmd = {"infinity"};
  if (auto cores = vm.cores ? vm.cores : cfg_.dockerCoresLimit; cores && *cores > 0)
    spec.nanoCpus = static_cast<std::int64_t>(*cores) * 1'000'000'000;
  if (auto mem = vm.memory ? vm.memory : cfg_.dockerMemoryLimit; mem && *mem > 0)
    spec.memoryBytes = static_cast<std::int64_t>(*mem) * 1024 * 1024;
  spec.pidsLimit = pidsLimitFor(cfg_.vmUlimitUserProc);
  spec.capAdd = kCaps;
  // Every place the grading user can write is a tmpfs of VM_DISK_LIMIT (the
  // pool's `disk` if set): the job's files (moved into its home by the
  // autodriver), /tmp, /var/tmp, /dev/shm. Nothing it writes reaches the
  // host disk, and with a memory limit its files count against it too.
  // Docker mounts tmpfs noexec unless told: jobs run what they compile.
  const std::int64_t diskMb = vm.disk && *vm.disk > 0 ? *vm.disk : cfg_.vmDiskLimit;
  const std::string size = "size=" + std::to_string(diskMb) + "m";
  spec.tmpfs = {{"/tmp", "rw,exec,nosuid,nodev," + size + ",mode=1777"},
                {"/var/tmp", "rw,exec,nosuid,nodev," + size + ",mode=1777"},
                {"/run/lock", "rw,nosuid,nodev,noexec,size=1m,mode=1777"},
                {kGradingHome, "rw,exec,nosuid,nodev," + size + ",mode=1777"}};
  spec.shmBytes = diskMb * 1024 * 1024;
  // No network until a job asks for one: most jobs run without, and a
  // container without a network endpoint starts and goes faster.
  spec.networkNone = true;
  try {
    try {
      engine_.createContainer(spec, ms(timeout));
    } catch (const docker::EngineError& e) {
      if (e.status != 409) throw;
      // A leftover of the same name (a crash between create and record): replace it.
      engine_.removeContainer(spec.name);
      engine_.createContainer(spec, ms(timeout));
    }
    engine_.startContainer(spec.name, ms(timeout));
  } catch (const docker::DockerError& e) {
    return StepResult::failure(e.what());
  }
  return StepResult::success();
}

StepResult DockerVmms::waitVM(const TangoMachine& vm, std::chrono::seconds timeout) {
  const std::string name = containerName(vm);
  const auto deadline = Clock::now() + timeout;
  try {
    std::optional<docker::ContainerState> st;
    while (true) {
      st = engine_.inspectContainer(name);
      if (!st) return StepResult::failure("container " + name + " does not exist");
      if (st->running) break;
      if (Clock::now() >= deadline)
        return StepResult::failure("container " + name + " is not running");
      std::this_thread::sleep_for(50ms);
    }
    {
      std::lock_guard lock(mu_);
      if (setups_.count(name)) return StepResult::success();
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    auto setup = setupFor(name, st->imageId, std::max(left, std::chrono::milliseconds(5s)));
    if (!setup.entries) return StepResult::failure(setup.error);
    std::lock_guard lock(mu_);
    setups_[name] = {std::move(setup.entries), st->networks};
    return StepResult::success();
  } catch (const docker::DockerError& e) {
    return StepResult::failure(e.what());
  }
}

DockerVmms::ImageSetup DockerVmms::setupFor(const std::string& name, const std::string& imageId,
                                            std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(mu_);
    if (auto it = setupByImage_.find(imageId); it != setupByImage_.end() && !imageId.empty())
      return {it->second, ""};
  }
  auto entries = std::make_shared<std::vector<TarEntry>>();
  // Root-owned and not writable by the job: it cannot swap the autodriver or
  // fake its partial output.
  entries->push_back({"opt", TarEntry::Kind::Dir, "", 0755});
  entries->push_back({"opt/tango", TarEntry::Kind::Dir, "", 0755});
  if (const std::string* ad = autodriverBytes()) {
    entries->push_back({"opt/tango/autodriver", TarEntry::Kind::File, *ad, 0755});
  } else if (!cfg_.autodriver.empty()) {
    return {nullptr, "autodriver not readable at '" + cfg_.autodriver.string() + "'"};
  }
  // Images without a grading user (any image with make) get one, so the
  // autodriver can drop privileges; Tango's images already have it. Every
  // container of an image has the same files: they are read once per image.
  auto passwdTar = engine_.getArchive(name, "/etc/passwd", 4 << 20, timeout);
  auto groupTar = engine_.getArchive(name, "/etc/group", 4 << 20, timeout);
  std::string passwd = passwdTar ? docker::firstFileOfTar(*passwdTar, 4 << 20).value_or("") : "";
  std::string group = groupTar ? docker::firstFileOfTar(*groupTar, 4 << 20).value_or("") : "";
  if (!hasUser(passwd, "autograde")) {
    const unsigned id = std::max(freeId(passwd), freeId(group));
    if (!passwd.empty() && passwd.back() != '\n') passwd += '\n';
    passwd += "autograde:x:" + std::to_string(id) + ":" + std::to_string(id) +
              ":Tango grading user:/home/autograde:/bin/sh\n";
    if (!hasUser(group, "autograde")) {
      if (!group.empty() && group.back() != '\n') group += '\n';
      group += "autograde:x:" + std::to_string(id) + ":\n";
    }
    entries->push_back({"etc/passwd", TarEntry::Kind::File, passwd, 0644});
    entries->push_back({"etc/group", TarEntry::Kind::File, group, 0644});
    entries->push_back({"home", TarEntry::Kind::Dir, "", 0755});
    entries->push_back({"home/autograde", TarEntry::Kind::Dir, "", 0755, id, id});
  }
  std::lock_guard lock(mu_);
  if (!imageId.empty()) setupByImage_[imageId] = entries;
  return {std::move(entries), ""};
}

StepResult DockerVmms::warmUp(const TangoMachine& vm, std::chrono::seconds timeout) {
  // A pool container gets its setup now, off the job's path; copyIn then
  // sends only the job's files.
  const std::string name = containerName(vm);
  Entries entries;
  {
    std::lock_guard lock(mu_);
    auto it = setups_.find(name);
    if (it == setups_.end()) return StepResult::failure("container " + name + " was not prepared");
    entries = std::move(it->second.entries);
  }
  try {
    if (entries) engine_.putArchive(name, "/", docker::makeTar(*entries), ms(timeout));
  } catch (const std::exception& e) {
    return StepResult::failure(e.what());
  }
  return StepResult::success();
}

StepResult DockerVmms::copyIn(const TangoMachine& vm, const std::vector<InputFile>& files,
                              std::chrono::seconds timeout) {
  const std::string name = containerName(vm);
  std::vector<TarEntry> entries;
  {
    // The container's setup (autodriver, grading user) travels in the job's
    // archive: each archive call costs a chroot'd tar process in dockerd.
    std::lock_guard lock(mu_);
    auto it = setups_.find(name);
    if (it == setups_.end()) return StepResult::failure("container " + name + " was not prepared");
    if (it->second.entries) entries = *it->second.entries;  // null: warmUp sent it
  }
  entries.push_back({std::string(kJobDir).substr(1), TarEntry::Kind::Dir, "", 0755});
  for (const auto& f : files) {
    auto bytes = readHostFile(f.localFile, cfg_.maxInputFileSize);
    if (!bytes) return StepResult::failure("cannot read input file " + f.destFile);
    entries.push_back({std::string(kJobDir).substr(1) + "/" + f.destFile, TarEntry::Kind::File,
                       std::move(*bytes), 0644});
  }
  try {
    engine_.putArchive(name, "/", docker::makeTar(entries), ms(timeout));
  } catch (const std::exception& e) {
    return StepResult::failure(e.what());
  }
  return StepResult::success();
}

RunResult DockerVmms::runJob(const TangoMachine& vm, const RunSpec& spec) {
  RunResult result;
  auto fail = [&](std::string why) {
    result.status = -1;
    result.error = std::move(why);
    return result;
  };
  const std::string name = containerName(vm);
  const bool ours = !cfg_.autodriver.empty();
  std::vector<std::string> cmd{ours ? kAutodriver : kImageAutodriver};
  // RLIMIT_NPROC counts every process of a host uid, and the grading user
  // of every container is the same host uid: one job's fork bomb would make
  // the fork of every other job fail. The container's pids limit is the
  // job's own; -u only where the engine cannot set one.
  if (spec.ulimitProcs > 0 && !pidsLimited())
    cmd.insert(cmd.end(), {"-u", std::to_string(spec.ulimitProcs)});
  if (spec.ulimitFileSize > 0) cmd.insert(cmd.end(), {"-f", std::to_string(spec.ulimitFileSize)});
  if (spec.timeoutSecs > 0) cmd.insert(cmd.end(), {"-t", std::to_string(spec.timeoutSecs)});
  if (spec.maxOutputBytes > 0) cmd.insert(cmd.end(), {"-o", std::to_string(spec.maxOutputBytes)});
  // Tango's own autodriver knows neither CPU time, the partial file nor the usage report.
  const int cpuSecs = spec.cpuTimeSecs > 0 ? spec.cpuTimeSecs : cfg_.vmCpuTimeLimit;
  if (ours && cpuSecs > 0) cmd.insert(cmd.end(), {"-c", std::to_string(cpuSecs)});
  if (ours) cmd.insert(cmd.end(), {"-P", kPartial, "-R"});
  cmd.push_back(kJobDir);

  std::vector<std::string> networks;
  {
    std::lock_guard lock(mu_);
    if (auto it = setups_.find(name); it != setups_.end()) networks = it->second.networks;
  }
  try {
    // Containers start with NetworkMode "none" (loopback only). A job asking
    // for the network gets the default bridge; a job without it runs with
    // none, whatever other network a container was somehow given.
    if (!spec.disableNetwork) {
      engine_.disconnectNetwork("none", name);
      engine_.connectNetwork("bridge", name);
    } else {
      for (const auto& net : networks)
        if (net != "none") engine_.disconnectNetwork(net, name);
    }
  } catch (const docker::DockerError& e) {
    return fail(std::string("cannot set up the job's network: ") + e.what());
  }
  try {
    // A job's own memory and process limits replace the container's (a
    // pool's containers were made before their jobs were known).
    const std::int64_t pids = spec.ulimitProcs > 0 && spec.ulimitProcs != cfg_.vmUlimitUserProc
                                  ? pidsLimitFor(spec.ulimitProcs)
                                  : 0;
    engine_.updateContainer(name, spec.memoryLimitBytes, pids);
  } catch (const docker::DockerError& e) {
    return fail(std::string("cannot apply the job's limits: ") + e.what());
  }

  const std::int64_t cap = std::max<std::int64_t>(spec.maxOutputBytes, 0) + kOutputSlack;
  {
    std::lock_guard lock(mu_);
    if (runningCaps_.count(name)) return fail("a job is already running in " + name);
    runningCaps_[name] = spec.maxOutputBytes > 0 ? spec.maxOutputBytes : cfg_.maxOutputFileSize;
    outputs_.erase(name);
  }
  struct Unregister {
    DockerVmms* self;
    const std::string& name;
    ~Unregister() {
      std::lock_guard lock(self->mu_);
      self->runningCaps_.erase(name);
    }
  } unregister{this, name};

  std::string out, err;
  auto onOut = [&](std::string_view c) {
    if (static_cast<std::int64_t>(out.size()) < cap)
      out.append(c.substr(0, static_cast<std::size_t>(std::min<std::int64_t>(
                                 static_cast<std::int64_t>(c.size()),
                                 cap - static_cast<std::int64_t>(out.size())))));
  };
  auto onErr = [&](std::string_view c) {
    if (err.size() < kStderrCap)
      err.append(c.substr(0, std::min(c.size(), kStderrCap - err.size())));
  };
  std::chrono::seconds hard = spec.hardTimeout;
  if (hard <= 0s) hard = std::chrono::seconds(std::max(spec.timeoutSecs, 0)) + 30s;
  int code = -1;
  try {
    code = engine_.exec(name, cmd, {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"}, "root",
                        onOut, onErr, hard);
  } catch (const docker::DockerTimeout&) {
    // Killing PID 1 ends every process of the container, the run included.
    try {
      engine_.killContainer(name);
    } catch (const docker::DockerError&) {
    }
    return fail("the run exceeded the hard timeout of " + std::to_string(hard.count()) +
                " s; container killed");
  } catch (const docker::DockerError& e) {
    return fail(e.what());
  }
  {
    std::lock_guard lock(mu_);
    if (destroyedWhileRunning_.erase(name)) return fail("the VM was destroyed while the job ran");
  }
  result.usage = docker::parseUsageLine(err);
  if (code < 0 || code > 3) {
    // 126/127: the autodriver could not be started (missing, wrong format);
    // 137: the container was killed under it.
    auto st = engine_.inspectContainer(name);
    if (st && st->oomKilled) {
      result.notice = limitNotice(name, vm, spec);
      return fail("the container was killed by the memory limit");
    }
    return fail("the autodriver exited with " + std::to_string(code) +
                (err.empty() ? "" : ": " + docker::stderrExcerpt(err)));
  }
  result.status = code;
  if (code != 0 && code != 2) result.error = docker::stderrExcerpt(err);
  // A job killed by a cgroup limit looks like any failing make; say why.
  const bool clean =
      code == 0 && result.usage && result.usage->exitStatus == 0 && result.usage->signal == 0;
  if (!clean) result.notice = limitNotice(name, vm, spec);
  std::lock_guard lock(mu_);
  outputs_[name] = std::move(out);
  return result;
}

std::string DockerVmms::limitNotice(const std::string& name, const TangoMachine& vm,
                                    const RunSpec& spec) {
  // cgroup v2 and v1 paths; the container sees its own cgroup at these.
  const std::string script =
      "for f in /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control; do "
      "cat $f; done 2>/dev/null; echo ==; for f in /sys/fs/cgroup/pids.events "
      "/sys/fs/cgroup/pids/pids.events; do cat $f; done 2>/dev/null";
  std::string text;
  try {
    engine_.exec(
        name, {"/bin/sh", "-c", script}, {}, "root",
        [&](std::string_view c) {
          if (text.size() < 8192) text.append(c);
        },
        nullptr, 10s);
  } catch (const docker::DockerError& e) {
    spdlog::debug("limit check in {} failed: {}", name, e.what());
    return "";
  }
  const auto sep = text.find("==");
  const std::string_view mem = std::string_view(text).substr(0, sep);
  const std::string_view pids =
      sep == std::string::npos ? std::string_view() : std::string_view(text).substr(sep + 2);
  auto memLimit = spec.memoryLimitBytes > 0
                      ? std::optional<int>(static_cast<int>(spec.memoryLimitBytes >> 20))
                  : vm.memory ? vm.memory
                              : cfg_.dockerMemoryLimit;
  if (counter(mem, "oom_kill") > 0)
    return "Error: the job was killed for exceeding the memory limit" +
           (memLimit ? " of " + std::to_string(*memLimit) + " MB" : std::string());
  if (counter(pids, "max") > 0)
    return "Error: the job hit the limit on the number of processes (" +
           std::to_string(spec.ulimitProcs > 0 ? spec.ulimitProcs : cfg_.vmUlimitUserProc) + ")";
  return "";
}

StepResult DockerVmms::copyOut(const TangoMachine& vm, const fs::path& dest, std::chrono::seconds) {
  std::string out;
  {
    std::lock_guard lock(mu_);
    auto it = outputs_.find(containerName(vm));
    if (it == outputs_.end()) return StepResult::failure("no output recorded for this VM");
    out = std::move(it->second);
    outputs_.erase(it);
  }
  std::ofstream f(dest, std::ios::binary | std::ios::trunc);
  f.write(out.data(), static_cast<std::streamsize>(out.size()));
  f.close();
  if (!f) return StepResult::failure("cannot write " + dest.string());
  return StepResult::success();
}

StepResult DockerVmms::destroyVM(const TangoMachine& vm) {
  const std::string name = containerName(vm);
  {
    std::lock_guard lock(mu_);
    setups_.erase(name);
    outputs_.erase(name);
    if (runningCaps_.count(name)) destroyedWhileRunning_.insert(name);
  }
  try {
    if (!engine_.removeContainer(name)) return StepResult::failure("cannot remove " + name);
  } catch (const docker::DockerError& e) {
    return StepResult::failure(e.what());
  }
  return StepResult::success();
}

StepResult DockerVmms::safeDestroyVM(const TangoMachine& vm) {
  const std::string name = containerName(vm);
  const auto deadline = Clock::now() + 30s;
  StepResult last = destroyVM(vm);
  while (Clock::now() < deadline) {
    try {
      if (!engine_.inspectContainer(name)) return StepResult::success();
      last = destroyVM(vm);
    } catch (const docker::DockerError& e) {
      last = StepResult::failure(e.what());
    }
    std::this_thread::sleep_for(200ms);
  }
  spdlog::warn("container {} is still there: {}", name, last.error);
  return StepResult::failure("container " + name + " is still there: " + last.error);
}

std::vector<TangoMachine> DockerVmms::getVMs() {
  std::vector<TangoMachine> vms;
  try {
    for (const auto& c : engine_.listByLabel(kPrefixLabel, cfg_.prefix)) {
      TangoMachine vm;
      auto id = c.labels.find(kIdLabel);
      auto image = c.labels.find(kImageLabel);
      if (id == c.labels.end() || image == c.labels.end()) continue;
      std::int64_t v = 0;
      if (std::from_chars(id->second.data(), id->second.data() + id->second.size(), v).ec !=
          std::errc())
        continue;
      vm.id = v;
      vm.name = vm.image = image->second;
      vm.vmms = name();
      vms.push_back(std::move(vm));
    }
  } catch (const docker::DockerError& e) {
    spdlog::warn("cannot list containers: {}", e.what());
  }
  return vms;
}

std::vector<std::string> DockerVmms::getImages() {
  // Every addJob checks its image: answer from a list at most a moment old
  // rather than asking the engine each time (a build through us refreshes it).
  {
    std::lock_guard lock(mu_);
    if (imagesAt_ && Clock::now() - *imagesAt_ < kImagesTtl) return images_;
  }
  std::set<std::string> names;
  try {
    for (auto tag : engine_.imageTags()) {
      // Tango names images without the default tag.
      if (tag.ends_with(":latest")) tag.resize(tag.size() - 7);
      names.insert(std::move(tag));
    }
  } catch (const docker::DockerError& e) {
    spdlog::warn("cannot list images: {}", e.what());
    return {};
  }
  std::lock_guard lock(mu_);
  images_.assign(names.begin(), names.end());
  imagesAt_ = Clock::now();
  return images_;
}

std::optional<std::string> DockerVmms::getPartialOutput(const TangoMachine& vm) {
  const std::string name = containerName(vm);
  std::int64_t cap = cfg_.maxOutputFileSize;
  {
    std::lock_guard lock(mu_);
    if (auto it = runningCaps_.find(name); it != runningCaps_.end()) cap = it->second;
  }
  try {
    // The tar adds headers and padding around the file: allow for them.
    auto tar = engine_.getArchive(name, kPartial, static_cast<std::size_t>(cap) + 16384, 10s);
    if (!tar) return std::nullopt;
    return docker::firstFileOfTar(*tar, static_cast<std::size_t>(cap));
  } catch (const docker::DockerError& e) {
    spdlog::debug("partial output of {}: {}", name, e.what());
    return std::nullopt;
  }
}

StepResult DockerVmms::buildImage(const std::string& imageName, const fs::path& tarball) {
  try {
    const std::string loaded = engine_.loadImage(tarball, 600s);
    engine_.tagImage(loaded, imageName, "latest");
    std::lock_guard lock(mu_);
    imagesAt_.reset();
  } catch (const docker::DockerError& e) {
    spdlog::warn("image build for {} failed: {}", imageName, e.what());
    // Tango's words first: clients match on them.
    return StepResult::failure(std::string("Image build failed: ") + e.what());
  }
  return StepResult::success();
}

}  // namespace tango
