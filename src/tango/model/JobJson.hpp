#pragma once
// Job <-> JSON. Two shapes: Tango's (what /jobs shows, Tango's field names and
// types plus our extra fields) and the store's (everything, for SQLite/Redis).
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <optional>

#include "tango/model/Job.hpp"

namespace tango {

// Tango's /jobs element. `queuePosition` (0-based) only for unassigned live jobs.
boost::json::object toTangoJson(const TangoJob& job, std::optional<std::int64_t> queuePosition);

// The store's document holds no API key: not the key itself (keyId
// instead) and no path below the courselab directory, whose name holds it
// (outputFile and each localFile are kept relative to job.labDir).
boost::json::object toStoreJson(const TangoJob& job);
// Throws std::exception on a malformed document. Paths kept relative come
// back relative: rebaseJobPaths makes them absolute again.
TangoJob fromStoreJson(const boost::json::value& doc);
// Sets job.labDir and makes the job's relative paths absolute below it.
void rebaseJobPaths(TangoJob& job, const std::string& labDir);

boost::json::object toJson(const ResourceUsage& usage);
std::optional<ResourceUsage> usageFromJson(const boost::json::value& v);
// A job's "limits" as the addJob body spells them; only what the job set.
boost::json::object toJson(const JobLimits& limits);
JobLimits limitsFromJson(const boost::json::value& v);

}  // namespace tango
