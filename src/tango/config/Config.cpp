#include "tango/config/Config.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>

#include "tango/ssh/SshTarget.hpp"
#include "tango/util/AddressRange.hpp"
#include "tango/util/SafeName.hpp"
#include "tango/util/Sha256.hpp"

namespace tango {
namespace {
std::string escapeControlBytes(const std::string& s) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f)
      out += fmt::format("\\x{:02x}", u);
    else
      out += c;
  }
  return out;
}
}  // namespace

ConfigError::ConfigError(const std::string& message)
    : std::runtime_error(escapeControlBytes(message)) {}

namespace {

// One value to check, from the TOML file (a typed node) or from the
// environment (a string). The same checks serve both sources so a setting
// means the same thing wherever it comes from.
struct Raw {
  const toml::node* node = nullptr;
  std::string_view text;
  bool fromFile() const { return node != nullptr; }
};

// Values are echoed in error messages, which end up in a terminal or a log:
// control characters are escaped so a hostile value cannot forge log lines.
std::string quoteForMessage(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

std::string shown(const Raw& raw) {
  if (!raw.fromFile()) return quoteForMessage(raw.text);
  const toml::node& n = *raw.node;
  if (auto s = n.value_exact<std::string>()) return quoteForMessage(*s);
  if (auto i = n.value_exact<std::int64_t>()) return std::to_string(*i);
  if (auto d = n.value_exact<double>()) return fmt::format("{}", *d);
  if (auto b = n.value_exact<bool>()) return *b ? "true" : "false";
  if (n.is_array()) return "an array";
  if (n.is_table()) return "a table";
  return "a date/time";
}

[[noreturn]] void fail(std::string_view key, std::string_view what, const Raw& raw) {
  throw ConfigError(fmt::format("{}: must be {}, got {}", key, what, shown(raw)));
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::int64_t asInt(std::string_view key, const Raw& raw, std::int64_t lo, std::int64_t hi) {
  const std::string what = fmt::format("an integer {}..{}", lo, hi);
  std::int64_t v = 0;
  if (raw.fromFile()) {
    auto i = raw.node->value_exact<std::int64_t>();
    if (!i) fail(key, what, raw);
    v = *i;
  } else {
    std::string_view t = trim(raw.text);
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc{} || end != t.data() + t.size()) fail(key, what, raw);
  }
  if (v < lo || v > hi) fail(key, what, raw);
  return v;
}

int asInt32(std::string_view key, const Raw& raw, int lo, int hi) {
  return static_cast<int>(asInt(key, raw, lo, hi));
}

double asNumber(std::string_view key, const Raw& raw, double hi) {
  const std::string what = fmt::format("a number > 0 and <= {}", hi);
  double v = 0;
  if (raw.fromFile()) {
    // TOML distinguishes 1 from 1.0; an operator writing either means the same.
    if (auto d = raw.node->value_exact<double>()) {
      v = *d;
    } else if (auto i = raw.node->value_exact<std::int64_t>()) {
      v = static_cast<double>(*i);
    } else {
      fail(key, what, raw);
    }
  } else {
    std::string_view t = trim(raw.text);
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc{} || end != t.data() + t.size()) fail(key, what, raw);
  }
  if (!std::isfinite(v) || v <= 0 || v > hi) fail(key, what, raw);
  return v;
}

bool asBool(std::string_view key, const Raw& raw) {
  const char* what = "a boolean (true/false/yes/no/1/0)";
  if (raw.fromFile()) {
    auto b = raw.node->value_exact<bool>();
    if (!b) fail(key, what, raw);
    return *b;
  }
  // Case-insensitive so Python's "True"/"False" from a Tango deployment work.
  const std::string t = lower(trim(raw.text));
  if (t == "true" || t == "1" || t == "yes") return true;
  if (t == "false" || t == "0" || t == "no") return false;
  fail(key, what, raw);
}

std::string asString(std::string_view key, const Raw& raw) {
  if (!raw.fromFile()) return std::string(raw.text);
  auto s = raw.node->value_exact<std::string>();
  if (!s) fail(key, "a string", raw);
  return *s;
}

std::string asNonEmpty(std::string_view key, const Raw& raw) {
  std::string s = asString(key, raw);
  if (s.empty()) fail(key, "a non-empty string", raw);
  return s;
}

std::string asOneOf(std::string_view key, const Raw& raw,
                    std::initializer_list<const char*> allowed, bool caseInsensitive) {
  std::string s = asString(key, raw);
  std::string cmp = caseInsensitive ? lower(s) : s;
  for (const char* a : allowed)
    if (cmp == a) return cmp;
  std::string list;
  for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  fail(key, "one of " + list, raw);
}

// A list of names, each accepted by `valid`: a TOML array of strings, or in
// the environment a comma-separated list (blanks around commas ignored).
std::vector<std::string> asNameList(std::string_view key, const Raw& raw, const char* what,
                                    bool (*valid)(std::string_view), bool allowEmpty) {
  std::vector<std::string> names;
  auto add = [&](std::string_view name, const Raw& shownRaw) {
    if (!valid(name)) fail(key, what, shownRaw);
    names.emplace_back(name);
  };
  if (raw.fromFile()) {
    const toml::array* arr = raw.node->as_array();
    if (!arr) fail(key, what, raw);
    for (const toml::node& el : *arr) {
      auto s = el.value_exact<std::string>();
      if (!s) fail(key, what, Raw{&el, {}});
      add(*s, Raw{&el, {}});
    }
  } else {
    std::string_view rest = raw.text;
    while (true) {
      auto comma = rest.find(',');
      std::string_view item = trim(rest.substr(0, comma));
      // An empty item is an error for keys (isSafeName("") is false).
      if (!item.empty() || !allowEmpty) add(item, Raw{nullptr, item});
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  if (names.empty() && !allowEmpty) fail(key, what, raw);
  return names;
}

bool isAddressRange(std::string_view s) { return AddressRange::parse(s).has_value(); }

// Keys become part of courselab directory names and URLs, so each must be a
// safe path component; an empty list would lock every client out.
std::vector<std::string> asKeys(std::string_view key, const Raw& raw) {
  return asNameList(key, raw,
                    "a non-empty list of keys, each a safe name (no '/', no control characters)",
                    isSafeName, false);
}

// WARM_IMAGES: may be empty.
std::vector<std::string> asImageList(std::string_view key, const Raw& raw) {
  return asNameList(key, raw, "a list of image names", isSafeImageName, true);
}

constexpr std::int64_t kKiB = 1024;
constexpr std::int64_t kMiB = 1024 * kKiB;
constexpr std::int64_t kGiB = 1024 * kMiB;
// Anything above this is a typo (an extra digit or two), not a real limit.
constexpr std::int64_t kMaxFileSize = 1024 * kGiB;
// The autodriver keeps a job's output in memory while it runs, up to this
// (its own bound for -o).
constexpr std::int64_t kMaxOutputSize = 1 * kGiB;
// Every step of a job and a job itself must end within a day.
constexpr int kMaxTimeoutSecs = 86400;

// An absolute path (relative ones would depend on where the service starts).
std::filesystem::path asPath(std::string_view key, const Raw& raw) {
  std::string p = asString(key, raw);
  if (!std::filesystem::path(p).is_absolute()) fail(key, "an absolute path", raw);
  return p;
}

// DOCKER_HOSTS: engine URLs, or tables with a url and the engine's own
// capacity, cert_path or key; in the environment, URLs separated by commas.
void applyDockerHosts(Config& c, std::string_view key, const Raw& raw) {
  c.dockerHosts.clear();
  auto add = [&](const std::string& url, const std::string& at, const Raw& shownRaw) {
    std::string why;
    if (!parseEngineUrl(url, why)) fail(at, "an engine URL (" + why + ")", shownRaw);
    return &c.dockerHosts.emplace_back(DockerHost{url, 0, {}, {}});
  };
  if (!raw.fromFile()) {
    for (const auto& url : asNameList(
             key, raw, "engine URLs separated by commas",
             [](std::string_view s) { return !s.empty(); }, false))
      add(url, std::string(key), Raw{nullptr, url});
    return;
  }
  const toml::array* arr = raw.node->as_array();
  if (!arr) fail(key, "a list of engine URLs or tables", raw);
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const toml::node& el = *arr->get(i);
    const std::string at = fmt::format("{}[{}]", key, i);
    if (auto url = el.value_exact<std::string>()) {
      add(*url, at, Raw{&el, {}});
      continue;
    }
    const toml::table* t = el.as_table();
    if (!t) fail(at, "an engine URL or a table", Raw{&el, {}});
    const toml::node* urlNode = t->get("url");
    if (!urlNode) throw ConfigError(at + ".url: missing");
    DockerHost* h = add(asString(at + ".url", Raw{urlNode, {}}), at + ".url", Raw{urlNode, {}});
    for (const auto& [k, v] : *t) {
      const std::string sub = at + "." + std::string(k.str());
      const Raw r{&v, {}};
      if (k == "url") continue;
      if (k == "capacity")
        h->capacity = asInt32(sub, r, 1, 100000);
      else if (k == "cert_path")
        h->certPath = asPath(sub, r);
      else if (k == "key")
        h->sshKey = asPath(sub, r);
      else
        throw ConfigError(fmt::format("{}: unknown configuration key", sub));
    }
  }
}

using Setter = std::function<void(Config&, std::string_view key, const Raw&)>;
struct Knob {
  std::string_view name;
  Setter set;
};

Setter timeout(int Config::*field) {
  return [field](Config& c, std::string_view k, const Raw& r) {
    c.*field = asInt32(k, r, 1, kMaxTimeoutSecs);
  };
}

Setter intIn(int Config::*field, int lo, int hi) {
  return [=](Config& c, std::string_view k, const Raw& r) { c.*field = asInt32(k, r, lo, hi); };
}

// Sizes are bytes everywhere, as in Tango (its MAX_OUTPUT_FILE_SIZE is bytes).
Setter bytes(std::int64_t Config::*field, std::int64_t hi) {
  return [=](Config& c, std::string_view k, const Raw& r) { c.*field = asInt(k, r, 1, hi); };
}
Setter bytesSz(std::size_t Config::*field, std::int64_t hi) {
  return [=](Config& c, std::string_view k, const Raw& r) {
    c.*field = static_cast<std::size_t>(asInt(k, r, 1, hi));
  };
}

// Tango's DOCKER_*_LIMIT default to None (no limit); "None" or an empty
// value in the environment keeps that meaning.
Setter optionalLimit(std::optional<int> Config::*field, int hi) {
  return [=](Config& c, std::string_view k, const Raw& r) {
    if (!r.fromFile()) {
      std::string t = lower(trim(r.text));
      if (t.empty() || t == "none") {
        c.*field = std::nullopt;
        return;
      }
    }
    c.*field = asInt32(k, r, 1, hi);
  };
}

// Kept as text; Tango's config.py has INSTANCE_RUNNING as a number.
Setter ec2(std::string name) {
  return [name = std::move(name)](Config& c, std::string_view k, const Raw& r) {
    if (r.fromFile() && r.node->value_exact<std::int64_t>())
      c.ec2[name] = std::to_string(*r.node->value_exact<std::int64_t>());
    else
      c.ec2[name] = asString(k, r);
  };
}

// The host name, made a valid node id (it names containers' labels and keys).
std::string defaultNodeId() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || !host[0]) return "node";
  std::string id(host);
  for (char& ch : id)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '.' && ch != '-')
      ch = '-';
  if (!std::isalnum(static_cast<unsigned char>(id.front()))) id.insert(0, "n");
  return id.substr(0, 64);
}

