// The `local` VMMS's start-up: SANDBOX_DIR, the autodriver's copy, what an
// earlier run left, and the preflight that proves a sandbox starts.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tango/util/Process.hpp"
#include "tango/util/Spawner.hpp"
#include "tango/vmms/LocalFiles.hpp"
#include "tango/vmms/LocalNetwork.hpp"
#include "tango/vmms/LocalVmms.hpp"
#include "tango/vmms/TreeRemoval.hpp"

namespace tango {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using local::copyData;
using local::errnoText;
using local::readCapped;

namespace {

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

LocalVmms::LocalVmms(const Config& cfg) : cfg_(cfg), spawner_(std::make_unique<Spawner>()) {
  std::error_code ec;
  cfg_.dataDir = fs::absolute(cfg_.dataDir);
  vmsDir_ = fs::absolute(cfg_.vmsDir()).lexically_normal();
  setupError_ = makeSandboxDir(vmsDir_);
  if (setupError_.empty()) setupError_ = installAutodriver();
  bwrap_ = findBwrap();
  slirp4netns_ = findSlirp4netns();
  spdlog::info("local VMMS: {}", cgroups_.describe());
  if (slirp4netns_.empty())
    spdlog::warn(
        "local VMMS: slirp4netns is not installed: jobs that ask for the network "
        "(\"disable_network\": false) will fail (apt-get install slirp4netns)");
  else if (::access("/dev/net/tun", F_OK) != 0)
    spdlog::warn(
        "local VMMS: /dev/net/tun is missing: slirp4netns cannot give jobs that ask for the "
        "network a network of their own, and they will fail (modprobe tun)");
  else
    spdlog::info("local VMMS: jobs that ask for the network get their own through {}",
                 slirp4netns_.string());

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
    if (auto uid = readUid(legacy / name)) killSandboxProcesses(*uid);
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

}  // namespace tango
