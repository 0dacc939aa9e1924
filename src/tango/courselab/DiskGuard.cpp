#include "tango/courselab/DiskGuard.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <memory>
#include <utility>

#include "tango/util/Fd.hpp"

namespace tango::courselab {

namespace {

constexpr auto kRemeasureAfter = std::chrono::seconds(5);
constexpr std::uint64_t kMiB = 1024 * 1024;

struct DirCloser {
  void operator()(DIR* d) const noexcept { ::closedir(d); }
};

// Sum of the regular files directly in `dirFd` (never following a symlink);
// with `sub`, also of those in its subdirectory of that name.
std::uint64_t sizeOfDir(int dirFd, const std::string* sub) {
  int dup = ::dup(dirFd);
  if (dup < 0) return 0;
  std::unique_ptr<DIR, DirCloser> d(::fdopendir(dup));
  if (!d) {
    ::close(dup);
    return 0;
  }
  std::uint64_t total = 0;
  while (dirent* e = ::readdir(d.get())) {
    std::string_view name(e->d_name);
    if (name == "." || name == "..") continue;
    struct stat st {};
    if (::fstatat(dirFd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISREG(st.st_mode)) {
      total += static_cast<std::uint64_t>(st.st_size);
    } else if (S_ISDIR(st.st_mode) && sub && name == *sub) {
      Fd inner(::openat(dirFd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (inner) total += sizeOfDir(inner.get(), nullptr);
    }
  }
  return total;
}

std::optional<std::uint64_t> freeBytes(const std::filesystem::path& p) {
  struct statvfs vfs {};
  if (::statvfs(p.c_str(), &vfs) != 0) return std::nullopt;
  return static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

}  // namespace

DiskGuard::DiskGuard(const Config& cfg)
    : root_(cfg.courselabsDir()),
      dataDir_(cfg.dataDir),
      outputFolder_(cfg.outputFolder),
      minFree_(static_cast<std::uint64_t>(cfg.minFreeDisk)),
      maxKeyDisk_(static_cast<std::uint64_t>(cfg.maxKeyDisk)) {}

std::uint64_t DiskGuard::measure(std::string_view key) const {
  Fd root(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return 0;
  int dup = ::dup(root.get());
  if (dup < 0) return 0;
  std::unique_ptr<DIR, DirCloser> d(::fdopendir(dup));
  if (!d) {
    ::close(dup);
    return 0;
  }
  // The config refuses keys where one is another followed by '-', so this
  // prefix names this key's courselabs only.
  const std::string prefix = std::string(key) + "-";
  std::uint64_t total = 0;
  while (dirent* e = ::readdir(d.get())) {
    if (!std::string_view(e->d_name).starts_with(prefix)) continue;
    Fd lab(::openat(root.get(), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (lab) total += sizeOfDir(lab.get(), &outputFolder_);
  }
  return total;
}

std::optional<std::string> DiskGuard::refusal(std::string_view key, std::uint64_t incoming,
                                              std::uint64_t& limit) {
  // Named by config key, not path: the answer goes to a client.
  for (const auto& [dir, name] : {std::pair{&dataDir_, "DATA_DIR"}, {&root_, "COURSELABS"}}) {
    auto free = freeBytes(*dir);
    if (free && *free < minFree_ + incoming)
      return fmt::format(
          "Not enough free disk space: {} KB free in {}, this request needs {} KB, and the "
          "service keeps at least {} MB free (MIN_FREE_DISK); try again later",
          *free / 1024, name, (incoming + 1023) / 1024, minFree_ / kMiB);
  }
  std::lock_guard lock(mu_);
  auto now = std::chrono::steady_clock::now();
  auto it = use_.find(key);
  if (it == use_.end() || now - it->second.measured > kRemeasureAfter) {
    // Measured under the lock: one walk per key at a time, however many ask.
    Use fresh{measure(key), now};
    it = use_.insert_or_assign(std::string(key), fresh).first;
  }
  Use& use = it->second;
  if (use.bytes + incoming > maxKeyDisk_)
    return fmt::format(
        "Disk share used up: this key's courselabs hold {} MB, its share is {} MB "
        "(MAX_KEY_DISK); remove old files or outputs, or ask the operator",
        use.bytes / kMiB, maxKeyDisk_ / kMiB);
  limit = std::min(limit, maxKeyDisk_ - use.bytes);
  use.bytes += incoming;
  return std::nullopt;
}

}  // namespace tango::courselab
