#pragma once
// SHA-256 of a byte string, lower-case hex: tells whether an image ships the
// very autodriver the service would otherwise copy in.
#include <string>
#include <string_view>

namespace tango {

std::string sha256Hex(std::string_view data);

}  // namespace tango
