#include "tango/vmms/VmmsFactory.hpp"

#include <cstdlib>

#include "tango/vmms/DistDockerVmms.hpp"
#include "tango/vmms/DockerVmms.hpp"
#include "tango/vmms/Ec2SshVmms.hpp"
#include "tango/vmms/LocalVmms.hpp"
#include "tango/vmms/TashiSshVmms.hpp"

namespace tango {

std::unique_ptr<Vmms> makeVmms(const Config& cfg, const std::string& name) {
  if (name == "local") return std::make_unique<LocalVmms>(cfg);
  if (name == "localDocker") return std::make_unique<DockerVmms>(cfg);
  if (name == "distDocker") return std::make_unique<DistDockerVmms>(cfg);
  if (name == "tashiSSH") return std::make_unique<TashiSshVmms>(cfg);
  if (name == "ec2SSH") {
    const char* home = std::getenv("HOME");
    return std::make_unique<Ec2SshVmms>(cfg, currentEnvironment(), home ? home : "/root");
  }
  throw ConfigError(
      "VMMS_NAME: '" + name +
      "' is not available in this version (available: local, localDocker, distDocker, "
      "ec2SSH, tashiSSH)");
}

VmmsSet makeVmmsSet(const Config& cfg) {
  VmmsSet set;
  for (const auto& name : cfg.vmmsNames()) set.add(makeVmms(cfg, name));
  return set;
}

}  // namespace tango