bool isKnownVmms(std::string_view n) {
  return n == "local" || n == "localDocker" || n == "distDocker" || n == "ec2SSH" ||
         n == "tashiSSH";
}

std::string asVmmsName(std::string_view k, const Raw& r) {
  std::string n =
      asOneOf(k, r, {"local", "localDocker", "distDocker", "ec2SSH", "tashiSSH", "ssh"}, false);
  return n == "ssh" ? "tashiSSH" : n;  // the clearer name, same VMMS
}

// The prefix starts every VM/container name (<PREFIX>-<id>-<image>), and
// Docker container names allow only [A-Za-z0-9][A-Za-z0-9_.-]*.
bool isValidPrefix(std::string_view p) {
  if (p.empty() || p.size() > 64 || !std::isalnum(static_cast<unsigned char>(p.front())))
    return false;
  return std::all_of(p.begin(), p.end(), [](char ch) {
    auto u = static_cast<unsigned char>(ch);
    return u < 0x80 && (std::isalnum(u) || ch == '_' || ch == '.' || ch == '-');
  });
}

const std::vector<Knob>& knobs() {
  static const std::vector<Knob> table = {
      {"PORT", intIn(&Config::port, 0, 65535)},
      {"KEYS", [](Config& c, std::string_view k, const Raw& r) { c.keys = asKeys(k, r); }},
      {"COURSELABS",
       // Empty keeps the default, <DATA_DIR>/courselabs.
       [](Config& c, std::string_view k, const Raw& r) { c.courselabs = asString(k, r); }},
      {"OUTPUT_FOLDER",
       // One directory level inside each courselab, never a path that escapes it.
       [](Config& c, std::string_view k, const Raw& r) {
         std::string s = asString(k, r);
         if (!isSafeName(s)) fail(k, "a single safe directory name", r);
         c.outputFolder = s;
       }},
      {"PREFIX",
       [](Config& c, std::string_view k, const Raw& r) {
         std::string s = asString(k, r);
         if (!isValidPrefix(s)) fail(k, "1-64 characters [A-Za-z0-9_.-] starting alphanumeric", r);
         c.prefix = s;
       }},
      {"VMMS_NAME",
       [](Config& c, std::string_view k, const Raw& r) { c.vmmsName = asVmmsName(k, r); }},
      {"MORE_VMMS",
       [](Config& c, std::string_view k, const Raw& r) {
         c.moreVmms.clear();
         for (const auto& n : asNameList(k, r, "a list of VMMS names", isSafeName, true)) {
           std::string v = n == "ssh" ? "tashiSSH" : n;
           if (!isKnownVmms(v)) fail(k, "VMMS names (local, localDocker, distDocker, ec2SSH, tashiSSH)", r);
           c.moreVmms.push_back(v);
         }
       }},
      {"NODE_ID",
       [](Config& c, std::string_view k, const Raw& r) {
         std::string s = asString(k, r);
         if (!s.empty() && !isValidPrefix(s))
           fail(k, "1-64 characters [A-Za-z0-9_.-] starting alphanumeric", r);
         c.nodeId = s;
       }},
      {"ROLE",
       [](Config& c, std::string_view k, const Raw& r) {
         c.role = asOneOf(k, r, {"api", "manager", "all"}, false);
       }},
      {"LEASE_SECS", intIn(&Config::leaseSecs, 1, 3600)},
      {"REDIS_USERNAME",
       [](Config& c, std::string_view k, const Raw& r) { c.redisUsername = asString(k, r); }},
      {"REDIS_PASSWORD",
       [](Config& c, std::string_view k, const Raw& r) { c.redisPassword = asString(k, r); }},
      {"REDIS_TLS", [](Config& c, std::string_view k, const Raw& r) { c.redisTls = asBool(k, r); }},
      {"REDIS_TLS_CA_FILE",
       [](Config& c, std::string_view k, const Raw& r) { c.redisTlsCaFile = asString(k, r); }},
      {"REDIS_TLS_CERT_FILE",
       [](Config& c, std::string_view k, const Raw& r) { c.redisTlsCertFile = asString(k, r); }},
      {"REDIS_TLS_KEY_FILE",
       [](Config& c, std::string_view k, const Raw& r) { c.redisTlsKeyFile = asString(k, r); }},
      {"REDIS_PREFIX",
       [](Config& c, std::string_view k, const Raw& r) { c.redisPrefix = asString(k, r); }},
      {"REUSE_VMS", [](Config& c, std::string_view k, const Raw& r) { c.reuseVms = asBool(k, r); }},
      {"OPERATOR_ROUTES_NEED_KEY",
       [](Config& c, std::string_view k, const Raw& r) { c.operatorRoutesNeedKey = asBool(k, r); }},
      {"POOL_SIZE", intIn(&Config::poolSize, 0, 1000)},
      {"POOL_SPARES", intIn(&Config::poolSpares, 0, 1000)},
      {"POOL_MAX", intIn(&Config::poolMax, 0, 1000)},
      {"POOL_GROW_EVERY", intIn(&Config::poolGrowEvery, 1, 100000)},
      {"POOL_IDLE_SECS", intIn(&Config::poolIdleSecs, 1, 7 * 86400)},
      {"JOB_RETRIES", intIn(&Config::jobRetries, 0, 100)},
      {"MAX_OUTPUT_FILE_SIZE", bytes(&Config::maxOutputFileSize, kMaxOutputSize)},
      {"MAX_INPUT_FILE_SIZE", bytes(&Config::maxInputFileSize, kMaxFileSize)},
      {"VM_ULIMIT_FILE_SIZE", bytes(&Config::vmUlimitFileSize, kMaxFileSize)},
      {"VM_ULIMIT_USER_PROC", intIn(&Config::vmUlimitUserProc, 1, 100000)},
      {"VM_MEMORY_LIMIT", intIn(&Config::vmMemoryLimit, 16, 16 * 1024 * 1024)},
      {"VM_DISK_LIMIT", intIn(&Config::vmDiskLimit, 1, 16 * 1024 * 1024)},
      {"VM_CPU_TIME_LIMIT", intIn(&Config::vmCpuTimeLimit, 0, 1000000)},
      {"INITIALIZEVM_TIMEOUT", timeout(&Config::initializeVmTimeout)},
      {"WAITVM_TIMEOUT", timeout(&Config::waitVmTimeout)},
      {"COPYIN_TIMEOUT", timeout(&Config::copyInTimeout)},
      {"RUNJOB_TIMEOUT", timeout(&Config::runJobTimeout)},
      {"COPYOUT_TIMEOUT", timeout(&Config::copyOutTimeout)},
      {"DOCKER_CORES_LIMIT", optionalLimit(&Config::dockerCoresLimit, 4096)},
      // MB; 16 TiB is beyond any machine this runs on.
      {"DOCKER_MEMORY_LIMIT", optionalLimit(&Config::dockerMemoryLimit, 16 * 1024 * 1024)},
      {"DOCKER_HOSTS", applyDockerHosts},
      {"DOCKER_HOSTS_FILE",
       [](Config& c, std::string_view k, const Raw& r) { c.dockerHostsFile = asPath(k, r); }},
      {"DOCKER_HOST_USER",
       [](Config& c, std::string_view k, const Raw& r) {
         c.dockerHostUser = asString(k, r);
         if (!ssh::isSafeUser(c.dockerHostUser)) fail(k, "a user name", r);
       }},
      {"DOCKER_CERT_PATH",
       [](Config& c, std::string_view k, const Raw& r) { c.dockerCertPath = asPath(k, r); }},
      {"DOCKER_SSH_KEY",
       [](Config& c, std::string_view k, const Raw& r) { c.dockerSshKey = asPath(k, r); }},
      {"DOCKER_ENGINE_CAPACITY", intIn(&Config::dockerEngineCapacity, 0, 100000)},
      {"DOCKER_PING_SECS", intIn(&Config::dockerPingSecs, 1, 3600)},
      {"USE_REDIS", [](Config& c, std::string_view k, const Raw& r) { c.useRedis = asBool(k, r); }},
      {"REDIS_HOSTNAME",
       [](Config& c, std::string_view k, const Raw& r) { c.redisHostname = asNonEmpty(k, r); }},
      {"REDIS_PORT", intIn(&Config::redisPort, 1, 65535)},
      {"HOST", [](Config& c, std::string_view k, const Raw& r) { c.host = asNonEmpty(k, r); }},
      {"WARM_IMAGES",
       [](Config& c, std::string_view k, const Raw& r) { c.warmImages = asImageList(k, r); }},
      {"SANDBOX_DIR",
       [](Config& c, std::string_view k, const Raw& r) { c.sandboxDir = asString(k, r); }},
      {"DATA_DIR",
       [](Config& c, std::string_view k, const Raw& r) { c.dataDir = asNonEmpty(k, r); }},
      {"AUTODRIVER",
       [](Config& c, std::string_view k, const Raw& r) { c.autodriver = asString(k, r); }},
      {"LOG_LEVEL",
       [](Config& c, std::string_view k, const Raw& r) {
         c.logLevel =
             asOneOf(k, r, {"trace", "debug", "info", "warn", "error", "critical", "off"}, true);
       }},
      {"LOG_FILE",
       // Empty means "no log file" (log to stderr only).
       [](Config& c, std::string_view k, const Raw& r) {
         std::string s = asString(k, r);
         if (s.empty())
           c.logFile.reset();
         else
           c.logFile = s;
       }},
      {"MAX_CONCURRENT_JOBS", intIn(&Config::maxConcurrentJobs, 0, 10000)},
      {"MAX_JOB_TIMEOUT", timeout(&Config::maxJobTimeout)},
      {"MAX_JOB_PROCS", intIn(&Config::maxJobProcs, 1, 100000)},
      {"MAX_JOB_FILE_SIZE", bytes(&Config::maxJobFileSize, kMaxFileSize)},
      {"MAX_JOB_MEMORY", intIn(&Config::maxJobMemory, 16, 16 * 1024 * 1024)},
      {"MAX_JOB_DISK", intIn(&Config::maxJobDisk, 1, 16 * 1024 * 1024)},
      {"MAX_JOB_CPU_TIME", intIn(&Config::maxJobCpuTime, 1, 1000000)},
      {"CALLBACK_RETRIES", intIn(&Config::callbackRetries, 0, 100)},
      {"CALLBACK_BACKOFF_SECS", [](Config& c, std::string_view k,
                                   const Raw& r) { c.callbackBackoffSecs = asNumber(k, r, 3600); }},
      {"CALLBACK_TIMEOUT", timeout(&Config::callbackTimeoutSecs)},
      {"MAX_HEADER_BYTES", bytesSz(&Config::maxHeaderBytes, 16 * kMiB)},
      {"MAX_JSON_BODY_BYTES", bytesSz(&Config::maxJsonBodyBytes, kGiB)},
      {"DEAD_JOBS_LISTED", intIn(&Config::deadJobsListed, 0, 1000000)},
      {"OPERATOR_KEYS",
       [](Config& c, std::string_view k, const Raw& r) {
         c.operatorKeys = asNameList(k, r, "a list of keys from KEYS", isSafeName, true);
         c.operatorKeysGiven = true;
       }},
      {"MAX_PRIORITY",
       [](Config& c, std::string_view k, const Raw& r) {
         c.maxPriority = asOneOf(k, r, {"low", "normal", "high"}, true);
       }},
      {"MAX_LIVE_JOBS_PER_KEY", intIn(&Config::maxLiveJobsPerKey, 1, 100000000)},
      {"MAX_KEY_DISK", bytes(&Config::maxKeyDisk, 1024 * kMaxFileSize)},
      {"MAX_JOB_INPUT_FILES", intIn(&Config::maxJobInputFiles, 1, 1000000)},
      {"MAX_JOB_INPUT_BYTES", bytes(&Config::maxJobInputBytes, kMaxFileSize)},
      {"MAX_POOL_SIZE", intIn(&Config::maxPoolSize, 0, 1000)},
      {"MAX_POOL_CORES", intIn(&Config::maxPoolCores, 1, 4096)},
      {"MAX_BUILD_BYTES", bytes(&Config::maxBuildBytes, kMaxFileSize)},
      {"BUILD_IMAGES",
       [](Config& c, std::string_view k, const Raw& r) { c.buildImages = asImageList(k, r); }},
      {"MIN_FREE_DISK",
       [](Config& c, std::string_view k, const Raw& r) {
         c.minFreeDisk = asInt(k, r, 0, kMaxFileSize);
       }},
      {"MAX_CONNECTIONS", intIn(&Config::maxConnections, 1, 1000000)},
      {"MAX_CONNECTIONS_PER_CLIENT", intIn(&Config::maxConnectionsPerClient, 1, 1000000)},
      {"HTTP_HEADER_TIMEOUT", timeout(&Config::httpHeaderTimeoutSecs)},
      {"HTTP_REQUEST_TIMEOUT", timeout(&Config::httpRequestTimeoutSecs)},
      {"CALLBACK_DENY",
       [](Config& c, std::string_view k, const Raw& r) {
         c.callbackDeny = asNameList(k, r, "a list of address ranges (a.b.c.d/n, x::/n)",
                                     isAddressRange, true);
       }},
      {"CALLBACK_ALLOW",
       [](Config& c, std::string_view k, const Raw& r) {
         c.callbackAllow = asNameList(k, r, "a list of address ranges (a.b.c.d/n, x::/n)",
                                      isAddressRange, true);
       }},
      {"EC2_REGION", ec2("EC2_REGION")},
      {"EC2_USER_NAME", ec2("EC2_USER_NAME")},
      {"DEFAULT_AMI", ec2("DEFAULT_AMI")},
      {"DEFAULT_INST_TYPE", ec2("DEFAULT_INST_TYPE")},
      {"DEFAULT_SECURITY_GROUP", ec2("DEFAULT_SECURITY_GROUP")},
      {"SECURITY_KEY_PATH", ec2("SECURITY_KEY_PATH")},
      {"SECURITY_KEY_NAME", ec2("SECURITY_KEY_NAME")},
      {"DYNAMIC_SECURITY_KEY_PATH", ec2("DYNAMIC_SECURITY_KEY_PATH")},
      {"TANGO_RESERVATION_ID", ec2("TANGO_RESERVATION_ID")},
      {"INSTANCE_RUNNING", ec2("INSTANCE_RUNNING")},
      {"EC2_ENDPOINT", ec2("EC2_ENDPOINT")},
      {"EC2_ADDRESS", ec2("EC2_ADDRESS")},
      {"EC2_SSH_CIDR", ec2("EC2_SSH_CIDR")},
  };
  return table;
}

