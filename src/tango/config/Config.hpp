#pragma once
// One config struct flowing through the service. Keys keep Tango's names
// (config.py) in the TOML file and as environment overrides, so operators can
// carry their settings over. See docs/configuration in the README.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "tango/config/DockerHosts.hpp"

namespace tango {

struct LocalVmmsConfig {
  // Image name -> root directory mounted read-only as the sandbox's "/".
  // Empty: one image, "autograding_image", rooted at the host's "/".
  std::map<std::string, std::filesystem::path> images;
  // Each running sandbox gets two host uids: UID_BASE + slot for the job, and
  // UID_BASE + SLOTS + slot for its bwrap and autodriver (LocalUserns.hpp).
  std::uint32_t uidBase = 200000;
  std::uint32_t slots = 1000;
  // Each VM's sandbox is made with the VM and waits for its job
  // (LocalWarm.cpp); false: every job's sandbox is made when it runs.
  bool warmSandboxes = true;
};

// One machine of the tashiSSH VMMS ([[SSH_MACHINES]] in the config file).
struct SshMachine {
  std::string name;     // for logs and /pool (default: the address)
  std::string address;  // host name or IP address
  int port = 22;
  std::string user = "root";  // who the service logs in as (sudo if not root)
  std::filesystem::path key;  // its private key
  // One job at a time per grading user: the machine runs as many jobs at
  // once as it has grading users (each is reset on its own).
  std::vector<std::string> gradingUsers{"autograde"};
  // The images it stands for (an addJob's "image").
  std::vector<std::string> images{"autograding_image"};
};

// An EC2 instance type a pool's cores/memory may map to ([[EC2_INSTANCE_TYPES]]).
// [[KEY_POLICY]]: what one key's jobs get on a busy night.
struct KeyPolicy {
  std::string key;          // one of KEYS (never echoed in messages)
  double weight = 1;        // its share of VMs beside other keys' queued jobs
  std::string maxPriority;  // the highest priority its jobs may ask; "" = MAX_PRIORITY
};

struct Ec2InstanceType {
  std::string type;  // "t3.small"
  int cores = 0;
  int memory = 0;  // MB
};

struct Config {
  // Service
  // HOST: listen address (Tango binds all). Loopback whatever it says while
  // an example key is accepted (listenSafely).
  std::string host = "0.0.0.0";
  int port = 3000;                         // PORT
  std::vector<std::string> keys{"test"};   // KEYS / RESTFUL_KEY
  std::filesystem::path dataDir = "data";  // state, temporary files; courselabs default below
  std::filesystem::path sandboxDir;        // SANDBOX_DIR (local VMMS), see vmsDir()
  std::filesystem::path courselabs;        // COURSELABS (default <dataDir>/courselabs)
  std::string outputFolder = "output";     // OUTPUT_FOLDER
  std::string prefix = "local";            // PREFIX
  std::string vmmsName = "local";          // VMMS_NAME: the default VMMS
  // MORE_VMMS: other VMMSs this node also serves (a job picks one with its
  // "vmms", else the first that has its image; VMMS_NAME comes first).
  std::vector<std::string> moreVmms;
  std::filesystem::path autodriver;              // path of our static autodriver binary
  std::string logLevel = "info";                 // LOG_LEVEL
  std::optional<std::filesystem::path> logFile;  // LOG_FILE

