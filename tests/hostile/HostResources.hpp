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
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../service/Tangod.hpp"

namespace tango::test {

// Tolerances, for a loss only (more free space is never a failure). What
// the attacks would leave if they leaked: stdout_1gb 1 GiB (disk or the
// service's memory), disk_fill 32 MB of tmpfs on `local` and ~300 MB of a
// container's layer on localDocker, memory_hog 128 MB, process_hog ~100
// sleeping processes. What clean cases showed (both suites, 2-core VM, two
// full runs): disk at most 4.9 MB less free (the service's log and
// database, the mix's 40 jobs; a pool container replaced by a fresh one),
// the job processes and tmpfs at most 16 kB more, MemAvailable up to 57 MB
// less (72 MB once) even with other processes' memory added back (page
// cache, slab, the VM's own drift, the caches of tangod and the daemons).
//  - disk 48 MB: 6x under the smallest disk leak above, 10x over the noise;
//  - held memory (job processes + Shmem) 24 MB: under the 32 MB of tmpfs
//    disk_fill leaves on `local`, far over the noise: the sharp check;
//  - MemAvailable 96 MB: over its noise; it catches what no job process
//    holds (the service or the engine keeping a flood of output, kernel
//    memory) from ~150 MB up, the held check does the rest.
constexpr std::int64_t kDiskSlack = 48LL << 20;
constexpr std::int64_t kHeldSlack = 24LL << 20;
constexpr std::int64_t kMemAvailableSlack = 96LL << 20;
// Removing a container, unmounting a tmpfs and the kernel freeing pages
// follow the job's end by a moment; noise from other processes passes too.
constexpr auto kSettle = std::chrono::seconds(15);

struct HostResources {
  std::map<std::string, std::int64_t> freeBytes;  // one path per file system
  std::int64_t memAvailable = 0;                  // MemAvailable + foreignAnon
  std::int64_t foreignAnon = 0;                   // what other processes held (see sampleHost)
  std::int64_t oursAnon = 0;                      // what the case's own processes held
  std::int64_t shmem = 0;                         // tmpfs and shared memory (Shmem)
  std::string largestOurs;                        // the biggest of them, "comm pid: N MB"
};

// Processes that belong to the case besides the test and its descendants
// (its tangod, the `local` sandboxes): e.g. the containers of its service.
using OursPredicate = std::function<bool(const std::string& pid)>;

// A field of /proc/meminfo in bytes; -1 if absent.
inline std::int64_t meminfoBytes(const std::string& field) {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  std::int64_t kb = 0;
  while (in >> key >> kb >> unit)
    if (key == field) return kb * 1024;
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

// The anonymous memory of the host's processes in three parts.
//  - foreign: processes that have nothing to do with the case (a compiler,
//    another test's service, the test process itself, which only measures).
//    They take and give back memory on their own schedule: added back to
//    MemAvailable, that noise cancels out.
//  - daemons: tangod, dockerd and containerd (the shims too), with caches
//    and records of their own (tangod keeps every finished job; both grow by
//    ~30 MB over 40 jobs at once): they count in MemAvailable only, which
//    still sees a service holding a flood of output.
//  - case: the job processes: the test's other descendants (the `local`
//    sandboxes) and what `ours` claims (the service's containers, the
//    sandbox uids, however they were reparented): with Shmem (every tmpfs),
//    the sharp check.
struct AnonParts {
  std::int64_t foreign = 0, daemons = 0, ours = 0;
  std::string largest;  // the case's biggest process, "comm pid: N MB"
};

inline AnonParts anonBytes(const OursPredicate& ours) {
  std::map<std::string, std::string> parent;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") == std::string::npos)
      parent[pid] = std::to_string(statusField(pid, "PPid:"));
  }
  const std::string self = std::to_string(::getpid());
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
  AnonParts parts;
  std::int64_t biggest = 0;
  for (const auto& [pid, ppid] : parent) {
    std::string comm = readFile("/proc/" + pid + "/comm");
    comm = comm.substr(0, comm.find('\n'));
    const std::int64_t bytes = std::max<std::int64_t>(statusField(pid, "RssAnon:"), 0) * 1024;
    const bool daemon =
        comm == "tangod" || comm.starts_with("dockerd") || comm.starts_with("containerd");
    if (!daemon && (descendant(pid) || (ours && ours(pid)))) {
      parts.ours += bytes;
      if (bytes > biggest) {
        biggest = bytes;
        parts.largest = comm + " " + pid + ": " + std::to_string(bytes >> 20) + " MB";
      }
    } else if (daemon) {
      parts.daemons += bytes;
    } else {
      parts.foreign += bytes;
    }
  }
  return parts;
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
  // MemAvailable read on both sides of the process scan, the lower kept: a
  // process ending or starting meanwhile must not make memory look free.
  const std::int64_t first = meminfoBytes("MemAvailable:");
  const AnonParts parts = anonBytes(ours);
  r.foreignAnon = parts.foreign;
  r.oursAnon = parts.ours;
  r.largestOurs = parts.largest;
  const std::int64_t avail = std::min(first, meminfoBytes("MemAvailable:"));
  r.memAvailable = avail < 0 ? -1 : avail + r.foreignAnon;
  r.shmem = meminfoBytes("Shmem:");
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
  // MemAvailable drifts with the page cache (and, in a VM, by itself) by tens
  // of MB a minute, mostly upwards: the memory the case's own parties hold,
  // their processes and every tmpfs, is the sharp check.
  const std::int64_t held = (now.oursAnon + now.shmem) - (before.oursAnon + before.shmem);
  if (held > kHeldSlack)
    out.push_back("the case's processes and tmpfs hold " + mb(held) + " more (processes " +
                  mb(before.oursAnon) + " -> " + mb(now.oursAnon) + ", the largest: " +
                  now.largestOurs + "; Shmem " + mb(before.shmem) + " -> " + mb(now.shmem) + ")");
  if (before.memAvailable < 0 || now.memAvailable < 0)
    out.push_back("MemAvailable: unreadable");
  else if (before.memAvailable - now.memAvailable > kMemAvailableSlack)
    out.push_back("MemAvailable: " + mb(before.memAvailable - now.memAvailable) +
                  " less, counting other processes' memory as available (theirs: " +
                  mb(before.foreignAnon) + " before, " + mb(now.foreignAnon) + " after)");
  return out;
}

// Waits (bounded) until disk and memory are back within the tolerances.
inline void expectBackToBaseline(const HostResources& before,
                                 const std::vector<std::filesystem::path>& paths,
                                 const OursPredicate& ours) {
  const auto deadline = std::chrono::steady_clock::now() + kSettle;
  std::vector<std::string> missing;
  do {
    const HostResources now = sampleHost(paths, ours);
    missing = shortfalls(before, now);
    if (missing.empty()) {
      // One line per case: what the tolerances stand against, in the test log.
      std::int64_t disk = 0;
      for (const auto& [path, free] : before.freeBytes)
        disk = std::max(disk, free - now.freeBytes.at(path));
      std::cerr << "host resources back: disk " << disk / 1024 << " kB less free at most, held "
                << ((now.oursAnon + now.shmem) - (before.oursAnon + before.shmem)) / 1024
                << " kB more, MemAvailable " << (before.memAvailable - now.memAvailable) / 1024
                << " kB less\n";
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  } while (std::chrono::steady_clock::now() < deadline);
  std::string text;
  for (const auto& m : missing) text += "\n  " + m;
  ADD_FAILURE() << "host resources not back to baseline after " << kSettle.count() << " s:" << text;
}

}  // namespace tango::test
