#include "tango/core/Preallocator.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace tango {

Preallocator::Preallocator(const Config& cfg, const VmmsSet& vmms, JobQueue& ids,
                           std::function<void()> onFree)
    : cfg_(cfg), vmms_(vmms), ids_(ids), onFree_(std::move(onFree)) {
  // Making a VM is mostly waiting (a container start is ~0.5 s of kernel
  // and runtime work): several at once keep pools full under load.
  for (int i = 0; i < kWarmers; ++i) warmers_.emplace_back([this] { warmLoop(); });
}

Preallocator::~Preallocator() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : warmers_) t.join();
  // Warm VMs hold resources (directories, containers): give them back, and
  // those a warmer set aside for destruction as it stopped.
  for (auto& [key, pool] : pools_)
    for (auto& [id, vm] : pool.free) destroyQuietly(vm);
  for (auto& vm : surplus_) destroyQuietly(vm);
}

void Preallocator::destroyQuietly(const TangoMachine& vm) {
  try {
    vmms_.of(vm).destroyVM(vm);
  } catch (const std::exception& e) {
    spdlog::warn("preallocator: destroying VM {}: {}", vm.id, e.what());
  }
}

std::string Preallocator::poolKey(const std::string& vmms, const std::string& image) const {
  if (vmms.empty() || vmms == vmms_.byDefault().name()) return image;
  return vmms + ":" + image;
}

Preallocator::Pool& Preallocator::poolFor(const std::string& vmms, const std::string& image) {
  auto [it, inserted] = pools_.try_emplace(poolKey(vmms, image));
  if (inserted) {
    Pool& p = it->second;
    Vmms& v = vmms_.named(vmms);
    p.vmms = v.name();
    p.image = image;
    p.reuse = v.reusesVms();
    p.target = cfg_.poolSize;
    p.sparesSetting = cfg_.poolSpares;
    p.watchHosts = !v.hosts().empty();
  }
  return it->second;
}

TangoMachine Preallocator::newMachine(const Pool& pool) {
  TangoMachine vm;
  vm.name = pool.image;
  vm.image = pool.image;
  vm.vmms = pool.vmms;
  vm.node = cfg_.nodeId;
  vm.cores = pool.cores ? pool.cores : cfg_.dockerCoresLimit;
  vm.memory = pool.memory ? pool.memory : cfg_.dockerMemoryLimit;
  vm.id = ids_.nextVmId();
  return vm;
}

std::optional<Preallocator::Allocation> Preallocator::allocVM(const TangoMachine& want,
                                                              bool fresh) {
  std::unique_lock lock(mu_);
  Pool& pool = poolFor(want);
  Vmms& vmms = vmms_.named(pool.vmms);
  // Spares are kept besides the running VMs: the pool's size bounds the jobs
  // at once, warm or not, unless the VMMS's hosts take more (distDocker).
  const auto atOnce =
      std::max(pool.capacity(), static_cast<std::size_t>(std::max(vmms.jobsAtOnce(pool.image), 0)));
  if (pool.busy.size() >= atOnce) return std::nullopt;
  if (!fresh && !pool.free.empty()) {
    // The VMMS's favourite (distDocker: on the engine with the most free
    // slots); VMs whose host went away leave the pool.
    auto best = pool.free.end();
    int bestScore = 0;
    for (auto it = pool.free.begin(); it != pool.free.end();) {
      const int score = vmms.preference(it->second);
      if (score < 0) {
        surplus_.push_back(it->second);
        it = pool.free.erase(it);
        continue;
      }
      if (best == pool.free.end() || score > bestScore) {
        best = it;
        bestScore = score;
      }
      ++it;
    }
    if (best != pool.free.end()) {
      auto node = pool.free.extract(best);
      TangoMachine vm = node.mapped();
      pool.busy.insert(std::move(node));
      cv_.notify_all();  // the warmer refills in the background
      return Allocation{vm, true};
    }
  }
  // A VM already being made is ready sooner than a new one would be; the
  // manager is woken when it is (or when making it fails). Unless the last
  // one failed: then the job makes its own, and its retries and their
  // cause reach the job rather than wait behind a broken warm-up.
  if (!fresh && !pool.warming.empty() && !pool.lastWarmFailed) return std::nullopt;
  TangoMachine vm = newMachine(pool);
  pool.busy.emplace(vm.id, vm);
  cv_.notify_all();  // a new pool's spares start now, not when this job ends
  return Allocation{vm, false};
}

