#pragma once
// Counters behind /info (Tango's names) and, later, /metrics.
#include <atomic>
#include <chrono>
#include <cstdint>

#include "tango/metrics/JobMetrics.hpp"

namespace tango {

struct Stats {
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::atomic<std::int64_t> jobRequests{0};
  std::atomic<std::int64_t> jobRetries{0};
  std::atomic<std::int64_t> waitvmTimeouts{0};
  std::atomic<std::int64_t> runjobTimeouts{0};
  std::atomic<std::int64_t> copyinErrors{0};
  std::atomic<std::int64_t> runjobErrors{0};
  std::atomic<std::int64_t> copyoutErrors{0};
  std::atomic<std::int64_t> jobsFinished{0};
  std::atomic<std::int64_t> callbacksDelivered{0};
  std::atomic<std::int64_t> callbacksFailed{0};
  // Jobs this node gave up because their lease lapsed (another node runs them).
  std::atomic<std::int64_t> leasesLost{0};
  metrics::JobMetrics metrics;  // histograms and per-label counters of /metrics
};

}  // namespace tango