const Knob* findKnob(std::string_view name) {
  for (const Knob& k : knobs())
    if (k.name == name) return &k;
  return nullptr;
}

[[noreturn]] void unknownKey(std::string_view key) {
  // TOML keys are case-sensitive; point at the likely intended spelling.
  std::string upper(key);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (upper != key && findKnob(upper))
    throw ConfigError(fmt::format("{}: unknown configuration key (did you mean {}?)", key, upper));
  throw ConfigError(fmt::format("{}: unknown configuration key", key));
}

void applyLocal(Config& c, const toml::node& node) {
  const toml::table* t = node.as_table();
  if (!t) fail("local", "a table", Raw{&node, {}});
  for (const auto& [k, v] : *t) {
    const std::string key = "local." + std::string(k.str());
    const Raw raw{&v, {}};
    if (k == "UID_BASE") {
      // Below 1000 lie root and system accounts; a sandbox must never run as one.
      c.local.uidBase = static_cast<std::uint32_t>(asInt(key, raw, 1000, 0x7ffffffe));
    } else if (k == "SLOTS") {
      c.local.slots = static_cast<std::uint32_t>(asInt(key, raw, 1, 1000000));
    } else if (k == "WARM_SANDBOXES") {
      c.local.warmSandboxes = asBool(key, raw);
    } else if (k == "images") {
      const toml::table* imgs = v.as_table();
      if (!imgs) fail(key, "a table of image name = root directory", raw);
      c.local.images.clear();
      for (const auto& [name, root] : *imgs) {
        const std::string ikey = key + "." + std::string(name.str());
        if (!isSafeImageName(name.str()))
          throw ConfigError(fmt::format("{}: not a valid image name", ikey));
        // A relative root would silently depend on the service's working directory.
        std::string dir = asString(ikey, Raw{&root, {}});
        if (dir.empty() || !std::filesystem::path(dir).is_absolute())
          fail(ikey, "an absolute directory path", Raw{&root, {}});
        c.local.images[std::string(name.str())] = dir;
      }
    } else {
      throw ConfigError(fmt::format("{}: unknown configuration key", key));
    }
  }
}

