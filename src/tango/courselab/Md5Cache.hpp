#pragma once
// Remembers MD5s of courselab files by (path, inode, size, mtime), so an
// `open` of a courselab full of big files does not rehash them every time.
// A file rewritten in place changes size or mtime and is hashed again.
#include <sys/stat.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace tango::courselab {

class Md5Cache {
 public:
  std::optional<std::string> lookup(const std::string& path, const struct stat& st) const;
  void store(const std::string& path, const struct stat& st, const std::string& md5);

 private:
  struct Entry {
    std::uint64_t ino = 0;
    std::int64_t size = 0;
    std::int64_t mtimeNs = 0;
    std::string md5;
  };
  static Entry entryFor(const struct stat& st);
  // Bound on memory: when reached the cache starts over (a rehash is only slow).
  static constexpr std::size_t kMaxEntries = 100000;

  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace tango::courselab
