#include "tango/courselab/Md5Cache.hpp"

namespace tango::courselab {

Md5Cache::Entry Md5Cache::entryFor(const struct stat& st) {
  Entry e;
  e.ino = static_cast<std::uint64_t>(st.st_ino);
  e.size = static_cast<std::int64_t>(st.st_size);
  e.mtimeNs = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  return e;
}

std::optional<std::string> Md5Cache::lookup(const std::string& path, const struct stat& st) const {
  Entry want = entryFor(st);
  std::lock_guard lock(mutex_);
  auto it = entries_.find(path);
  if (it == entries_.end()) return std::nullopt;
  const Entry& e = it->second;
  if (e.ino != want.ino || e.size != want.size || e.mtimeNs != want.mtimeNs) return std::nullopt;
  return e.md5;
}

void Md5Cache::store(const std::string& path, const struct stat& st, const std::string& md5) {
  Entry e = entryFor(st);
  e.md5 = md5;
  std::lock_guard lock(mutex_);
  if (entries_.size() >= kMaxEntries && entries_.find(path) == entries_.end()) entries_.clear();
  entries_[path] = std::move(e);
}

}  // namespace tango::courselab
