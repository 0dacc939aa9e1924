#pragma once
// Free disk and memory of the host before and after a hostile case: what a
// job took (files, tmpfs pages, a container's layer, buffered output) must
// come back once it is over.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "../service/Tangod.hpp"

namespace tango::test {

// Tolerances, both for a drop only (more free space is never a failure).
// What the attacks would leave if they leaked: stdout_1gb 1 GiB (disk or the
// service's memory), disk_fill 32 MB of tmpfs on `local` and ~300 MB of a
// container's layer on localDocker, memory_hog 128 MB, a container left
// running ~10-20 MB plus its layer. The noise they must stand: the
// service's log and state database (kB per job), a pool container replaced
// by a fresh one (the same size), the allocator caches of tangod and dockerd
// (a few MB), page cache and slab that MemAvailable counts only in part, and
// other processes of a shared 2-core machine (transient: retried away). 48 MB
// is well under every leak that matters and ~5x what the quiet runs showed.
constexpr std::int64_t kDiskSlack = 48LL << 20;
constexpr std::int64_t kMemorySlack = 48LL << 20;
// Removing a container, unmounting a tmpfs and the kernel freeing pages
// follow the job's end by a moment; noise from other processes passes too.
constexpr auto kSettle = std::chrono::seconds(15);

struct HostResources {
  std::map<std::string, std::int64_t> freeBytes;  // one path per file system
  std::int64_t memAvailable = 0;                  // MemAvailable + foreignAnon
  std::int64_t foreignAnon = 0;                   // what other processes held (see sampleHost)
  std::int64_t oursAnon = 0;  // what the case's own processes held (for the report)
  std::string largestOurs;    // the biggest of them, "comm pid: N MB"
};

// Processes that belong to the case besides the test and its descendants
// (its tangod, the `local` sandboxes): e.g. the containers of its service.
using OursPredicate = std::function<bool(const std::string& pid)>;

inline std::int64_t memAvailableBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  std::int64_t kb = 0;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return -1;
}

// Field `key` ("PPid:", "RssAnon:") of /proc/<pid>/status; -1 if absent.
inline std::int64_t statusField(const std::string& pid, const std::string& key) {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with(key)) return std::stoll(line.substr(key.size()));
  return -1;
}

// Anonymous memory of the processes that have nothing to do with the case:
// a compiler or another test's service on the same machine takes and gives
// back memory on its own schedule. Added back to MemAvailable, that noise
// cancels out, while whatever the case's own parties hold still counts: the
// test's descendants (tangod, the sandboxes), the Docker daemons, and
// what `ours` claims (the service's containers, the sandbox uids), so a
// leftover job process or a grown service is still seen.
inline std::pair<std::int64_t, std::int64_t> anonBytes(const OursPredicate& ours,
                                                       std::string* largest = nullptr) {
  std::map<std::string, std::string> parent;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") == std::string::npos)
      parent[pid] = std::to_string(statusField(pid, "PPid:"));
  }
  const std::string self = std::to_string(::getpid());
  // The test process itself is the measuring tool, not the case: its own
  // allocator caches count as noise.
  auto descendant = [&](std::string pid) {
    if (pid == self) return false;
    for (int depth = 0; depth < 64 && pid != "0" && pid != "-1"; ++depth) {
      if (pid == self) return true;
      auto it = parent.find(pid);
      if (it == parent.end()) return false;
      pid = it->second;
    }
    return false;
  };
  std::int64_t foreign = 0, own = 0, biggest = 0;
  for (const auto& [pid, ppid] : parent) {
    const std::string comm = readFile("/proc/" + pid + "/comm");
    const std::int64_t kb = std::max<std::int64_t>(statusField(pid, "RssAnon:"), 0);
    if (comm.starts_with("dockerd") || comm.starts_with("containerd") || descendant(pid) ||
        (ours && ours(pid))) {
      own += kb * 1024;
      if (largest && kb * 1024 > biggest) {
        biggest = kb * 1024;
        *largest =
            comm.substr(0, comm.find('\n')) + " " + pid + ": " + std::to_string(kb / 1024) + " MB";
      }
    } else
      foreign += kb * 1024;
  }
  return {foreign, own};
}

// Samples the free bytes (for an unprivileged user: f_bavail) of each path's
// file system, once per file system, and MemAvailable with other processes'
// memory added back.
inline HostResources sampleHost(const std::vector<std::filesystem::path>& paths,
                                const OursPredicate& ours) {
  HostResources r;
  std::set<dev_t> seen;
  for (const auto& p : paths) {
    struct stat st {};
    struct statvfs vfs {};
    if (::stat(p.c_str(), &st) != 0 || ::statvfs(p.c_str(), &vfs) != 0) {
      r.freeBytes[p.string()] = -1;  // a place that matters is missing: fails below
      continue;
    }
    if (!seen.insert(st.st_dev).second) continue;
    r.freeBytes[p.string()] = static_cast<std::int64_t>(vfs.f_bavail) * vfs.f_frsize;
  }
  std::tie(r.foreignAnon, r.oursAnon) = anonBytes(ours, &r.largestOurs);
  const std::int64_t avail = memAvailableBytes();
  r.memAvailable = avail < 0 ? -1 : avail + r.foreignAnon;
  return r;
}

// What is still missing, one line per resource; empty when all came back.
inline std::vector<std::string> shortfalls(const HostResources& before, const HostResources& now) {
  std::vector<std::string> out;
  auto mb = [](std::int64_t b) { return std::to_string(b / (1 << 20)) + " MB"; };
  for (const auto& [path, free] : before.freeBytes) {
    auto it = now.freeBytes.find(path);
    const std::int64_t after = it == now.freeBytes.end() ? -1 : it->second;
    if (free < 0 || after < 0)
      out.push_back(path + ": cannot statvfs");
    else if (free - after > kDiskSlack)
      out.push_back(path + ": " + mb(free - after) + " less free (" + mb(after) + " free)");
  }
  if (before.memAvailable < 0 || now.memAvailable < 0)
    out.push_back("MemAvailable: unreadable");
  else if (before.memAvailable - now.memAvailable > kMemorySlack)
    out.push_back("MemAvailable: " + mb(before.memAvailable - now.memAvailable) +
                  " less, counting other processes' memory as available (theirs: " +
                  mb(before.foreignAnon) + " before, " + mb(now.foreignAnon) +
                  " after; the case's own processes: " + mb(before.oursAnon) + " before, " +
                  mb(now.oursAnon) + " after, the largest: " + now.largestOurs + ")");
  return out;
}

// Waits (bounded) until disk and memory are back within the tolerances.
inline void expectBackToBaseline(const HostResources& before,
                                 const std::vector<std::filesystem::path>& paths,
                                 const OursPredicate& ours) {
  const auto deadline = std::chrono::steady_clock::now() + kSettle;
  std::vector<std::string> missing;
  do {
    missing = shortfalls(before, sampleHost(paths, ours));
    if (missing.empty()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  } while (std::chrono::steady_clock::now() < deadline);
  std::string text;
  for (const auto& m : missing) text += "\n  " + m;
  ADD_FAILURE() << "host resources not back to baseline after " << kSettle.count() << " s:" << text;
}

}  // namespace tango::test