void Preallocator::cancel(const Allocation& alloc) {
  {
    std::lock_guard lock(mu_);
    Pool& pool = poolFor(alloc.vm);
    pool.busy.erase(alloc.vm.id);
    // A warm VM is as good as before; a cold one was never made.
    if (alloc.warm) pool.free.emplace(alloc.vm.id, alloc.vm);
  }
  cv_.notify_all();
}

Preallocator::Allocation Preallocator::renewVM(const TangoMachine& old, bool fresh) {
  std::lock_guard lock(mu_);
  Pool& pool = poolFor(old);
  pool.busy.erase(old.id);
  cv_.notify_all();
  if (pool.reuse && !fresh && !pool.free.empty()) {
    auto node = pool.free.extract(pool.free.begin());
    TangoMachine vm = node.mapped();
    pool.busy.insert(std::move(node));
    return {vm, true};
  }
  TangoMachine vm = newMachine(pool);
  pool.busy.emplace(vm.id, vm);
  return {vm, false};
}

void Preallocator::releaseVM(const TangoMachine& vm) {
  {
    std::lock_guard lock(mu_);
    poolFor(vm).busy.erase(vm.id);
  }
  cv_.notify_all();
  if (onFree_) onFree_();
}

void Preallocator::returnVM(const TangoMachine& vm) {
  {
    std::lock_guard lock(mu_);
    Pool& pool = poolFor(vm);
    pool.busy.erase(vm.id);
    if (pool.size() < static_cast<std::size_t>(pool.want()))
      pool.free.emplace(vm.id, vm);
    else
      surplus_.push_back(vm);  // the pool shrank while the job ran
  }
  cv_.notify_all();
  if (onFree_) onFree_();
}

void Preallocator::demand(const std::string& key, std::size_t queued) {
  if (cfg_.poolMax <= 0) return;
  {
    std::lock_guard lock(mu_);
    auto it = pools_.find(key);
    if (it == pools_.end() || !it->second.reuse) return;
    Pool& pool = it->second;
    pool.lastBusy = std::chrono::steady_clock::now();  // a queue is not idleness
    const auto more = (queued + static_cast<std::size_t>(cfg_.poolGrowEvery) - 1) /
                      static_cast<std::size_t>(cfg_.poolGrowEvery);
    const int grown = static_cast<int>(std::min<std::size_t>(
        more, static_cast<std::size_t>(std::max(cfg_.poolMax - pool.target, 0))));
    if (grown <= pool.grown) return;
    spdlog::info("preallocator: pool {} grows to {} VMs for {} queued jobs", key,
                 pool.target + grown, queued);
    pool.grown = grown;
  }
  cv_.notify_all();
}

void Preallocator::shrinkIdle() {
  const auto now = std::chrono::steady_clock::now();
  for (auto& [image, pool] : pools_) {
    if (!pool.busy.empty()) pool.lastBusy = now;
    if (pool.grown == 0 || now - pool.lastBusy < std::chrono::seconds(cfg_.poolIdleSecs)) continue;
    spdlog::info("preallocator: pool {} idle, back to {} VMs", image, pool.target);
    pool.grown = 0;
    while (pool.size() > static_cast<std::size_t>(pool.target) && !pool.free.empty()) {
      surplus_.push_back(pool.free.begin()->second);
      pool.free.erase(pool.free.begin());
    }
  }
}

void Preallocator::dropLostSpares() {
  for (auto& [key, pool] : pools_) {
    if (!pool.watchHosts) continue;
    Vmms& vmms = vmms_.named(pool.vmms);
    for (auto it = pool.free.begin(); it != pool.free.end();) {
      if (vmms.preference(it->second) >= 0) {
        ++it;
        continue;
      }
      spdlog::info("preallocator: VM {} of pool {} lost its host; replacing it", it->first, key);
      surplus_.push_back(it->second);
      it = pool.free.erase(it);
    }
  }
}

void Preallocator::update(const std::string& vmms, const std::string& image, int num,
                          std::optional<int> cores, std::optional<int> memory) {
  {
    std::lock_guard lock(mu_);
    Pool& pool = poolFor(vmms, image);
    pool.target = num;
    if (cores) pool.cores = cores;
    if (memory) pool.memory = memory;
    // Shrink: free VMs above the target are destroyed by the warmer (and
    // those still being made, once they are: warmLoop).
    const auto keep = pool.reuse ? static_cast<std::size_t>(num) : pool.sparesWanted();
    while (pool.spares() > keep && !pool.free.empty()) {
      surplus_.push_back(pool.free.begin()->second);
      pool.free.erase(pool.free.begin());
    }
  }
  cv_.notify_all();
}

