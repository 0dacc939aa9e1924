#pragma once
// What the Worker records for /metrics beyond Tango's /info counters: how long
// each VMMS step took, end-to-end latency, outcomes, errors per VMMS call.
// Lives in Stats, so every part that already counts can record here too.
#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

#include "tango/metrics/Histogram.hpp"

namespace tango::metrics {

class JobMetrics {
 public:
  static constexpr std::array<std::string_view, 7> kSteps = {
      "initializeVM", "waitVM", "copyIn", "runJob", "copyOut", "destroyVM", "resetVM"};
  static constexpr std::array<std::string_view, 5> kOutcomes = {"success", "make_failed", "timeout",
                                                                "internal_error", "cancelled"};

  JobMetrics();

  // `step` must be one of kSteps (others are ignored).
  void observeStep(std::string_view step, double seconds);
  void vmmsError(std::string_view step);
  // `outcome` must be one of kOutcomes; `latency` from submission to finish.
  void finished(std::string_view outcome, double latencySeconds);

  HistogramSnapshot step(std::size_t i) const { return steps_[i].snapshot(); }
  // A job got its VM `seconds` after it was queued.
  void waited(double seconds);
  HistogramSnapshot latency() const { return latency_.snapshot(); }
  HistogramSnapshot queueWait() const { return queueWait_.snapshot(); }
  std::int64_t errors(std::size_t i) const { return errors_[i].load(); }
  std::int64_t outcomes(std::size_t i) const { return outcomes_[i].load(); }

 private:
  static std::size_t stepIndex(std::string_view step);
  std::array<Histogram, kSteps.size()> steps_;
  Histogram latency_;
  Histogram queueWait_;
  std::array<std::atomic<std::int64_t>, kSteps.size()> errors_{};
  std::array<std::atomic<std::int64_t>, kOutcomes.size()> outcomes_{};
};

}  // namespace tango::metrics
