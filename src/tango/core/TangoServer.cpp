#include "tango/core/TangoServer.hpp"

#include <spdlog/spdlog.h>

#include <boost/json/array.hpp>
#include <thread>

#include "tango/core/JobRequest.hpp"
#include "tango/metrics/ServiceMetrics.hpp"
#include "tango/model/JobJson.hpp"
#include "tango/status/StatusData.hpp"
#include "tango/store/SqliteJobStore.hpp"
#include "tango/util/KeyId.hpp"
#include "tango/util/SafeName.hpp"
#include "tango/vmms/VmmsFactory.hpp"

namespace tango {
namespace json = boost::json;

namespace {

// DATA_DIR and what the service keeps in it are the service's alone: the
// database, every student's files and outputs. An older release's 0755
// directories are tightened.
void makePrivateDir(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace);
}

}  // namespace

TangoServer::TangoServer(const Config& cfg) : cfg_(cfg) {
  makePrivateDir(cfg.dataDir);
  makePrivateDir(cfg.dataDir / "tmp");
  makePrivateDir(cfg.courselabsDir());
  std::map<std::string, std::string> keyOfId;
  for (const auto& k : cfg.keys) keyOfId[keyId(k)] = k;
  store_ = std::make_unique<SqliteJobStore>(
      cfg.stateFile(),
      [keyOfId, labs = cfg.courselabsDir()](const std::string& id, const std::string& courselab) {
        auto k = keyOfId.find(id);
        if (k == keyOfId.end()) return std::string();
        auto dir = courselabDir(labs, k->second, courselab);
        return dir ? dir->string() : std::string();
      });
  vmms_ = makeVmms(cfg);
  queue_ = std::make_unique<JobQueue>(*store_);
  preallocator_ = std::make_unique<Preallocator>(cfg, *vmms_, *store_, [this] {
    if (manager_) manager_->kick();
  });
  callbacks_ = std::make_unique<CallbackSender>(
      cfg.callbackRetries, cfg.callbackBackoffSecs, cfg.callbackTimeoutSecs,
      [this](std::int64_t id, bool ok, const std::string& detail) {
        callbackDone(id, ok, detail);
      });
  manager_ = std::make_unique<JobManager>(cfg, *vmms_, *queue_, *preallocator_, stats_,
                                          [this](const TangoJob& job) { sendCallback(job); });
  queue_->setOnWork([this] { manager_->kick(); });
}

TangoServer::~TangoServer() { stop(); }

void TangoServer::start() {
  // Nothing runs yet, so every VM of our prefix is a leftover of a previous run.
  for (const auto& vm : vmms_->getVMs()) {
    spdlog::info("destroying leftover VM {}", instanceName(cfg_.prefix, vm));
    vmms_->safeDestroyVM(vm);
  }
  if (auto why = vmms_->preflight(); !why.empty())
    throw CannotStart(vmms_->name() + " VMMS cannot run jobs here: " + why);
  dropJobsOfUnknownKeys();
  int requeued = queue_->recover();
  if (requeued)
    spdlog::info("requeued {} jobs that were running when the service stopped", requeued);
  for (auto& job : store_->loadPendingCallbacks()) {
    if (job.labDir.empty()) {  // its key left KEYS: no output to send
      job.callbackPending = false;
      job.callbackResult = "failed";
      job.callbackDetail = "the API key that submitted this job is no longer configured";
      job.callbackTime = nowSeconds();
      store_->update(job);
      continue;
    }
    sendCallback(job);
  }
  // Pools are made when an image's first job arrives (as in Tango); only the
  // images the operator lists are warmed now. An engine holding thirty course
  // images does not get sixty idle containers.
  const auto known = images();
  for (const auto& image : cfg_.warmImages) {
    if (!known.count(image))
      throw ConfigError("WARM_IMAGES: " + image + " is not an image of the " + vmms_->name() +
                        " VMMS");
    preallocator_->update(image, cfg_.poolSize, std::nullopt, std::nullopt);
  }
  manager_->start();
  manager_->kick();
}

void TangoServer::dropJobsOfUnknownKeys() {
  // A job whose key left KEYS cannot find its courselab (its directory is
  // named after the key): it ends here, with the reason, instead of failing
  // every try against paths that lead nowhere.
  for (auto& job : store_->loadUnfinished()) {
    if (!job.labDir.empty()) continue;
    spdlog::warn("job {}: its API key ({}) is no longer configured; not run", job.id, job.keyId);
    job.state = JobState::Finished;
    job.assigned = false;
    job.step = "finished";
    job.outcome = JobOutcome::InternalError;
    job.callbackPending = false;
    job.times.finished = nowSeconds();
    job.appendTrace("Error: the API key that submitted this job is no longer configured");
    store_->update(job);
  }
}

void TangoServer::stop() {
  if (manager_) manager_->stop();
  if (callbacks_) callbacks_->stop();
}

std::set<std::string> TangoServer::images() {
  auto list = vmms_->getImages();
  return {list.begin(), list.end()};
}

AddJobResult TangoServer::addJob(const std::string& key, const std::string& courselab,
                                 const std::filesystem::path& courselabDir,
                                 const json::value& body) {
  ++stats_.jobRequests;
  JobRequestContext ctx{cfg_, key, courselab, courselabDir, images(), vmms_->name()};
  auto parsed = parseJobRequest(ctx, body);
  if (auto* err = std::get_if<std::string>(&parsed)) return {false, 0, *err};
  std::int64_t id = queue_->add(std::move(std::get<TangoJob>(parsed)));
  return {true, id, ""};
}

