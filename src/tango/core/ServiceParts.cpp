#include "tango/core/ServiceParts.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

#include "tango/core/LocalJobQueue.hpp"
#include "tango/redis/RedisCluster.hpp"
#include "tango/redis/RedisJobQueue.hpp"
#include "tango/store/SqliteJobStore.hpp"
#include "tango/util/KeyId.hpp"
#include "tango/util/SafeName.hpp"
#include "tango/vmms/VmmsFactory.hpp"

namespace tango {

namespace {

// DATA_DIR and what the service keeps in it are the service's alone: the
// database, every student's files and outputs. An older release's 0755
// directories are tightened.
void makePrivateDir(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace);
}

// Image tarballs a crash left behind (a build in progress removes its own
// when it ends, however it ends). Only old ones: nodes may share DATA_DIR,
// and another node's build may be under way.
void removeStaleBuildTarballs(const std::filesystem::path& tmp) {
  using namespace std::chrono_literals;
  std::error_code ec;
  const auto now = std::filesystem::file_time_type::clock::now();
  for (const auto& e : std::filesystem::directory_iterator(tmp, ec)) {
    if (!e.path().filename().string().starts_with("build-")) continue;
    auto t = e.last_write_time(ec);
    if (!ec && now - t > 1h && std::filesystem::remove(e.path(), ec))
      spdlog::info("removed a stale image tarball {}", e.path().filename().string());
  }
}

}  // namespace

LabDirOf labDirFinder(const Config& cfg) {
  std::map<std::string, std::string> keyOfId;
  for (const auto& k : cfg.keys) keyOfId[keyId(k)] = k;
  return
      [keyOfId, labs = cfg.courselabsDir()](const std::string& id, const std::string& courselab) {
        auto k = keyOfId.find(id);
        if (k == keyOfId.end()) return std::string();
        auto dir = courselabDir(labs, k->second, courselab);
        return dir ? dir->string() : std::string();
      };
}

RedisOptions redisOptions(const Config& cfg) {
  RedisOptions o;
  o.host = cfg.redisHostname;
  o.port = cfg.redisPort;
  o.username = cfg.redisUsername;
  o.password = cfg.redisPassword;
  o.tls = cfg.redisTls;
  o.tlsCaFile = cfg.redisTlsCaFile;
  o.tlsCertFile = cfg.redisTlsCertFile;
  o.tlsKeyFile = cfg.redisTlsKeyFile;
  return o;
}

ServiceParts assembleParts(const Config& cfg) {
  makePrivateDir(cfg.dataDir);
  makePrivateDir(cfg.dataDir / "tmp");
  removeStaleBuildTarballs(cfg.dataDir / "tmp");
  makePrivateDir(cfg.courselabsDir());
  ServiceParts parts;
  const auto lease = std::chrono::seconds(cfg.leaseSecs);
  if (cfg.useRedis) {
    const RedisOptions redis = redisOptions(cfg);
    parts.queue = std::make_unique<RedisJobQueue>(redis, cfg.redisPrefix, cfg.nodeId, lease,
                                                  labDirFinder(cfg), cfg.runsManager());
    parts.cluster = std::make_unique<RedisCluster>(redis, cfg.redisPrefix, cfg.nodeId, lease);
  } else {
    if (cfg.role != "all")
      throw ConfigError("ROLE: " + cfg.role +
                        " needs USE_REDIS (nodes share their queue through Redis)");
    parts.queue = std::make_unique<LocalJobQueue>(
        std::make_unique<SqliteJobStore>(cfg.stateFile(), labDirFinder(cfg)), lease);
    parts.cluster = std::make_unique<SingleNode>(cfg.nodeId);
  }
  parts.vmms = makeVmmsSet(cfg);
  return parts;
}

}  // namespace tango
