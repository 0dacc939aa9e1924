#include "autodriver/GradingUser.hpp"

#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <vector>

#include "autodriver/FileTree.hpp"
#include "autodriver/OsError.hpp"
#include "autodriver/UniqueFd.hpp"

namespace tango::autodriver {
namespace {

std::optional<unsigned long> parse_id(std::string_view text) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  unsigned long value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned long>(c - '0');
  }
  if (value > 0xFFFFFFFEul) return std::nullopt;  // (uid_t)-1 means "no change"
  return value;
}

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  for (;;) {
    const auto colon = line.find(':');
    fields.push_back(line.substr(0, colon));
    if (colon == std::string_view::npos) return fields;
    line.remove_prefix(colon + 1);
  }
}

std::optional<GradingUser> parse_entry(std::string_view line) {
  const auto fields = split_fields(line);
  if (fields.size() != 7 || fields[0].empty()) return std::nullopt;
  const auto uid = parse_id(fields[2]);
  const auto gid = parse_id(fields[3]);
  if (!uid || !gid || fields[5].empty()) return std::nullopt;
  return GradingUser{std::string(fields[0]), static_cast<uid_t>(*uid), static_cast<gid_t>(*gid),
                     std::string(fields[5])};
}

std::string read_file(const char* path) {
  UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) throw_errno(std::string("open ") + path);
  std::string text;
  char buf[8192];
  for (;;) {
    const ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n == 0) return text;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(std::string("read ") + path);
    }
    text.append(buf, static_cast<size_t>(n));
  }
}

struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }
};

}  // namespace

std::optional<GradingUser> find_in_passwd(std::string_view passwd_text,
                                          std::string_view name_or_uid) {
  std::optional<GradingUser> by_uid;
  const auto wanted_uid = parse_id(name_or_uid);
  while (!passwd_text.empty()) {
    const auto newline = passwd_text.find('\n');
    const std::string_view line = passwd_text.substr(0, newline);
    passwd_text.remove_prefix(newline == std::string_view::npos ? passwd_text.size() : newline + 1);
    const auto entry = parse_entry(line);
    if (!entry) continue;
    if (entry->name == name_or_uid) return entry;
    // A name match anywhere wins over a uid match, as with `chown 1000 x`.
    if (wanted_uid && !by_uid && entry->uid == *wanted_uid) by_uid = entry;
  }
  return by_uid;
}

std::optional<GradingUser> lookup_grading_user(std::string_view name_or_uid) {
  return find_in_passwd(read_file("/etc/passwd"), name_or_uid);
}

std::string install_job_dir(const GradingUser& user, const std::string& dir) {
  std::unique_ptr<char, FreeDeleter> real(realpath(dir.c_str(), nullptr));
  if (!real) throw_errno("realpath " + dir);
  const std::string source = real.get();
  const std::string name = source.substr(source.rfind('/') + 1);
  if (name.empty()) throw_errno("cannot move / into a home directory", EINVAL);
  std::string home = user.home;
  while (home.size() > 1 && home.back() == '/') home.pop_back();
  const std::string target = (home == "/" ? "" : home) + "/" + name;

  struct stat source_st {
  }, target_st{};
  if (lstat(source.c_str(), &source_st) != 0) throw_errno("stat " + source);
  const bool target_exists = lstat(target.c_str(), &target_st) == 0;
  const bool already_there =
      target_exists && source_st.st_dev == target_st.st_dev && source_st.st_ino == target_st.st_ino;
  if (!already_there) {
    // A leftover from an earlier job on a reused VM must not be merged with
    // (or make us fail on) this job's files.
    if (target_exists) remove_tree(target);
    move_tree(source, target);
  }
  chown_tree(target, user.uid, user.gid);
  return target;
}

const char* drop_privileges(uid_t uid, gid_t gid) {
  if (setgroups(0, nullptr) != 0) return "setgroups";
  if (setgid(gid) != 0) return "setgid";
  if (setuid(uid) != 0) return "setuid";
  // setuid as root sets real, effective and saved ids; make sure of it.
  if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid) {
    errno = EPERM;
    return "verify dropped ids";
  }
  if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
    errno = EPERM;
    return "verify root cannot be regained";
  }
  // Leaving uid 0 cleared the permitted, effective and ambient sets; the
  // inheritable set is left, and a file with inheritable capabilities could
  // take them back at exec (were no_new_privs not set): clear it too.
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capset, &header, data) != 0) return "capset";
  if (uid != 0 && syscall(SYS_capget, &header, data) == 0) {
    for (const auto& d : data) {
      if (d.effective != 0 || d.permitted != 0 || d.inheritable != 0) {
        errno = EPERM;
        return "verify no capability is left";
      }
    }
  }
  return nullptr;
}

}  // namespace tango::autodriver
