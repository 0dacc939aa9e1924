#pragma once
// How a node sees the others. One node (SQLite) is a cluster of one
// (SingleNode); with Redis, nodes register with a heartbeat, publish their
// counters and pools, and answer each other's partial-output requests
// (RedisCluster), so /info, /pool and getPartialOutput answer the same on
// every node.
#include <boost/json/object.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tango {

struct PoolState {
  std::vector<std::int64_t> total;
  std::vector<std::int64_t> free;
  std::map<std::int64_t, std::string> hosts;  // VM id -> its host, where a VMMS has several
};

// Tango's prealloc: a pool's size and the shape of its VMs.
struct PoolSetting {
  std::string vmms, image;
  int num = 0;
  std::optional<int> cores, memory;
  bool operator==(const PoolSetting&) const = default;
};

class Cluster {
 public:
  // What this node tells the others about itself.
  struct Local {
    std::function<boost::json::object()> stats;  // /info's counters
    std::function<std::map<std::string, PoolState>()> pools;
    // Output so far of a job this node runs; nullopt when it runs no such job.
    std::function<std::optional<std::string>(std::int64_t jobId)> partialOutput;
    // Applies a pool setting made on any node (a manager's preallocator);
    // false: not now (the manager has not started), ask again later.
    std::function<bool(const PoolSetting&)> applyPool;
  };

  virtual ~Cluster() = default;
  virtual std::string nodeId() const = 0;
  // Registers this node. A node id still registered by an earlier instance
  // (killed moments ago) is waited for until its registration lapses.
  virtual void join(Local local) = 0;
  virtual void leave() = 0;
  // A node whose registration lapsed, handed to exactly one caller, which
  // cleans up after it: its VMs on shared engines, and the callbacks it had
  // not sent (now the caller's, by job id).
  struct DeadNode {
    std::string node;
    std::vector<std::int64_t> callbacks;
  };
  virtual std::vector<DeadNode> claimDeadNodes() = 0;
  // Every live node's counters, this node's included, by node id.
  virtual std::map<std::string, boost::json::object> stats() = 0;
  // Every live node's pools, by node id.
  virtual std::map<std::string, std::map<std::string, PoolState>> pools() = 0;
  // A prealloc for every manager, now and those that join later.
  virtual void setPool(const PoolSetting& setting) = 0;
  // Asks `node` for the output so far of job `jobId`.
  virtual std::optional<std::string> partialOutput(const std::string& node, std::int64_t jobId) = 0;
  // stats() and pools() are memory reads (no other node to ask).
  virtual bool inProcess() const { return false; }
};

// One node alone: nothing to share.
class SingleNode final : public Cluster {
 public:
  explicit SingleNode(std::string id) : id_(std::move(id)) {}
  std::string nodeId() const override { return id_; }
  bool inProcess() const override { return true; }
  void join(Local local) override { local_ = std::move(local); }
  void leave() override {}
  std::vector<DeadNode> claimDeadNodes() override { return {}; }
  std::map<std::string, boost::json::object> stats() override {
    return {{id_, local_.stats ? local_.stats() : boost::json::object{}}};
  }
  std::map<std::string, std::map<std::string, PoolState>> pools() override {
    return {{id_, local_.pools ? local_.pools() : std::map<std::string, PoolState>{}}};
  }
  void setPool(const PoolSetting& s) override {
    if (local_.applyPool) local_.applyPool(s);
  }
  std::optional<std::string> partialOutput(const std::string&, std::int64_t jobId) override {
    return local_.partialOutput ? local_.partialOutput(jobId) : std::nullopt;
  }

 private:
  std::string id_;
  Local local_;
};

}  // namespace tango
