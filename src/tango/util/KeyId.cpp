#include "tango/util/KeyId.hpp"

#include "tango/util/Sha256.hpp"

namespace tango {

std::string keyId(std::string_view key) { return "sha256:" + sha256Hex(key).substr(0, 16); }

}  // namespace tango
