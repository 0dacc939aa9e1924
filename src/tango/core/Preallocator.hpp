#pragma once
// Tango's Preallocator: a pool of VMs per image, made when the image's first
// job (or a prealloc) arrives, or at start-up for WARM_IMAGES. Pools are kept
// warm in the background (created and ready before a job asks), each VM runs
// exactly one job and is then destroyed, so no job ever sees another's
// leftovers.
//
// A pool's size N (POOL_SIZE, or prealloc's num) means two things: N jobs of
// the image may run at once, and N spare VMs are kept ready besides those
// running (or POOL_SPARES of them: a burst of jobs coming one after another
// faster than the VMMS makes VMs finds that many ready). A VM's replacement
// starts warming when its job ends, or at once when the job took the pool's
// last ready VM (wantsSpare): jobs that follow one another find a ready VM
// without every warm job sharing the engine with a container start.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tango/config/Config.hpp"
#include "tango/core/Cluster.hpp"
#include "tango/core/JobQueue.hpp"
#include "tango/model/Job.hpp"
#include "tango/vmms/VmmsSet.hpp"

namespace tango {

class Preallocator {
 public:
  // `onFree` is called (without locks held) whenever a VM becomes available,
  // and when making one ends without one (jobs waiting for it must move on).
  // VM ids come from `ids` (unique across nodes with Redis).
  Preallocator(const Config& cfg, const VmmsSet& vmms, JobQueue& ids, std::function<void()> onFree);
  ~Preallocator();
  Preallocator(const Preallocator&) = delete;
  Preallocator& operator=(const Preallocator&) = delete;

  struct Allocation {
    TangoMachine vm;
    bool warm = false;  // already initialized and ready; otherwise the worker initializes it
  };
  // A pool is named by its image, or "<vmms>:<image>" for a VMMS other than
  // the default (one node may serve an image on two VMMSs).
  std::string poolKey(const std::string& vmms, const std::string& image) const;
  std::string poolKey(const TangoMachine& vm) const { return poolKey(vm.vmms, vm.name); }

  // A VM for the pool of `want` (its vmms and name), or nullopt when that
  // pool is at capacity. Never blocks on a VMMS call. `fresh`: never a warm
  // one (the job needs a VM made for it).
  std::optional<Allocation> allocVM(const TangoMachine& want, bool fresh = false);
  // Takes back an allocation whose job went to another node first.
  void cancel(const Allocation& alloc);
  // A VM in place of `old`, for a retry; `old` must be destroyed by the
  // caller. A fresh (cold) one, or with a VMMS that reuses VMs a free one of
  // the pool: there a VM may hold a scarce slot (a tashiSSH machine's), and
  // a cold one could wait for the very slot an idle pool VM holds.
  // `fresh`: never a pool VM.
  Allocation renewVM(const TangoMachine& old, bool fresh = false);
  // The job is done with `vm` (already destroyed by the worker): refill the pool.
  void releaseVM(const TangoMachine& vm);
  // The job is done with `vm`, which was reset for another job (a VMMS
  // that reuses VMs): back to the pool, or destroyed if the pool shrank.
  void returnVM(const TangoMachine& vm);

  // Tango's prealloc: keep `num` spare VMs for `image` and let `num` jobs of
  // it run at once (0 = no warm VMs, and none are made later; jobs still
  // run, one at a time, each on a VM made for it).
  void update(const std::string& vmms, const std::string& image, int num, std::optional<int> cores,
              std::optional<int> memory);
  // `queued` jobs of `image` wait for its full pool: a pool of reused VMs
  // grows (POOL_MAX, POOL_GROW_EVERY); it shrinks when idle (POOL_IDLE_SECS).
  void demand(const std::string& key, std::size_t queued);
  std::optional<PoolState> pool(const std::string& key) const;
  std::map<std::string, PoolState> pools() const;
  std::size_t busyCount() const;

 private:
  struct Pool {
    std::string vmms, image;
    bool reuse = false;  // its VMMS reuses VMs (returnVM)
    int target = 0;
    int sparesSetting = -1;  // POOL_SPARES, -1: as many as want()
    int grown = 0;           // VMs beyond target while its queue asks for them (demand)
    std::chrono::steady_clock::time_point lastBusy = std::chrono::steady_clock::now();
    std::optional<int> cores, memory;
    std::map<std::int64_t, TangoMachine> free, busy, warming;
    bool lastWarmFailed = false;  // the latest VM made for the pool failed
    bool watchHosts = false;      // its VMMS has several hosts: spares may lose theirs
    std::size_t size() const { return free.size() + busy.size() + warming.size(); }
    // Ready or being made: what the warmers keep at `target`.
    std::size_t spares() const { return free.size() + warming.size(); }
    // Jobs of the image at once.
    std::size_t capacity() const { return static_cast<std::size_t>(std::max(want(), 1)); }
    int want() const { return target + grown; }
    // Spare VMs of a pool whose VMs are not reused: none in a pool set to 0.
    std::size_t sparesWanted() const {
      if (target == 0) return 0;
      return static_cast<std::size_t>(sparesSetting >= 0 ? sparesSetting : want());
    }
    // Whether a warmer should make one more spare now. A job's replacement
    // is made when the job takes its VM if that left no VM ready (the next
    // job would wait for it); otherwise once the job has ended, since a
    // container starting beside a job slows the job down (13 ms of a 43 ms
    // warm job, docs/benchmarks.md).
    //
    // VMs that are reused (an EC2 instance takes minutes to boot and is
    // billed while it runs) are Tango's pool instead: `target` VMs in all,
    // busy or free, each back in the pool after its job.
    bool wantsSpare() const {
      if (reuse) return size() < static_cast<std::size_t>(want());
      const auto want = sparesWanted();
      return spares() < want && (free.empty() || busy.size() + spares() < want);
    }
  };
  Pool& poolFor(const std::string& vmms, const std::string& image);  // mu_ held
  Pool& poolFor(const TangoMachine& vm) { return poolFor(vm.vmms, vm.name); }
  TangoMachine newMachine(const Pool& pool);
  void warmLoop();
  void destroyQuietly(const TangoMachine& vm);
  void shrinkIdle();      // mu_ held
  void dropLostSpares();  // mu_ held: free VMs whose host went away

  const Config& cfg_;
  const VmmsSet& vmms_;
  JobQueue& ids_;
  std::function<void()> onFree_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Pool> pools_;
  std::vector<TangoMachine> surplus_;  // free VMs above target, to destroy
  bool stop_ = false;
  static constexpr int kWarmers = 4;  // VMs made at once, across all pools
  std::vector<std::thread> warmers_;
};

}  // namespace tango
