#include "tango/redis/RedisCluster.hpp"

#include <spdlog/spdlog.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "tango/core/PoolJson.hpp"
#include "tango/core/TangoServer.hpp"
#include "tango/redis/RedisScripts.hpp"
#include "tango/util/RandomHex.hpp"

namespace tango {
namespace json = boost::json;

namespace {

json::object poolsJson(const std::map<std::string, PoolState>& pools) {
  json::object o;
  for (const auto& [name, p] : pools) o[name] = poolStateJson(p);
  return o;
}

std::map<std::string, PoolState> poolsFrom(const json::value& v) {
  std::map<std::string, PoolState> out;
  if (!v.is_object()) return out;
  for (const auto& [name, p] : v.get_object()) out.emplace(std::string(name), poolStateFrom(p));
  return out;
}

// A reply's absence of output, distinct from empty output.
constexpr const char* kNone = "\x01none";

}  // namespace

RedisCluster::RedisCluster(RedisOptions options, std::string prefix, std::string node,
                           std::chrono::milliseconds ttl)
    : options_(options),
      redis_(options),
      prefix_(std::move(prefix)),
      node_(std::move(node)),
      token_(randomHex()),
      ttl_(ttl) {}

RedisCluster::~RedisCluster() { leave(); }

void RedisCluster::join(Local local) {
  local_ = std::move(local);
  // An earlier instance of this node (killed a moment ago) may still be
  // registered: wait for its key to lapse. One that stays is a live process
  // with the same NODE_ID, which must not run beside this one.
  const auto deadline = std::chrono::steady_clock::now() + ttl_ + std::chrono::seconds(2);
  for (bool said = false;;) {
    auto r = redis_.command(
        {"SET", key("node:" + node_), token_, "NX", "PX", std::to_string(ttl_.count())});
    if (r.isOk()) break;
    if (r.isError()) throw RedisError("Redis refused the node's registration: " + r.str);
    if (std::chrono::steady_clock::now() > deadline)
      throw CannotStart("NODE_ID " + node_ +
                        " is registered by a running node; give each node its own NODE_ID");
    if (!said) {
      spdlog::info("node {}: waiting for its previous registration to lapse", node_);
      said = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  redis_.command({"SADD", key("nodes"), node_});
  heartbeat();
  heartbeat_ = std::thread([this] { heartbeatLoop(); });
  answerer_ = std::thread([this] { answerLoop(); });
}

void RedisCluster::leave() {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  if (answerer_.joinable()) answerer_.join();
  if (!local_.stats) return;  // never joined
  try {
    // Gone on purpose: it stays in <p>nodes, so that another node claims
    // it and sends the callbacks it could not (its VMs it removed itself).
    auto r = redis_.command({"GET", key("node:" + node_)});
    if (r.isString() && r.str == token_)
      redis_.pipeline({{"DEL", key("node:" + node_)},
                       {"DEL", key("stats:" + node_)},
                       {"DEL", key("pools:" + node_)}});
  } catch (const std::exception& e) {
    spdlog::warn("node {}: cannot unregister: {}", node_, e.what());
  }
}

void RedisCluster::heartbeat() {
  const std::string px = std::to_string(ttl_.count());
  auto r = redis_.pipeline(
      {{"SET", key("node:" + node_), token_, "XX", "PX", px},
       {"SADD", key("nodes"), node_},
       {"SET", key("stats:" + node_), json::serialize(local_.stats()), "PX", px},
       {"SET", key("pools:" + node_), json::serialize(poolsJson(local_.pools())), "PX", px}});
  if (r[0].isNil()) {
    // Lapsed (a stall, or a Redis that lost its data): register again. If
    // another node claimed this one dead meanwhile, it cleaned up what it
    // could; the jobs this node still runs are fenced by their leases.
    spdlog::warn("node {}: registration lapsed; registering again", node_);
    redis_.pipeline(
        {{"SET", key("node:" + node_), token_, "NX", "PX", px}, {"SADD", key("nodes"), node_}});
  }
}

void RedisCluster::setPool(const PoolSetting& s) {
  json::object o{{"vmms", s.vmms}, {"image", s.image}, {"num", s.num}};
  if (s.cores) o["cores"] = *s.cores;
  if (s.memory) o["memory"] = *s.memory;
  auto r = redis_.command({"HSET", key("poolsizes"), s.vmms + " " + s.image, json::serialize(o)});
  if (r.isError()) throw RedisError("Redis refused the pool setting: " + r.str);
  // This node at once; the others at their next heartbeat.
  if (local_.applyPool) local_.applyPool(s);  // if not now, its heartbeat applies it
}

void RedisCluster::applyPools() {
  if (!local_.applyPool) return;
  auto r = redis_.command({"HGETALL", key("poolsizes")});
  for (std::size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    boost::system::error_code ec;
    auto v = json::parse(r.elements[i + 1].str, ec);
    if (ec || !v.is_object()) continue;
    const auto& o = v.get_object();
    PoolSetting s;
    auto str = [&](const char* k) {
      auto* x = o.if_contains(k);
      return x && x->is_string() ? std::string(x->get_string()) : std::string();
    };
    auto num = [&](const char* k) -> std::optional<int> {
      auto* x = o.if_contains(k);
      if (!x || !x->is_int64() || x->get_int64() < 0 || x->get_int64() > 1'000'000)
        return std::nullopt;
      return static_cast<int>(x->get_int64());
    };
    s.vmms = str("vmms");
    s.image = str("image");
    s.num = num("num").value_or(0);
    s.cores = num("cores");
    s.memory = num("memory");
    auto& last = applied_[r.elements[i].str];
    if (last == s) continue;
    if (local_.applyPool(s)) last = s;
  }
}

void RedisCluster::heartbeatLoop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, ttl_ / 3, [this] { return stop_; });
    if (stop_) break;
    lock.unlock();
    try {
      heartbeat();
      applyPools();
    } catch (const std::exception& e) {
      spdlog::warn("node {}: heartbeat: {}", node_, e.what());
    }
    lock.lock();
  }
}

