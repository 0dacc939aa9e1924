#include "tango/rest/PollWaits.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace tango {

namespace {
// How often every parked poll looks again, for outputs no job of this node
// announced (another node's, sharing COURSELABS).
constexpr auto kSweep = std::chrono::milliseconds(200);
}  // namespace

PollWaits::PollWaits() : thread_([this] { loop(); }) {}

PollWaits::~PollWaits() {
  stop();
  thread_.join();
}

void PollWaits::park(std::string name, Look look, HttpResponse notYet, Clock::time_point until,
                     Done done) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      waiters_.emplace(std::move(name),
                       Waiter{std::move(look), std::move(notYet), until, std::move(done)});
      cv_.notify_all();  // its deadline may be the nearest
      return;
    }
  }
  done(std::move(notYet));
}

void PollWaits::ready(const std::string& name) {
  std::lock_guard lock(mu_);
  if (waiters_.find(name) == waiters_.end()) return;
  ready_.push_back(name);
  cv_.notify_all();
}

void PollWaits::stop() {
  std::lock_guard lock(mu_);
  stopping_ = true;
  cv_.notify_all();
}

std::size_t PollWaits::parked() {
  std::lock_guard lock(mu_);
  return waiters_.size();
}

void PollWaits::loop() {
  auto nextSweep = Clock::now() + kSweep;
  std::unique_lock lock(mu_);
  for (;;) {
    auto wake = nextSweep;
    for (const auto& [name, w] : waiters_) wake = std::min(wake, w.until);
    cv_.wait_until(lock, wake,
                   [&] { return stopping_ || !ready_.empty() || Clock::now() >= wake; });
    const auto now = Clock::now();
    const bool sweep = now >= nextSweep;
    if (sweep) nextSweep = now + kSweep;
    auto names = std::exchange(ready_, {});
    // Answered polls are taken out under the lock and answered after it:
    // done() posts to the connection's thread, which may park another.
    std::vector<std::pair<Done, HttpResponse>> answers;
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      Waiter& w = it->second;
      const bool look =
          sweep || stopping_ || std::find(names.begin(), names.end(), it->first) != names.end();
      std::optional<HttpResponse> found;
      if (look) {
        try {
          found = w.look();
        } catch (const std::exception& e) {
          spdlog::warn("poll wait: {}", e.what());
          found = jsonFailure("Internal server error", 500);
        }
      }
      if (found || stopping_ || now >= w.until) {
        answers.emplace_back(std::move(w.done), found ? std::move(*found) : std::move(w.notYet));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
    const bool done = stopping_;
    lock.unlock();
    for (auto& [answer, response] : answers) answer(std::move(response));
    if (done) return;
    lock.lock();
  }
}

}  // namespace tango