  // Jobs and pools
  // OPERATOR_ROUTES_NEED_KEY: /metrics and /status/ ask for a key (?key= or
  // X-Tango-Key); false opens them, e.g. to a Prometheus behind a firewall.
  bool operatorRoutesNeedKey = true;
  bool reuseVms = false;  // REUSE_VMS (a VM never runs two jobs: see README)
  int poolSize = 2;       // POOL_SIZE: default number of VMs per image
  // POOL_SPARES: spare VMs kept ready per pool besides the running ones,
  // whatever the pool's size (how many of its jobs run at once); -1 (unset):
  // as many as the pool's size. A pool of size 0 keeps none.
  int poolSpares = -1;
  // A pool of reused VMs (ec2SSH with REUSE_VMS) grows with its queue: one
  // more VM per POOL_GROW_EVERY queued jobs, up to POOL_MAX (0: never), and
  // shrinks back to its size after POOL_IDLE_SECS without a job.
  int poolMax = 0;
  int poolGrowEvery = 1;
  int poolIdleSecs = 300;
  // WARM_IMAGES: images whose pools are made at start-up; any other image
  // gets its pool when its first job (or a prealloc) arrives, as in Tango.
  std::vector<std::string> warmImages;
  int maxConcurrentJobs = 0;                            // 0 = number of VMs in pools
  int jobRetries = 2;                                   // JOB_RETRIES
  std::int64_t maxOutputFileSize = 1000 * 1024;         // MAX_OUTPUT_FILE_SIZE (bytes)
  std::int64_t maxInputFileSize = 250LL * 1024 * 1024;  // MAX_INPUT_FILE_SIZE (bytes)
  std::int64_t vmUlimitFileSize = 100LL * 1024 * 1024;  // VM_ULIMIT_FILE_SIZE (bytes)
  int vmUlimitUserProc = 100;                           // VM_ULIMIT_USER_PROC
  // Limits of the sandbox as a whole (local VMMS; see README "Security model").
  // VM_MEMORY_LIMIT (MB): cgroup memory (+swap), else RLIMIT_AS.
  int vmMemoryLimit = 512;
  // VM_DISK_LIMIT (MB): size of each of the job's home, /tmp and /var/tmp
  // (tmpfs mounts, whose pages also count against VM_MEMORY_LIMIT).
  int vmDiskLimit = 128;
  // VM_CPU_TIME_LIMIT (s): RLIMIT_CPU of each job process; 0 = none.
  int vmCpuTimeLimit = 0;
  int maxJobTimeout = 3600;  // largest timeout a job may ask for (seconds)
  // The most a job may ask for in its "limits" (it may always ask for less).
  int maxJobProcs = 1024;                              // MAX_JOB_PROCS
  std::int64_t maxJobFileSize = 1024LL * 1024 * 1024;  // MAX_JOB_FILE_SIZE (bytes)
  int maxJobMemory = 4096;                             // MAX_JOB_MEMORY (MB)
  int maxJobDisk = 1024;                               // MAX_JOB_DISK (MB)
  int maxJobCpuTime = 3600;                            // MAX_JOB_CPU_TIME (s)

  // Per-step timeouts (seconds)
  int initializeVmTimeout = 180;  // INITIALIZEVM_TIMEOUT
  int waitVmTimeout = 60;         // WAITVM_TIMEOUT
  int copyInTimeout = 30;         // COPYIN_TIMEOUT
  int runJobTimeout = 60;         // RUNJOB_TIMEOUT (default job timeout)
  int copyOutTimeout = 30;        // COPYOUT_TIMEOUT

  // Docker (issue: localDocker)
  std::optional<int> dockerCoresLimit;   // DOCKER_CORES_LIMIT
  std::optional<int> dockerMemoryLimit;  // DOCKER_MEMORY_LIMIT (MB)

  // distDocker (README "Several Docker hosts"; config/DockerHosts.hpp)
  std::vector<DockerHost> dockerHosts;    // DOCKER_HOSTS
  std::filesystem::path dockerHostsFile;  // DOCKER_HOSTS_FILE: Tango's hosts file
  std::string dockerHostUser = "root";   // DOCKER_HOST_USER: who the hosts file's entries log in as
  std::filesystem::path dockerCertPath;  // DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem
  std::filesystem::path dockerSshKey;    // DOCKER_SSH_KEY
  int dockerEngineCapacity = 0;          // DOCKER_ENGINE_CAPACITY: 0 = from CPUs and memory
  int dockerPingSecs = 2;                // DOCKER_PING_SECS: how often each engine is pinged

