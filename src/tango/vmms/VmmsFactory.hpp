#pragma once
#include <memory>

#include "tango/config/Config.hpp"
#include "tango/vmms/Vmms.hpp"

namespace tango {
// The VMMS named by VMMS_NAME. Throws ConfigError for one this build lacks.
std::unique_ptr<Vmms> makeVmms(const Config& cfg);
}  // namespace tango