// [[SSH_MACHINES]]: the tashiSSH VMMS's machines.
void applySshMachines(Config& c, const toml::node& node) {
  const toml::array* arr = node.as_array();
  if (!arr || !arr->is_array_of_tables())
    fail("SSH_MACHINES", "an array of tables", Raw{&node, {}});
  c.sshMachines.clear();
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const toml::table& t = *arr->get(i)->as_table();
    const std::string at = fmt::format("SSH_MACHINES[{}]", i);
    SshMachine m;
    bool haveKey = false;
    for (const auto& [k, v] : t) {
      const std::string key = at + "." + std::string(k.str());
      const Raw raw{&v, {}};
      if (k == "name") {
        m.name = asString(key, raw);
        if (!isSafeName(m.name)) fail(key, "a safe name", raw);
      } else if (k == "address") {
        m.address = asString(key, raw);
        if (!ssh::isSafeAddress(m.address)) fail(key, "a host name or IP address", raw);
      } else if (k == "port") {
        m.port = asInt32(key, raw, 1, 65535);
      } else if (k == "user") {
        m.user = asString(key, raw);
        if (!ssh::isSafeUser(m.user)) fail(key, "a user name", raw);
      } else if (k == "key") {
        std::string p = asString(key, raw);
        if (p.empty() || !std::filesystem::path(p).is_absolute())
          fail(key, "an absolute path of a private key", raw);
        m.key = p;
        haveKey = true;
      } else if (k == "grading_users") {
        m.gradingUsers = asNameList(
            key, raw, "a list of user names",
            [](std::string_view u) { return ssh::isSafeUser(std::string(u)) && u != "root"; },
            false);
      } else if (k == "images") {
        m.images = asNameList(key, raw, "a list of image names", isSafeImageName, false);
      } else {
        throw ConfigError(fmt::format("{}: unknown configuration key", key));
      }
    }
    if (m.address.empty()) throw ConfigError(at + ".address: missing");
    // Each grading user is one job at a time, and is reset (every process
    // killed, its home emptied) after each: never twice, never the login.
    std::set<std::string> users(m.gradingUsers.begin(), m.gradingUsers.end());
    if (users.size() != m.gradingUsers.size())
      throw ConfigError(at + ".grading_users: a user is listed twice");
    if (users.count(m.user))
      throw ConfigError(at + ".grading_users: must not include the login user \"" + m.user +
                        "\" (a reset kills its processes and empties its home)");
    if (!haveKey)
      throw ConfigError(at + ".key: missing (the private key the service logs in with)");
    if (m.name.empty()) m.name = m.address + (m.port == 22 ? "" : "_" + std::to_string(m.port));
    for (const auto& other : c.sshMachines)
      if (other.name == m.name)
        throw ConfigError(fmt::format("{}.name: \"{}\" names two machines", at, m.name));
    c.sshMachines.push_back(std::move(m));
  }
}

