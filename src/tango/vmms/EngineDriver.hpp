#pragma once
// One of distDocker's engines as DistDockerVmms drives it: localDocker's
// calls on that engine, and a way to ask whether it answers. The real one
// (DockerEngineDriver) is a DockerVmms reached through an EngineLink; the
// placement benchmark (bench/placement_sim.cpp) plugs in modelled ones.
#include <memory>
#include <string>
#include <vector>

#include "tango/config/Config.hpp"
#include "tango/docker/Engine.hpp"
#include "tango/vmms/Vmms.hpp"

namespace tango {

class EngineDriver {
 public:
  virtual ~EngineDriver() = default;
  // localDocker's calls, on this engine.
  virtual Vmms& vmms() = 0;
  // Opens the way (an SSH forward) and pings: "" when the engine answers,
  // else why not, naming it. Called by one thread at a time.
  virtual std::string probe() = 0;
  // Its CPUs and memory, for a capacity nobody configured. Throws.
  virtual docker::Engine::SystemInfo systemInfo() = 0;
  // It stopped answering: runs still waiting on it end now, with an error.
  virtual void abandonRuns() {}
};

struct DistEngine {
  std::string name;  // as configured (the URL)
  int capacity = 0;  // 0: from its CPUs and memory
  std::unique_ptr<EngineDriver> driver;
};

// The engines of DOCKER_HOSTS (and DOCKER_HOSTS_FILE), each a DockerVmms
// over an EngineLink. Throws ConfigError.
std::vector<DistEngine> dockerEngines(const Config& cfg);

}  // namespace tango
