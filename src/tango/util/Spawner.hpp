#pragma once
// Spawns processes from one thread that lives as long as the Spawner.
//
// Process::spawn sets PR_SET_PDEATHSIG, which the kernel ties to the
// spawning *thread*: a long-lived child (an SSH master connection) spawned
// by a job's worker thread would be killed when that thread ends. Spawned
// from here, it lives until the service dies, and not after (no orphan
// outlives a kill -9 of the service).
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "tango/util/Process.hpp"

namespace tango {

class Spawner {
 public:
  Spawner();
  ~Spawner();
  Spawner(const Spawner&) = delete;
  Spawner& operator=(const Spawner&) = delete;

  // Process::spawn on the spawner's thread; throws what it throws.
  Process spawn(const SpawnOptions& options);

 private:
  void loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stop_ = false;                        // guarded by mu_
  std::thread thread_;
};

}  // namespace tango
