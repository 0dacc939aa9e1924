#pragma once
// A Prometheus histogram with fixed bucket bounds, safe to observe from many
// worker threads. The snapshot is cumulative, as the exposition format wants.
#include <cstdint>
#include <mutex>
#include <vector>

namespace tango::metrics {

struct HistogramSnapshot {
  std::vector<double> bounds;             // upper bounds, ascending, without +Inf
  std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf (= count)
  double sum = 0;
  std::uint64_t count = 0;
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  HistogramSnapshot snapshot() const;

  // Bucket bounds in seconds: VMMS steps take milliseconds to minutes,
  // end-to-end latency up to the longest job timeout.
  static std::vector<double> stepBounds();
  static std::vector<double> latencyBounds();

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<std::uint64_t> counts_;  // per bucket (not cumulative), last = above every bound
  double sum_ = 0;
};

}  // namespace tango::metrics
