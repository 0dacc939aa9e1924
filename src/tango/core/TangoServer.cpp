#include "tango/core/TangoServer.hpp"

#include <spdlog/spdlog.h>

#include <boost/json/array.hpp>

#include "tango/core/JobRequest.hpp"
#include "tango/core/OutputFile.hpp"
#include "tango/core/PoolJson.hpp"
#include "tango/metrics/ServiceMetrics.hpp"
#include "tango/model/JobJson.hpp"
#include "tango/status/StatusData.hpp"
#include "tango/status/StatusHistory.hpp"
#include "tango/util/SafeName.hpp"

namespace tango {
namespace json = boost::json;

TangoServer::TangoServer(const Config& cfg, ServiceParts parts)
    : cfg_(cfg),
      queue_(std::move(parts.queue)),
      vmms_(std::move(parts.vmms)),
      cluster_(std::move(parts.cluster)),
      built_(cfg.dataDir / "built-images", cfg.buildImages) {
  if (!queue_ || vmms_.empty() || !cluster_)
    throw std::invalid_argument("TangoServer needs a queue, a VMMS and a cluster");
  queueView_ = std::make_unique<QueueView>(*queue_);
  preallocator_ = std::make_unique<Preallocator>(cfg, vmms_, *queue_, [this] {
    if (manager_) manager_->kick();
  });
  CallbackSender::Options callbackOptions;
  callbackOptions.policy = AddressPolicy(cfg.callbackAllow, cfg.callbackDeny);
  callbacks_ = std::make_unique<CallbackSender>(
      cfg.callbackRetries, cfg.callbackBackoffSecs, cfg.callbackTimeoutSecs,
      [this](std::int64_t id, bool ok, const std::string& detail) { callbackDone(id, ok, detail); },
      callbackOptions);
  manager_ = std::make_unique<JobManager>(cfg, vmms_, *queue_, *preallocator_, stats_,
                                          [this](const TangoJob& job) { sendCallback(job); });
  manager_->setOnPublished([this](const TangoJob& job) { announceOutput(job); });
  queue_->setSharePolicy(SharePolicy::fromConfig(cfg));
  if (cfg.runsManager()) queue_->setOnWork([this] { manager_->kick(); });
}

TangoServer::~TangoServer() { stop(); }

void TangoServer::watchOutputs(std::function<void(const std::string&)> onOutput) {
  std::lock_guard lock(outputWatchMu_);
  outputWatch_ = std::move(onOutput);
}

void TangoServer::announceOutput(const TangoJob& job) {
  std::lock_guard lock(outputWatchMu_);
  if (outputWatch_) outputWatch_(std::filesystem::path(job.outputFile).filename().string());
}

void TangoServer::start() {
  cluster_->join({[this] { return localStats(); }, [this] { return preallocator_->pools(); },
                  [this](std::int64_t id) { return localPartialOutput(id); },
                  [this](const PoolSetting& s) {
                    // Not before start-up has removed this node's leftover
                    // VMs, which would take the new pool's VMs with them.
                    if (!managing_) return !cfg_.runsManager();
                    // Settings come from Redis: a VMMS this node does not
                    // serve is another node's; a size beyond prealloc's is not
                    // one the service made.
                    if (!vmms_.find(s.vmms) || s.num < 0 || s.num > 1000) return true;
                    preallocator_->update(s.vmms, s.image, s.num, s.cores, s.memory);
                    return true;
                  }});
  if (cfg_.runsManager()) startManager();
  history_ = std::thread([this] { historyLoop(); });
}

void TangoServer::historyLoop() {
  std::unique_lock lock(janitorMu_);
  while (!stopping_) {
    lock.unlock();
    try {
      const double now = nowSeconds();
      samples_.record(now, status::courselabLoads(queue_->liveJobs(), now),
                      queue_->countFinished());
    } catch (const std::exception& e) {
      spdlog::debug("status history: no sample: {}", e.what());
    }
    lock.lock();
    janitorCv_.wait_for(lock, std::chrono::duration<double>(status::StatusHistory::kEverySecs),
                        [this] { return stopping_; });
  }
}

void TangoServer::startManager() {
  // Nothing runs yet, so every VM this node made is a leftover of its
  // previous run. Other nodes' VMs on a shared engine are theirs
  // (unlabelled ones predate node ids: one node had the engine then).
  for (Vmms* v : vmms_.all()) {
    for (const auto& vm : v->getVMs()) {
      if (!vm.node.empty() && vm.node != cfg_.nodeId) continue;
      spdlog::info("destroying leftover VM {}", instanceName(cfg_.prefix, vm));
      v->safeDestroyVM(vm);
    }
    if (auto why = v->preflight(); !why.empty())
      throw CannotStart(v->name() + " VMMS cannot run jobs here: " + why);
  }
  int requeued = queue_->recover();
  if (requeued)
    spdlog::info("requeued {} jobs that were running when the service stopped", requeued);
  for (auto& job : queue_->pendingCallbacks()) {
    if (job.labDir.empty()) {  // its key left KEYS: no output to send
      queue_->callbackDone(job.id, "failed",
                           "the API key that submitted this job is no longer configured",
                           nowSeconds());
      continue;
    }
    sendCallback(job);
  }
  // Pools are made when an image's first job arrives (as in Tango); only the
  // images the operator lists are warmed now. An engine holding thirty course
  // images does not get sixty idle containers.
  const auto known = imagesByVmms();
  for (const auto& image : cfg_.warmImages) {
    const std::string* vmms = nullptr;
    for (const auto& [name, images] : known)
      if (!vmms && images.count(image)) vmms = &name;
    if (!vmms)
      throw ConfigError("WARM_IMAGES: " + image + " is not an image of the " +
                        vmms_.byDefault().name() + " VMMS");
    preallocator_->update(*vmms, image, cfg_.poolSize, std::nullopt, std::nullopt);
  }
  manager_->start();
  managing_ = true;
  manager_->kick();
  janitor_ = std::thread([this] { janitorLoop(); });
}

// A node that died leaves VMs on engines other nodes share, and callbacks
// it never sent. One live manager (the one whose claim won) cleans up.
void TangoServer::janitorLoop() {
  std::unique_lock lock(janitorMu_);
  while (!stopping_) {
    janitorCv_.wait_for(lock, std::chrono::seconds(cfg_.leaseSecs), [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    try {
      for (const auto& dead : cluster_->claimDeadNodes()) cleanUpAfter(dead);
    } catch (const std::exception& e) {
      spdlog::warn("cannot look for dead nodes: {}", e.what());
    }
    lock.lock();
  }
}

void TangoServer::cleanUpAfter(const Cluster::DeadNode& dead) {
  const std::string& deadNode = dead.node;
  spdlog::warn("node {} stopped answering: cleaning up after it", deadNode);
  // Its callbacks are this node's now (moved in the claim): send them first,
  // so a failure below cannot orphan them.
  for (auto id : dead.callbacks) {
    try {
      if (auto job = queue_->get(id); job && job->callbackPending) sendCallback(*job);
    } catch (const std::exception& e) {
      spdlog::warn("job {}: callback of node {} not sent yet: {}", id, deadNode, e.what());
    }
  }
  for (Vmms* v : vmms_.all()) {
    for (const auto& vm : v->getVMs()) {
      if (vm.node != deadNode) continue;
      spdlog::info("destroying VM {} of node {}", instanceName(cfg_.prefix, vm), deadNode);
      v->safeDestroyVM(vm);
    }
  }
}

void TangoServer::stop() {
  stopped_ = true;
  {
    std::lock_guard lock(janitorMu_);
    stopping_ = true;
  }
  janitorCv_.notify_all();
  if (janitor_.joinable()) janitor_.join();
  if (history_.joinable()) history_.join();
  if (manager_) manager_->stop();
  if (callbacks_) callbacks_->stop();
  if (cluster_) cluster_->leave();
}

std::vector<std::pair<std::string, std::set<std::string>>> TangoServer::imagesByVmms() {
  std::vector<std::pair<std::string, std::set<std::string>>> out;
  for (Vmms* v : vmms_.all()) {
    auto list = v->getImages();
    out.emplace_back(v->name(), std::set<std::string>(list.begin(), list.end()));
  }
  return out;
}

AddJobResult TangoServer::addJob(const std::string& key, const std::string& courselab,
                                 const std::filesystem::path& courselabDir,
                                 const json::value& body) {
  ++stats_.jobRequests;
  JobRequestContext ctx{cfg_, key, courselab, courselabDir, imagesByVmms()};
  auto parsed = parseJobRequest(ctx, body);
  if (auto* err = std::get_if<std::string>(&parsed)) return {false, 0, *err};
  // Checked after the job itself, so a wrong job says what is wrong with it.
  // Two requests of one key may both pass at the limit: it bounds a key, it
  // is not an exact count.
  const auto cap = static_cast<std::size_t>(cfg_.maxLiveJobsPerKey);
  if (queue_->liveCountOf(std::get<TangoJob>(parsed).keyId) >= cap)
    return {false, 0,
            "Too many jobs: this key has " + std::to_string(cap) +
                " jobs queued or running (MAX_LIVE_JOBS_PER_KEY); wait for some to finish"};
  std::int64_t id = queue_->add(std::move(std::get<TangoJob>(parsed)));
  queueView_->changed();
  return {true, id, ""};
}

json::array TangoServer::jobs(bool dead, const std::optional<std::string>& owner) {
  json::array out;
  auto mine = [&owner](const TangoJob& j) { return !owner || j.keyId == *owner; };
  if (dead) {
    // A key's own among the DEAD_JOBS_LISTED most recent.
    for (const auto& job : queue_->finished(cfg_.deadJobsListed))
      if (mine(job)) out.push_back(toTangoJson(job, std::nullopt));
  } else {
    for (const auto& [job, pos] : queue_->liveJobs()) {
      if (!mine(job)) continue;
      auto o = toTangoJson(job, pos);
      if (pos) o["estimatedStart"] = nowSeconds() + queueView_->estimatedWait(*pos);
      out.push_back(std::move(o));
    }
  }
  return out;
}

std::string TangoServer::deadJobsJson(const std::optional<std::string>& owner) {
  std::string out = "[";
  for (const auto& f : queue_->finishedJson(cfg_.deadJobsListed)) {
    if (owner && f.keyId != *owner) continue;
    if (out.size() > 1) out += ',';
    out += *f.json;
  }
  out += ']';
  return out;
}

std::optional<json::object> TangoServer::queueSpot(const std::string& owner,
                                                   const std::string& courselab,
                                                   const std::string& outputFile) {
  return queueView_->spotOf(owner, courselab, outputFile);
}

bool TangoServer::cancelIfQueued(std::int64_t id) {
  auto taken = queue_->claim(id);
  if (!taken) return false;
  WorkerContext ctx{cfg_,           vmms_,  *queue_,
                    *preallocator_, stats_, [this](const TangoJob& job) { sendCallback(job); },
                    stopped_,       {}};
  ctx.onPublished = [this](const TangoJob& job) { announceOutput(job); };
  WorkerLease lease{std::move(taken->lease)};
  if (!finishCancelled(ctx, taken->job, lease))
    throw std::runtime_error("the cancelled job's finish could not be recorded");
  spdlog::info("job {}: cancelled while queued", id);
  return true;
}

CancelResult TangoServer::cancel(std::int64_t jobId, const std::optional<std::string>& owner) {
  const std::string what = "Job " + std::to_string(jobId);
  auto job = queue_->get(jobId);
  if (!job || (owner && job->keyId != *owner)) return {false, what + " not found", {}};
  if (job->state == JobState::Finished)
    return {false, what + " has already finished: nothing to cancel", {}};
  try {
    if (cancelIfQueued(jobId)) return {true, what + " cancelled while queued", {jobId}};
    // Running (or taken since the look above): whoever runs it stops it.
    queue_->requestCancel(jobId);
    if (cfg_.runsManager()) manager_->cancel(jobId);
  } catch (const std::exception& e) {
    spdlog::warn("job {}: cancel failed: {}", jobId, e.what());
    return {false, what + " not cancelled: " + e.what(), {}};
  }
  if (auto now = queue_->get(jobId);
      now && now->state == JobState::Finished && now->outcome != JobOutcome::Cancelled)
    return {false, what + " has already finished: nothing to cancel", {}};
  return {
      true, what + " is being cancelled: its VM is stopped and its output will say so", {jobId}};
}

CancelResult TangoServer::cancelQueued(const std::string& owner, const std::string& courselab) {
  CancelResult r{true, "", {}};
  try {
    for (const auto& [job, pos] : queue_->liveJobs())
      if (pos && job.keyId == owner && job.courselab == courselab && cancelIfQueued(job.id))
        r.ids.push_back(job.id);
  } catch (const std::exception& e) {
    spdlog::warn("courselab {}: cancelling its queued jobs stopped: {}", courselab, e.what());
    r.ok = false;
    r.message =
        "Cancelled " + std::to_string(r.ids.size()) + " queued jobs, then failed: " + e.what();
    return r;
  }
  r.message =
      "Cancelled " + std::to_string(r.ids.size()) + " queued jobs of courselab " + courselab;
  return r;
}

std::optional<std::string> TangoServer::partialOutput(std::int64_t jobId,
                                                      const std::optional<std::string>& owner) {
  auto job = queue_->get(jobId);
  if (!job || !job->assigned || job->vm.id == 0) return std::nullopt;
  if (owner && job->keyId != *owner) return std::nullopt;
  if (job->vm.node.empty() || job->vm.node == cfg_.nodeId) return localPartialOutput(jobId);
  return cluster_->partialOutput(job->vm.node, jobId);
}

std::optional<std::string> TangoServer::localPartialOutput(std::int64_t jobId) {
  auto job = queue_->get(jobId);
  if (!job || !job->assigned || job->vm.id == 0) return std::nullopt;
  if (!job->vm.node.empty() && job->vm.node != cfg_.nodeId) return std::nullopt;
  return vmms_.of(job->vm).getPartialOutput(job->vm).value_or("");
}

// This node's counters, as /info names them; info() sums every node's.
json::object TangoServer::localStats() {
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
      {"jobs_finished", stats_.jobsFinished.load()},
      {"running_jobs", static_cast<std::int64_t>(manager_->running())},
      {"callbacks_delivered", stats_.callbacksDelivered.load()},
      {"callbacks_failed", stats_.callbacksFailed.load()},
      {"leases_lost", stats_.leasesLost.load()},
  };
}

bool TangoServer::infoIsQuick() { return queue_->countsInMemory() && cluster_->inProcess(); }

json::object TangoServer::info() {
  json::object out = localStats();
  // Counters are summed over the live nodes; elapsed_secs stays this node's.
  auto all = cluster_->stats();
  if (all.size() > 1) {
    for (auto& [key, value] : out) {
      if (key == "elapsed_secs" || !value.is_int64()) continue;
      std::int64_t sum = 0;
      for (const auto& [node, s] : all)
        if (auto* v = s.if_contains(key); v && v->is_int64()) sum += v->get_int64();
      value = sum;
    }
  }
  out["live_jobs"] = static_cast<std::int64_t>(queue_->liveCount());
  out["queued_jobs"] = static_cast<std::int64_t>(queue_->unassignedCount());
  json::array names;
  for (const auto& n : vmms_.names()) names.push_back(json::string(n));
  out["vmms"] = vmms_.byDefault().name();
  out["vmms_served"] = std::move(names);
  // This node's view of the hosts its VMMSs spread over (distDocker's engines).
  json::array hosts;
  for (Vmms* v : vmms_.all())
    for (const auto& h : v->hosts())
      hosts.push_back(json::object{{"vmms", v->name()},
                                   {"name", h.name},
                                   {"healthy", h.healthy},
                                   {"capacity", h.capacity},
                                   {"running", h.running},
                                   {"held", h.held},
                                   {"max_running", h.maxRunning},
                                   {"jobs_run", h.jobsRun},
                                   {"problem", h.problem}});
  if (!hosts.empty()) out["hosts"] = std::move(hosts);
  out["node"] = cfg_.nodeId;
  json::array nodes;
  for (const auto& [node, s] : all) nodes.push_back(json::string(node));
  out["nodes"] = std::move(nodes);
  return out;
}

std::map<std::string, PoolState> TangoServer::mergedPools() {
  std::map<std::string, PoolState> out;
  // VM ids are unique across nodes, so a pool's lists are the nodes' joined.
  for (auto& [node, pools] : cluster_->pools())
    for (auto& [image, p] : pools) {
      auto& m = out[image];
      m.total.insert(m.total.end(), p.total.begin(), p.total.end());
      m.free.insert(m.free.end(), p.free.begin(), p.free.end());
      m.hosts.insert(p.hosts.begin(), p.hosts.end());
    }
  for (auto& [image, p] : out) {
    std::sort(p.total.begin(), p.total.end());
    std::sort(p.free.begin(), p.free.end());
  }
  return out;
}

PoolsResult TangoServer::pools(const std::optional<std::string>& image) {
  PoolsResult r;
  auto all = mergedPools();
  if (image) {
    auto p = all.find(*image);
    if (p == all.end()) return r;
    r.found = true;
    r.pools[*image] = poolStateJson(p->second);
    return r;
  }
  r.found = true;
  for (const auto& [name, p] : all) r.pools[name] = poolStateJson(p);
  return r;
}

SimpleResult TangoServer::prealloc(const std::string& image, int num, const json::object& body) {
  Vmms* vmms = &vmms_.byDefault();
  if (auto* v = body.if_contains("vmms"); v && v->is_string()) {
    vmms = vmms_.find(std::string(v->get_string()));
    if (!vmms) return {false, "Preallocate VM failed"};
  }
  auto images = vmms->getImages();
  if (!isSafeImageName(image) || std::find(images.begin(), images.end(), image) == images.end())
    return {false, "Invalid image name"};
  if (num < 0 || num > cfg_.maxPoolSize)
    return {false, "Invalid prealloc size: at most " + std::to_string(cfg_.maxPoolSize) +
                       " (MAX_POOL_SIZE)"};
  auto optInt = [&](const char* k) -> std::optional<int> {
    auto* v = body.if_contains(k);
    if (v && v->is_int64() && v->get_int64() > 0 && v->get_int64() < 1'000'000)
      return static_cast<int>(v->get_int64());
    return std::nullopt;
  };
  const auto cores = optInt("cores"), memory = optInt("memory");
  if (cores && *cores > cfg_.maxPoolCores)
    return {false, "Preallocate VM failed: cores must be at most " +
                       std::to_string(cfg_.maxPoolCores) + " (MAX_POOL_CORES)"};
  if (memory && *memory > cfg_.maxJobMemory)
    return {false, "Preallocate VM failed: memory must be at most " +
                       std::to_string(cfg_.maxJobMemory) + " MB (MAX_JOB_MEMORY)"};
  // Every manager keeps this pool, whichever node was asked.
  cluster_->setPool({vmms->name(), image, num, cores, memory});
  return {true, ""};
}

SimpleResult TangoServer::build(const std::string& imageName,
                                const std::filesystem::path& tarball) {
  auto& vmms = vmms_.byDefault();
  if (auto why = built_.refusal(imageName, vmms.getImages())) {
    spdlog::warn("image build for {} refused: not built here and not in BUILD_IMAGES", imageName);
    return {false, *why};
  }
  auto r = vmms.buildImage(imageName, tarball);
  if (r.ok) built_.record(imageName);
  return {r.ok, r.error};
}

std::string TangoServer::metricsText() {
  metrics::ServiceSnapshot snap{stats_};
  snap.queued = static_cast<std::int64_t>(queue_->unassignedCount());
  snap.running = static_cast<std::int64_t>(manager_->running());
  snap.courselabs = status::courselabLoads(queue_->liveJobs(), nowSeconds());
  for (const auto& [image, p] : preallocator_->pools()) {
    snap.pools[image] = {static_cast<std::int64_t>(p.total.size()),
                         static_cast<std::int64_t>(p.free.size())};
  }
  return metrics::renderServiceMetrics(snap);
}

json::object TangoServer::statusData() {
  status::StatusInput in;
  in.live = queue_->liveJobs();
  in.finished = queue_->finished(static_cast<int>(status::kFinishedShown));
  in.pools = pools(std::nullopt).pools;
  in.info = info();
  in.prefix = cfg_.prefix;
  in.history = samples_.json();
  return status::statusData(in, nowSeconds());
}

void TangoServer::sendCallback(const TangoJob& job) {
  if (!job.notifyURL || !job.callbackPending) return;
  // The job's own copy of its output, made as it finished: a later job
  // that writes a file of the same name does not change what is sent.
  const auto copy = callbackCopyPath(job.outputFile, job.id);
  std::error_code ec;
  const bool haveCopy = std::filesystem::is_regular_file(copy, ec);
  callbacks_->enqueue({job.id, *job.notifyURL,
                       haveCopy ? copy : std::filesystem::path(job.outputFile),
                       std::filesystem::path(job.outputFile).filename().string(),
                       [this, id = job.id] { return queue_->ownsCallback(id); }, haveCopy});
}

void TangoServer::callbackDone(std::int64_t jobId, bool delivered, const std::string& detail) {
  (delivered ? stats_.callbacksDelivered : stats_.callbacksFailed)++;
  // Beside the trace, not in it: its last entry stays the job's outcome.
  try {
    queue_->callbackDone(jobId, delivered ? "delivered" : "failed", delivered ? "" : detail,
                         nowSeconds());
  } catch (const std::exception& e) {
    // Sent, but not recorded: a restart of this node may send it again.
    spdlog::warn("job {}: callback result not recorded: {}", jobId, e.what());
  }
  if (delivered)
    spdlog::info("job {}: callback delivered", jobId);
  else
    spdlog::warn("job {}: callback failed: {}", jobId, detail);
}

}  // namespace tango
