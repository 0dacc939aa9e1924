#include "tango/vmms/VmmsFactory.hpp"

#include <cstdlib>

#include "tango/vmms/DockerVmms.hpp"
#include "tango/vmms/Ec2SshVmms.hpp"
#include "tango/vmms/LocalVmms.hpp"
#include "tango/vmms/TashiSshVmms.hpp"

namespace tango {

std::unique_ptr<Vmms> makeVmms(const Config& cfg) {
  if (cfg.vmmsName == "local") return std::make_unique<LocalVmms>(cfg);
  if (cfg.vmmsName == "localDocker") return std::make_unique<DockerVmms>(cfg);
  if (cfg.vmmsName == "tashiSSH") return std::make_unique<TashiSshVmms>(cfg);
  if (cfg.vmmsName == "ec2SSH") {
    const char* home = std::getenv("HOME");
    return std::make_unique<Ec2SshVmms>(cfg, currentEnvironment(), home ? home : "/root");
  }
  throw ConfigError(
      "VMMS_NAME: '" + cfg.vmmsName +
      "' is not available in this version (available: local, localDocker, ec2SSH, tashiSSH)");
}

}  // namespace tango
