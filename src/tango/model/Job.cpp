#include "tango/model/Job.hpp"

#include <chrono>
#include <ctime>

namespace tango {

std::string instanceName(const std::string& prefix, const TangoMachine& vm) {
  return prefix + "-" + std::to_string(vm.id) + "-" + vm.name;
}

const char* toString(JobState s) {
  switch (s) {
    case JobState::Queued:
      return "queued";
    case JobState::Running:
      return "running";
    case JobState::Finished:
      return "finished";
  }
  return "unknown";
}

const char* toString(JobOutcome o) {
  switch (o) {
    case JobOutcome::None:
      return "none";
    case JobOutcome::Success:
      return "success";
    case JobOutcome::MakeFailed:
      return "make_failed";
    case JobOutcome::Timeout:
      return "timeout";
    case JobOutcome::InternalError:
      return "internal_error";
    case JobOutcome::Cancelled:
      return "cancelled";
  }
  return "unknown";
}

const char* toString(JobPriority p) {
  switch (p) {
    case JobPriority::Low:
      return "low";
    case JobPriority::Normal:
      return "normal";
    case JobPriority::High:
      return "high";
  }
  return "normal";
}

std::optional<JobPriority> parsePriority(std::string_view s) {
  for (auto p : {JobPriority::Low, JobPriority::Normal, JobPriority::High})
    if (s == toString(p)) return p;
  return std::nullopt;
}

double nowSeconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string ctimeString(double epochSeconds) {
  std::time_t t = static_cast<std::time_t>(epochSeconds);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[64];
  // Python's time.ctime(): "%a %b %d %H:%M:%S %Y" with the day padded by a space.
  std::strftime(buf, sizeof buf, "%a %b %e %H:%M:%S %Y", &tm);
  return buf;
}

void TangoJob::appendTrace(const std::string& message) {
  trace.push_back(ctimeString(nowSeconds()) + "|" + message);
}

}  // namespace tango
