#pragma once
// The job model, named after Tango's (tangoObjects.py): TangoJob, TangoMachine,
// InputFile. Field names follow Tango's JSON so the REST layer maps them 1:1.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tango {

struct InputFile {
  std::string localFile;  // absolute host path, inside the job's courselab dir
  std::string destFile;   // a single safe name inside the VM's job directory
};

// A VM as Tango describes it. `name` is the pool (image) name; the instance
// name of a concrete VM is <PREFIX>-<id>-<name> (see instanceName()).
struct TangoMachine {
  std::string name;
  std::string image;
  std::string vmms;
  std::optional<int> cores;
  std::optional<int> memory;  // MB
  std::optional<int> disk;
  std::optional<bool> network;
  std::int64_t id = 0;  // 0 = not assigned to a concrete VM yet
  std::optional<std::string> resume;
  // The node that made this VM (NODE_ID): a node cleans up only its own
  // leftovers, and those of nodes known dead. Not in Tango's JSON.
  std::string node;
  // The host it is on, for a VMMS with several (distDocker's engine URL);
  // set by getVMs. Not in Tango's JSON.
  std::string host;
  // The EC2 account of the job's own keys (addJob's accessKeyId/accessKey),
  // handed to the VMMS for the VM made for that job. Never serialized.
  std::optional<std::string> accessKeyId;
  std::optional<std::string> accessKey;
  bool ownAccount() const { return accessKeyId.has_value() && accessKey.has_value(); }
};

std::string instanceName(const std::string& prefix, const TangoMachine& vm);

enum class JobState { Queued, Running, Finished };
const char* toString(JobState s);

// How a finished job ended, for operators (Tango only has the trace).
enum class JobOutcome { None, Success, MakeFailed, Timeout, InternalError, Cancelled };
const char* toString(JobOutcome o);

// addJob's optional "priority": every queued job of a higher priority
// starts before any of a lower one (a regrade at `low` never delays a live
// submission). What a key may ask for is bounded by the config.
enum class JobPriority { Low = 0, Normal = 1, High = 2 };
const char* toString(JobPriority p);
std::optional<JobPriority> parsePriority(std::string_view s);

// What the autodriver reports about the job's processes (side channel).
struct ResourceUsage {
  std::int64_t wallMs = 0;
  std::int64_t userMs = 0;
  std::int64_t sysMs = 0;
  std::int64_t maxRssKb = 0;
  int exitStatus = 0;
  int signal = 0;
  bool timedOut = false;
  std::int64_t outputBytes = 0;
  // Growth of the container's cgroup counters during the job, when the
  // autodriver was given them (-E): memory-limit kills, forks refused by the
  // pids limit. They feed the output header's notice; not stored.
  std::int64_t oomKills = 0;
  std::int64_t pidsMax = 0;
};

// Limits a job asked for in its addJob body ("limits"); each unset one is
// the configured default (VM_ULIMIT_USER_PROC, VM_ULIMIT_FILE_SIZE,
// VM_MEMORY_LIMIT, VM_DISK_LIMIT, VM_CPU_TIME_LIMIT).
struct JobLimits {
  std::optional<int> procs;
  std::optional<std::int64_t> fileSizeBytes;
  std::optional<int> memoryMb;
  std::optional<int> diskMb;
  std::optional<int> cpuSecs;
  bool empty() const { return !procs && !fileSizeBytes && !memoryMb && !diskMb && !cpuSecs; }
};

// Per-step wall-clock timestamps (seconds since the epoch, 0 = not reached).
struct StepTimes {
  double queued = 0, assigned = 0, initializeVM = 0, waitVM = 0, copyIn = 0, runJob = 0,
         copyOut = 0, finished = 0;
};

struct TangoJob {
  std::int64_t id = 0;
  std::string name;
  std::string keyId;      // keyId() of the API key that submitted it; the key is never kept
  std::string courselab;  // client's courselab name
  // The courselab's host directory (COURSELABS/<key>-<courselab>). Not
  // stored: its name holds the key, so the store keeps the job's paths
  // relative to it and finds it again from keyId (rebaseJobPaths).
  std::string labDir;
  std::vector<InputFile> input;
  std::string outputFile;  // absolute host path of the final output file
  std::optional<std::string> notifyURL;
  int timeout = 0;                     // seconds
  std::int64_t maxOutputFileSize = 0;  // bytes
  bool disableNetwork = false;
  JobLimits limits;
  int retries = 0;
  JobPriority priority = JobPriority::Normal;
  bool assigned = false;
  std::vector<std::string> trace;  // "<ctime>|<message>"
  TangoMachine vm;
  std::optional<std::string> accessKeyId;  // EC2 credentials of the requester
  std::optional<std::string> accessKey;

  // Beyond Tango: state, current step, per-step times, usage, outcome.
  JobState state = JobState::Queued;
  std::string step;  // current or last VMMS step
  StepTimes times;
  std::optional<ResourceUsage> usage;
  JobOutcome outcome = JobOutcome::None;
  bool callbackPending = false;  // a callback still has to be delivered
  // How the callback went: kept beside the trace, never in it, since Autolab
  // reads the trace's last entry as the job's outcome. "delivered" or
  // "failed" (with why), and when; empty while pending or without a callback.
  std::string callbackResult;
  std::string callbackDetail;
  double callbackTime = 0;

  // Appends "<ctime now>|<message>" to the trace.
  void appendTrace(const std::string& message);
};

// "Fri Nov 27 23:55:58 2026" for the given time (local time, like Python's ctime).
std::string ctimeString(double epochSeconds);
double nowSeconds();

}  // namespace tango