void RedisCluster::answerLoop() {
  RedisOptions o = options_;
  o.timeout = std::max(o.timeout, std::chrono::milliseconds(3000));
  RedisClient blocking(o);
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    try {
      auto r = blocking.command({"BLPOP", key("partial:" + node_), "1"},
                                std::chrono::milliseconds(3000));
      if (!r.isArray() || r.elements.size() != 2) continue;
      const std::string& req = r.elements[1].str;
      const auto space = req.find(' ');
      if (space == std::string::npos) continue;
      const std::string reply = req.substr(0, space);
      if (!reply.starts_with(prefix_ + "partial-reply:")) continue;  // not one of ours
      std::int64_t id = 0;
      try {
        id = std::stoll(req.substr(space + 1));
      } catch (...) {
        continue;
      }
      auto out = local_.partialOutput ? local_.partialOutput(id) : std::nullopt;
      blocking.pipeline(
          {{"RPUSH", reply, out ? *out : std::string(kNone)}, {"PEXPIRE", reply, "10000"}});
    } catch (const std::exception& e) {
      spdlog::debug("node {}: partial-output requests: {}", node_, e.what());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
}

std::vector<std::string> RedisCluster::liveNodes() {
  auto members = redis_.command({"SMEMBERS", key("nodes")});
  std::vector<std::string> out;
  for (const auto& m : members.elements) out.push_back(m.str);
  return out;
}

std::vector<Cluster::DeadNode> RedisCluster::claimDeadNodes() {
  std::vector<DeadNode> claimed;
  std::set<std::string> missing;
  for (const auto& n : liveNodes()) {
    if (n == node_) continue;
    if (redis_.command({"EXISTS", key("node:" + n)}).integer != 0) continue;
    missing.insert(n);
    if (!suspects_.count(n)) continue;
    // Atomic: one caller wins, and the dead node's callbacks move with it.
    auto r = redis_.eval(redis_scripts::kClaimDeadNode, {}, {prefix_, n, node_});
    if (r.isError()) throw RedisError("Redis script failed: " + r.str);
    if (!r.isArray()) continue;
    DeadNode d{n, {}};
    for (const auto& e : r.elements) {
      try {
        d.callbacks.push_back(std::stoll(e.str));
      } catch (...) {
      }
    }
    claimed.push_back(std::move(d));
  }
  suspects_ = std::move(missing);
  return claimed;
}

std::map<std::string, json::value> RedisCluster::published(const std::string& what) {
  std::map<std::string, json::value> out;
  auto nodes = liveNodes();
  if (nodes.empty()) return out;
  std::vector<std::string> cmd{"MGET"};
  for (const auto& n : nodes) cmd.push_back(key(what + ":" + n));
  auto r = redis_.command(cmd);
  for (std::size_t i = 0; i < nodes.size() && i < r.elements.size(); ++i) {
    if (nodes[i] == node_ || !r.elements[i].isString()) continue;  // lapsed: not live
    boost::system::error_code ec;
    auto v = json::parse(r.elements[i].str, ec);
    if (!ec) out[nodes[i]] = std::move(v);
  }
  return out;
}

std::map<std::string, json::object> RedisCluster::stats() {
  std::map<std::string, json::object> out;
  for (auto& [node, v] : published("stats"))
    if (v.is_object()) out[node] = std::move(v.get_object());
  if (local_.stats) out[node_] = local_.stats();  // this node's own, fresh
  return out;
}

std::map<std::string, std::map<std::string, PoolState>> RedisCluster::pools() {
  std::map<std::string, std::map<std::string, PoolState>> out;
  for (auto& [node, v] : published("pools")) out[node] = poolsFrom(v);
  if (local_.pools) out[node_] = local_.pools();
  return out;
}

std::optional<std::string> RedisCluster::partialOutput(const std::string& node,
                                                       std::int64_t jobId) {
  if (node == node_) return local_.partialOutput ? local_.partialOutput(jobId) : std::nullopt;
  // A connection of its own: BLPOP holds it while the other node answers.
  RedisOptions o = options_;
  o.timeout = std::chrono::milliseconds(4000);
  RedisClient client(o);
  const std::string reply = key("partial-reply:" + randomHex());
  client.pipeline({{"RPUSH", key("partial:" + node), reply + " " + std::to_string(jobId)},
                   {"PEXPIRE", key("partial:" + node), "10000"}});
  auto r = client.command({"BLPOP", reply, "2"}, std::chrono::milliseconds(4000));
  if (!r.isArray() || r.elements.size() != 2 || r.elements[1].str == kNone) return std::nullopt;
  return r.elements[1].str;
}

}  // namespace tango
