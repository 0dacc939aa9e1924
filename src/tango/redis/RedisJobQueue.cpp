#include "tango/redis/RedisJobQueue.hpp"

#include <spdlog/spdlog.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <set>

#include "tango/model/JobJson.hpp"
#include "tango/redis/RedisScripts.hpp"
#include "tango/util/RandomHex.hpp"
#include "tango/util/SafeName.hpp"

namespace tango {

namespace s = redis_scripts;

namespace {

// Each script as sent: Redis's time first where it needs it, then the
// transition, then the managers' wake-up where it queues something.
const std::string kAdd = std::string(s::kAdd) + s::kWake + "return 1";
const std::string kRequeueLapsed = std::string(s::kNow) + s::kClock + s::kRequeueLapsed +
                                   "if #ids > 0 then\n" + s::kWake + "end\nreturn ids";
const std::string kTake = std::string(s::kNow) + s::kTake;
const std::string kRenew = std::string(s::kNow) + s::kClock + s::kRenew;
const std::string kUpdate = s::kUpdate;
const std::string kUnassignWake = std::string("local r = (function()\n") + s::kUnassign +
                                  "end)()\nif r == 1 then\n" + s::kWake + "end\nreturn r";
const std::string kFinish = std::string(s::kNow) + s::kFinish;
const std::string kRecover =
    std::string(s::kRecover) + "if #ids > 0 then\n" + s::kWake + "end\nreturn ids";

std::int64_t toId(const std::string& s) {
  try {
    return std::stoll(s);
  } catch (...) {
    return 0;
  }
}

}  // namespace

RedisJobQueue::RedisJobQueue(RedisOptions options, std::string prefix, std::string node,
                             std::chrono::milliseconds leaseTime, LabDirOf labDirOf, bool wakeable)
    : redis_(options),
      prefix_(std::move(prefix)),
      node_(std::move(node)),
      instance_(randomHex()),
      leaseTime_(leaseTime),
      labDirOf_(std::move(labDirOf)) {
  if (!wakeable) return;
  // BLPOP holds its connection for up to a second: it gets its own, with a
  // timeout beyond that second.
  RedisOptions w = options;
  w.timeout = std::max(w.timeout, std::chrono::milliseconds(3000));
  waker_ = std::make_unique<RedisClient>(w);
  wakeThread_ = std::thread([this] { wakeLoop(); });
}

RedisJobQueue::~RedisJobQueue() {
  stop_ = true;
  if (wakeThread_.joinable()) wakeThread_.join();
  try {
    redis_.command({"SREM", key("managers"), node_});
  } catch (const std::exception&) {
  }
}

void RedisJobQueue::wakeLoop() {
  bool registered = false;
  while (!stop_) {
    try {
      if (!registered) {
        // Registered again after each failure: a Redis restarted without
        // its data would otherwise never wake this node.
        waker_->command({"SADD", key("managers"), node_});
        registered = true;
      }
      auto r =
          waker_->command({"BLPOP", key("wake:" + node_), "1"}, std::chrono::milliseconds(3000));
      if (r.isArray()) wake();
    } catch (const std::exception& e) {
      registered = false;
      spdlog::debug("redis wake-ups: {}", e.what());
      for (int i = 0; i < 10 && !stop_; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

RedisReply RedisJobQueue::eval(const std::string& script, std::vector<std::string> args) {
  args.insert(args.begin(), prefix_);
  ++commands_;
  auto r = redis_.eval(script, {}, args);
  if (r.isError()) throw RedisError("Redis script failed: " + r.str);
  return r;
}

std::optional<TangoJob> RedisJobQueue::parse(const RedisReply& doc) const {
  if (!doc.isString()) return std::nullopt;
  boost::system::error_code ec;
  auto v = boost::json::parse(doc.str, ec);
  if (ec || !v.is_object()) return std::nullopt;
  TangoJob j = fromStoreJson(v);
  // Whoever can write to Redis must not steer a manager to files outside
  // the job's courselab: paths come back relative to it, in plain names.
  auto relative = [](const std::string& p) {
    if (p.empty() || p.front() == '/') return false;
    for (std::size_t at = 0; at <= p.size();) {
      const auto slash = std::min(p.find('/', at), p.size());
      if (!isSafeName(std::string_view(p).substr(at, slash - at))) return false;
      at = slash + 1;
    }
    return true;
  };
  bool ok = relative(j.outputFile);
  for (const auto& f : j.input) ok = ok && relative(f.localFile) && isSafeName(f.destFile);
  if (!ok) {
    spdlog::warn("job {}: its document in Redis names a path outside its courselab; ignored", j.id);
    return std::nullopt;
  }
  if (labDirOf_) rebaseJobPaths(j, labDirOf_(j.keyId, j.courselab));
  return j;
}

std::vector<TangoJob> RedisJobQueue::load(const std::vector<std::string>& ids) {
  std::vector<TangoJob> out;
  if (ids.empty()) return out;
  std::vector<std::string> cmd{"MGET"};
  for (const auto& id : ids) cmd.push_back(key("job:" + id));
  ++commands_;
  auto r = redis_.command(cmd);
  for (const auto& doc : r.elements)
    if (auto j = parse(doc)) out.push_back(std::move(*j));
  return out;
}

std::int64_t RedisJobQueue::add(TangoJob job) {
  job.state = JobState::Queued;
  job.assigned = false;
  job.times.queued = nowSeconds();
  job.step = "queued";
  ++commands_;
  auto id = redis_.command({"INCR", key("ids")});
  if (!id.isInteger()) throw RedisError("Redis INCR failed: " + id.str);
  job.id = id.integer;
  job.appendTrace("Added job " + job.name + ":" + std::to_string(job.id) + " to queue");
  eval(kAdd, {std::to_string(job.id), boost::json::serialize(toStoreJson(job))});
  {
    std::lock_guard lock(countsMu_);
    ++liveCounts_[job.keyId];
  }
  wake();  // this node's manager, without waiting for its wake-up list
  return job.id;
}

int RedisJobQueue::recover() {
  auto r = eval(kRecover, {node_ + "/"});
  return static_cast<int>(r.elements.size());
}

std::vector<TangoJob> RedisJobQueue::queuedInStartOrder() {
  ++commands_;
  auto r =
      redis_.pipeline({{"ZRANGE", key("queued"), "0", "-1"}, {"ZRANGE", key("leased"), "0", "-1"}});
  if (!r[0].isArray() || r[0].elements.empty()) return {};
  std::vector<std::int64_t> queuedIds, runningIds;
  std::vector<std::string> missing;
  std::map<std::int64_t, TangoJob> candidates, running;
  {
    std::lock_guard lock(cacheMu_);
    for (const auto& e : r[0].elements) {
      const std::int64_t id = toId(e.str);
      queuedIds.push_back(id);
      if (auto it = candidates_.find(id); it != candidates_.end())
        candidates.emplace(id, it->second);
      else
        missing.push_back(e.str);
    }
    for (const auto& e : r[1].elements) {
      const std::int64_t id = toId(e.str);
      runningIds.push_back(id);
      if (auto it = runningShares_.find(id); it != runningShares_.end())
        running.emplace(id, it->second);
      else if (auto c = candidates_.find(id); c != candidates_.end())
        running.emplace(id, c->second);
      else
        missing.push_back(e.str);
    }
  }
  for (auto& j : load(missing)) {
    const std::int64_t id = j.id;
    if (std::find(runningIds.begin(), runningIds.end(), id) != runningIds.end()) {
      TangoJob share;  // what the start order reads of a running job
      share.id = id;
      share.keyId = j.keyId;
      share.courselab = j.courselab;
      running.emplace(id, std::move(share));
    } else {
      candidates.emplace(id, std::move(j));
    }
  }
  {
    std::lock_guard lock(cacheMu_);
    candidates_ = candidates;  // what is no longer queued drops out
    runningShares_ = running;  // likewise for what no longer runs
  }
  std::vector<const TangoJob*> queued, held;
  std::vector<std::int64_t> ids;
  for (auto id : queuedIds) {
    auto c = candidates.find(id);
    // A key this node does not know: left to a node that does (every node
    // should have the same KEYS).
    if (c == candidates.end() || c->second.labDir.empty()) continue;
    queued.push_back(&c->second);
    ids.push_back(id);
  }
  for (const auto& [id, j] : running) held.push_back(&j);
  std::vector<TangoJob> out;
  out.reserve(queued.size());
  for (auto i : startOrder(queued, held, policy_)) out.push_back(candidates.at(ids[i]));
  return out;
}

std::optional<TakenJob> RedisJobQueue::takeId(std::int64_t id) {
  const std::string token = node_ + "/" + instance_ + "/" + std::to_string(takes_.fetch_add(1) + 1);
  auto doc = eval(kTake, {std::to_string(id), token, std::to_string(leaseTime_.count())});
  auto job = parse(doc);
  if (!job) return std::nullopt;  // another node was first
  if (job->assigned) {
    // Its lease lapsed where it ran (that node died, stalled or restarted).
    job->appendTrace("Requeued job " + job->name + ":" + std::to_string(job->id) +
                     ": the node running it (" + (job->vm.node.empty() ? "?" : job->vm.node) +
                     ") stopped renewing its lease");
    job->vm.id = 0;
  }
  job->assigned = true;
  job->state = JobState::Running;
  job->times.assigned = nowSeconds();
  job->step = "assigned";
  Lease lease{id, token};
  update(lease, *job);
  return TakenJob{std::move(*job), std::move(lease)};
}

std::optional<TakenJob> RedisJobQueue::take(const std::function<bool(const TangoJob&)>& accept,
                                            const std::function<void(const TangoJob&)>& undo) {
  eval(kRequeueLapsed, {std::to_string(leaseTime_.count())});
  for (const auto& candidate : queuedInStartOrder()) {
    if (!accept(candidate)) continue;
    if (auto taken = takeId(candidate.id)) return taken;
    undo(candidate);
  }
  return std::nullopt;
}

std::optional<TakenJob> RedisJobQueue::claim(std::int64_t id) { return takeId(id); }

void RedisJobQueue::requestCancel(std::int64_t id) {
  eval(std::string(s::kRequestCancel), {std::to_string(id)});
}

std::vector<std::int64_t> RedisJobQueue::cancelsAsked(const std::vector<Lease>& leases) {
  if (leases.empty()) return {};
  std::vector<std::string> cmd{"HMGET", key("cancel")};
  for (const auto& l : leases) cmd.push_back(std::to_string(l.jobId));
  ++commands_;
  auto r = redis_.command(cmd);
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < r.elements.size() && i < leases.size(); ++i)
    if (!r.elements[i].isNil()) out.push_back(leases[i].jobId);
  return out;
}

std::vector<Lease> RedisJobQueue::renew(const std::vector<Lease>& leases) {
  // Sent with no lease as well: it keeps the queue's clock (kClock) going.
  std::vector<std::string> args{std::to_string(leaseTime_.count())};
  for (const auto& l : leases) {
    args.push_back(std::to_string(l.jobId));
    args.push_back(l.token);
  }
  auto r = eval(kRenew, args);
  std::vector<Lease> lost;
  for (const auto& e : r.elements)
    for (const auto& l : leases)
      if (l.token == e.str) lost.push_back(l);
  return lost;
}

bool RedisJobQueue::update(const Lease& lease, const TangoJob& job) {
  auto r = eval(kUpdate,
                {std::to_string(job.id), lease.token, boost::json::serialize(toStoreJson(job))});
  return r.integer == 1;
}

bool RedisJobQueue::unassign(const Lease& lease, TangoJob job) {
  job.assigned = false;
  job.state = JobState::Queued;
  job.step = "queued";
  auto r = eval(kUnassignWake,
                {std::to_string(job.id), lease.token, boost::json::serialize(toStoreJson(job))});
  if (r.integer == 1) wake();
  return r.integer == 1;
}

bool RedisJobQueue::finish(const Lease& lease, TangoJob job) {
  job.state = JobState::Finished;
  job.assigned = false;
  job.times.finished = nowSeconds();
  job.step = "finished";
  auto r =
      eval(kFinish, {std::to_string(job.id), lease.token, boost::json::serialize(toStoreJson(job)),
                     job.callbackPending ? node_ : std::string()});
  return r.integer == 1;
}

std::optional<TangoJob> RedisJobQueue::get(std::int64_t id) {
  ++commands_;
  auto r = redis_.pipeline(
      {{"GET", key("job:" + std::to_string(id))}, {"ZSCORE", key("queued"), std::to_string(id)}});
  auto job = parse(r[0]);
  if (job && !r[1].isNil()) {  // put back after a lapsed lease: queued, whatever it says
    job->assigned = false;
    job->state = JobState::Queued;
  }
  return job;
}

std::vector<std::pair<TangoJob, std::optional<std::int64_t>>> RedisJobQueue::liveJobs() {
  std::map<std::int64_t, std::int64_t> position;
  std::int64_t n = 0;
  for (const auto& j : queuedInStartOrder()) position[j.id] = n++;
  ++commands_;
  auto r =
      redis_.pipeline({{"ZRANGE", key("live"), "0", "-1"}, {"ZRANGE", key("queued"), "0", "-1"}});
  std::vector<std::string> ids;
  for (const auto& e : r[0].elements) ids.push_back(e.str);
  std::set<std::int64_t> queued;
  for (const auto& e : r[1].elements) queued.insert(toId(e.str));
  std::vector<std::pair<TangoJob, std::optional<std::int64_t>>> out;
  for (auto& j : load(ids)) {
    std::optional<std::int64_t> pos;
    if (queued.count(j.id)) {  // put back after a lapsed lease: queued, whatever it says
      j.assigned = false;
      j.state = JobState::Queued;
      if (auto p = position.find(j.id); p != position.end()) pos = p->second;
    }
    out.emplace_back(std::move(j), pos);
  }
  return out;
}

std::size_t RedisJobQueue::unassignedCount() {
  ++commands_;
  return static_cast<std::size_t>(redis_.command({"ZCARD", key("queued")}).integer);
}

std::size_t RedisJobQueue::liveCountOf(const std::string& keyId) {
  std::lock_guard lock(countsMu_);
  const auto now = std::chrono::steady_clock::now();
  if (now - countedAt_ > std::chrono::seconds(1)) {
    liveCounts_.clear();
    for (const auto& [job, position] : liveJobs()) ++liveCounts_[job.keyId];
    countedAt_ = now;
  }
  auto it = liveCounts_.find(keyId);
  return it == liveCounts_.end() ? 0 : it->second;
}

std::size_t RedisJobQueue::liveCount() {
  ++commands_;
  return static_cast<std::size_t>(redis_.command({"ZCARD", key("live")}).integer);
}

std::vector<TangoJob> RedisJobQueue::finished(int limit) {
  if (limit <= 0) return {};
  ++commands_;
  auto r = redis_.command({"ZRANGE", key("dead"), "-" + std::to_string(limit), "-1"});
  std::vector<std::string> ids;
  for (const auto& e : r.elements) ids.push_back(e.str);
  return load(ids);
}

std::int64_t RedisJobQueue::countFinished() {
  ++commands_;
  return redis_.command({"ZCARD", key("dead")}).integer;
}

std::vector<TangoJob> RedisJobQueue::pendingCallbacks() {
  ++commands_;
  auto r = redis_.command({"SMEMBERS", key("cb:" + node_)});
  std::vector<std::string> ids;
  for (const auto& e : r.elements) ids.push_back(e.str);
  return load(ids);
}

bool RedisJobQueue::ownsCallback(std::int64_t id) {
  ++commands_;
  return redis_.command({"SISMEMBER", key("cb:" + node_), std::to_string(id)}).integer == 1;
}

void RedisJobQueue::callbackDone(std::int64_t id, const std::string& result,
                                 const std::string& detail, double when) {
  const std::string k = key("job:" + std::to_string(id));
  ++commands_;
  auto job = parse(redis_.command({"GET", k}));
  if (!job) return;
  job->callbackPending = false;
  job->callbackResult = result;
  job->callbackDetail = detail;
  job->callbackTime = when;
  ++commands_;
  redis_.pipeline({{"SET", k, boost::json::serialize(toStoreJson(*job))},
                   {"SREM", key("cb:" + node_), std::to_string(id)}});
}

std::int64_t RedisJobQueue::nextVmId() {
  // Reserved sixteen at a time: fewer round trips, and fewer made while the
  // Preallocator holds its lock.
  std::lock_guard lock(vmIdsMu_);
  if (vmIdNext_ >= vmIdEnd_) {
    ++commands_;
    auto r = redis_.command({"INCRBY", key("vmids"), std::to_string(kVmIdBlock)});
    if (!r.isInteger()) throw RedisError("Redis INCRBY failed: " + r.str);
    vmIdEnd_ = r.integer + 1;
    vmIdNext_ = vmIdEnd_ - kVmIdBlock;
  }
  return 999 + vmIdNext_++;  // Tango's VM ids start at 1000
}

}  // namespace tango
