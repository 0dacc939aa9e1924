#pragma once
// A pool's state as JSON: Tango's /pool answer ({"total": [ids], "free":
// [ids]}) plus, for a VMMS that spreads VMs over hosts, "hosts": {host:
// [ids]}. The same text is what nodes publish to each other (RedisCluster).
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <map>
#include <string>

#include "tango/core/Cluster.hpp"

namespace tango {

boost::json::object poolStateJson(const PoolState& p);
// Malformed parts are skipped: the text comes from another node.
PoolState poolStateFrom(const boost::json::value& v);

}  // namespace tango
