#pragma once
// The /metrics page of tangod: everything an operator graphs, rendered from a
// snapshot that TangoServer fills (so this file knows no queue or VMMS).
#include <cstdint>
#include <map>
#include <string>

#include "tango/core/Stats.hpp"
#include "tango/status/StatusHistory.hpp"

namespace tango::metrics {

struct ServiceSnapshot {
  const Stats& stats;
  std::int64_t queued = 0;
  std::int64_t running = 0;
  struct Pool {
    std::int64_t total = 0, free = 0;
  };
  std::map<std::string, Pool> pools;                        // image -> sizes
  std::map<std::string, status::CourselabLoad> courselabs;  // those with live jobs
};

std::string renderServiceMetrics(const ServiceSnapshot& s);

}  // namespace tango::metrics
