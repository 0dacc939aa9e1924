#include "tango/vmms/LocalVmms.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <system_error>
#include <thread>

#include "tango/util/Fd.hpp"
#include "tango/util/Process.hpp"
#include "tango/util/SafeName.hpp"
#include "tango/vmms/LocalFiles.hpp"
#include "tango/vmms/TreeRemoval.hpp"

namespace tango {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using local::copyData;
using local::deadlineAfter;
using local::errnoText;
using local::openDir;
using local::readCapped;

namespace {

constexpr const char* kDefaultImage = "autograding_image";
constexpr auto kKillWait = 10s;  // how long destroy waits for a uid's processes to go

}  // namespace

std::optional<std::string> LocalVmms::checkedInstance(const TangoMachine& vm) const {
  if (vm.id <= 0 || !isSafeName(vm.name)) return std::nullopt;
  std::string inst = instanceName(cfg_.prefix, vm);
  if (!isSafeName(inst)) return std::nullopt;
  return inst;
}

fs::path LocalVmms::vmDir(const TangoMachine& vm) const {
  return vmsDir_ / instanceName(cfg_.prefix, vm);
}

std::optional<uid_t> LocalVmms::vmUid(const TangoMachine& vm) const {
  if (!checkedInstance(vm)) return std::nullopt;
  return readUid(vmDir(vm));
}

std::optional<uid_t> LocalVmms::readUid(const fs::path& dir) const {
  Fd d = openDir(AT_FDCWD, dir.c_str());
  if (!d) return std::nullopt;
  Fd f(::openat(d.get(), "uid", O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!f) return std::nullopt;
  std::string text = readCapped(f.get(), 32);
  char* end = nullptr;
  unsigned long v = std::strtoul(text.c_str(), &end, 10);
  if (end == text.c_str()) return std::nullopt;
  if (v < cfg_.local.uidBase ||
      v >= static_cast<unsigned long>(cfg_.local.uidBase) + cfg_.local.slots)
    return std::nullopt;
  return static_cast<uid_t>(v);
}

std::optional<fs::path> LocalVmms::imageRoot(const TangoMachine& vm) const {
  auto lookup = [&](const std::string& image) -> std::optional<fs::path> {
    if (image.empty()) return std::nullopt;
    if (cfg_.local.images.empty()) {
      if (image == kDefaultImage) return fs::path("/");
      return std::nullopt;
    }
    auto it = cfg_.local.images.find(image);
    if (it == cfg_.local.images.end()) return std::nullopt;
    return fs::absolute(it->second);
  };
  if (auto r = lookup(vm.image)) return r;
  return lookup(vm.name);
}

std::vector<std::string> LocalVmms::getImages() {
  std::vector<std::string> images;
  if (cfg_.local.images.empty()) return {kDefaultImage};
  for (const auto& [name, root] : cfg_.local.images) images.push_back(name);
  return images;
}

// One lock file per sandbox uid, held (flock) while a VM has that uid, in a
// directory every service on this host shares: two services whose uid
// ranges overlap never hand out the same uid. A killed service's locks go
// with its process, so its leftovers' uids may be another's by the time it
// starts again: it kills their processes only once it holds the lock
// (holdUid).
Fd LocalVmms::lockUid(uid_t uid) {
  static const char* kDir = "/run/tango-local-uids";
  ::mkdir(kDir, 0700);
  const std::string path = std::string(kDir) + "/" + std::to_string(uid);
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return {};
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return {};
  return fd;
}

bool LocalVmms::holdUid(uid_t uid) {
  // Outside this service's range (UID_BASE changed since): free right now.
  if (uid < cfg_.local.uidBase || uid >= cfg_.local.uidBase + cfg_.local.slots)
    return lockSlotUids(uid).has_value();
  const std::uint32_t slot = uid - cfg_.local.uidBase;
  std::lock_guard lock(mu_);
  if (uidLocks_.count(slot)) return true;
  auto held = lockSlotUids(uid);
  if (!held) return false;
  uidLocks_[slot] = std::move(*held);  // released with the slot
  return true;
}

std::optional<std::pair<Fd, Fd>> LocalVmms::lockSlotUids(uid_t vmUid) const {
  Fd held = lockUid(vmUid);
  Fd keeperHeld = held ? lockUid(keeperUid(vmUid)) : Fd();
  if (!keeperHeld) return std::nullopt;
  return std::make_pair(std::move(held), std::move(keeperHeld));
}

StepResult LocalVmms::initializeVM(const TangoMachine& vm, std::chrono::seconds) {
  auto inst = checkedInstance(vm);
  if (!inst) return StepResult::failure("invalid VM name or id");
  if (!imageRoot(vm)) return StepResult::failure("unknown image " + vm.name);
  if (cfg_.local.slots == 0) return StepResult::failure("no local VM slots configured");

  std::uint32_t slot = 0;
  {
    std::lock_guard lock(mu_);
    bool found = false;
    for (std::uint32_t i = 0; i < cfg_.local.slots; ++i) {
      std::uint32_t s = (nextSlot_ + i) % cfg_.local.slots;
      if (usedSlots_.count(s)) continue;
      // Another service on this host (a second node, an overlapping
      // UID_BASE) may be using either uid: never share it.
      auto held = lockSlotUids(cfg_.local.uidBase + s);
      if (!held) continue;
      uidLocks_[s] = std::move(*held);
      slot = s;
      found = true;
      break;
    }
    if (!found) return StepResult::failure("all local VM slots are in use");
    usedSlots_.insert(slot);
    nextSlot_ = (slot + 1) % cfg_.local.slots;
  }
  const uid_t uid = cfg_.local.uidBase + slot;
  auto release = [&] {
    std::lock_guard lock(mu_);
    usedSlots_.erase(slot);
    uidLocks_.erase(slot);
  };

  const fs::path dir = vmsDir_ / *inst;
  if (::mkdir(dir.c_str(), 0700) != 0) {
    int err = errno;
    release();
    return StepResult::failure(err == EEXIST ? "VM " + *inst + " already exists"
                                             : errnoText("mkdir " + dir.string(), err));
  }
  auto failed = [&](const std::string& why) {
    std::string ignored;
    removeDirTree(vmsDir_, *inst, ignored);
    release();
    return StepResult::failure(why);
  };
  Fd d = openDir(AT_FDCWD, dir.c_str());
  if (!d) return failed(errnoText("open " + dir.string()));
  // The uid file comes first so a crash right after mkdir still leaves a
  // directory whose uid a restart can recover.
  {
    Fd f(::openat(d.get(), "uid", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!f || !writeAll(f.get(), std::to_string(uid) + "\n") || ::fsync(f.get()) != 0)
      return failed(errnoText("writing uid file"));
  }
  const uid_t keeper = keeperUid(uid);
  if (::mkdirat(d.get(), "job", 0700) != 0 ||
      ::fchownat(d.get(), "job", keeper, keeper, AT_SYMLINK_NOFOLLOW) != 0 ||
      ::fchmodat(d.get(), "job", 0700, 0) != 0)
    return failed(errnoText("creating job"));
  // Root's: no uid of the sandbox may create anything here, since this
  // directory is on the host disk (its `partial` is made for each run).
  if (::mkdirat(d.get(), "run", 0711) != 0 || ::fchmodat(d.get(), "run", 0711, 0) != 0)
    return failed(errnoText("creating run"));
  // Only now can the keeper uid traverse the directory (it cannot list it).
  if (::fchmod(d.get(), 0711) != 0) return failed(errnoText("chmod " + dir.string()));
  startWarm(vm, *inst, uid);
  spdlog::debug("local VMMS: created {} (uid {})", *inst, uid);
  return StepResult::success();
}

StepResult LocalVmms::waitVM(const TangoMachine& vm, std::chrono::seconds) {
  // A local VM is ready as soon as it exists: only check it is intact.
  auto inst = checkedInstance(vm);
  if (!inst) return StepResult::failure("invalid VM name or id");
  const fs::path dir = vmsDir_ / *inst;
  auto uid = readUid(dir);
  if (!uid) return StepResult::failure("VM " + *inst + " does not exist or has no uid");
  Fd d = openDir(AT_FDCWD, dir.c_str());
  if (!d) return StepResult::failure(errnoText("open " + dir.string()));
  for (const char* sub : {"job", "run"}) {
    struct stat st {};
    const uid_t owner = std::string_view(sub) == "job" ? keeperUid(*uid) : 0;
    if (::fstatat(d.get(), sub, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode) ||
        st.st_uid != owner)
      return StepResult::failure("VM " + *inst + " is damaged: " + sub + "/ is missing or foreign");
  }
  return StepResult::success();
}

StepResult LocalVmms::copyIn(const TangoMachine& vm, const std::vector<InputFile>& files,
                             std::chrono::seconds timeout) {
  const auto deadline = deadlineAfter(timeout);
  auto inst = checkedInstance(vm);
  if (!inst) return StepResult::failure("invalid VM name or id");
  const fs::path dir = vmsDir_ / *inst;
  auto uid = readUid(dir);
  if (!uid) return StepResult::failure("VM " + *inst + " does not exist");
  Fd d = openDir(AT_FDCWD, dir.c_str());
  Fd job = d ? openDir(d.get(), "job") : Fd();
  if (!job) return StepResult::failure(errnoText("open job directory"));

  for (const auto& f : files) {
    // Defense in depth: the REST layer validated these names already.
    if (!isSafeName(f.destFile)) return StepResult::failure("unsafe destination name");
    // Errors name the file by its destination: its host path holds the
    // courselab directory's name, and with it the API key.
    if (f.localFile.empty() || f.localFile[0] != '/')
      return StepResult::failure("input path of " + f.destFile + " is not absolute");
    // O_NONBLOCK: a FIFO planted in place of an input must not hang the worker.
    Fd in(::open(f.localFile.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!in) return StepResult::failure(errnoText("open the input for " + f.destFile));
    struct stat st {};
    if (::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode))
      return StepResult::failure("the input for " + f.destFile + " is not a regular file");
    ::fcntl(in.get(), F_SETFL, 0);
    const mode_t mode = (st.st_mode & 0111) ? 0700 : 0600;
    Fd out(::openat(job.get(), f.destFile.c_str(),
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!out) return StepResult::failure(errnoText("create " + f.destFile));
    // The keeper's: the autodriver copies it into the job's home.
    if (::fchown(out.get(), keeperUid(*uid), keeperUid(*uid)) != 0 ||
        ::fchmod(out.get(), mode) != 0)
      return StepResult::failure(errnoText("chown " + f.destFile));
    if (auto err = copyData(in.get(), out.get(), deadline); !err.empty())
      return StepResult::failure("copying " + f.destFile + ": " + err);
  }
  return StepResult::success();
}

StepResult LocalVmms::copyOut(const TangoMachine& vm, const fs::path& dest,
                              std::chrono::seconds timeout) {
  const auto deadline = deadlineAfter(timeout);
  auto inst = checkedInstance(vm);
  if (!inst) return StepResult::failure("invalid VM name or id");
  Fd d = openDir(AT_FDCWD, (vmsDir_ / *inst).c_str());
  if (!d) return StepResult::failure("VM " + *inst + " does not exist");
  Fd in(::openat(d.get(), "output", O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in) return StepResult::failure(errnoText("the VM has no output"));
  struct stat st {};
  if (::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return StepResult::failure("the VM's output is not a regular file");
  Fd out(::open(dest.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!out) return StepResult::failure(errnoText("create " + dest.string()));
  if (auto err = copyData(in.get(), out.get(), deadline); !err.empty())
    return StepResult::failure("copying the output: " + err);
  return StepResult::success();
}

bool LocalVmms::killUidProcesses(uid_t uid) const {
  const auto deadline = SteadyClock::now() + kKillWait;
  for (;;) {
    try {
      killAllOfUid(uid, uid);
    } catch (const std::system_error& e) {
      spdlog::warn("local VMMS: cannot kill processes of uid {}: {}", uid, e.what());
    }
    if (processesOfUid(uid).empty()) return true;
    if (SteadyClock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
}

StepResult LocalVmms::destroyVM(const TangoMachine& vm) {
  auto inst = checkedInstance(vm);
  if (!inst) return StepResult::failure("invalid VM name or id");
  {
    std::lock_guard lock(mu_);
    if (auto it = running_.find(*inst); it != running_.end()) {
      it->second.killedByDestroy = true;
      it->second.process->signal(SIGKILL);
    }
  }
  dropWarm(*inst);
  auto uid = readUid(vmsDir_ / *inst);
  bool killed = true;
  // A leftover of a killed run: its uid lock went with that process, and
  // another service on this host may hold the uid now. Its processes are
  // that service's job: never kill them.
  if (uid && !holdUid(*uid)) {
    spdlog::warn("local VMMS: uid {} of {} is another service's now; its processes are left alone",
                 *uid, *inst);
    uid.reset();
  }
  if (uid) killed = killSandboxProcesses(*uid);
  std::string error;
  bool removed = removeDirTree(vmsDir_, *inst, error);
  if (uid && killed) {
    if (auto err = cgroups_.remove(cgroupName(*inst, *uid)); !err.empty()) {
      spdlog::warn("local VMMS: {}", err);
      if (removed) error = err;
      removed = false;
    }
  }
  if (uid) {
    if (killed) {
      std::lock_guard lock(mu_);
      usedSlots_.erase(*uid - cfg_.local.uidBase);
      uidLocks_.erase(*uid - cfg_.local.uidBase);
    } else {
      // Keep the uid out of circulation: a survivor must never share it with the next job.
      spdlog::error("local VMMS: processes of uid {} or {} survive; slot kept reserved", *uid,
                    keeperUid(*uid));
      return StepResult::failure("processes of uid " + std::to_string(*uid) + " survive");
    }
  }
  if (!removed) return StepResult::failure("cannot remove VM " + *inst + ": " + error);
  spdlog::debug("local VMMS: destroyed {}", *inst);
  return StepResult::success();
}

StepResult LocalVmms::safeDestroyVM(const TangoMachine& vm) {
  auto inst = checkedInstance(vm);
  if (!inst) return StepResult::failure("invalid VM name or id");
  const auto found = readUid(vmsDir_ / *inst);
  // Not when it is another service's uid now (see destroyVM).
  const bool ours = found.has_value() && holdUid(*found);
  const uid_t uid = found.value_or(0);
  StepResult r = destroyVM(vm);
  if (!r.ok) return r;
  std::error_code ec;
  if (fs::symlink_status(vmsDir_ / *inst, ec).type() != fs::file_type::not_found)
    return StepResult::failure("VM directory " + *inst + " still exists");
  if (ours && !processesOfUid(uid).empty())
    return StepResult::failure("processes of uid " + std::to_string(uid) + " remain");
  return StepResult::success();
}

std::vector<TangoMachine> LocalVmms::getVMs() {
  std::vector<TangoMachine> vms;
  const std::string head = cfg_.prefix + "-";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(vmsDir_, ec)) {
    std::string n = entry.path().filename().string();
    if (!n.starts_with(head)) continue;
    std::string_view rest = std::string_view(n).substr(head.size());
    std::size_t dash = rest.find('-');
    if (dash == 0 || dash == std::string_view::npos || dash + 1 >= rest.size()) continue;
    std::string_view digits = rest.substr(0, dash);
    if (digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string_view::npos)
      continue;
    TangoMachine vm;
    vm.id = std::stoll(std::string(digits));
    vm.name = std::string(rest.substr(dash + 1));
    vm.image = vm.name;
    vm.vmms = "local";
    // SANDBOX_DIR is this node's alone (one per DATA_DIR): what lies in it is its own.
    vm.node = cfg_.nodeId;
    if (vm.id <= 0) continue;
    vms.push_back(std::move(vm));
  }
  return vms;
}

std::optional<std::string> LocalVmms::getPartialOutput(const TangoMachine& vm) {
  auto inst = checkedInstance(vm);
  if (!inst) return std::nullopt;
  std::int64_t cap = cfg_.maxOutputFileSize;
  {
    std::lock_guard lock(mu_);
    if (auto it = running_.find(*inst); it != running_.end() && it->second.outputCap > 0)
      cap = it->second.outputCap;
  }
  const fs::path dir = vmsDir_ / *inst;
  auto uid = readUid(dir);
  if (!uid) return std::nullopt;
  Fd d = openDir(AT_FDCWD, dir.c_str());
  Fd run = d ? openDir(d.get(), "run") : Fd();
  if (!run) return std::nullopt;
  // Only the keeper's own regular file is the autodriver's output: never a
  // FIFO, a device or a hard link to someone else's file.
  Fd f(::openat(run.get(), "partial", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!f) return std::nullopt;
  struct stat st {};
  if (::fstat(f.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != keeperUid(*uid) ||
      st.st_nlink != 1)
    return std::nullopt;
  return readCapped(f.get(), cap);
}

}  // namespace tango