// [[KEY_POLICY]]: key, weight, max_priority. A key is a secret: messages
// name the entry by position, never by its key.
void applyKeyPolicies(Config& c, const toml::node& node) {
  const toml::array* arr = node.as_array();
  if (!arr || !arr->is_array_of_tables()) fail("KEY_POLICY", "an array of tables", Raw{&node, {}});
  c.keyPolicies.clear();
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const std::string at = fmt::format("KEY_POLICY[{}]", i);
    KeyPolicy p;
    for (const auto& [k, v] : *arr->get(i)->as_table()) {
      const std::string key = at + "." + std::string(k.str());
      const Raw raw{&v, {}};
      if (k == "key") {
        auto s = v.value_exact<std::string>();
        if (!s || s->empty()) throw ConfigError(key + ": must be one of KEYS (a string)");
        p.key = *s;
      } else if (k == "weight") {
        p.weight = asNumber(key, raw, 1000000);
      } else if (k == "max_priority") {
        p.maxPriority = asOneOf(key, raw, {"low", "normal", "high"}, true);
      } else {
        throw ConfigError(fmt::format("{}: unknown configuration key", key));
      }
    }
    if (p.key.empty()) throw ConfigError(at + ".key: missing");
    for (const auto& other : c.keyPolicies)
      if (other.key == p.key) throw ConfigError(at + ".key: a key has two entries");
    c.keyPolicies.push_back(std::move(p));
  }
}

