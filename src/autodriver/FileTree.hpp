#pragma once

#include <sys/types.h>

#include <string>

namespace tango::autodriver {

// Directory-tree operations for the job directory. All of them work on
// directory fds with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW, so a symlink inside
// the tree (planted by a handin or by the job) is treated as a link and
// never followed. Only the parent of the top-level path is resolved
// normally; that part is chosen by the service, not by the job. Failures
// throw std::system_error.

// Deletes `path` and everything below it. A missing path is not an error.
void remove_tree(const std::string& path);

// lchown-s `path` and everything below it.
void chown_tree(const std::string& path, uid_t uid, gid_t gid);

// Copies `src` to the new path `dst` (which must not exist): directories,
// regular files and symlinks (as links) with their permission bits. Other
// file types (fifos, devices, sockets) are skipped with a diagnostic.
void copy_tree(const std::string& src, const std::string& dst);

// rename(), falling back to copy + remove when src and dst are on different
// filesystems.
void move_tree(const std::string& src, const std::string& dst);

}  // namespace tango::autodriver
