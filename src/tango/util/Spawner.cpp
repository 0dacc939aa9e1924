#include "tango/util/Spawner.hpp"

#include <future>
#include <optional>

namespace tango {

Spawner::Spawner() : thread_([this] { loop(); }) {}

Spawner::~Spawner() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Process Spawner::spawn(const SpawnOptions& options) {
  std::promise<Process> done;
  auto result = done.get_future();
  {
    std::lock_guard lock(mu_);
    tasks_.emplace_back([&] {
      try {
        done.set_value(Process::spawn(options));
      } catch (...) {
        done.set_exception(std::current_exception());
      }
    });
  }
  cv_.notify_all();
  return result.get();
}

void Spawner::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
    if (tasks_.empty()) return;  // stopping, nothing left
    auto task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

}  // namespace tango