// [COURSELAB_WEIGHTS]: courselab name = weight.
void applyCourselabWeights(Config& c, const toml::node& node) {
  const toml::table* t = node.as_table();
  if (!t) fail("COURSELAB_WEIGHTS", "a table of courselab = weight", Raw{&node, {}});
  c.courselabWeights.clear();
  for (const auto& [k, v] : *t) {
    const std::string name(k.str());
    if (!isSafeName(name))
      throw ConfigError("COURSELAB_WEIGHTS: " + quoteForMessage(name) + " is not a courselab name");
    c.courselabWeights[name] = asNumber("COURSELAB_WEIGHTS." + name, Raw{&v, {}}, 1000000);
  }
}

// [[EC2_INSTANCE_TYPES]]: type, cores, memory (MB).
void applyInstanceTypes(Config& c, const toml::node& node) {
  const toml::array* arr = node.as_array();
  if (!arr || !arr->is_array_of_tables())
    fail("EC2_INSTANCE_TYPES", "an array of tables", Raw{&node, {}});
  c.ec2InstanceTypes.clear();
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const std::string at = fmt::format("EC2_INSTANCE_TYPES[{}]", i);
    Ec2InstanceType t;
    for (const auto& [k, v] : *arr->get(i)->as_table()) {
      const std::string key = at + "." + std::string(k.str());
      const Raw raw{&v, {}};
      if (k == "type") {
        t.type = asNonEmpty(key, raw);
        if (!isSafeName(t.type)) fail(key, "an instance type name", raw);
      } else if (k == "cores") {
        t.cores = asInt32(key, raw, 1, 4096);
      } else if (k == "memory") {
        t.memory = asInt32(key, raw, 1, 64 * 1024 * 1024);
      } else {
        throw ConfigError(fmt::format("{}: unknown configuration key", key));
      }
    }
    if (t.type.empty() || !t.cores || !t.memory)
      throw ConfigError(at + ": needs type, cores and memory");
    c.ec2InstanceTypes.push_back(t);
  }
}

