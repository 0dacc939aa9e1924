#pragma once
// Tar streams for the archive endpoints, made and read with libarchive in
// memory (job inputs and outputs are bounded by the service's limits).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tango::docker {

struct TarEntry {
  std::string path;  // relative, e.g. "opt/tango/job/Makefile"
  enum class Kind { File, Dir } kind = Kind::File;
  std::string data;  // file content
  unsigned mode = 0644;
  unsigned uid = 0, gid = 0;
};

// A ustar/pax stream of the entries, in order. Throws std::runtime_error.
std::string makeTar(const std::vector<TarEntry>& entries);

// The content of the first regular file in `tar`, at most `maxBytes` of it; a
// stream cut short (a bounded download) yields what it holds. nullopt when the
// first member is not a regular file (a symlink the job made is never followed).
std::optional<std::string> firstFileOfTar(std::string_view tar, std::size_t maxBytes);

// Writes a tar of everything under `dir` (as the root "/" of the archive,
// owners and modes kept, symlinks stored as links) to `dest`. Throws.
void tarDirectory(const std::filesystem::path& dir, const std::filesystem::path& dest);

}  // namespace tango::docker
