#include "tango/status/StatusHistory.hpp"

#include <algorithm>
#include <boost/json/array.hpp>

namespace tango::status {

namespace json = boost::json;

std::map<std::string, CourselabLoad> courselabLoads(
    const std::vector<std::pair<TangoJob, std::optional<std::int64_t>>>& live, double now) {
  std::map<std::string, CourselabLoad> out;
  for (const auto& [job, position] : live) {
    auto& l = out[job.courselab];
    if (position) {
      ++l.queued;
      if (job.times.queued > 0)
        l.oldestWaitSecs = std::max(l.oldestWaitSecs, now - job.times.queued);
    } else {
      ++l.running;
    }
  }
  return out;
}

void StatusHistory::record(double now, const std::map<std::string, CourselabLoad>& loads,
                           std::int64_t finishedTotal) {
  Sample s;
  s.t = now;
  s.finished = finishedTotal;
  std::vector<std::pair<std::int64_t, const std::string*>> busiest;
  for (const auto& [lab, l] : loads) {
    s.queued += l.queued;
    s.running += l.running;
    if (l.queued > 0) busiest.emplace_back(l.queued, &lab);
  }
  std::sort(busiest.begin(), busiest.end(), [](auto& a, auto& b) { return a.first > b.first; });
  if (busiest.size() > kCourselabsPerSample) busiest.resize(kCourselabsPerSample);
  for (const auto& [n, lab] : busiest) s.waits.emplace_back(*lab, loads.at(*lab).oldestWaitSecs);
  std::lock_guard lock(mu_);
  samples_.push_back(std::move(s));
  while (samples_.size() > kSamples) samples_.pop_front();
}

json::object StatusHistory::json() const {
  json::array samples;
  std::lock_guard lock(mu_);
  for (const auto& s : samples_) {
    json::object waits;
    for (const auto& [lab, secs] : s.waits) waits[lab] = secs;
    samples.push_back(json::object{{"t", s.t},
                                   {"queued", s.queued},
                                   {"running", s.running},
                                   {"finished", s.finished},
                                   {"waits", std::move(waits)}});
  }
  return {{"everySecs", kEverySecs}, {"samples", std::move(samples)}};
}

}  // namespace tango::status
