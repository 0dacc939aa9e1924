#include "tango/vmms/VmmsFactory.hpp"

#include "tango/vmms/LocalVmms.hpp"

namespace tango {

std::unique_ptr<Vmms> makeVmms(const Config& cfg) {
  if (cfg.vmmsName == "local") return std::make_unique<LocalVmms>(cfg);
  throw ConfigError("VMMS_NAME: '" + cfg.vmmsName +
                    "' is not available in this version (available: local)");
}

}  // namespace tango
