#include "autodriver/FileTree.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "autodriver/OsError.hpp"
#include "autodriver/UniqueFd.hpp"

namespace tango::autodriver {
namespace {

// Each level holds one fd and one C++ stack frame; a job that builds a
// deeper tree than this makes cleanup fail (exit 3) instead of crashing us.
constexpr int kMaxDepth = 512;

struct DirCloser {
  void operator()(DIR* dir) const { closedir(dir); }
};

struct ParentAndName {
  UniqueFd parent;
  std::string name;
};

ParentAndName open_parent(const std::string& path) {
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  const auto slash = trimmed.rfind('/');
  std::string dir = slash == std::string::npos ? "." : trimmed.substr(0, slash);
  if (dir.empty()) dir = "/";
  std::string name = slash == std::string::npos ? trimmed : trimmed.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") throw_errno("bad path " + path, EINVAL);
  UniqueFd parent(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent.valid()) throw_errno("open " + dir);
  return {std::move(parent), std::move(name)};
}

UniqueFd open_subdir(int parent, const std::string& name, const std::string& what) {
  UniqueFd fd(openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) throw_errno("open " + what);
  return fd;
}

// Names are collected before acting on them so that the directory is not
// modified while it is being read.
std::vector<std::string> list_entries(int dirfd, const std::string& what) {
  UniqueFd dup_fd(fcntl(dirfd, F_DUPFD_CLOEXEC, 0));
  if (!dup_fd.valid()) throw_errno("dup " + what);
  std::unique_ptr<DIR, DirCloser> dir(fdopendir(dup_fd.get()));
  if (!dir) throw_errno("fdopendir " + what);
  dup_fd.release();  // now owned by dir
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* entry = readdir(dir.get())) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
    errno = 0;
  }
  if (errno != 0) throw_errno("readdir " + what);
  return names;
}

bool lstat_at(int parent, const std::string& name, struct stat& st, const std::string& what) {
  if (fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return true;
  if (errno == ENOENT) return false;
  throw_errno("stat " + what);
}

void check_depth(int depth, const std::string& what) {
  if (depth > kMaxDepth) throw_errno("directory tree too deep at " + what, ELOOP);
}

void remove_at(int parent, const std::string& name, const std::string& what, int depth) {
  check_depth(depth, what);
  struct stat st {};
  if (!lstat_at(parent, name, st, what)) return;
  if (S_ISDIR(st.st_mode)) {
    UniqueFd dir = open_subdir(parent, name, what);
    for (const auto& entry : list_entries(dir.get(), what)) {
      remove_at(dir.get(), entry, what + "/" + entry, depth + 1);
    }
  }
  if (unlinkat(parent, name.c_str(), S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0 &&
      errno != ENOENT) {
    throw_errno("remove " + what);
  }
}

void chown_at(int parent, const std::string& name, uid_t uid, gid_t gid, const std::string& what,
              int depth) {
  check_depth(depth, what);
  struct stat st {};
  if (!lstat_at(parent, name, st, what)) return;
  if (fchownat(parent, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
    throw_errno("chown " + what);
  }
  if (!S_ISDIR(st.st_mode)) return;
  UniqueFd dir = open_subdir(parent, name, what);
  for (const auto& entry : list_entries(dir.get(), what)) {
    chown_at(dir.get(), entry, uid, gid, what + "/" + entry, depth + 1);
  }
}

void copy_file_contents(int from, int to, const std::string& what) {
  char buf[65536];
  for (;;) {
    const ssize_t n = read(from, buf, sizeof buf);
    if (n == 0) return;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("read " + what);
    }
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = write(to, buf + done, static_cast<size_t>(n - done));
      if (w < 0) {
        if (errno == EINTR) continue;
        throw_errno("write copy of " + what);
      }
      done += w;
    }
  }
}

void copy_at(int src_parent, const std::string& src_name, int dst_parent,
             const std::string& dst_name, const std::string& what, int depth) {
  check_depth(depth, what);
  struct stat st {};
  if (!lstat_at(src_parent, src_name, st, what)) throw_errno("stat " + what, ENOENT);
  const mode_t mode = st.st_mode & 07777;
  if (S_ISDIR(st.st_mode)) {
    // Private until filled in; the real mode is applied afterwards.
    if (mkdirat(dst_parent, dst_name.c_str(), 0700) != 0) throw_errno("mkdir copy of " + what);
    UniqueFd src = open_subdir(src_parent, src_name, what);
    UniqueFd dst = open_subdir(dst_parent, dst_name, "copy of " + what);
    for (const auto& entry : list_entries(src.get(), what)) {
      copy_at(src.get(), entry, dst.get(), entry, what + "/" + entry, depth + 1);
    }
    if (fchmod(dst.get(), mode) != 0) throw_errno("chmod copy of " + what);
  } else if (S_ISREG(st.st_mode)) {
    UniqueFd src(openat(src_parent, src_name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!src.valid()) throw_errno("open " + what);
    UniqueFd dst(openat(dst_parent, dst_name.c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!dst.valid()) throw_errno("create copy of " + what);
    copy_file_contents(src.get(), dst.get(), what);
    if (fchmod(dst.get(), mode) != 0) throw_errno("chmod copy of " + what);
  } else if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    const ssize_t n = readlinkat(src_parent, src_name.c_str(), target.data(), target.size());
    if (n < 0) throw_errno("readlink " + what);
    if (static_cast<size_t>(n) >= target.size()) throw_errno("readlink " + what, EOVERFLOW);
    target.resize(static_cast<size_t>(n));
    if (symlinkat(target.c_str(), dst_parent, dst_name.c_str()) != 0) {
      throw_errno("symlink copy of " + what);
    }
  } else {
    std::fprintf(stderr, "autodriver: not copying special file %s\n", what.c_str());
  }
}

}  // namespace

void remove_tree(const std::string& path) {
  auto [parent, name] = open_parent(path);
  remove_at(parent.get(), name, path, 0);
}

void chown_tree(const std::string& path, uid_t uid, gid_t gid) {
  auto [parent, name] = open_parent(path);
  chown_at(parent.get(), name, uid, gid, path, 0);
}

void copy_tree(const std::string& src, const std::string& dst) {
  auto from = open_parent(src);
  auto to = open_parent(dst);
  struct stat st {};
  if (lstat_at(to.parent.get(), to.name, st, dst)) throw_errno("copy to " + dst, EEXIST);
  try {
    copy_at(from.parent.get(), from.name, to.parent.get(), to.name, src, 0);
  } catch (...) {
    // Leave no half-copied directory behind.
    try {
      remove_at(to.parent.get(), to.name, dst, 0);
    } catch (...) {
    }
    throw;
  }
}

void move_tree(const std::string& src, const std::string& dst) {
  if (rename(src.c_str(), dst.c_str()) == 0) return;
  if (errno != EXDEV) throw_errno("rename " + src + " to " + dst);
  copy_tree(src, dst);
  remove_tree(src);
}

}  // namespace tango::autodriver