  // Several nodes (README "Several machines")
  // NODE_ID: names this node's VMs and leases; stable across restarts so a
  // node finds its own leftovers. Default: the host name.
  std::string nodeId;
  // ROLE (or --role): "api" answers REST, "manager" runs jobs, "all" both.
  std::string role = "all";
  // LEASE_SECS: a manager renews its jobs' leases; a job whose lease lapses
  // (its manager died) goes back to the queue after this long.
  int leaseSecs = 5;
  bool useRedis = false;                    // USE_REDIS
  std::string redisHostname = "localhost";  // REDIS_HOSTNAME
  int redisPort = 6379;                     // REDIS_PORT
  std::string redisUsername;                // REDIS_USERNAME (ACL user, optional)
  std::string redisPassword;                // REDIS_PASSWORD
  bool redisTls = false;                    // REDIS_TLS
  std::string redisTlsCaFile;               // REDIS_TLS_CA_FILE
  std::string redisTlsCertFile;             // REDIS_TLS_CERT_FILE (client certificate)
  std::string redisTlsKeyFile;              // REDIS_TLS_KEY_FILE
  // REDIS_PREFIX: starts every key, so services can share one Redis.
  // Default "tango:<PREFIX>:".
  std::string redisPrefix;

  // Keys and what each may do (README "Security model")
  // OPERATOR_KEYS: keys (from KEYS) that may use the operator routes
  // (prealloc, build, /metrics, /status/) and see every key's jobs. Default:
  // the only key when KEYS has one (Tango's single RESTFUL_KEY), else none.
  std::vector<std::string> operatorKeys;
  bool operatorKeysGiven = false;
  // MAX_LIVE_JOBS_PER_KEY: a key's queued and running jobs at once.
  int maxLiveJobsPerKey = 10000;
  // Deadline night (README "Fair shares, priorities, cancel"). When several
  // keys, and several courselabs of a key, have queued jobs, each gets VMs
  // in proportion to its weight (default 1); higher priorities go first.
  // MAX_PRIORITY: the highest priority ("low", "normal", "high") a key's
  // jobs may ask for, unless its [[KEY_POLICY]] entry says otherwise.
  std::string maxPriority = "normal";
  std::vector<KeyPolicy> keyPolicies;              // [[KEY_POLICY]]
  std::map<std::string, double> courselabWeights;  // [COURSELAB_WEIGHTS]: name -> weight
  // MAX_KEY_DISK: bytes a key's courselabs (uploads and outputs) may hold.
  std::int64_t maxKeyDisk = 100LL * 1024 * 1024 * 1024;
  // MAX_JOB_INPUT_FILES / MAX_JOB_INPUT_BYTES: what one addJob may copy in.
  int maxJobInputFiles = 1000;
  std::int64_t maxJobInputBytes = 1024LL * 1024 * 1024;
  // MAX_POOL_SIZE / MAX_POOL_CORES: the most a prealloc may ask for (its
  // memory is bounded by MAX_JOB_MEMORY).
  int maxPoolSize = 64;
  int maxPoolCores = 64;
  // MAX_BUILD_BYTES: the largest image tarball a build may upload.
  std::int64_t maxBuildBytes = 2LL * 1024 * 1024 * 1024;
  // BUILD_IMAGES: images a build may replace besides those this service built.
  std::vector<std::string> buildImages;
  // MIN_FREE_DISK: below this many free bytes in DATA_DIR (and COURSELABS),
  // uploads and addJob are refused before anything fills the disk.
  std::int64_t minFreeDisk = 256LL * 1024 * 1024;

  // The HTTP front (README "Security model")
  int maxConnections = 8192;           // MAX_CONNECTIONS: open at once, all clients
  int maxConnectionsPerClient = 1024;  // MAX_CONNECTIONS_PER_CLIENT: from one address
  int httpHeaderTimeoutSecs = 10;      // HTTP_HEADER_TIMEOUT: a whole request header
  int httpRequestTimeoutSecs = 300;    // HTTP_REQUEST_TIMEOUT: a whole request, header and body

