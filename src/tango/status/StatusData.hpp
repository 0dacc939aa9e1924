#pragma once
// The JSON the live status page polls: queue, running jobs, pools, the last
// finished jobs and /info's counters. Lists are capped so a deadline night
// with thousands of queued jobs stays a small, fast answer.
#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "tango/model/Job.hpp"

namespace tango::status {

constexpr std::size_t kQueueShown = 200;
constexpr std::size_t kFinishedShown = 25;

struct StatusInput {
  std::vector<std::pair<TangoJob, std::optional<std::int64_t>>> live;  // with queue positions
  std::vector<TangoJob> finished;                                      // newest first
  boost::json::object pools;
  boost::json::object info;
  std::string prefix;           // VM instance names
  boost::json::object history;  // StatusHistory::json(), for the charts
};

boost::json::object statusData(const StatusInput& in, double now);

}  // namespace tango::status
