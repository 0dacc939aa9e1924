#pragma once
// Digests of a byte string, lower-case hex. SHA-256 tells whether an image
// ships the very autodriver the service would otherwise copy in; SHA-1 is
// how Redis names a Lua script (EVALSHA).
#include <string>
#include <string_view>

namespace tango {

std::string sha256Hex(std::string_view data);
std::string sha1Hex(std::string_view data);

}  // namespace tango
