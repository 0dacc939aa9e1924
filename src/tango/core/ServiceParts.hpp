#pragma once
// Assembles a node from its config: the job queue (SQLite for one node,
// Redis when USE_REDIS), the VMMSs by name, and the view of other nodes.
#include "tango/config/Config.hpp"
#include "tango/core/TangoServer.hpp"
#include "tango/redis/RedisClient.hpp"
#include "tango/store/JobStore.hpp"

namespace tango {

// Also makes DATA_DIR and what the service keeps in it (the service's
// alone). Throws ConfigError or std::runtime_error when a part cannot be made.
ServiceParts assembleParts(const Config& cfg);

// How to reach Redis (REDIS_*).
RedisOptions redisOptions(const Config& cfg);

// Finds a courselab directory from a job's key id (see JobStore.hpp).
LabDirOf labDirFinder(const Config& cfg);

}  // namespace tango
