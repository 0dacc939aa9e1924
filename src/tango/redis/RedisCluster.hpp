#pragma once
// The nodes around one Redis (Cluster.hpp). Each node holds a registration
// key with a time to live (LEASE_SECS), refreshed three times per lease
// time, and publishes its counters and pools beside it. A node whose key
// lapsed is dead: the first node to remove it from <p>nodes cleans up after
// it. A node answers partial-output requests from a list only it reads.
//
// Keys, under REDIS_PREFIX (<p>):
//   <p>nodes                 set of registered node ids
//   <p>node:<id>             this instance's token, with a TTL
//   <p>stats:<id>, <p>pools:<id>   JSON, with the same TTL
//   <p>partial:<id>          requests "<reply key> <job id>" for node <id>
//   <p>partial-reply:<rid>   the answer (a list, popped with BLPOP)
//   <p>poolsizes             hash: "<vmms> <image>" -> prealloc setting (JSON)
#include <atomic>
#include <boost/json/value.hpp>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "tango/core/Cluster.hpp"
#include "tango/redis/RedisClient.hpp"

namespace tango {

class RedisCluster final : public Cluster {
 public:
  RedisCluster(RedisOptions options, std::string prefix, std::string node,
               std::chrono::milliseconds ttl);
  ~RedisCluster() override;

  std::string nodeId() const override { return node_; }
  void join(Local local) override;
  void leave() override;
  std::vector<DeadNode> claimDeadNodes() override;
  std::map<std::string, boost::json::object> stats() override;
  std::map<std::string, std::map<std::string, PoolState>> pools() override;
  void setPool(const PoolSetting& setting) override;
  std::optional<std::string> partialOutput(const std::string& node, std::int64_t jobId) override;

 private:
  void heartbeat();  // registers (again) and publishes
  void heartbeatLoop();
  void answerLoop();
  void applyPools();  // the pool settings in Redis this node has not applied yet
  std::vector<std::string> liveNodes();
  // What every other live node published under <p><what>:<node>, parsed.
  std::map<std::string, boost::json::value> published(const std::string& what);
  std::string key(const std::string& k) const { return prefix_ + k; }

  const RedisOptions options_;
  RedisClient redis_;
  const std::string prefix_, node_, token_;
  const std::chrono::milliseconds ttl_;
  Local local_;
  std::map<std::string, PoolSetting> applied_;  // heartbeat thread only
  // Nodes found unregistered at the last look: a node is claimed only when
  // missing at two looks in a row, so one that re-registers moments after a
  // Redis outage (every registration lapsed meanwhile) is not taken for dead.
  std::set<std::string> suspects_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread heartbeat_, answerer_;
};

}  // namespace tango
