#pragma once
// What keeps one key, or everyone together, from filling the disk: a floor
// of free space in DATA_DIR and COURSELABS (MIN_FREE_DISK), and each key's
// share of COURSELABS (MAX_KEY_DISK: its uploads and outputs together).
// A key's use is measured by walking its courselab directories, at most
// every few seconds; what it was allowed since is added meanwhile, so a
// burst of uploads cannot slip past the share between two walks.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "tango/config/Config.hpp"

namespace tango::courselab {

class DiskGuard {
 public:
  explicit DiskGuard(const Config& cfg);

  // Why `key` may not store `incoming` more bytes now (nullopt: it may).
  // `limit` is lowered to what the key may still store, for a body whose
  // length is not known in advance.
  std::optional<std::string> refusal(std::string_view key, std::uint64_t incoming,
                                     std::uint64_t& limit);

  // Bytes of regular files in the key's courselabs and their output folders.
  std::uint64_t measure(std::string_view key) const;

 private:
  struct Use {
    std::uint64_t bytes = 0;
    std::chrono::steady_clock::time_point measured;
  };

  std::filesystem::path root_, dataDir_;
  std::string outputFolder_;
  std::uint64_t minFree_, maxKeyDisk_;
  std::mutex mu_;
  std::map<std::string, Use, std::less<>> use_;
};

}  // namespace tango::courselab