void Preallocator::warmLoop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    // Destroy surplus first, then create one missing VM per pass. Each of
    // the kWarmers threads runs this loop.
    if (!surplus_.empty()) {
      TangoMachine vm = surplus_.back();
      surplus_.pop_back();
      lock.unlock();
      destroyQuietly(vm);
      lock.lock();
      continue;
    }
    Pool* needy = nullptr;
    std::string image;
    // The short pool with the fewest VMs in the making, so that warmers
    // spread over pools instead of all serving the first.
    for (auto& [name, pool] : pools_) {
      if (!pool.wantsSpare()) continue;
      if (!needy || pool.warming.size() < needy->warming.size()) {
        needy = &pool;
        image = name;
      }
    }
    if (!needy) {
      // A grown pool is watched for idleness, and spares on hosts that went
      // away are replaced; otherwise only events wake us.
      bool watch = false;
      for (auto& [name, pool] : pools_) watch = watch || pool.grown > 0 || pool.watchHosts;
      if (watch)
        cv_.wait_for(lock, std::chrono::seconds(1));
      else
        cv_.wait(lock);
      shrinkIdle();
      dropLostSpares();
      continue;
    }
    TangoMachine vm;
    try {
      vm = newMachine(*needy);
    } catch (const std::exception& e) {  // no VM id: the store is unreachable
      spdlog::warn("preallocator: cannot make a VM for {}: {}", image, e.what());
      cv_.wait_for(lock, std::chrono::seconds(2), [this] { return stop_; });
      continue;
    }
    needy->warming.emplace(vm.id, vm);
    lock.unlock();
    Vmms& vmms = vmms_.of(vm);
    StepResult init;
    try {
      init = vmms.initializeVM(vm, std::chrono::seconds(cfg_.initializeVmTimeout));
      if (init.ok) init = vmms.waitVM(vm, std::chrono::seconds(cfg_.waitVmTimeout));
    } catch (const std::exception& e) {
      init = StepResult::failure(e.what());  // a VMMS that throws failed, nothing more
    }
    if (!init.ok) {
      spdlog::warn("preallocator: VM {} for {} failed: {}", vm.id, image, init.error);
      destroyQuietly(vm);
    }
    lock.lock();
    Pool& pool = poolFor(vm);  // pools_ never erases, references stay valid
    pool.warming.erase(vm.id);
    pool.lastWarmFailed = !init.ok;
    // Jobs waiting for this VM are woken however its making ended.
    const auto room = pool.reuse ? static_cast<std::size_t>(pool.want()) : pool.sparesWanted();
    const auto held = pool.reuse ? pool.size() : pool.spares();  // the VM itself left `warming`
    if (!init.ok || held >= room) {
      lock.unlock();
      if (onFree_) onFree_();
      lock.lock();
    }
    if (init.ok && held >= room) {
      // The pool shrank while this VM was being made (a prealloc to 0): it
      // must not join, or a pool set to 0 would keep a VM for good.
      surplus_.push_back(vm);
      continue;
    }
    if (init.ok) {
      pool.free.emplace(vm.id, vm);
      lock.unlock();
      if (onFree_) onFree_();
      lock.lock();
    } else {
      // Do not spin on a broken image: back off before the next attempt.
      cv_.wait_for(lock, std::chrono::seconds(2), [this] { return stop_; });
    }
  }
}

std::optional<PoolState> Preallocator::pool(const std::string& image) const {
  std::lock_guard lock(mu_);
  auto it = pools_.find(image);
  if (it == pools_.end()) return std::nullopt;
  PoolState s;
  const Pool& p = it->second;
  for (auto* m : {&p.free, &p.busy, &p.warming})
    for (auto& [id, vm] : *m) s.total.push_back(id);
  std::sort(s.total.begin(), s.total.end());
  for (auto& [id, vm] : p.free) s.free.push_back(id);
  if (p.watchHosts) {
    Vmms& vmms = vmms_.named(p.vmms);
    for (auto* m : {&p.free, &p.busy})
      for (auto& [id, vm] : *m)
        if (auto host = vmms.hostOf(vm); !host.empty()) s.hosts[id] = host;
  }
  return s;
}

std::map<std::string, PoolState> Preallocator::pools() const {
  std::vector<std::string> names;
  {
    std::lock_guard lock(mu_);
    for (auto& [name, pool] : pools_) names.push_back(name);
  }
  std::map<std::string, PoolState> out;
  for (auto& n : names)
    if (auto s = pool(n)) out.emplace(n, *s);
  return out;
}

std::size_t Preallocator::busyCount() const {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (auto& [name, pool] : pools_) n += pool.busy.size();
  return n;
}

}  // namespace tango
