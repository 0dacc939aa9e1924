#pragma once
// Polls that wait for their output (`/poll/...?wait=N`): parked here, with no
// thread each, until the output file appears or the wait ends. A job that
// finishes on this node wakes the polls for its output file at once; a
// sweep every 200 ms finds outputs written by another node sharing the
// courselabs. One thread serves every parked poll.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tango/rest/Http.hpp"

namespace tango {

class PollWaits {
 public:
  using Clock = std::chrono::steady_clock;
  using Done = std::function<void(HttpResponse)>;
  // The output's answer if it is there now, nullopt if not yet.
  using Look = std::function<std::optional<HttpResponse>()>;

  PollWaits();
  ~PollWaits();
  PollWaits(const PollWaits&) = delete;
  PollWaits& operator=(const PollWaits&) = delete;

  // Calls `done` once, from this object's thread: with look()'s answer as
  // soon as it has one, or with `notYet` at `until`. `name` is the output
  // file's name, as a finished job announces it.
  void park(std::string name, Look look, HttpResponse notYet, Clock::time_point until, Done done);
  // A job wrote the output file `name` (in some courselab).
  void ready(const std::string& name);
  // Answers every parked poll with its notYet now, and every later one at
  // once: the server is going away.
  void stop();

  std::size_t parked();

 private:
  struct Waiter {
    Look look;
    HttpResponse notYet;
    Clock::time_point until;
    Done done;
  };
  void loop();

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::multimap<std::string, Waiter> waiters_;  // by output file name; guarded by mu_
  std::vector<std::string> ready_;              // names announced since the last look
  std::thread thread_;
};

}  // namespace tango
