// What /jobs/<key>/1/ lists, as text: each finished job's Tango element
// serialised once and copied into every answer that lists it.
#include <boost/json/serialize.hpp>

#include "tango/core/JobQueue.hpp"
#include "tango/core/JobService.hpp"
#include "tango/model/JobJson.hpp"

namespace tango {

JobQueue::FinishedJson JobQueue::listedOf(const TangoJob& job) {
  return {job.keyId, std::make_shared<const std::string>(
                         boost::json::serialize(toTangoJson(job, std::nullopt)))};
}

std::vector<JobQueue::FinishedJson> JobQueue::finishedJson(int limit) {
  std::vector<FinishedJson> out;
  for (const auto& job : finished(limit)) out.push_back(listedOf(job));
  return out;
}

std::string JobService::deadJobsJson(const std::optional<std::string>& owner) {
  return boost::json::serialize(jobs(true, owner));
}

}  // namespace tango