toml::table parseFile(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(fmt::format("{}: cannot open configuration file", file.string()));
  std::ostringstream buf;
  buf << in.rdbuf();
  try {
    return toml::parse(buf.str(), file.string());
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    throw ConfigError(
        fmt::format("{}:{}:{}: {}", file.string(), where.line, where.column, e.description()));
  }
}

// Checks that involve more than one setting, named after the one to change.
void validateTogether(const Config& c) {
  if (c.runJobTimeout > c.maxJobTimeout)
    throw ConfigError(fmt::format("RUNJOB_TIMEOUT: must not exceed MAX_JOB_TIMEOUT ({}), got {}",
                                  c.maxJobTimeout, c.runJobTimeout));
  resolveDockerHosts(c);  // throws for a distDocker without engines, TLS files or SSH key
  if (c.vmmsName == "tashiSSH" && c.sshMachines.empty())
    throw ConfigError(
        "SSH_MACHINES: VMMS_NAME tashiSSH needs at least one [[SSH_MACHINES]] entry (address, "
        "user, key)");
  // Courselab directories are <key>-<courselab>: with keys "a" and "a-b",
  // lab "b-c" of the first and lab "c" of the second would share "a-b-c".
  // The messages name keys by position: a key is a secret, even on stderr.
  for (std::size_t i = 0; i < c.keys.size(); ++i)
    for (std::size_t j = 0; j < c.keys.size(); ++j)
      if (i != j && c.keys[j].starts_with(c.keys[i] + "-"))
        throw ConfigError(fmt::format(
            "KEYS: key #{} starts with key #{} and a '-', so their courselab directories "
            "(<key>-<courselab>) could be the same; choose keys where none is another "
            "followed by '-'",
            j + 1, i + 1));
  for (std::size_t i = 0; i < c.operatorKeys.size(); ++i)
    if (std::find(c.keys.begin(), c.keys.end(), c.operatorKeys[i]) == c.keys.end())
      throw ConfigError(fmt::format("OPERATOR_KEYS: entry #{} is not one of KEYS", i + 1));
  for (std::size_t i = 0; i < c.keyPolicies.size(); ++i)
    if (std::find(c.keys.begin(), c.keys.end(), c.keyPolicies[i].key) == c.keys.end())
      throw ConfigError(fmt::format("KEY_POLICY[{}].key: not one of KEYS", i));
  if (c.httpHeaderTimeoutSecs > c.httpRequestTimeoutSecs)
    throw ConfigError(
        fmt::format("HTTP_HEADER_TIMEOUT: must not exceed HTTP_REQUEST_TIMEOUT ({}), got {}",
                    c.httpRequestTimeoutSecs, c.httpHeaderTimeoutSecs));
  // uid_t is 32-bit, and (uid_t)-1 means "no change" to chown/setresuid.
  // Each slot has two uids: the VM's (UID_BASE + slot) and its keeper's
  // (UID_BASE + SLOTS + slot).
  if (static_cast<std::uint64_t>(c.local.uidBase) + 2ULL * c.local.slots >= 0x7fffffffULL)
    throw ConfigError(fmt::format(
        "local.UID_BASE: UID_BASE + 2 x SLOTS must stay below 2^31-1, got {}", c.local.uidBase));
  // Whoever reaches the queue can run jobs as any course: beyond loopback,
  // Redis must ask for a password.
  const std::string& h = c.redisHostname;
  const bool loopback = h == "localhost" || h == "::1" || h.starts_with("127.");
  if (c.useRedis && !loopback && c.redisPassword.empty())
    throw ConfigError("REDIS_PASSWORD: a Redis not on loopback (REDIS_HOSTNAME " + h +
                      ") needs a password (requirepass), and REDIS_TLS on a network you do not "
                      "trust");
  if (c.redisTls && (c.redisTlsCertFile.empty() != c.redisTlsKeyFile.empty()))
    throw ConfigError(
        "REDIS_TLS_CERT_FILE: a client certificate needs its key (REDIS_TLS_KEY_FILE), and the "
        "other way round");
}

}  // namespace

