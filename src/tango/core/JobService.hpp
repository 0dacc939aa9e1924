#pragma once
// What the REST layer asks of the core for the job, pool and info routes.
// Implemented by TangoServer (core/TangoServer.*); the REST layer never sees
// the queue, the workers or a VMMS directly.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace tango {

struct AddJobResult {
  bool ok = false;
  std::int64_t jobId = 0;
  std::string error;  // Tango sends the job's trace as statusMsg on failure
};

struct PoolsResult {
  bool found = false;
  boost::json::object pools;  // image -> {"total": [ids], "free": [ids]}
};

// A cancel's answer: ok with what was done, or the error; the ids of the
// jobs it cancelled.
struct CancelResult {
  bool ok = false;
  std::string message;
  std::vector<std::int64_t> ids;
};

struct SimpleResult {
  bool ok = false;
  std::string error;
};

class JobService {
 public:
  virtual ~JobService() = default;
  // `courselabDir` is already validated and exists; `body` is the parsed JSON.
  virtual AddJobResult addJob(const std::string& key, const std::string& courselab,
                              const std::filesystem::path& courselabDir,
                              const boost::json::value& body) = 0;
  // Live (queued or running) or dead (finished) jobs in Tango's JSON shape:
  // every key's (owner nullopt, an operator) or those of the key whose keyId
  // is `owner`.
  virtual boost::json::array jobs(bool dead, const std::optional<std::string>& owner) = 0;
  // Output so far of a running job; nullopt when the job is unknown, not
  // running, or not `owner`'s (when given).
  virtual std::optional<std::string> partialOutput(std::int64_t jobId,
                                                   const std::optional<std::string>& owner) = 0;
  virtual boost::json::object info() = 0;
  // info() reads only memory (one node, queue in process): it may run on
  // an I/O thread.
  virtual bool infoIsQuick() { return false; }
  // /jobs/<key>/1/'s list as JSON array text, each element stored once.
  virtual std::string deadJobsJson(const std::optional<std::string>& owner);
  // All pools (image empty) or one image's pool.
  virtual PoolsResult pools(const std::optional<std::string>& image) = 0;
  // Set the pool size of `image` to `num`; `body` holds optional vmms/cores/memory.
  virtual SimpleResult prealloc(const std::string& image, int num,
                                const boost::json::object& body) = 0;
  virtual SimpleResult build(const std::string& imageName,
                             const std::filesystem::path& tarball) = 0;
  // Cancels job `jobId` (README "Cancel"): a queued one at once (its output
  // says so, its callback goes), a running one by stopping its VM (its
  // worker then finishes it as cancelled). `owner` as for jobs().
  virtual CancelResult cancel(std::int64_t jobId, const std::optional<std::string>& owner) {
    (void)jobId;
    (void)owner;
    return {false, "Cancel not supported", {}};
  }
  // Cancels every queued job of one courselab of the key whose keyId is
  // `owner` (running ones go on).
  virtual CancelResult cancelQueued(const std::string& owner, const std::string& courselab) {
    (void)owner;
    (void)courselab;
    return {false, "Cancel not supported", {}};
  }
  // Where the queued job of `owner`'s courselab that writes `outputFile`
  // stands (QueueView::spotOf); nullopt when none is queued.
  virtual std::optional<boost::json::object> queueSpot(const std::string& owner,
                                                       const std::string& courselab,
                                                       const std::string& outputFile) {
    (void)owner;
    (void)courselab;
    (void)outputFile;
    return std::nullopt;
  }
  // For operators: the Prometheus text of /metrics and the JSON behind the
  // live status page. Defaults keep other implementations (test doubles) simple.
  virtual std::string metricsText() { return ""; }
  virtual boost::json::object statusData() { return {}; }
  // `onOutput(name)` after a job of this node wrote its output file `name`
  // (polls that wait for it answer at once); an empty function stops it.
  virtual void watchOutputs(std::function<void(const std::string&)> onOutput) { (void)onOutput; }
};

}  // namespace tango
