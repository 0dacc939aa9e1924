#include "tango/core/JobRequest.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <boost/json/object.hpp>

#include "tango/callback/CallbackSender.hpp"
#include "tango/util/KeyId.hpp"
#include "tango/util/SafeName.hpp"

namespace tango {
namespace json = boost::json;

namespace {

struct Invalid {
  std::string msg;
};

const json::value* field(const json::object& o, const char* name) { return o.if_contains(name); }

std::string requireString(const json::object& o, const char* name) {
  auto* v = field(o, name);
  if (!v) throw Invalid{std::string("missing required field '") + name + "'"};
  if (!v->is_string()) throw Invalid{std::string("field '") + name + "' must be a string"};
  return std::string(v->get_string());
}

// Integers only (Autolab sends numbers; some clients send numeric strings).
std::optional<std::int64_t> optionalInt(const json::object& o, const char* name) {
  auto* v = field(o, name);
  if (!v || v->is_null()) return std::nullopt;
  if (v->is_int64() && v->get_int64() >= 0) return v->get_int64();
  if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
    return static_cast<std::int64_t>(v->get_uint64());
  if (v->is_string()) {
    const auto& s = v->get_string();
    if (!s.empty() && s.size() <= 18 && std::all_of(s.begin(), s.end(), ::isdigit))
      return std::stoll(std::string(s));
  }
  throw Invalid{std::string("field '") + name + "' must be a non-negative integer"};
}

bool printable(const std::string& s) {
  return std::none_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// "limits": {"procs", "file_size_mb", "memory_mb", "disk_mb", "cpu_seconds"},
// each optional, each between a floor that still runs `make` and the
// operator's ceiling (MAX_JOB_*, or the default when that is higher).
JobLimits parseLimits(const Config& cfg, const json::value* v) {
  JobLimits l;
  if (!v || v->is_null()) return l;
  if (!v->is_object()) throw Invalid{"field 'limits' must be an object"};
  const auto& o = v->get_object();
  static const std::set<std::string> known{"procs", "file_size_mb", "memory_mb", "disk_mb",
                                           "cpu_seconds"};
  for (const auto& [k, _] : o)
    if (!known.count(std::string(k)))
      throw Invalid{"unknown limit '" + std::string(k) +
                    "' (known: procs, file_size_mb, memory_mb, disk_mb, cpu_seconds)"};
  auto get = [&](const char* name, std::int64_t lo,
                 std::int64_t hi) -> std::optional<std::int64_t> {
    std::optional<std::int64_t> n;
    try {
      n = optionalInt(o, name);
    } catch (const Invalid&) {
      n = -1;
    }
    if (!n) return std::nullopt;
    if (*n < lo || *n > hi)
      throw Invalid{"limits." + std::string(name) + " must be an integer from " +
                    std::to_string(lo) + " to " + std::to_string(hi)};
    return n;
  };
  constexpr std::int64_t kMB = 1024 * 1024;
  if (auto n = get("procs", 1, std::max(cfg.maxJobProcs, cfg.vmUlimitUserProc)))
    l.procs = static_cast<int>(*n);
  if (auto n = get("file_size_mb", 1, std::max(cfg.maxJobFileSize, cfg.vmUlimitFileSize) / kMB))
    l.fileSizeBytes = *n * kMB;
  if (auto n = get("memory_mb", 16, std::max(cfg.maxJobMemory, cfg.vmMemoryLimit)))
    l.memoryMb = static_cast<int>(*n);
  if (auto n = get("disk_mb", 1, std::max(cfg.maxJobDisk, cfg.vmDiskLimit)))
    l.diskMb = static_cast<int>(*n);
  if (auto n = get("cpu_seconds", 1, std::max(cfg.maxJobCpuTime, cfg.vmCpuTimeLimit)))
    l.cpuSecs = static_cast<int>(*n);
  return l;
}

// The VMMS of a job: the one its optional "vmms" names, else the first (in
// config order) that has its image, as Tango's self.vmms[job.vm.vmms].
std::string chooseVmms(const JobRequestContext& ctx, const boost::json::object& o,
                       const std::string& image) {
  if (auto* v = o.if_contains("vmms"); v && !v->is_null()) {
    if (!v->is_string()) throw Invalid{"vmms must be a string"};
    const std::string want(v->get_string());
    for (const auto& [name, images] : ctx.vmms) {
      if (name != want) continue;
      if (!images.count(image))
        throw Invalid{"Invalid image name '" + image + "': not an image of the " + name + " VMMS"};
      return name;
    }
    throw Invalid{"vmms '" + want.substr(0, 64) + "' is not served here"};
  }
  std::string names;
  for (const auto& [name, images] : ctx.vmms) {
    if (images.count(image)) return name;
    names += (names.empty() ? "" : " or ") + name;
  }
  throw Invalid{"Invalid image name '" + image + "': not an image of the " + names + " VMMS"};
}

// "priority": low, normal (the default) or high, at most what the key may
// ask for ([[KEY_POLICY]] max_priority, else MAX_PRIORITY).
JobPriority parsePriorityField(const JobRequestContext& ctx, const json::object& o) {
  auto* v = field(o, "priority");
  if (!v || v->is_null()) return JobPriority::Normal;
  if (!v->is_string()) throw Invalid{"field 'priority' must be low, normal or high"};
  auto p = parsePriority(std::string_view(v->get_string()));
  if (!p) throw Invalid{"field 'priority' must be low, normal or high"};
  std::string most = ctx.cfg.maxPriority;
  for (const auto& k : ctx.cfg.keyPolicies)
    if (k.key == ctx.key && !k.maxPriority.empty()) most = k.maxPriority;
  if (*p > parsePriority(most).value_or(JobPriority::Normal))
    throw Invalid{"Invalid priority '" + std::string(toString(*p)) +
                  "': this key may ask for at most '" + most + "'"};
  return *p;
}

TangoJob parse(const JobRequestContext& ctx, const json::value& body) {
  if (!body.is_object()) throw Invalid{"job must be a JSON object"};
  const auto& o = body.get_object();
  TangoJob job;
  job.keyId = keyId(ctx.key);
  job.labDir = ctx.courselabDir.string();
  job.courselab = ctx.courselab;

  job.name = requireString(o, "jobName");
  if (job.name.empty() || job.name.size() > 1024 || !printable(job.name))
    throw Invalid{"jobName must be 1 to 1024 printable characters"};

  const std::string image = requireString(o, "image");
  if (!isSafeImageName(image)) throw Invalid{"Invalid image name '" + image + "'"};
  job.vm.name = image;
  job.vm.image = image;
  job.vm.vmms = chooseVmms(ctx, o, image);

  const std::string output = requireString(o, "output_file");
  if (!isSafeName(output)) throw Invalid{"output_file must be a plain file name"};
  job.outputFile = (ctx.courselabDir / ctx.cfg.outputFolder / output).string();

  auto* files = field(o, "files");
  if (!files) throw Invalid{"missing required field 'files'"};
  if (!files->is_array()) throw Invalid{"field 'files' must be a list"};
  if (files->get_array().empty()) throw Invalid{"field 'files' is empty"};
  // Destinations are distinct, but one upload may be listed under many:
  // count and size what is copied in, not what is stored.
  const auto maxFiles = static_cast<std::size_t>(ctx.cfg.maxJobInputFiles);
  if (files->get_array().size() > maxFiles)
    throw Invalid{"too many files: a job may copy in at most " + std::to_string(maxFiles) +
                  " (MAX_JOB_INPUT_FILES)"};
  std::int64_t inputBytes = 0;
  std::set<std::string> dests;
  for (const auto& f : files->get_array()) {
    if (!f.is_object()) throw Invalid{"each element of 'files' must be an object"};
    const std::string local = requireString(f.get_object(), "localFile");
    const std::string dest = requireString(f.get_object(), "destFile");
    if (!isSafeName(local)) throw Invalid{"localFile '" + local + "' must be a plain file name"};
    if (!isSafeName(dest)) throw Invalid{"destFile '" + dest + "' must be a plain file name"};
    if (!dests.insert(dest).second) throw Invalid{"destFile '" + dest + "' appears twice"};
    auto path = ctx.courselabDir / local;
    struct stat st {};
    // lstat: a symlink in the courselab dir is never followed into the host.
    if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
      throw Invalid{"localFile '" + local + "' was not uploaded to this courselab"};
    inputBytes += st.st_size;
    if (inputBytes > ctx.cfg.maxJobInputBytes)
      throw Invalid{"the job's files total more than " + std::to_string(ctx.cfg.maxJobInputBytes) +
                    " bytes (MAX_JOB_INPUT_BYTES)"};
    job.input.push_back({path.string(), dest});
  }
  if (!dests.count("Makefile")) throw Invalid{"no file has destFile 'Makefile'"};

  auto timeout = optionalInt(o, "timeout");
  if (timeout && *timeout > ctx.cfg.maxJobTimeout)
    throw Invalid{"timeout must be at most " + std::to_string(ctx.cfg.maxJobTimeout) + " seconds"};
  job.timeout = timeout && *timeout > 0 ? static_cast<int>(*timeout) : ctx.cfg.runJobTimeout;

  // max_kb: Tango documents it but ignores it; we honour it, capped by config.
  auto maxKb = optionalInt(o, "max_kb");
  std::int64_t cap = ctx.cfg.maxOutputFileSize;
  if (maxKb && *maxKb > 0 && *maxKb <= cap / 1024) cap = *maxKb * 1024;
  job.maxOutputFileSize = cap;

  for (const char* name : {"callback_url", "notifyURL"}) {
    auto* v = field(o, name);
    if (!v || v->is_null()) continue;
    if (!v->is_string()) throw Invalid{std::string("field '") + name + "' must be a string"};
    std::string url(v->get_string());
    if (url.empty()) continue;
    if (!isValidCallbackUrl(url))
      throw Invalid{std::string("field '") + name + "' must be an http(s) URL"};
    job.notifyURL = url;
  }

  // The network is off unless the job asks for it ("disable_network": false).
  job.disableNetwork = true;
  if (auto* v = field(o, "disable_network"); v && !v->is_null()) {
    if (!v->is_bool()) throw Invalid{"field 'disable_network' must be true or false"};
    job.disableNetwork = v->get_bool();
  }
  job.vm.network = !job.disableNetwork;
  job.limits = parseLimits(ctx.cfg, field(o, "limits"));
  job.priority = parsePriorityField(ctx, o);

  for (auto [name, dst] :
       {std::pair{"accessKeyId", &job.accessKeyId}, std::pair{"accessKey", &job.accessKey}}) {
    auto* v = field(o, name);
    if (!v || v->is_null()) continue;
    if (!v->is_string()) throw Invalid{std::string("field '") + name + "' must be a string"};
    if (!v->get_string().empty()) *dst = std::string(v->get_string());
  }
  return job;
}

}  // namespace

std::variant<TangoJob, std::string> parseJobRequest(const JobRequestContext& ctx,
                                                    const json::value& body) {
  try {
    return parse(ctx, body);
  } catch (const Invalid& e) {
    return e.msg;
  }
}

}  // namespace tango
