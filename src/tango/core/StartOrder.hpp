#pragma once
// The order queued jobs start in, on a night when everyone submits at once
// (README "Deadline night"). Three rules, in this order:
//   1. priority: every queued job of a higher priority before any of a lower
//      one (a regrade at `low` never delays a live submission);
//   2. fair share: among keys, then among one key's courselabs, the next VM
//      goes to the one with the fewest VMs (running and about to start) for
//      its weight, so 2,000 queued jobs of one course delay another course's
//      first job by at most about one job's run time per VM;
//   3. first in, first out within a courselab (and on ties, the oldest head).
// Both queues (LocalJobQueue, RedisJobQueue) walk their candidates in this
// order and report positions from it: one definition of the schedule.
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "tango/config/Config.hpp"
#include "tango/model/Job.hpp"

namespace tango {

struct SharePolicy {
  std::map<std::string, double> keyWeight;            // by keyId; default 1
  std::map<std::string, JobPriority> keyMaxPriority;  // by keyId; default maxPriority
  std::map<std::string, double> courselabWeight;      // by courselab name; default 1
  JobPriority maxPriority = JobPriority::Normal;

  static SharePolicy fromConfig(const Config& cfg);
  double weightOfKey(const std::string& keyId) const;
  double weightOfCourselab(const std::string& courselab) const;
  JobPriority maxPriorityOf(const std::string& keyId) const;
};

// `queued`: the queued jobs, oldest first. `running`: the jobs that hold a
// VM now (they count against their key's and courselab's share). Returns
// the indices of `queued` in the order the jobs are to start.
std::vector<std::size_t> startOrder(const std::vector<const TangoJob*>& queued,
                                    const std::vector<const TangoJob*>& running,
                                    const SharePolicy& policy);

}  // namespace tango
