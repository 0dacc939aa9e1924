#include "tango/metrics/JobMetrics.hpp"

#include <algorithm>

namespace tango::metrics {

namespace {
template <std::size_t... I>
std::array<Histogram, sizeof...(I)> stepHistograms(std::index_sequence<I...>) {
  return {((void)I, Histogram(Histogram::stepBounds()))...};
}
}  // namespace

JobMetrics::JobMetrics()
    : steps_(stepHistograms(std::make_index_sequence<kSteps.size()>())),
      latency_(Histogram::latencyBounds()),
      queueWait_(Histogram::latencyBounds()) {}

void JobMetrics::waited(double seconds) { queueWait_.observe(std::max(seconds, 0.0)); }

std::size_t JobMetrics::stepIndex(std::string_view step) {
  return static_cast<std::size_t>(std::find(kSteps.begin(), kSteps.end(), step) - kSteps.begin());
}

void JobMetrics::observeStep(std::string_view step, double seconds) {
  if (auto i = stepIndex(step); i < kSteps.size()) steps_[i].observe(seconds);
}

void JobMetrics::vmmsError(std::string_view step) {
  if (auto i = stepIndex(step); i < kSteps.size()) ++errors_[i];
}

void JobMetrics::finished(std::string_view outcome, double latencySeconds) {
  auto i = static_cast<std::size_t>(std::find(kOutcomes.begin(), kOutcomes.end(), outcome) -
                                    kOutcomes.begin());
  if (i < kOutcomes.size()) ++outcomes_[i];
  latency_.observe(std::max(latencySeconds, 0.0));
}

}  // namespace tango::metrics
