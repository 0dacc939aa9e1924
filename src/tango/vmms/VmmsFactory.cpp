#include "tango/vmms/VmmsFactory.hpp"

#include "tango/vmms/DockerVmms.hpp"
#include "tango/vmms/LocalVmms.hpp"
#include "tango/vmms/TashiSshVmms.hpp"

namespace tango {

std::unique_ptr<Vmms> makeVmms(const Config& cfg) {
  if (cfg.vmmsName == "local") return std::make_unique<LocalVmms>(cfg);
  if (cfg.vmmsName == "localDocker") return std::make_unique<DockerVmms>(cfg);
  if (cfg.vmmsName == "tashiSSH") return std::make_unique<TashiSshVmms>(cfg);
  throw ConfigError("VMMS_NAME: '" + cfg.vmmsName +
                    "' is not available in this version (available: local, localDocker, tashiSSH)");
}

}  // namespace tango
