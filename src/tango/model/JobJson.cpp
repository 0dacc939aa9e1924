#include "tango/model/JobJson.hpp"

#include <boost/json/array.hpp>

#include "tango/util/KeyId.hpp"

namespace tango {
namespace json = boost::json;

namespace {

template <class T>
json::value opt(const std::optional<T>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

json::object machineJson(const TangoMachine& vm) {
  return {{"name", vm.name},
          {"image", vm.image},
          {"vmms", vm.vmms},
          {"cores", opt(vm.cores)},
          {"memory", opt(vm.memory)},
          {"disk", opt(vm.disk)},
          {"network", opt(vm.network)},
          {"id", vm.id},
          {"resume", opt(vm.resume)}};
}

json::array inputJson(const std::vector<InputFile>& input) {
  json::array a;
  for (const auto& f : input)
    a.push_back(json::object{{"localFile", f.localFile}, {"destFile", f.destFile}});
  return a;
}

json::object timesJson(const StepTimes& t) {
  return {{"queued", t.queued},   {"assigned", t.assigned}, {"initializeVM", t.initializeVM},
          {"waitVM", t.waitVM},   {"copyIn", t.copyIn},     {"runJob", t.runJob},
          {"copyOut", t.copyOut}, {"finished", t.finished}};
}

// Readers that tolerate missing fields (documents written by older versions).
std::string str(const json::object& o, const char* k) {
  auto* v = o.if_contains(k);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}
std::optional<std::string> optStr(const json::object& o, const char* k) {
  auto* v = o.if_contains(k);
  if (v && v->is_string()) return std::string(v->get_string());
  return std::nullopt;
}
std::int64_t i64(const json::object& o, const char* k, std::int64_t dflt = 0) {
  auto* v = o.if_contains(k);
  if (!v) return dflt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
  if (v->is_double()) return static_cast<std::int64_t>(v->get_double());
  return dflt;
}
std::optional<int> optInt(const json::object& o, const char* k) {
  auto* v = o.if_contains(k);
  if (!v || v->is_null()) return std::nullopt;
  return static_cast<int>(i64(o, k));
}
double dbl(const json::object& o, const char* k) {
  auto* v = o.if_contains(k);
  if (!v) return 0;
  if (v->is_double()) return v->get_double();
  return static_cast<double>(i64(o, k));
}
bool boolean(const json::object& o, const char* k) {
  auto* v = o.if_contains(k);
  return v && v->is_bool() && v->get_bool();
}

}  // namespace

json::object toJson(const ResourceUsage& u) {
  return {{"wall_ms", u.wallMs},      {"user_ms", u.userMs},          {"sys_ms", u.sysMs},
          {"max_rss_kb", u.maxRssKb}, {"exit_status", u.exitStatus},  {"signal", u.signal},
          {"timed_out", u.timedOut},  {"output_bytes", u.outputBytes}};
}

std::optional<ResourceUsage> usageFromJson(const json::value& v) {
  if (!v.is_object()) return std::nullopt;
  const auto& o = v.get_object();
  ResourceUsage u;
  u.wallMs = i64(o, "wall_ms");
  u.userMs = i64(o, "user_ms");
  u.sysMs = i64(o, "sys_ms");
  u.maxRssKb = i64(o, "max_rss_kb");
  u.exitStatus = static_cast<int>(i64(o, "exit_status"));
  u.signal = static_cast<int>(i64(o, "signal"));
  u.timedOut = boolean(o, "timed_out");
  u.outputBytes = i64(o, "output_bytes");
  return u;
}

json::object toJson(const JobLimits& l) {
  json::object o;
  if (l.procs) o["procs"] = *l.procs;
  if (l.fileSizeBytes) o["file_size_mb"] = *l.fileSizeBytes / (1024 * 1024);
  if (l.memoryMb) o["memory_mb"] = *l.memoryMb;
  if (l.diskMb) o["disk_mb"] = *l.diskMb;
  if (l.cpuSecs) o["cpu_seconds"] = *l.cpuSecs;
  return o;
}

JobLimits limitsFromJson(const json::value& v) {
  JobLimits l;
  if (!v.is_object()) return l;
  const auto& o = v.get_object();
  auto opt = [&](const char* k) -> std::optional<std::int64_t> {
    auto* x = o.if_contains(k);
    if (x && x->is_int64() && x->get_int64() > 0) return x->get_int64();
    return std::nullopt;
  };
  if (auto n = opt("procs")) l.procs = static_cast<int>(*n);
  if (auto n = opt("file_size_mb")) l.fileSizeBytes = *n * 1024 * 1024;
  if (auto n = opt("memory_mb")) l.memoryMb = static_cast<int>(*n);
  if (auto n = opt("disk_mb")) l.diskMb = static_cast<int>(*n);
  if (auto n = opt("cpu_seconds")) l.cpuSecs = static_cast<int>(*n);
  return l;
}

namespace {
// `path` relative to `labDir` when it lies below it, else as it is.
std::string belowLab(const std::string& path, const std::string& labDir) {
  if (labDir.empty() || path.size() <= labDir.size() + 1 || !path.starts_with(labDir) ||
      path[labDir.size()] != '/')
    return path;
  return path.substr(labDir.size() + 1);
}

// null without a callback, else {"state", "detail", "time"}: "waiting" for
// the job to finish, "pending" while being delivered, then "delivered" or
// "failed".
json::value callbackJson(const TangoJob& job) {
  if (!job.notifyURL) return nullptr;
  const bool done = !job.callbackResult.empty();
  const char* state = done                              ? job.callbackResult.c_str()
                      : job.state == JobState::Finished ? "pending"
                                                        : "waiting";
  return json::object{
      {"state", state},
      {"detail", job.callbackDetail},
      {"time", done ? json::value(ctimeString(job.callbackTime)) : json::value(nullptr)}};
}
}  // namespace

json::object toTangoJson(const TangoJob& job, std::optional<std::int64_t> queuePosition) {
  json::array trace;
  for (const auto& t : job.trace) trace.push_back(json::string(t));
  json::object o{
      {"id", job.id},
      {"name", job.name},
      {"assigned", job.assigned},
      {"retries", job.retries},
      {"outputFile", job.outputFile},
      {"notifyURL", opt(job.notifyURL)},
      {"maxOutputFileSize", job.maxOutputFileSize},
      {"timeout", job.timeout},
      {"trace", std::move(trace)},
      {"vm", machineJson(job.vm)},
      {"input", inputJson(job.input)},
      // Beyond Tango (extra fields only):
      {"courselab", job.courselab},
      {"state", toString(job.state)},
      {"step", job.step},
      {"times", timesJson(job.times)},
      {"outcome", toString(job.outcome)},
      {"priority", toString(job.priority)},
      {"disableNetwork", job.disableNetwork},
      {"limits", toJson(job.limits)},
      {"node", job.vm.node},  // the node whose VM runs (or ran) it
  };
  o["queuePosition"] = queuePosition ? json::value(*queuePosition) : json::value(nullptr);
  o["usage"] = job.usage ? json::value(toJson(*job.usage)) : json::value(nullptr);
  o["callback"] = callbackJson(job);
  return o;
}

json::object toStoreJson(const TangoJob& job) {
  json::object o = toTangoJson(job, std::nullopt);
  o.erase("queuePosition");
  o.erase("callback");
  o["keyId"] = job.keyId;
  o["outputFile"] = belowLab(job.outputFile, job.labDir);
  auto& input = o["input"].as_array();
  for (std::size_t i = 0; i < input.size() && i < job.input.size(); ++i)
    input[i].as_object()["localFile"] = belowLab(job.input[i].localFile, job.labDir);
  o["accessKeyId"] = opt(job.accessKeyId);
  o["accessKey"] = opt(job.accessKey);
  o["callbackPending"] = job.callbackPending;
  o["callbackResult"] = job.callbackResult;
  o["callbackDetail"] = job.callbackDetail;
  o["callbackTime"] = job.callbackTime;
  return o;
}

TangoJob fromStoreJson(const json::value& doc) {
  const auto& o = doc.as_object();
  TangoJob j;
  j.id = i64(o, "id");
  j.name = str(o, "name");
  // Documents written before key ids held the key itself: keep only its id.
  j.keyId = o.contains("keyId") ? str(o, "keyId") : keyId(str(o, "key"));
  j.courselab = str(o, "courselab");
  j.assigned = boolean(o, "assigned");
  j.retries = static_cast<int>(i64(o, "retries"));
  j.outputFile = str(o, "outputFile");
  j.notifyURL = optStr(o, "notifyURL");
  j.maxOutputFileSize = i64(o, "maxOutputFileSize");
  j.timeout = static_cast<int>(i64(o, "timeout"));
  j.disableNetwork = boolean(o, "disableNetwork");
  if (auto* l = o.if_contains("limits")) j.limits = limitsFromJson(*l);
  if (auto* t = o.if_contains("trace"); t && t->is_array())
    for (const auto& s : t->get_array())
      if (s.is_string()) j.trace.emplace_back(s.get_string());
  if (auto* in = o.if_contains("input"); in && in->is_array())
    for (const auto& f : in->get_array())
      if (f.is_object())
        j.input.push_back({str(f.get_object(), "localFile"), str(f.get_object(), "destFile")});
  if (auto* v = o.if_contains("vm"); v && v->is_object()) {
    const auto& m = v->get_object();
    j.vm.name = str(m, "name");
    j.vm.image = str(m, "image");
    j.vm.vmms = str(m, "vmms");
    j.vm.cores = optInt(m, "cores");
    j.vm.memory = optInt(m, "memory");
    j.vm.disk = optInt(m, "disk");
    if (auto* n = m.if_contains("network"); n && n->is_bool()) j.vm.network = n->get_bool();
    j.vm.id = i64(m, "id");
    j.vm.resume = optStr(m, "resume");
    j.vm.node = str(o, "node");
  }
  j.accessKeyId = optStr(o, "accessKeyId");
  j.accessKey = optStr(o, "accessKey");
  const std::string state = str(o, "state");
  j.state = state == "finished"  ? JobState::Finished
            : state == "running" ? JobState::Running
                                 : JobState::Queued;
  j.step = str(o, "step");
  if (auto* t = o.if_contains("times"); t && t->is_object()) {
    const auto& m = t->get_object();
    j.times = {dbl(m, "queued"), dbl(m, "assigned"), dbl(m, "initializeVM"), dbl(m, "waitVM"),
               dbl(m, "copyIn"), dbl(m, "runJob"),   dbl(m, "copyOut"),      dbl(m, "finished")};
  }
  if (auto* u = o.if_contains("usage")) j.usage = usageFromJson(*u);
  const std::string outcome = str(o, "outcome");
  j.outcome = outcome == "success"          ? JobOutcome::Success
              : outcome == "make_failed"    ? JobOutcome::MakeFailed
              : outcome == "timeout"        ? JobOutcome::Timeout
              : outcome == "internal_error" ? JobOutcome::InternalError
              : outcome == "cancelled"      ? JobOutcome::Cancelled
                                            : JobOutcome::None;
  j.priority = parsePriority(str(o, "priority")).value_or(JobPriority::Normal);
  j.callbackPending = boolean(o, "callbackPending");
  j.callbackResult = str(o, "callbackResult");
  j.callbackDetail = str(o, "callbackDetail");
  j.callbackTime = dbl(o, "callbackTime");
  return j;
}

void rebaseJobPaths(TangoJob& job, const std::string& labDir) {
  job.labDir = labDir;
  if (labDir.empty()) return;
  auto rebase = [&](std::string& p) {
    if (!p.empty() && p[0] != '/') p = labDir + "/" + p;
  };
  rebase(job.outputFile);
  for (auto& f : job.input) rebase(f.localFile);
}

}  // namespace tango
