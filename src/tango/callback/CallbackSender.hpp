#pragma once
// Delivers a finished job's output to its callback_url the way Tango does:
// POST multipart/form-data with one field "file" (the output file's bytes,
// filename = the output file name) and a request header "Filename: <name>".
// Failed deliveries are retried with exponential backoff on background
// threads. The queue lives in memory only: the caller keeps callbacks pending
// in its job store and re-enqueues them at start-up, so a delivery dropped by
// stop() is not lost.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <queue>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tango/util/AddressRange.hpp"

namespace tango {

// http:// or https:// URL with a non-empty host, no spaces or control
// characters, at most 2048 bytes. Used to validate addJob's callback_url.
bool isValidCallbackUrl(std::string_view url);

class CallbackSender {
 public:
  struct Delivery {
    std::int64_t jobId = 0;
    std::string url;
    std::filesystem::path outputFile;
    std::string fileName;  // sent as the part's filename and the Filename header
    // Asked before each attempt: false drops the delivery (another node
    // took its callback over while this one stalled), with no onDone.
    std::function<bool()> stillOurs;
    // outputFile is the job's own copy (its output as it finished), removed
    // once the delivery completes, delivered or given up.
    bool removeWhenDone = false;
  };
  // Called exactly once per delivery that completes (delivered or given up),
  // from a sender thread; never for deliveries dropped by stop().
  using OnDone = std::function<void(std::int64_t jobId, bool delivered, const std::string& detail)>;

  struct Options {
    int workers = 4;              // parallel deliveries, so one slow receiver cannot block all
    double maxBackoffSecs = 60;   // cap of the doubling backoff
    int connectTimeoutSecs = 10;  // also bounded by the total timeout
    bool verifyTls = true;        // Tango does not verify; we do unless told otherwise
    // Which peer addresses a delivery may connect to, checked at every
    // connection (redirects included, after DNS): CALLBACK_ALLOW/DENY.
    AddressPolicy policy;
  };

  // maxAttempts counts every try, the first included (values < 1 mean 1).
  // timeoutSecs bounds one whole attempt.
  CallbackSender(int maxAttempts, double initialBackoffSecs, int timeoutSecs, OnDone onDone);
  CallbackSender(int maxAttempts, double initialBackoffSecs, int timeoutSecs, OnDone onDone,
                 Options options);
  ~CallbackSender();
  CallbackSender(const CallbackSender&) = delete;
  CallbackSender& operator=(const CallbackSender&) = delete;

  // Non-blocking; the first attempt starts as soon as a sender thread is free.
  // Ignored after stop().
  void enqueue(Delivery delivery);

  // Stops promptly: wakes threads sleeping out a backoff, aborts transfers in
  // progress, joins the threads. Undone deliveries are dropped without onDone.
  // Idempotent. Must not be called from onDone (it joins the thread running it).
  void stop();

 private:
  using Clock = std::chrono::steady_clock;
  struct Pending {
    Delivery delivery;
    int attempts = 0;  // tries made so far
    Clock::time_point due;
    std::uint64_t seq = 0;  // FIFO among equal due times
  };
  struct Later {
    bool operator()(const Pending& a, const Pending& b) const {
      return a.due != b.due ? a.due > b.due : a.seq > b.seq;
    }
  };

  struct Outcome {
    bool delivered = false;
    bool permanent = false;  // retrying cannot help (bad URL, missing file)
    std::string why;
  };

  void run();
  Outcome attempt(const Delivery& d) const;
  void finish(const Delivery& d, bool delivered, const std::string& detail) const;

  const int maxAttempts_;
  const double initialBackoffSecs_;
  const int timeoutSecs_;
  const OnDone onDone_;
  const Options options_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::priority_queue<Pending, std::vector<Pending>, Later> queue_;
  std::uint64_t nextSeq_ = 0;
  bool stopping_ = false;
  // Read without the mutex by curl's progress callback to abort transfers.
  std::atomic<bool> abort_{false};
  std::vector<std::thread> threads_;
};

}  // namespace tango
