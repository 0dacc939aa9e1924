#include "tango/status/StatusData.hpp"

#include <algorithm>
#include <boost/json/array.hpp>

#include "tango/model/JobJson.hpp"

namespace tango::status {

namespace json = boost::json;

namespace {

double since(double t, double now) { return t > 0 ? std::max(now - t, 0.0) : 0.0; }

std::string vmName(const TangoJob& j, const std::string& prefix) {
  return j.vm.id ? instanceName(prefix, j.vm) : "";
}

}  // namespace

json::object statusData(const StatusInput& in, double now) {
  json::array queue, running, finished;
  std::size_t queued = 0;
  for (const auto& [j, pos] : in.live) {
    if (!j.assigned) {
      if (queued++ < kQueueShown) {
        queue.push_back(json::object{{"position", pos.value_or(0)},
                                     {"id", j.id},
                                     {"name", j.name},
                                     {"courselab", j.courselab},
                                     {"waitingSecs", since(j.times.queued, now)}});
      }
    } else {
      running.push_back(json::object{{"id", j.id},
                                     {"name", j.name},
                                     {"courselab", j.courselab},
                                     {"step", j.step},
                                     {"elapsedSecs", since(j.times.assigned, now)},
                                     {"vm", vmName(j, in.prefix)},
                                     {"retries", j.retries}});
    }
  }
  for (const auto& j : in.finished) {
    if (finished.size() >= kFinishedShown) break;
    json::array trace(j.trace.begin(), j.trace.end());
    finished.push_back(json::object{
        {"id", j.id},
        {"name", j.name},
        {"courselab", j.courselab},
        {"outcome", toString(j.outcome)},
        {"durationSecs", j.times.finished > 0 ? j.times.finished - j.times.queued : 0.0},
        {"usage", j.usage ? json::value(toJson(*j.usage)) : json::value(nullptr)},
        {"trace", std::move(trace)}});
  }
  return {{"now", now},
          {"queueTotal", queued},
          {"queue", std::move(queue)},
          {"running", std::move(running)},
          {"pools", in.pools},
          {"finished", std::move(finished)},
          {"info", in.info},
          {"history", in.history}};
}

}  // namespace tango::status