json::array TangoServer::jobs(bool dead) {
  json::array out;
  if (dead) {
    for (const auto& job : store_->loadFinished(cfg_.deadJobsListed))
      out.push_back(toTangoJson(job, std::nullopt));
  } else {
    for (const auto& [job, pos] : queue_->liveJobs()) out.push_back(toTangoJson(job, pos));
  }
  return out;
}

std::optional<std::string> TangoServer::partialOutput(std::int64_t jobId) {
  auto job = queue_->get(jobId);
  if (!job || !job->assigned || job->vm.id == 0) return std::nullopt;
  return vmms_->getPartialOutput(job->vm).value_or("");
}

json::object TangoServer::info() {
  using namespace std::chrono;
  return {
      {"elapsed_secs", duration<double>(steady_clock::now() - stats_.started).count()},
      {"job_requests", stats_.jobRequests.load()},
      {"job_retries", stats_.jobRetries.load()},
      {"waitvm_timeouts", stats_.waitvmTimeouts.load()},
      {"runjob_timeouts", stats_.runjobTimeouts.load()},
      {"copyin_errors", stats_.copyinErrors.load()},
      {"runjob_errors", stats_.runjobErrors.load()},
      {"copyout_errors", stats_.copyoutErrors.load()},
      {"num_threads", static_cast<std::int64_t>(manager_->running()) + 1},
      // Beyond Tango:
      {"jobs_finished", stats_.jobsFinished.load()},
      {"live_jobs", static_cast<std::int64_t>(queue_->liveCount())},
      {"queued_jobs", static_cast<std::int64_t>(queue_->unassignedCount())},
      {"running_jobs", static_cast<std::int64_t>(manager_->running())},
      {"callbacks_delivered", stats_.callbacksDelivered.load()},
      {"callbacks_failed", stats_.callbacksFailed.load()},
      {"vmms", vmms_->name()},
  };
}

namespace {
json::object poolJson(const PoolState& s) {
  json::array total(s.total.begin(), s.total.end());
  json::array free(s.free.begin(), s.free.end());
  return {{"total", std::move(total)}, {"free", std::move(free)}};
}
}  // namespace

PoolsResult TangoServer::pools(const std::optional<std::string>& image) {
  PoolsResult r;
  if (image) {
    auto p = preallocator_->pool(*image);
    if (!p) return r;
    r.found = true;
    r.pools[*image] = poolJson(*p);
    return r;
  }
  r.found = true;
  for (const auto& [name, p] : preallocator_->pools()) r.pools[name] = poolJson(p);
  return r;
}

SimpleResult TangoServer::prealloc(const std::string& image, int num, const json::object& body) {
  if (!isSafeImageName(image) || !images().count(image)) return {false, "Invalid image name"};
  if (num < 0 || num > 1000) return {false, "Invalid prealloc size"};
  auto optInt = [&](const char* k) -> std::optional<int> {
    auto* v = body.if_contains(k);
    if (v && v->is_int64() && v->get_int64() > 0 && v->get_int64() < 1'000'000)
      return static_cast<int>(v->get_int64());
    return std::nullopt;
  };
  if (auto* v = body.if_contains("vmms"); v && v->is_string() && v->get_string() != vmms_->name())
    return {false, "Preallocate VM failed"};
  preallocator_->update(image, num, optInt("cores"), optInt("memory"));
  return {true, ""};
}

SimpleResult TangoServer::build(const std::string& imageName,
                                const std::filesystem::path& tarball) {
  auto r = vmms_->buildImage(imageName, tarball);
  return {r.ok, r.error};
}

std::string TangoServer::metricsText() {
  metrics::ServiceSnapshot snap{stats_};
  snap.queued = static_cast<std::int64_t>(queue_->unassignedCount());
  snap.running = static_cast<std::int64_t>(manager_->running());
  for (const auto& [image, p] : preallocator_->pools()) {
    snap.pools[image] = {static_cast<std::int64_t>(p.total.size()),
                         static_cast<std::int64_t>(p.free.size())};
  }
  return metrics::renderServiceMetrics(snap);
}

json::object TangoServer::statusData() {
  status::StatusInput in;
  in.live = queue_->liveJobs();
  in.finished = store_->loadFinished(static_cast<int>(status::kFinishedShown));
  in.pools = pools(std::nullopt).pools;
  in.info = info();
  in.prefix = cfg_.prefix;
  return status::statusData(in, nowSeconds());
}

void TangoServer::sendCallback(const TangoJob& job) {
  if (!job.notifyURL || !job.callbackPending) return;
  callbacks_->enqueue({job.id, *job.notifyURL, job.outputFile,
                       std::filesystem::path(job.outputFile).filename().string()});
}

void TangoServer::callbackDone(std::int64_t jobId, bool delivered, const std::string& detail) {
  (delivered ? stats_.callbacksDelivered : stats_.callbacksFailed)++;
  std::lock_guard lock(callbackMu_);
  auto job = store_->load(jobId);
  if (!job) return;
  job->callbackPending = false;
  // Beside the trace, not in it: its last entry stays the job's outcome.
  job->callbackResult = delivered ? "delivered" : "failed";
  job->callbackDetail = delivered ? "" : detail;
  job->callbackTime = nowSeconds();
  store_->update(*job);
  if (delivered)
    spdlog::info("job {}: callback delivered", jobId);
  else
    spdlog::warn("job {}: callback failed: {}", jobId, detail);
}

}  // namespace tango
