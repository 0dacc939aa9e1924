#pragma once
// Durable job state. Every state change is committed here before it is acted
// on, so a kill -9 at any moment loses nothing. SQLite is the one-node
// default; a Redis store (several nodes) implements the same interface.
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "tango/model/Job.hpp"
#include "tango/util/Unavailable.hpp"

namespace tango {

// Finds a courselab's host directory again from a job's key id and
// courselab name ("" when the key is no longer configured): the store keeps
// a job's paths relative to it, since its name holds the API key.
using LabDirOf = std::function<std::string(const std::string& keyId, const std::string& courselab)>;

// The store's disk is full: nothing of the write was kept, and it may
// succeed once there is space.
struct StoreFull : ServiceUnavailable {
  using ServiceUnavailable::ServiceUnavailable;
};

class JobStore {
 public:
  virtual ~JobStore() = default;
  // Gives `job` a new id (64-bit, increasing, never reused), lets `finalize`
  // complete it (e.g. the trace line naming the id), and commits it.
  virtual std::int64_t insert(TangoJob& job, const std::function<void(TangoJob&)>& finalize) = 0;
  virtual void update(const TangoJob& job) = 0;
  virtual std::optional<TangoJob> load(std::int64_t id) = 0;
  // Queued and running jobs, in id (FIFO) order.
  virtual std::vector<TangoJob> loadUnfinished() = 0;
  // The `limit` most recently finished jobs, oldest first.
  virtual std::vector<TangoJob> loadFinished(int limit) = 0;
  virtual std::vector<TangoJob> loadPendingCallbacks() = 0;
  virtual std::int64_t countFinished() = 0;
  // Next VM id (Tango's start at 1000); never reused, so instance names of a
  // crashed run cannot collide with new ones.
  virtual std::int64_t nextVmId() = 0;
};

}  // namespace tango