Config loadConfig(const std::optional<std::filesystem::path>& file,
                  const std::map<std::string, std::string>& env) {
  Config c;
  if (file) {
    const toml::table root = parseFile(*file);
    for (const auto& [k, v] : root) {
      if (k == "local") {
        applyLocal(c, v);
        continue;
      }
      if (k == "SSH_MACHINES") {
        applySshMachines(c, v);
        continue;
      }
      if (k == "EC2_INSTANCE_TYPES") {
        applyInstanceTypes(c, v);
        continue;
      }
      if (k == "KEY_POLICY") {
        applyKeyPolicies(c, v);
        continue;
      }
      if (k == "COURSELAB_WEIGHTS") {
        applyCourselabWeights(c, v);
        continue;
      }
      const Knob* knob = findKnob(k.str());
      if (!knob) unknownKey(k.str());
      knob->set(c, knob->name, Raw{&v, {}});
    }
  }
  // The environment overrides the file. An empty variable counts as unset:
  // docker-compose and systemd templates often pass "FOO=" for "not given".
  for (const Knob& knob : knobs()) {
    auto it = env.find(std::string(knob.name));
    if (it == env.end() || it->second.empty()) continue;
    knob.set(c, knob.name, Raw{nullptr, it->second});
  }
  // Tango's own variable: a single key that replaces KEYS.
  if (auto it = env.find("RESTFUL_KEY"); it != env.end() && !it->second.empty()) {
    if (!isSafeName(it->second))
      fail("RESTFUL_KEY", "a safe name (no '/', no control characters)", Raw{nullptr, it->second});
    c.keys = {it->second};
  }
  validateTogether(c);
  if (c.nodeId.empty()) c.nodeId = defaultNodeId();
  if (c.redisPrefix.empty()) c.redisPrefix = "tango:" + c.prefix + ":";
  return c;
}

std::vector<std::string> Config::vmmsNames() const {
  std::vector<std::string> names{vmmsName};
  for (const auto& n : moreVmms)
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  return names;
}

std::filesystem::path Config::vmsDir() const {
  if (!sandboxDir.empty()) return std::filesystem::absolute(sandboxDir);
  const std::string dir = std::filesystem::absolute(dataDir).lexically_normal().string();
  return std::filesystem::path("/var/lib/tango-sandboxes") / sha256Hex(dir).substr(0, 12);
}

bool isExampleKey(std::string_view key) { return key == "test" || key == "change-me"; }

std::string listenSafely(Config& cfg) {
  std::string example;
  for (const auto& k : cfg.keys)
    if (isExampleKey(k)) example = k;
  if (example.empty()) return {};
  const bool loopback =
      cfg.host == "localhost" || cfg.host == "::1" || cfg.host.starts_with("127.");
  std::string msg = fmt::format(
      "the API key \"{}\" is a shipped example, so the service listens on loopback only", example);
  if (!loopback) {
    msg += fmt::format(" (127.0.0.1, not HOST \"{}\")", cfg.host);
    cfg.host = "127.0.0.1";
  }
  return msg +
         ". To accept jobs from other machines, set KEYS = [\"<a long random secret>\"] in the "
         "config file (or RESTFUL_KEY in the environment) and restart";
}

std::map<std::string, std::string> currentEnvironment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}

}  // namespace tango
