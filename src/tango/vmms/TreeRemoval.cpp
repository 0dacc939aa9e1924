#include "tango/vmms/TreeRemoval.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "tango/vmms/LocalFiles.hpp"

namespace tango {
namespace fs = std::filesystem;
using local::errnoText;
using local::openDir;

namespace {

// Deletes a directory tree without following symlinks. A job controls what is
// inside job/, including a tree deeper than PATH_MAX or than the fd limit:
// everything is done relative to directory fds, and directories below
// kMaxDepth are first moved up to the top directory and removed from there.
class TreeRemover {
 public:
  explicit TreeRemover(int topFd) : topFd_(topFd) {}

  // Empties the top directory.
  bool clearTop() {
    if (!clear(topFd_, 0)) return false;
    while (!deferred_.empty()) {
      std::string name = std::move(deferred_.back());
      deferred_.pop_back();
      if (!removeAt(topFd_, name, 0)) return false;
    }
    return true;
  }
  const std::string& error() const { return error_; }

 private:
  static constexpr int kMaxDepth = 32;

  bool removeAt(int parentFd, const std::string& name, int depth) {
    if (::unlinkat(parentFd, name.c_str(), 0) == 0 || errno == ENOENT) return true;
    if (errno != EISDIR && errno != EPERM) return fail("unlink " + name);
    for (int attempt = 0; attempt < 3; ++attempt) {
      Fd dir = openDir(parentFd, name.c_str());
      if (!dir) return errno == ENOENT ? true : fail("open " + name);
      if (!clear(dir.get(), depth)) return false;
      dir.reset();
      if (::unlinkat(parentFd, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return true;
      if (errno != ENOTEMPTY && errno != EEXIST) return fail("rmdir " + name);
    }
    return fail("rmdir " + name);
  }

  bool clear(int dirFd, int depth) {
    std::vector<std::string> names;
    {
      // fdopendir takes ownership of the duplicate, closedir releases it.
      int dup = ::fcntl(dirFd, F_DUPFD_CLOEXEC, 0);
      if (dup < 0) return fail("dup");
      DIR* d = ::fdopendir(dup);
      if (!d) {
        ::close(dup);
        return fail("fdopendir");
      }
      while (dirent* e = ::readdir(d)) {
        std::string_view n = e->d_name;
        if (n != "." && n != "..") names.emplace_back(n);
      }
      ::closedir(d);
    }
    for (const auto& n : names) {
      if (::unlinkat(dirFd, n.c_str(), 0) == 0 || errno == ENOENT) continue;
      if (errno != EISDIR && errno != EPERM) return fail("unlink " + n);
      if (depth + 1 >= kMaxDepth) {
        std::string moved = ".deep-" + std::to_string(counter_++);
        if (::renameat(dirFd, n.c_str(), topFd_, moved.c_str()) != 0) return fail("rename " + n);
        deferred_.push_back(std::move(moved));
        continue;
      }
      if (!removeAt(dirFd, n, depth + 1)) return false;
    }
    return true;
  }

  bool fail(const std::string& what) {
    error_ = errnoText(what);
    return false;
  }

  int topFd_;
  std::uint64_t counter_ = 0;
  std::vector<std::string> deferred_;
  std::string error_;
};

}  // namespace

bool removeDirTree(const fs::path& parent, const std::string& name, std::string& error) {
  Fd parentFd = openDir(AT_FDCWD, parent.c_str());
  if (!parentFd) {
    error = errnoText("open " + parent.string());
    return false;
  }
  Fd top = openDir(parentFd.get(), name.c_str());
  if (!top) {
    if (errno == ENOENT) return true;
    if (errno == ENOTDIR || errno == ELOOP) {
      if (::unlinkat(parentFd.get(), name.c_str(), 0) == 0) return true;
    }
    error = errnoText("open " + name);
    return false;
  }
  TreeRemover remover(top.get());
  if (!remover.clearTop()) {
    error = remover.error();
    return false;
  }
  top.reset();
  if (::unlinkat(parentFd.get(), name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    error = errnoText("rmdir " + name);
    return false;
  }
  return true;
}

}  // namespace tango
