#pragma once
// Every name that arrives from the network or a job (courselab, Filename,
// output_file, localFile, destFile, image) is one path component at most.
// These checks are the single gate between hostile input and the filesystem.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace tango {

// A single, non-empty path component: no '/', no NUL, not "." or "..", no
// control characters, at most 255 bytes.
bool isSafeName(std::string_view name);

// An image name as Docker and Tango accept it: [A-Za-z0-9][A-Za-z0-9_.:/-]*
// without "..", at most 255 bytes. (May contain '/' for registry paths; it is
// never used as a host path.)
bool isSafeImageName(std::string_view name);

// COURSELABS/<key>-<courselab>, or nullopt when either part is not a safe name.
std::optional<std::filesystem::path> courselabDir(const std::filesystem::path& courselabs,
                                                  std::string_view key,
                                                  std::string_view courselab);

}  // namespace tango