  // Callbacks
  // CALLBACK_DENY / CALLBACK_ALLOW: address ranges (CIDR) a notifyURL may
  // (not) reach, checked at every connection, redirects included. A denied
  // range wins; an empty allow list allows every range not denied.
  std::vector<std::string> callbackDeny{
      "0.0.0.0/8", "169.254.0.0/16", "100.100.100.200/32", "224.0.0.0/4", "240.0.0.0/4",
      "::/128",    "fe80::/10",      "fd00:ec2::254/128",  "ff00::/8",    "::ffff:169.254.0.0/112"};
  std::vector<std::string> callbackAllow;
  int callbackRetries = 5;
  double callbackBackoffSecs = 1.0;  // doubles after each failure
  int callbackTimeoutSecs = 10;

  // REST layer limits
  std::size_t maxHeaderBytes = 16 * 1024;
  std::size_t maxJsonBodyBytes = 1024 * 1024;
  int deadJobsListed = 1000;  // /jobs/<key>/1/ lists the most recent N finished jobs

  LocalVmmsConfig local;
  std::vector<SshMachine> sshMachines;  // SSH_MACHINES (tashiSSH)

  // EC2 block, Tango's names (EC2_REGION, EC2_USER_NAME, DEFAULT_AMI,
  // DEFAULT_INST_TYPE, DEFAULT_SECURITY_GROUP, SECURITY_KEY_PATH,
  // SECURITY_KEY_NAME, DYNAMIC_SECURITY_KEY_PATH, TANGO_RESERVATION_ID,
  // INSTANCE_RUNNING) and ours (EC2_ENDPOINT, EC2_ADDRESS, EC2_SSH_CIDR),
  // kept as text here and checked by the ec2SSH VMMS (ec2/Ec2Settings.hpp).
  std::map<std::string, std::string> ec2;
  // The smallest type that has a pool's cores and memory runs its VMs;
  // DEFAULT_INST_TYPE when the pool asks for neither or none fits.
  std::vector<Ec2InstanceType> ec2InstanceTypes;  // [[EC2_INSTANCE_TYPES]]

  std::filesystem::path courselabsDir() const {
    return courselabs.empty() ? dataDir / "courselabs" : courselabs;
  }
  std::filesystem::path stateFile() const { return dataDir / "tango.sqlite"; }
  // VMMS_NAME, then MORE_VMMS.
  std::vector<std::string> vmmsNames() const;
  // OPERATOR_KEYS as given, else the only key of KEYS (Tango has one key,
  // which does everything), else none.
  std::vector<std::string> operatorKeysInEffect() const {
    if (!operatorKeysGiven && keys.size() == 1) return keys;
    return operatorKeys;
  }
  bool runsApi() const { return role != "manager"; }
  bool runsManager() const { return role != "api"; }
  // Where the local VMMS keeps its VMs: SANDBOX_DIR, else
  // /var/lib/tango-sandboxes/<the first 12 hex digits of DATA_DIR's
  // SHA-256>, one per service. Never below DATA_DIR (see LocalVmms.hpp).
  std::filesystem::path vmsDir() const;
};

// Reads an optional TOML file, then environment overrides (Tango's names, plus
// RESTFUL_KEY). Throws ConfigError naming the key on any invalid value.
// Its message quotes keys and values from the file or the environment, and
// ends up on a terminal and in the journal: control bytes in it are shown
// escaped (\x1b), never sent as they are.
struct ConfigError : std::runtime_error {
  explicit ConfigError(const std::string& message);
};
Config loadConfig(const std::optional<std::filesystem::path>& file,
                  const std::map<std::string, std::string>& env);
std::map<std::string, std::string> currentEnvironment();

// The keys of the examples and of the packaged config ("test", "change-me").
bool isExampleKey(std::string_view key);
// While an example key is accepted, anyone who can reach the port could run
// jobs: HOST is narrowed to loopback. Returns what to tell the operator
// (empty when every key is the operator's own).
std::string listenSafely(Config& cfg);

}  // namespace tango
