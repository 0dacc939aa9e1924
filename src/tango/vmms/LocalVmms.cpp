#include "tango/vmms/LocalVmms.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <system_error>
#include <thread>

#include "tango/util/Fd.hpp"
#include "tango/util/Process.hpp"
#include "tango/util/SafeName.hpp"
#include "tango/vmms/UsageLine.hpp"

namespace tango {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr const char* kDefaultImage = "autograding_image";
constexpr std::int64_t kOutputSlack = 64 * 1024;  // beyond the autodriver's own cap
constexpr std::size_t kStderrCap = 64 * 1024;
// The sandbox's own processes besides the job's: bwrap, its PID 1, the autodriver.
constexpr std::int64_t kSandboxPids = 16;
constexpr auto kKillWait = 10s;  // how long destroy waits for a uid's processes to go

std::string errnoText(const std::string& what, int err = errno) {
  return what + ": " + std::strerror(err);
}

SteadyClock::time_point deadlineAfter(std::chrono::seconds timeout) {
  if (timeout <= 0s) return SteadyClock::time_point::max();
  return SteadyClock::now() + timeout;
}

Fd openDir(int atFd, const char* path) {
  return Fd(::openat(atFd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

// Copies in -> out. Empty on success, else what failed.
std::string copyData(int in, int out, SteadyClock::time_point deadline) {
  std::array<char, 65536> buf;
  for (;;) {
    if (SteadyClock::now() >= deadline) return "timed out";
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoText("read");
    }
    if (n == 0) return {};
    if (!writeAll(out, std::string_view(buf.data(), static_cast<std::size_t>(n))))
      return errnoText("write");
  }
}

// Reads at most `cap` bytes of a small file opened by the caller.
std::string readCapped(int fd, std::int64_t cap) {
  std::string data;
  std::array<char, 65536> buf;
  while (static_cast<std::int64_t>(data.size()) < cap) {
    auto want = std::min<std::int64_t>(static_cast<std::int64_t>(buf.size()),
                                       cap - static_cast<std::int64_t>(data.size()));
    ssize_t n = ::read(fd, buf.data(), static_cast<std::size_t>(want));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buf.data(), static_cast<std::size_t>(n));
  }
  return data;
}

// Deletes a directory tree without following symlinks. A job controls what is
// inside job/, including a tree deeper than PATH_MAX or than the fd limit:
// everything is done relative to directory fds, and directories below
// kMaxDepth are first moved up to the top directory and removed from there.
class TreeRemover {
 public:
  explicit TreeRemover(int topFd) : topFd_(topFd) {}

  // Empties the top directory.
  bool clearTop() {
    if (!clear(topFd_, 0)) return false;
    while (!deferred_.empty()) {
      std::string name = std::move(deferred_.back());
      deferred_.pop_back();
      if (!removeAt(topFd_, name, 0)) return false;
    }
    return true;
  }
  const std::string& error() const { return error_; }

 private:
  static constexpr int kMaxDepth = 32;

  bool removeAt(int parentFd, const std::string& name, int depth) {
    if (::unlinkat(parentFd, name.c_str(), 0) == 0 || errno == ENOENT) return true;
    if (errno != EISDIR && errno != EPERM) return fail("unlink " + name);
    for (int attempt = 0; attempt < 3; ++attempt) {
      Fd dir = openDir(parentFd, name.c_str());
      if (!dir) return errno == ENOENT ? true : fail("open " + name);
      if (!clear(dir.get(), depth)) return false;
      dir.reset();
      if (::unlinkat(parentFd, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return true;
      if (errno != ENOTEMPTY && errno != EEXIST) return fail("rmdir " + name);
    }
    return fail("rmdir " + name);
  }

  bool clear(int dirFd, int depth) {
    std::vector<std::string> names;
    {
      // fdopendir takes ownership of the duplicate, closedir releases it.
      int dup = ::fcntl(dirFd, F_DUPFD_CLOEXEC, 0);
      if (dup < 0) return fail("dup");
      DIR* d = ::fdopendir(dup);
      if (!d) {
        ::close(dup);
        return fail("fdopendir");
      }
      while (dirent* e = ::readdir(d)) {
        std::string_view n = e->d_name;
        if (n != "." && n != "..") names.emplace_back(n);
      }
      ::closedir(d);
    }
    for (const auto& n : names) {
      if (::unlinkat(dirFd, n.c_str(), 0) == 0 || errno == ENOENT) continue;
      if (errno != EISDIR && errno != EPERM) return fail("unlink " + n);
      if (depth + 1 >= kMaxDepth) {
        std::string moved = ".deep-" + std::to_string(counter_++);
        if (::renameat(dirFd, n.c_str(), topFd_, moved.c_str()) != 0) return fail("rename " + n);
        deferred_.push_back(std::move(moved));
        continue;
      }
      if (!removeAt(dirFd, n, depth + 1)) return false;
    }
    return true;
  }

  bool fail(const std::string& what) {
    error_ = errnoText(what);
    return false;
  }

  int topFd_;
  std::uint64_t counter_ = 0;
  std::vector<std::string> deferred_;
  std::string error_;
};

// Removes <parent>/<name> entirely; true when it is gone.
bool removeDirTree(const fs::path& parent, const std::string& name, std::string& error) {
  Fd parentFd = openDir(AT_FDCWD, parent.c_str());
  if (!parentFd) {
    error = errnoText("open " + parent.string());
    return false;
  }
  Fd top = openDir(parentFd.get(), name.c_str());
  if (!top) {
    if (errno == ENOENT) return true;
    if (errno == ENOTDIR || errno == ELOOP) {
      if (::unlinkat(parentFd.get(), name.c_str(), 0) == 0) return true;
    }
    error = errnoText("open " + name);
    return false;
  }
  TreeRemover remover(top.get());
  if (!remover.clearTop()) {
    error = remover.error();
    return false;
  }
  top.reset();
  if (::unlinkat(parentFd.get(), name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    error = errnoText("rmdir " + name);
    return false;
  }
  return true;
}

// bwrap runs unprivileged and needs user namespaces: say so when the host
// has turned them off, the usual reason a sandbox cannot start at all.
std::string userNamespaceHint() {
  auto firstLine = [](const char* path) {
    Fd f(::open(path, O_RDONLY | O_CLOEXEC));
    return f ? readCapped(f.get(), 32) : std::string();
  };
  if (firstLine("/proc/sys/kernel/unprivileged_userns_clone").starts_with("0"))
    return " (unprivileged user namespaces are off: sysctl kernel.unprivileged_userns_clone=1)";
  if (firstLine("/proc/sys/user/max_user_namespaces").starts_with("0"))
    return " (user namespaces are off: sysctl user.max_user_namespaces=10000)";
  return {};
}

fs::path findBwrap() {
  for (const char* p : {"/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return {};
}

}  // namespace

LocalVmms::LocalVmms(const Config& cfg) : cfg_(cfg) {
  std::error_code ec;
  cfg_.dataDir = fs::absolute(cfg_.dataDir);
  vmsDir_ = fs::absolute(cfg_.vmsDir()).lexically_normal();
  setupError_ = makeSandboxDir(vmsDir_);
  if (setupError_.empty()) setupError_ = installAutodriver();
  bwrap_ = findBwrap();

  // Uids of VMs left by a previous run stay taken until those VMs are destroyed.
  for (const auto& entry : fs::directory_iterator(vmsDir_, ec)) {
    if (!entry.is_directory(ec) || entry.is_symlink(ec)) continue;
    if (auto uid = readUid(entry.path())) usedSlots_.insert(*uid - cfg_.local.uidBase);
  }
  removeLegacyVms();
  // Groups whose VM directory is gone (a crash between the two removals) are
  // empty leftovers; only ours (our prefix and uid range) are touched, since
  // other services may share the parent group.
  for (const auto& group : cgroups_.list()) {
    auto dot = group.rfind('.');
    if (dot == std::string::npos || !group.starts_with(cfg_.prefix + "-")) continue;
    const std::string inst = group.substr(0, dot);
    char* end = nullptr;
    const unsigned long uid = std::strtoul(group.c_str() + dot + 1, &end, 10);
    if (*end != '\0' || uid < cfg_.local.uidBase ||
        uid >= static_cast<unsigned long>(cfg_.local.uidBase) + cfg_.local.slots)
      continue;
    if (fs::symlink_status(vmsDir_ / inst, ec).type() == fs::file_type::not_found)
      (void)cgroups_.remove(group, /*wait=*/false);
  }
}

LocalVmms::~LocalVmms() = default;

// SANDBOX_DIR and any parent it lacks: root's, 0711, so every VM uid can
// walk through it (bwrap resolves its mounts as that uid) but list nothing.
// A directory that exists already is the operator's: its mode is checked,
// never changed.
std::string LocalVmms::makeSandboxDir(const fs::path& dir) {
  const fs::path data = fs::absolute(cfg_.dataDir).lexically_normal();
  const fs::path rel = dir.lexically_normal().lexically_relative(data);
  if (!rel.empty() && *rel.begin() != "..")
    return "SANDBOX_DIR: " + dir.string() + " lies inside DATA_DIR " + data.string() +
           ", which is the service's alone (0700) and which the sandboxes' unprivileged uids "
           "cannot enter: choose a directory outside it (the default is below "
           "/var/lib/tango-sandboxes)";
  fs::path at = "/";
  for (const auto& part : dir.relative_path()) {
    at /= part;
    if (::mkdir(at.c_str(), 0711) == 0) {
      ::chmod(at.c_str(), 0711);  // whatever the umask took away
    } else if (errno != EEXIST) {
      return errnoText("SANDBOX_DIR: cannot create " + at.string());
    }
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return "SANDBOX_DIR: " + dir.string() + " is not a directory";
  if (st.st_uid != ::geteuid())
    return "SANDBOX_DIR: " + dir.string() + " belongs to uid " + std::to_string(st.st_uid) +
           ", not to the service";
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return "SANDBOX_DIR: " + dir.string() +
           " is writable by other users, who could plant VM directories there: chmod 711 " +
           dir.string();
  if (auto blocked = firstUnsearchable(dir))
    return "SANDBOX_DIR: " + blocked->string() +
           " cannot be searched by other users, and the sandboxes run as unprivileged uids "
           "that must reach " +
           dir.string() +
           ": set SANDBOX_DIR to a directory below "
           "searchable ones (the default is below /var/lib), or chmod o+x " +
           blocked->string();
  return {};
}

// A copy of the autodriver in SANDBOX_DIR, root's and 0755: the configured
// one may lie where a VM uid cannot reach it (a build tree in /root), and a
// copy is also immune to a rebuild while jobs run.
std::string LocalVmms::installAutodriver() {
  sandboxAutodriver_ = vmsDir_ / "autodriver";
  Fd in(::open(cfg_.autodriver.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return errnoText("AUTODRIVER: cannot read " + cfg_.autodriver.string());
  const fs::path tmp = vmsDir_ / ".autodriver.new";
  ::unlink(tmp.c_str());
  Fd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0755));
  if (!out) return errnoText("SANDBOX_DIR: cannot write " + tmp.string());
  if (auto err = copyData(in.get(), out.get(), SteadyClock::time_point::max()); !err.empty())
    return "copying the autodriver into SANDBOX_DIR: " + err;
  if (::fchmod(out.get(), 0755) != 0 || ::fsync(out.get()) != 0 ||
      ::rename(tmp.c_str(), sandboxAutodriver_.c_str()) != 0)
    return errnoText("installing the autodriver in SANDBOX_DIR");
  return {};
}

// An earlier release kept its VMs in DATA_DIR/vms. None can be in use (their
// processes died with that service: --die-with-parent), and they may hold
// students' files.
void LocalVmms::removeLegacyVms() {
  const fs::path legacy = cfg_.dataDir / "vms";
  std::error_code ec;
  if (legacy.lexically_normal() == vmsDir_ || !fs::is_directory(fs::symlink_status(legacy, ec)))
    return;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(legacy, ec))
    names.push_back(entry.path().filename().string());
  for (const auto& name : names) {
    if (auto uid = readUid(legacy / name)) killUidProcesses(*uid);
    std::string error;
    if (!removeDirTree(legacy, name, error))
      spdlog::warn("local VMMS: cannot remove {}: {}", (legacy / name).string(), error);
  }
  ::rmdir(legacy.c_str());
  spdlog::info("local VMMS: removed {} VM directories of an earlier release from {}", names.size(),
               legacy.string());
}

std::string LocalVmms::preflight() {
  if (::geteuid() != 0)
    return "the local VMMS must run as root: it runs each job under a host uid of its own "
           "(start tangod as root, or use VMMS_NAME = \"localDocker\")";
  if (!setupError_.empty()) return setupError_;
  if (bwrap_.empty())
    return "the local VMMS needs bubblewrap, which is not installed (apt-get install bubblewrap)";
  struct stat st {};
  for (const auto& image : getImages()) {
    TangoMachine vm;
    vm.id = 1;  // below every id the store hands out (from 1000), so never a job's VM
    vm.name = vm.image = image;
    vm.vmms = name();
    const auto root = imageRoot(vm);
    if (!root || ::stat(root->c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return "image " + image + ": its root " + (root ? root->string() : "?") +
             " is not a directory ([local.images])";
    if ((st.st_mode & (S_IROTH | S_IXOTH)) != (S_IROTH | S_IXOTH))
      return "image " + image + ": its root " + root->string() +
             " must be readable and searchable by every user (jobs run as unprivileged "
             "uids): chmod 755 " +
             root->string();
    if (auto blocked = firstUnsearchable(*root))
      return "image " + image + ": " + blocked->string() +
             " cannot be searched by other users, so the sandboxes (unprivileged uids) cannot "
             "reach the image's root " +
             root->string() +
             ": keep image roots below searchable "
             "directories (e.g. /srv/roots), or chmod o+x " +
             blocked->string();
    // An empty job (no Makefile: make fails, the autodriver reports it
    // normally) walks every step a real one does: uid, cgroups, namespaces,
    // mounts, the autodriver.
    auto init = initializeVM(vm, 30s);
    RunResult run;
    if (init.ok) {
      RunSpec spec;
      spec.timeoutSecs = 20;
      spec.maxOutputBytes = 4096;
      spec.hardTimeout = 30s;
      run = runJob(vm, spec);
    }
    safeDestroyVM(vm);
    if (!init.ok) return "image " + image + ": cannot make a test VM: " + init.error;
    if (run.status != 0)
      return "image " + image + ": a test sandbox could not run: " + run.error +
             userNamespaceHint();
  }
  return {};
}

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
    return static_cast<bool>(lockUid(uid));
  const std::uint32_t slot = uid - cfg_.local.uidBase;
  std::lock_guard lock(mu_);
  if (uidLocks_.count(slot)) return true;
  Fd held = lockUid(uid);
  if (!held) return false;
  uidLocks_[slot] = std::move(held);  // released when the slot is freed
  return true;
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
      // UID_BASE) may be using this uid: never share it.
      Fd held = lockUid(cfg_.local.uidBase + s);
      if (!held) continue;
      uidLocks_[s] = std::move(held);
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
  if (::mkdirat(d.get(), "job", 0700) != 0 ||
      ::fchownat(d.get(), "job", uid, uid, AT_SYMLINK_NOFOLLOW) != 0 ||
      ::fchmodat(d.get(), "job", 0700, 0) != 0)
    return failed(errnoText("creating job"));
  // Root's: the job may write its partial-output file but create nothing
  // else here, since this directory is on the host disk.
  if (::mkdirat(d.get(), "run", 0711) != 0 || ::fchmodat(d.get(), "run", 0711, 0) != 0)
    return failed(errnoText("creating run"));
  // Only now can the VM uid traverse the directory (it cannot list it).
  if (::fchmod(d.get(), 0711) != 0) return failed(errnoText("chmod " + dir.string()));
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
    const uid_t owner = std::string_view(sub) == "job" ? *uid : 0;
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
    if (::fchown(out.get(), *uid, *uid) != 0 || ::fchmod(out.get(), mode) != 0)
      return StepResult::failure(errnoText("chown " + f.destFile));
    if (auto err = copyData(in.get(), out.get(), deadline); !err.empty())
      return StepResult::failure("copying " + f.destFile + ": " + err);
  }
  return StepResult::success();
}

SandboxLimits LocalVmms::limitsFor(const RunSpec& spec) const {
  constexpr std::int64_t kMB = 1024 * 1024;
  SandboxLimits l;
  l.memoryBytes = spec.memoryLimitBytes > 0 ? spec.memoryLimitBytes : cfg_.vmMemoryLimit * kMB;
  l.diskBytes = spec.diskLimitBytes > 0 ? spec.diskLimitBytes : cfg_.vmDiskLimit * kMB;
  l.cpuSecs = spec.cpuTimeSecs > 0 ? spec.cpuTimeSecs : cfg_.vmCpuTimeLimit;
  return l;
}

RunResult LocalVmms::runJob(const TangoMachine& vm, const RunSpec& spec) {
  RunResult result;
  auto fail = [&](std::string why) {
    result.status = -1;
    result.error = std::move(why);
    return result;
  };
  auto inst = checkedInstance(vm);
  if (!inst) return fail("invalid VM name or id");
  const fs::path dir = vmsDir_ / *inst;
  auto uid = readUid(dir);
  if (!uid) return fail("VM " + *inst + " does not exist");
  auto root = imageRoot(vm);
  if (!root) return fail("unknown image " + vm.name);
  if (bwrap_.empty()) return fail("bwrap is not installed");
  struct stat adSt {};
  if (::stat(sandboxAutodriver_.c_str(), &adSt) != 0 || !S_ISREG(adSt.st_mode))
    return fail("autodriver not found at '" + sandboxAutodriver_.string() + "'");

  Fd d = openDir(AT_FDCWD, dir.c_str());
  if (!d) return fail(errnoText("open " + dir.string()));
  Fd output(
      ::openat(d.get(), "output", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!output) return fail(errnoText("create output file"));
  {
    // A previous run's partial output must not show up as this run's. The
    // file is created here because the job's uid cannot create files in run/.
    Fd run = openDir(d.get(), "run");
    if (!run) return fail(errnoText("open run directory"));
    ::unlinkat(run.get(), "partial", 0);
    Fd partial(
        ::openat(run.get(), "partial", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!partial || ::fchown(partial.get(), *uid, *uid) != 0)
      return fail(errnoText("create the partial output file"));
  }

  const SandboxLimits limits = limitsFor(spec);
  const std::string group = cgroupName(*inst, *uid);
  CgroupLimits cgLimits;
  cgLimits.memoryBytes = limits.memoryBytes;
  cgLimits.pids = spec.ulimitProcs > 0 ? spec.ulimitProcs + kSandboxPids : 0;
  if (auto err = cgroups_.prepare(group, cgLimits); !err.empty())
    return fail("cannot set up the VM's cgroups: " + err);
  std::string cgError;
  std::vector<Fd> cgroupProcs = cgroups_.openProcs(group, cgError);
  if (!cgError.empty()) return fail("cannot set up the VM's cgroups: " + cgError);

  SpawnOptions opts;
  opts.argv = sandboxArgs({bwrap_,
                           *inst,
                           *root,
                           dir,
                           sandboxAutodriver_,
                           cgroups_.oomEventsFile(group),
                           {cfg_.dataDir, cfg_.courselabsDir(), vmsDir_},
                           spec,
                           limits});
  opts.env = {"PATH=/usr/bin:/bin"};
  opts.credentials = std::make_pair(*uid, static_cast<gid_t>(*uid));
  for (const Fd& fd : cgroupProcs) opts.joinCgroupFds.push_back(fd.get());
  const std::int64_t cap = std::max<std::int64_t>(spec.maxOutputBytes, 0) + kOutputSlack;

  std::optional<Process> proc;
  {
    std::lock_guard lock(mu_);
    if (running_.count(*inst)) return fail("a job is already running in VM " + *inst);
    try {
      proc.emplace(Process::spawn(opts));
    } catch (const std::system_error& e) {
      return fail(std::string("cannot start the sandbox: ") + e.what());
    }
    running_[*inst] = Running{&*proc, spec.maxOutputBytes, false};
  }
  // Unregisters before `proc` is reaped or destroyed, so destroyVM never
  // signals a pid that could have been reused.
  struct Unregister {
    LocalVmms* self;
    const std::string& inst;
    bool done = false;
    bool killedByDestroy = false;
    void now() {
      if (done) return;
      std::lock_guard lock(self->mu_);
      if (auto it = self->running_.find(inst); it != self->running_.end()) {
        killedByDestroy = it->second.killedByDestroy;
        self->running_.erase(it);
      }
      done = true;
    }
    ~Unregister() { now(); }
  } unregister{this, *inst};

  std::int64_t written = 0;
  bool writeFailed = false;
  std::string errText;
  auto onStdout = [&](std::string_view chunk) {
    // The autodriver caps the output already; this is the backstop if it is
    // replaced or broken, so the host disk is never at a job's mercy.
    if (written >= cap || writeFailed) return;
    auto n = std::min<std::int64_t>(static_cast<std::int64_t>(chunk.size()), cap - written);
    if (!writeAll(output.get(), chunk.substr(0, static_cast<std::size_t>(n)))) writeFailed = true;
    written += n;
  };
  auto onStderr = [&](std::string_view chunk) {
    if (errText.size() < kStderrCap)
      errText.append(chunk.substr(0, std::min(chunk.size(), kStderrCap - errText.size())));
  };

  std::chrono::seconds hard = spec.hardTimeout;
  if (hard <= 0s && spec.timeoutSecs > 0) hard = std::chrono::seconds(spec.timeoutSecs) + 30s;
  const auto deadline = hard > 0s ? SteadyClock::now() + hard : SteadyClock::time_point::max();
  bool hardKilled = false;
  if (proc->communicate(onStdout, onStderr, deadline) == Process::IoResult::Deadline) {
    // Killing bwrap kills the sandbox's PID 1 (--die-with-parent), and with it
    // every process in the sandbox's PID namespace.
    hardKilled = true;
    proc->signal(SIGKILL);
    proc->waitExit(SteadyClock::now() + 10s);
    proc->communicate(onStdout, onStderr, SteadyClock::now() + 2s, 500ms);
  }
  unregister.now();
  const int st = proc->reap();
  // The kernel tears a PID namespace down asynchronously: wait until the
  // uid's processes are gone, so the run never returns with some still dying.
  if (hardKilled && !killUidProcesses(*uid))
    spdlog::warn("local VMMS: processes of uid {} outlived the hard timeout kill", *uid);
  result.usage = parseUsageLine(errText);

  if (unregister.killedByDestroy) return fail("the VM was destroyed while the job ran");
  if (hardKilled)
    return fail("the run exceeded the hard timeout of " + std::to_string(hard.count()) +
                " s; sandbox killed");
  if (WIFSIGNALED(st)) return fail("the sandbox died from signal " + std::to_string(WTERMSIG(st)));
  if (!WIFEXITED(st)) return fail("the sandbox ended abnormally");
  if (writeFailed) return fail("cannot write the output file");
  const int code = WEXITSTATUS(st);
  // bwrap reports its own setup failures with exit status 1 and a "bwrap:"
  // message; the autodriver never prints that.
  if (errText.starts_with("bwrap: ") || errText.find("\nbwrap: ") != std::string::npos)
    return fail("sandbox setup failed: " + stderrExcerpt(errText));
  result.status = code;
  if (code != 0 && code != 2)
    result.error = "autodriver exited with status " + std::to_string(code) +
                   (errText.empty() ? "" : ": " + stderrExcerpt(errText));
  return result;
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
  if (uid) killed = killUidProcesses(*uid);
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
      spdlog::error("local VMMS: processes of uid {} survive; slot kept reserved", *uid);
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
  // The job owns run/: whatever is there may be a FIFO, a device or a hard
  // link to someone else's file rather than the autodriver's output.
  Fd f(::openat(run.get(), "partial", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!f) return std::nullopt;
  struct stat st {};
  if (::fstat(f.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != *uid || st.st_nlink != 1)
    return std::nullopt;
  return readCapped(f.get(), cap);
}

}  // namespace tango
