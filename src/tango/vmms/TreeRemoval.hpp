#pragma once
// Removing a VM's directory tree, which the job filled: without following
// symlinks, and whatever its depth (deeper than PATH_MAX, or than the fds
// this process may hold open).
#include <filesystem>
#include <string>

namespace tango {

// Removes <parent>/<name> entirely; true when it is gone, else `error` says why.
bool removeDirTree(const std::filesystem::path& parent, const std::string& name,
                   std::string& error);

}  // namespace tango
