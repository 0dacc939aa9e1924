#pragma once
// What a `local` service keeps between jobs on purpose: each free pool VM's
// sandbox waits for its job (src/tango/vmms/LocalWarm.cpp), with its cgroup
// and three processes of its keeper uid (bwrap, its PID 1, the autodriver),
// never a process of the job's own uid. Tests that check that a host is
// clean allow exactly that.
#include <boost/json.hpp>
#include <map>
#include <set>
#include <string>

#include "Tangod.hpp"

namespace tango::test {

struct WarmPool {
  std::set<std::string> groups;                  // "<VM directory>.<its uid>"
  std::map<unsigned long, int> keeperProcesses;  // keeper uid -> processes still allowed

  // Whether a process whose uids are all `uid` is one of a waiting sandbox's
  // (each allowed process is counted once).
  bool allowsProcess(unsigned long uid) {
    auto it = keeperProcesses.find(uid);
    return it != keeperProcesses.end() && it->second-- > 0;
  }
  bool allowsGroup(const std::string& name) const { return groups.count(name) > 0; }
};

// The free VMs of a /pool answer, as service `tangod` keeps them.
inline WarmPool warmPoolOf(const boost::json::object& pools, const Tangod& tangod) {
  WarmPool warm;
  for (const auto& [image, pool] : pools.at("pools").as_object())
    for (const auto& v : pool.as_object().at("free").as_array()) {
      const std::string dir = "local-" + std::to_string(v.as_int64()) + "-" + std::string(image);
      const std::string uid = readFile(tangod.sandboxDir() / dir / "uid");
      if (uid.empty()) continue;
      const unsigned long u = std::stoul(uid);
      warm.groups.insert(dir + "." + std::to_string(u));
      warm.keeperProcesses[u + kTangodSlots] = 3;
    }
  return warm;
}

}  // namespace tango::test
