#pragma once
#include <memory>
#include <string>

#include "tango/config/Config.hpp"
#include "tango/vmms/VmmsSet.hpp"

namespace tango {
// The VMMS of that name. Throws ConfigError for one this build lacks.
std::unique_ptr<Vmms> makeVmms(const Config& cfg, const std::string& name);
// VMMS_NAME, then MORE_VMMS.
VmmsSet makeVmmsSet(const Config& cfg);
}  // namespace tango
