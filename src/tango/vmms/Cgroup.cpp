#include "tango/vmms/Cgroup.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

namespace tango {
namespace fs = std::filesystem;

namespace {

constexpr const char* kMountRoot = "/sys/fs/cgroup";

// This process's own group in a v1 controller, from /proc/self/cgroup
// ("4:memory:/some/path"). Groups go below it, not at the hierarchy's root,
// so whatever limits the service itself runs under also cover its jobs.
std::optional<std::string> ownGroup(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    auto first = line.find(':');
    auto second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
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

// "<mount>/<own group>/tango" for a mounted, writable v1 controller.
fs::path baseFor(const std::string& controller) {
  const fs::path mount = fs::path(kMountRoot) / controller;
  if (::access((mount / "cgroup.procs").c_str(), F_OK) != 0) return {};
  auto own = ownGroup(controller);
  if (!own) return {};
  fs::path base = (mount / fs::path(*own).relative_path() / "tango").lexically_normal();
  if (!makeGroupDir(base)) {
    spdlog::warn("local VMMS: cannot create cgroup {}: {}; no {} limit", base.string(),
                 std::strerror(errno), controller);
    return {};
  }
  return base;
}

std::string writeFile(const fs::path& p, const std::string& value) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return "open " + p.string() + ": " + std::strerror(errno);
  Fd owner(fd);
  if (!writeAll(fd, value))
    return "write " + value + " to " + p.string() + ": " + std::strerror(errno);
  return {};
}

bool isSafeGroupName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

}  // namespace

CgroupV1::CgroupV1() {
  if (::geteuid() != 0) return;  // only root can create groups and move the sandbox in
  memoryBase_ = baseFor("memory");
  pidsBase_ = baseFor("pids");
}

std::string CgroupV1::prepare(const std::string& name, const CgroupLimits& limits) const {
  if (!isSafeGroupName(name)) return "invalid cgroup name";
  if (hasMemory()) {
    const fs::path g = memoryBase_ / name;
    if (!makeGroupDir(g)) return "mkdir " + g.string() + ": " + std::strerror(errno);
    if (limits.memoryBytes > 0) {
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
  }
  if (hasPids()) {
    const fs::path g = pidsBase_ / name;
    if (!makeGroupDir(g)) return "mkdir " + g.string() + ": " + std::strerror(errno);
    const std::string v = limits.pids > 0 ? std::to_string(limits.pids) : "max";
    if (auto err = writeFile(g / "pids.max", v); !err.empty()) return err;
  }
  return {};
}

std::vector<Fd> CgroupV1::openProcs(const std::string& name, std::string& error) const {
  std::vector<Fd> fds;
  for (const fs::path* base : {&memoryBase_, &pidsBase_}) {
    if (base->empty()) continue;
    const fs::path p = *base / name / "cgroup.procs";
    Fd fd(::open(p.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) {
      error = "open " + p.string() + ": " + std::strerror(errno);
      return {};
    }
    fds.push_back(std::move(fd));
  }
  return fds;
}

std::optional<fs::path> CgroupV1::oomEventsFile(const std::string& name) const {
  if (!hasMemory()) return std::nullopt;
  return memoryBase_ / name / "memory.oom_control";
}

std::string CgroupV1::remove(const std::string& name, bool wait) const {
  using namespace std::chrono_literals;
  if (!isSafeGroupName(name)) return "invalid cgroup name";
  std::string error;
  for (const fs::path* base : {&memoryBase_, &pidsBase_}) {
    if (base->empty()) continue;
    const fs::path g = *base / name;
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

std::vector<std::string> CgroupV1::list() const {
  std::vector<std::string> names;
  std::error_code ec;
  for (const fs::path* base : {&memoryBase_, &pidsBase_}) {
    if (base->empty()) continue;
    for (const auto& e : fs::directory_iterator(*base, ec))
      if (e.is_directory(ec)) names.push_back(e.path().filename().string());
  }
  return names;
}

}  // namespace tango
