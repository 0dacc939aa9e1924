#include "tango/vmms/Cgroup.hpp"

#include <fcntl.h>
#include <fmt/ranges.h>
#include <linux/magic.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

namespace tango {
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kCpuPeriodUs = 100000;

std::string readText(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// This process's own group in a hierarchy, from /proc/self/cgroup
// ("4:memory:/some/path" for a v1 controller, "0::/path" for v2, asked for
// with an empty controller). Groups go below it, not at the hierarchy's
// root, so whatever limits the service itself runs under also cover its jobs.
std::optional<std::string> ownGroup(const std::string& procSelfCgroup,
                                    const std::string& controller) {
  std::istringstream in(procSelfCgroup);
  std::string line;
  while (std::getline(in, line)) {
    auto first = line.find(':');
    auto second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    if (controller.empty()) {
      if (line.substr(0, first) == "0" && controllers.empty()) return line.substr(second + 1);
      continue;
    }
    std::size_t pos = 0;
    while (pos <= controllers.size()) {
      auto comma = controllers.find(',', pos);
      if (comma == std::string::npos) comma = controllers.size();
      if (controllers.substr(pos, comma - pos) == controller) return line.substr(second + 1);
      pos = comma + 1;
    }
  }
  return std::nullopt;
}

// A group directory others can search whatever the umask: bwrap, as the
// sandbox's uid, resolves the OOM counter it mounts through it. Its files
// stay root's.
bool makeGroupDir(const fs::path& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return false;
  return ::chmod(dir.c_str(), 0755) == 0;
}

// O_CREAT|O_TRUNC is what a shell's "echo v > file" does: harmless on
// cgroupfs, whose files always exist, and it lets a test's plain directory
// tree record the values.
std::string writeFile(const fs::path& p, const std::string& value) {
  Fd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return "open " + p.string() + ": " + std::strerror(errno);
  if (!writeAll(fd.get(), value))
    return "write " + value + " to " + p.string() + ": " + std::strerror(errno);
  return {};
}

bool isSafeGroupName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

bool isCgroup2(const fs::path& p) {
  struct statfs st {};
  return ::statfs(p.c_str(), &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC;
}

CgroupMode detectMode(const fs::path& root) {
  if (isCgroup2(root)) return CgroupMode::V2;
  const bool v1 = fs::exists(root / "memory" / "cgroup.procs") ||
                  fs::exists(root / "pids" / "cgroup.procs") ||
                  fs::exists(root / "cpu" / "cgroup.procs");
  if (v1 && isCgroup2(root / "unified")) return CgroupMode::Hybrid;
  return v1 ? CgroupMode::V1 : CgroupMode::None;
}

std::set<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::set<std::string> out;
  for (std::string w; in >> w;) out.insert(w);
  return out;
}

// Enables `controllers` for the children of `group`. Errors by controller.
std::map<std::string, int> enableControllers(const fs::path& group,
                                             const std::vector<std::string>& controllers) {
  std::map<std::string, int> failed;
  for (const auto& c : controllers) {
    Fd fd(::open((group / "cgroup.subtree_control").c_str(),
                 O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd || !writeAll(fd.get(), "+" + c)) failed[c] = errno;
  }
  return failed;
}

// Moves every process of `group` into its leaf `group`/supervisor, so that
// `group` may hand controllers to its children (cgroup v2's rule: no
// processes in a group whose children have controllers).
std::string moveProcessesToLeaf(const fs::path& group) {
  const fs::path leaf = group / "supervisor";
  if (!makeGroupDir(leaf)) return "mkdir " + leaf.string() + ": " + std::strerror(errno);
  // A process may fork while we move: go round until the group is empty.
  for (int round = 0; round < 10; ++round) {
    const std::set<std::string> pids = words(readText(group / "cgroup.procs"));
    if (pids.empty()) return {};
    for (const auto& pid : pids) {
      Fd fd(::open((leaf / "cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
      if ((!fd || !writeAll(fd.get(), pid)) && errno != ESRCH)
        return "move pid " + pid + " to " + leaf.string() + ": " + std::strerror(errno);
    }
  }
  return "processes keep appearing in " + group.string();
}

}  // namespace

const char* cgroupModeName(CgroupMode mode) {
  switch (mode) {
    case CgroupMode::V1:
      return "cgroup v1";
    case CgroupMode::Hybrid:
      return "cgroup hybrid (v1 controllers)";
    case CgroupMode::V2:
      return "cgroup v2";
    case CgroupMode::None:
      break;
  }
  return "no cgroups";
}

CgroupHost CgroupHost::thisHost() {
  CgroupHost h;
  h.root = ::geteuid() == 0;
  return h;
}

SandboxCgroups::SandboxCgroups(const CgroupHost& given) {
  CgroupHost host = given;
  if (host.procSelfCgroup.empty()) host.procSelfCgroup = readText("/proc/self/cgroup");
  mode_ = host.mode.value_or(detectMode(host.mountRoot));
  if (!host.root) return;
  if (mode_ == CgroupMode::V2)
    setUpV2(host);
  else if (mode_ != CgroupMode::None)
    setUpV1(host);
  index();
}

void SandboxCgroups::setUpV1(const CgroupHost& host) {
  for (const char* controller : {"memory", "pids", "cpu"}) {
    const fs::path mount = host.mountRoot / controller;
    if (!fs::exists(mount / "cgroup.procs")) continue;
    auto own = ownGroup(host.procSelfCgroup, controller);
    if (!own) continue;
    Base b;
    b.dir = (mount / fs::path(*own).relative_path() / "tango").lexically_normal();
    if (!makeGroupDir(b.dir)) {
      spdlog::warn("local VMMS: cannot create cgroup {}: {}; no {} limit", b.dir.string(),
                   std::strerror(errno), controller);
      continue;
    }
    const std::string_view c = controller;
    b.memory = c == "memory";
    b.pids = c == "pids";
    b.cpu = c == "cpu";
    bases_.push_back(std::move(b));
  }
}

void SandboxCgroups::setUpV2(const CgroupHost& host) {
  auto own = ownGroup(host.procSelfCgroup, "");
  if (!own) {
    spdlog::warn("local VMMS: no cgroup v2 entry in /proc/self/cgroup; no cgroup limits");
    return;
  }
  const fs::path group = (host.mountRoot / fs::path(*own).relative_path()).lexically_normal();
  const std::set<std::string> available = words(readText(group / "cgroup.controllers"));
  std::vector<std::string> wanted;
  for (const auto& c : host.v2Controllers)
    if (available.count(c)) wanted.push_back(c);
  if (wanted.empty()) {
    spdlog::warn(
        "local VMMS: cgroup v2 group {} has none of the controllers {} (not delegated: give "
        "the service's systemd unit Delegate=yes); no cgroup limits",
        group.string(), fmt::join(host.v2Controllers, ", "));
    return;
  }
  auto failed = enableControllers(group, wanted);
  if (std::any_of(failed.begin(), failed.end(), [](auto& f) { return f.second == EBUSY; })) {
    if (auto err = moveProcessesToLeaf(group); !err.empty()) {
      spdlog::warn("local VMMS: {}; no cgroup limits", err);
      return;
    }
    failed = enableControllers(group, wanted);
  }
  Base b;
  b.v2 = true;
  b.dir = group / "tango";
  if (!makeGroupDir(b.dir)) {
    spdlog::warn("local VMMS: cannot create cgroup {}: {}; no cgroup limits", b.dir.string(),
                 std::strerror(errno));
    return;
  }
  std::vector<std::string> delegated;
  for (const auto& c : wanted) {
    if (auto it = failed.find(c); it != failed.end()) {
      spdlog::warn("local VMMS: cannot enable the {} controller in {}: {}; no {} limit", c,
                   group.string(), std::strerror(it->second), c);
      continue;
    }
    delegated.push_back(c);
  }
  for (const auto& [c, err] : enableControllers(b.dir, delegated)) {
    spdlog::warn("local VMMS: cannot enable the {} controller in {}: {}; no {} limit", c,
                 b.dir.string(), std::strerror(err), c);
    std::erase(delegated, c);
  }
  for (const auto& c : delegated) {
    b.memory = b.memory || c == "memory";
    b.pids = b.pids || c == "pids";
    b.cpu = b.cpu || c == "cpu";
  }
  bases_.push_back(std::move(b));
}

void SandboxCgroups::index() {
  for (int i = 0; i < static_cast<int>(bases_.size()); ++i) {
    if (bases_[i].memory) memory_ = i;
    if (bases_[i].pids) pids_ = i;
    if (bases_[i].cpu) cpu_ = i;
  }
}

std::string SandboxCgroups::describe() const {
  std::string limits;
  auto add = [&](bool on, const char* what) {
    if (!on) return;
    if (!limits.empty()) limits += ", ";
    limits += what;
  };
  add(hasMemory(), "memory");
  add(hasPids(), "pids");
  add(hasCpu(), "cpu");
  std::string where;
  for (const auto& b : bases_) where += (where.empty() ? "" : " ") + b.dir.string();
  if (limits.empty())
    return std::string(cgroupModeName(mode_)) +
           ": no cgroup limits (memory falls back to RLIMIT_AS per process)";
  return std::string(cgroupModeName(mode_)) + ": " + limits + " limits in " + where;
}

std::string SandboxCgroups::limit(const Base& b, const fs::path& g,
                                  const CgroupLimits& limits) const {
  if (b.memory && b.v2) {
    const std::string v = limits.memoryBytes > 0 ? std::to_string(limits.memoryBytes) : "max";
    if (auto err = writeFile(g / "memory.max", v); !err.empty()) return err;
    // No swap for the job: the limit is on memory, not on what fits on
    // disk. Absent when the kernel does not account swap, which is as good.
    if (auto err = writeFile(g / "memory.swap.max", "0"); !err.empty())
      spdlog::debug("local VMMS: {}", err);
  } else if (b.memory && limits.memoryBytes > 0) {
    const std::string v = std::to_string(limits.memoryBytes);
    // memsw (memory + swap) must be >= the memory limit at every step:
    // raise it first when growing, lower it last when shrinking. Trying
    // both orders covers both.
    const fs::path memsw = g / "memory.memsw.limit_in_bytes";
    const bool haveMemsw = ::access(memsw.c_str(), F_OK) == 0;
    if (haveMemsw) (void)writeFile(memsw, v);
    if (auto err = writeFile(g / "memory.limit_in_bytes", v); !err.empty()) return err;
    if (haveMemsw) {
      if (auto err = writeFile(memsw, v); !err.empty()) return err;
    }
  }
  if (b.pids) {
    const std::string v = limits.pids > 0 ? std::to_string(limits.pids) : "max";
    if (auto err = writeFile(g / "pids.max", v); !err.empty()) return err;
  }
  if (b.cpu) {
    const std::int64_t quota = limits.cores > 0 ? limits.cores * kCpuPeriodUs : -1;
    if (b.v2) {
      const std::string v = (quota > 0 ? std::to_string(quota) : std::string("max")) + " " +
                            std::to_string(kCpuPeriodUs);
      if (auto err = writeFile(g / "cpu.max", v); !err.empty()) return err;
    } else {
      if (auto err = writeFile(g / "cpu.cfs_period_us", std::to_string(kCpuPeriodUs)); !err.empty())
        return err;
      if (auto err = writeFile(g / "cpu.cfs_quota_us", std::to_string(quota)); !err.empty())
        return err;
    }
  }
  return {};
}

std::string SandboxCgroups::prepare(const std::string& name, const CgroupLimits& limits) const {
  if (!isSafeGroupName(name)) return "invalid cgroup name";
  for (const auto& b : bases_) {
    const fs::path g = b.dir / name;
    if (!makeGroupDir(g)) return "mkdir " + g.string() + ": " + std::strerror(errno);
    if (auto err = limit(b, g, limits); !err.empty()) return err;
  }
  return {};
}

std::vector<Fd> SandboxCgroups::openProcs(const std::string& name, std::string& error) const {
  std::vector<Fd> fds;
  for (const auto& b : bases_) {
    const fs::path p = b.dir / name / "cgroup.procs";
    Fd fd(::open(p.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) {
      error = "open " + p.string() + ": " + std::strerror(errno);
      return {};
    }
    fds.push_back(std::move(fd));
  }
  return fds;
}

std::optional<fs::path> SandboxCgroups::oomEventsFile(const std::string& name) const {
  if (!hasMemory()) return std::nullopt;
  const Base& b = bases_[static_cast<std::size_t>(memory_)];
  return b.dir / name / (b.v2 ? "memory.events" : "memory.oom_control");
}

std::string SandboxCgroups::remove(const std::string& name, bool wait) const {
  using namespace std::chrono_literals;
  if (!isSafeGroupName(name)) return "invalid cgroup name";
  std::string error;
  for (const auto& b : bases_) {
    const fs::path g = b.dir / name;
    // A killed process leaves its group only once it is fully reaped: give
    // the kernel a moment (EBUSY) before calling it a failure.
    const auto deadline = std::chrono::steady_clock::now() + (wait ? 5s : 0s);
    while (::rmdir(g.c_str()) != 0) {
      if (errno == ENOENT) break;
      if (errno != EBUSY || std::chrono::steady_clock::now() >= deadline) {
        error = "rmdir " + g.string() + ": " + std::strerror(errno);
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
  }
  return error;
}

std::vector<std::string> SandboxCgroups::list() const {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& b : bases_) {
    for (const auto& e : fs::directory_iterator(b.dir, ec))
      if (e.is_directory(ec)) names.insert(e.path().filename().string());
  }
  return {names.begin(), names.end()};
}

std::vector<fs::path> SandboxCgroups::bases() const {
  std::vector<fs::path> out;
  for (const auto& b : bases_) out.push_back(b.dir);
  return out;
}

}  // namespace tango
